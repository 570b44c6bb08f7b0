"""Task metrics per seed ([S, N] -> [S]), the name registry, and host-side summaries across seeds.

A metric that needs the class count takes ``num_classes``; left None, it is inferred from concrete inputs (and
required under jit). Ids outside [0, num_classes) in concrete inputs are refused with a ValueError.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxseed.metrics._base import _float, _jit, _over_runs, _safe_div, _sum_n, _weights, _wmean


@_jit()
def accuracy(pred_SxN, label_N, mask_N=None):
    """Share of (real) examples predicted correctly, per seed."""
    label_N = jnp.asarray(label_N)
    w_N = _weights(mask_N, label_N.shape[-1])
    return _over_runs(lambda p_N: _wmean((p_N == label_N).astype(w_N.dtype), w_N), jnp.asarray(pred_SxN))


def _f1_from(p_N, y_N, w_N, cls):
    """F1 of one class with weighted counts; 0 when tp + fp + fn == 0, as scikit-learn with zero_division=0."""
    hit_p, hit_y = (p_N == cls).astype(w_N.dtype), (y_N == cls).astype(w_N.dtype)
    tp = jnp.sum(w_N * hit_p * hit_y)
    fp_fn = jnp.sum(w_N * (hit_p + hit_y)) - 2 * tp  # fp + fn
    return _safe_div(2 * tp, 2 * tp + fp_fn), (tp + fp_fn) > 0


@_jit(binary=True)
def f1(pred_SxN, label_N, mask_N=None):
    """Binary F1 per seed, positive class 1 (any other value is negative); 0 if there is no positive anywhere."""
    label_N = jnp.asarray(label_N)
    w_N = _weights(mask_N, label_N.shape[-1])
    return _over_runs(lambda p_N: _f1_from(p_N, label_N, w_N, 1)[0], jnp.asarray(pred_SxN))


@_jit("num_classes")
def macro_f1(pred_SxN, label_N, num_classes=None, mask_N=None):
    """Unweighted mean of per-class F1 over the classes present in label or prediction (real examples only).

    This is scikit-learn's ``f1_score(average="macro", zero_division=0)`` without ``labels=``: a class that no
    example has and no run predicts is left out rather than counted as F1 = 0.
    """
    label_N = jnp.asarray(label_N)
    w_N = _weights(mask_N, label_N.shape[-1])

    def one(p_N):
        f_C, present_C = jax.vmap(lambda c: _f1_from(p_N, label_N, w_N, c))(jnp.arange(num_classes))
        return jnp.sum(jnp.where(present_C, f_C, 0)) / jnp.sum(present_C)

    return _over_runs(one, jnp.asarray(pred_SxN))


@_jit("num_classes")
def mcc(pred_SxN, label_N, num_classes=None, mask_N=None):
    """Matthews correlation (multiclass, Gorodkin's R_K), as ``sklearn.metrics.matthews_corrcoef``.

    A constant prediction (or constant label) gives 0, like scikit-learn.
    """
    label_N = jnp.asarray(label_N)
    w_N = _weights(mask_N, label_N.shape[-1])
    classes = jnp.arange(num_classes)
    # Normalising the counts by the total keeps the products O(1) and float32-accurate for any N.
    total = jnp.sum(w_N)
    t_C = jnp.sum(w_N * (label_N[None, :] == classes[:, None]), axis=1) / total

    def one(p_N):
        p_C = jnp.sum(w_N * (p_N[None, :] == classes[:, None]), axis=1) / total
        c = jnp.sum(w_N * (p_N == label_N)) / total
        cov_tp = c - jnp.dot(t_C, p_C)
        cov_pp, cov_tt = 1 - jnp.dot(p_C, p_C), 1 - jnp.dot(t_C, t_C)
        return _safe_div(cov_tp, jnp.sqrt(cov_tt * cov_pp))

    return _over_runs(one, jnp.asarray(pred_SxN))


def _pearson_1d(x_N, y_N, w_N):
    """Weighted Pearson r; NaN if either side is constant (or NaN) on the real examples."""
    x_N, y_N = x_N.astype(w_N.dtype), y_N.astype(w_N.dtype)
    real = w_N > 0

    def centred(v):
        # Explicit constancy test: a float mean of equal values need not equal them, which would give +-1, not NaN.
        const = jnp.max(jnp.where(real, v, -jnp.inf)) == jnp.min(jnp.where(real, v, jnp.inf))
        v = jnp.where(real, v, 0)  # padded slots may hold anything, even NaN
        return jnp.where(real, v - _wmean(v, w_N), 0), const

    dx, cx = centred(x_N)
    dy, cy = centred(y_N)
    r = _sum_n(w_N * dx * dy) / jnp.sqrt(_sum_n(w_N * dx * dx) * _sum_n(w_N * dy * dy))
    return jnp.where(cx | cy, jnp.nan, jnp.clip(r, -1, 1))


def _avg_ranks(x_N, w_N):
    """Weighted average ranks (1-based): rank = weight below + (weight tied + 1) / 2.

    With 0/1 weights these are scipy's 'average' ranks of the real examples; with multiplicities they are the
    ranks of the data with the examples duplicated. One sort, then each tie group's bounds by running max/min
    (the cumulative weight never decreases). NaNs sort last; spearman flags them.
    """
    order = jnp.argsort(x_N)
    xs, ws = x_N[order], w_N[order]
    cw = jnp.cumsum(ws)
    differ = xs[1:] != xs[:-1]
    yes = jnp.ones((1,), bool)
    new, end = jnp.concatenate([yes, differ]), jnp.concatenate([differ, yes])
    below = jax.lax.cummax(jnp.where(new, cw - ws, 0))  # weight before the tie group
    upto = jax.lax.cummin(jnp.where(end, cw, jnp.inf), reverse=True)  # weight up to its end
    return jnp.zeros_like(cw).at[order].set(below + (upto - below + 1) / 2)


@_jit()
def pearson(score_SxN, label_N, mask_N=None):
    """Pearson correlation of scores with labels per seed; NaN if the scores or labels are constant."""
    label_N = jnp.asarray(label_N)
    w_N = _weights(mask_N, label_N.shape[-1])
    return _over_runs(lambda s_N: _pearson_1d(s_N, label_N, w_N), jnp.asarray(score_SxN))


@_jit()
def spearman(score_SxN, label_N, mask_N=None):
    """Spearman correlation (Pearson on average ranks, ties averaged over the real examples); NaN if constant."""
    score_SxN, label_N = jnp.asarray(score_SxN, _float()), jnp.asarray(label_N, _float())
    w_N = _weights(mask_N, label_N.shape[-1])
    # Rank the label together with every run: one vmapped ranking, compiled once.
    rows_RxN = jnp.concatenate([label_N[None], score_SxN.reshape(-1, label_N.shape[-1])])
    ranks_RxN = jax.vmap(_avg_ranks, (0, None))(rows_RxN, w_N)
    # Ranks of NaNs are finite, so bring the NaN back explicitly (scipy's nan_policy="propagate").
    nan_R = jnp.any((w_N > 0) & jnp.isnan(rows_RxN), axis=1)
    r = jax.vmap(_pearson_1d, (0, None, None))(ranks_RxN[1:], ranks_RxN[0], w_N)
    return jnp.where(nan_R[1:] | nan_R[0], jnp.nan, r).reshape(score_SxN.shape[:-1])


@_jit("num_groups")
def multirc_em(pred_SxN, label_N, group_N, num_groups=None, mask_N=None):
    """MultiRC exact match: share of questions (groups) whose real answer options are all classified right.

    ``group_N`` are integer question ids in [0, num_groups); groups without real examples are not counted.
    """
    label_N, group_N = jnp.asarray(label_N), jnp.asarray(group_N)
    w_N = _weights(mask_N, label_N.shape[-1])
    present_G = jax.ops.segment_sum(w_N, group_N, num_segments=num_groups) > 0

    def one(p_N):
        wrong_G = jax.ops.segment_sum(w_N * (p_N != label_N), group_N, num_segments=num_groups)
        return jnp.sum(present_G & (wrong_G == 0)) / jnp.sum(present_G)

    return _over_runs(one, jnp.asarray(pred_SxN))


@_jit(binary=True)
def multirc_f1a(pred_SxN, label_N, mask_N=None):
    """MultiRC F1a: binary F1 over all answer options, ignoring the grouping into questions."""
    return f1(pred_SxN, label_N, mask_N)


# The run engine looks metrics up by name. macro_f1 and mcc take num_classes (inferred from concrete inputs when
# None); ``compute_metric`` below gives all of them one calling convention.
METRICS: dict[str, Callable] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}
REGRESSION_METRICS = ("pearson", "spearman")


def compute_metric(name, pred_SxN, label_N, num_classes=None, mask_N=None):
    """Uniform call for any METRICS entry (num_classes is ignored by the metrics that do not need it)."""
    fn = METRICS[name]
    if name in ("macro_f1", "mcc"):
        return fn(pred_SxN, label_N, num_classes=num_classes, mask_N=mask_N)
    return fn(pred_SxN, label_N, mask_N=mask_N)




def summarize(scores_S) -> dict:
    """Mean, std and var (ddof=1), min, max of per-seed scores, as Python floats.

    NaN-aware: NaN scores (e.g. Pearson of a collapsed, constant run) are left out of every statistic and counted
    in ``num_nan``; ``n`` is the number of scores used. With n < 2 std and var are NaN; with n = 0 all are NaN.
    """
    x = np.asarray(scores_S, dtype=np.float64).reshape(-1)
    ok = x[~np.isnan(x)]
    n = ok.size
    nan = math.nan
    return {
        "mean": float(ok.mean()) if n else nan,
        "std": float(ok.std(ddof=1)) if n > 1 else nan,
        "var": float(ok.var(ddof=1)) if n > 1 else nan,
        "min": float(ok.min()) if n else nan,
        "max": float(ok.max()) if n else nan,
        "n": int(n),
        "num_nan": int(x.size - n),
    }


@_jit()
def failed_runs(scores_S, baseline, atol=1e-6):
    """Runs at or below the majority-class baseline (Mosbach et al. 2021): bool [S].

    ``atol`` absorbs float rounding, so a run that predicts the majority class everywhere is flagged even if its
    float32 score lands a hair above a baseline computed elsewhere. NaN scores count as failed.
    """
    return ~(jnp.asarray(scores_S) > baseline + atol)


def majority_baseline(metric_name, label_N, majority_class=None, num_classes=None, mask_N=None) -> float:
    """The metric of predicting ``majority_class`` everywhere (0.0 for regression metrics).

    ``majority_class=None`` takes the most frequent label (smallest on ties). Computed with the same function as
    the runs, so a collapsed run scores exactly the baseline.
    """
    if metric_name in REGRESSION_METRICS:
        return 0.0
    label_N = jnp.asarray(label_N)
    if majority_class is None:
        w = np.ones(label_N.shape) if mask_N is None else np.asarray(mask_N, dtype=np.float64)
        majority_class = int(np.argmax(np.bincount(np.asarray(label_N), weights=w, minlength=num_classes or 0)))
    const_1xN = jnp.full((1,) + label_N.shape, majority_class, label_N.dtype)
    return float(compute_metric(metric_name, const_1xN, label_N, num_classes, mask_N)[0])
