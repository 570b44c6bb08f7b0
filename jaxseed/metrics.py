"""Task metrics per seed, and how much the seeds agree with each other.

Conventions
-----------
* ``pred_SxN`` / ``score_SxN``: a leading seed axis S over N evaluation examples. Class predictions are integers
  in ``[0, num_classes)``; regression scores are floats. ``label_N`` is shared by all seeds.
* Task metrics (``accuracy`` ... ``multirc_f1a``) are written for one run ``[N]`` and vmapped over every leading
  axis: ``[S, N] -> [S]``, ``[B, S, N] -> [B, S]``, and a 1-D ``[N]`` input gives a scalar.
  Micro (agreement) metrics need the seed axis; a 1-D input is read as S = 1.
* ``mask_N`` (optional, everywhere a metric averages over examples): bool, True = real example, so padded
  examples drop out. It may also be non-negative example *weights* (multiplicities): a weight of 2 counts an
  example twice, exactly as if it were duplicated. The Multi-Bootstrap in ``stats.py`` relies on this.
* Precision: everything is computed in JAX's default float: float32, careful enough to match scikit-learn and
  scipy within 1e-6 (counts stay integer-exact up to 2**24 examples, MCC works on normalised counts, correlation
  sums are blocked), or float64 under ``jax.enable_x64``; the tests check both at 1e-6. (Casting float64 scores
  to float32 can merge nearly equal values into ties; that input rounding is the caller's, not the metric's.)
* All array functions are pure jax.numpy (no Python control flow on values), vmap-able, and jitted (``_jit``)
  with the shape-setting arguments (num_classes, num_groups) static: an eager call compiles once per shape,
  masked or not, instead of dispatching op by op. ``summarize``, ``majority_baseline``, ``compute_metric`` and
  ``record_scores`` are host-side helpers.
"""

from __future__ import annotations

import collections
import functools
import inspect
import math
import re
import string
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# ----------------------------------------------------------------------------------------------------- helpers


def _float():
    """The default float dtype (float32, float64 under x64)."""
    return jnp.result_type(float)


def _weights(mask_N, n):
    """Example weights from an optional bool mask or weight vector."""
    if mask_N is None:
        return jnp.ones((n,), _float())
    return jnp.asarray(mask_N).astype(_float())


def _sum_n(x_N):
    """Sum over the last axis in blocks of 128: float32 rounding then grows with ~N/128 + 128 additions, not N
    (enough to keep Pearson/Spearman on 10⁴ examples within 1e-6 of float64)."""
    pad = (-x_N.shape[-1]) % 128
    x_N = jnp.pad(x_N, [(0, 0)] * (x_N.ndim - 1) + [(0, pad)])
    return jnp.sum(jnp.sum(x_N.reshape(x_N.shape[:-1] + (-1, 128)), axis=-1), axis=-1)


def _wmean(x_N, w_N):
    """Weighted mean over the example axis; all-masked gives NaN (0/0)."""
    return _sum_n(x_N * w_N) / _sum_n(w_N)


def _as_ks(ks):
    """ks as an array: any int sequence or range on the host, or an array (also traced) as is."""
    return ks if isinstance(ks, jax.Array) else np.asarray(ks, dtype=np.int32)


def _jit(*static, n_from=None):
    """jax.jit with ``static`` argnames, behind a thin call normaliser so that equivalent calls share one compile.

    Arguments are bound by name with defaults filled in (positional, keyword and default calls hit the same
    cache entry), ``mask_N=None`` becomes all-ones weights sized by the last axis of argument ``n_from`` (default:
    the first), so masked and unmasked calls share the compiled code, and ``ks`` becomes an array. The normaliser
    is plain jnp, so the functions still nest in jit and vmap.
    """
    def deco(fn):
        sig = inspect.signature(fn)
        jitted = jax.jit(fn, static_argnames=static)
        sized_by = n_from or next(iter(sig.parameters))

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            if "mask_N" in arguments:
                n = jnp.shape(arguments[sized_by])[-1]
                arguments["mask_N"] = _weights(arguments["mask_N"], n)
            if "ks" in arguments:
                arguments["ks"] = _as_ks(arguments["ks"])
            return jitted(**arguments)

        return call

    return deco


def _over_runs(fn, x):
    """Apply a one-run function [N] -> scalar over every leading axis of x."""
    for _ in range(jnp.ndim(x) - 1):
        fn = jax.vmap(fn)
    return fn(x)


def _seeds(pred_SxN):
    """Micro metrics need a seed axis: read a 1-D input as S = 1."""
    return jnp.atleast_2d(jnp.asarray(pred_SxN))


def _safe_div(num, den):
    """num / den, 0 where den == 0 (scikit-learn's zero_division=0)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)


# ------------------------------------------------------------------------------------------ task metrics [S]


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


@_jit()
def f1(pred_SxN, label_N, mask_N=None):
    """Binary F1 per seed, positive class 1 (any other value is negative); 0 if there is no positive anywhere."""
    label_N = jnp.asarray(label_N)
    w_N = _weights(mask_N, label_N.shape[-1])
    return _over_runs(lambda p_N: _f1_from(p_N, label_N, w_N, 1)[0], jnp.asarray(pred_SxN))


@_jit("num_classes")
def macro_f1(pred_SxN, label_N, num_classes, mask_N=None):
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
def mcc(pred_SxN, label_N, num_classes=2, mask_N=None):
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
def multirc_em(pred_SxN, label_N, group_N, num_groups, mask_N=None):
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


@_jit()
def multirc_f1a(pred_SxN, label_N, mask_N=None):
    """MultiRC F1a: binary F1 over all answer options, ignoring the grouping into questions."""
    return f1(pred_SxN, label_N, mask_N)


# The run engine looks metrics up by name. Call with keywords beyond (pred, label): macro_f1 needs num_classes,
# and mcc takes it; ``compute_metric`` below gives all of them one calling convention.
METRICS: dict[str, Callable] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}
REGRESSION_METRICS = ("pearson", "spearman")


def compute_metric(name, pred_SxN, label_N, num_classes=2, mask_N=None):
    """Uniform call for any METRICS entry (num_classes is ignored by the metrics that do not need it)."""
    fn = METRICS[name]
    if name in ("macro_f1", "mcc"):
        return fn(pred_SxN, label_N, num_classes=num_classes, mask_N=mask_N)
    return fn(pred_SxN, label_N, mask_N=mask_N)


# ------------------------------------------------------------------------------------------- ReCoRD (host)

_DROP_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _squad_tokens(s: str) -> list[str]:
    """SQuAD v1.1 / ReCoRD answer normalisation, as tokens: lower case, drop punctuation and articles."""
    return _ARTICLES.sub(" ", s.lower().translate(_DROP_PUNCT)).split()


def _token_f1(pred: list[str], gold: list[str]) -> float:
    same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def record_scores(predictions: list[str], answers: list[list[str]]) -> tuple[float, float]:
    """ReCoRD (exact match, token F1) of one run, each the max over the gold answers, averaged over examples.

    Fractions in [0, 1] (the official script multiplies by 100). An example with no gold answer scores 0.
    Exact match compares the normalised strings, i.e. the token lists joined by single spaces.
    """
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} answer lists")
    if not predictions:
        return math.nan, math.nan
    em = f1s = 0.0
    for pred, golds in zip(predictions, answers):
        p = _squad_tokens(pred)
        gs = [_squad_tokens(g) for g in golds]
        em += max((float(p == g) for g in gs), default=0.0)
        f1s += max((_token_f1(p, g) for g in gs), default=0.0)
    return em / len(predictions), f1s / len(predictions)


# ------------------------------------------------------------------------------------------- across seeds


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


def majority_baseline(metric_name, label_N, majority_class=None, num_classes=2, mask_N=None) -> float:
    """The metric of predicting ``majority_class`` everywhere (0.0 for regression metrics).

    ``majority_class=None`` takes the most frequent label (smallest on ties). Computed with the same function as
    the runs, so a collapsed run scores exactly the baseline.
    """
    if metric_name in REGRESSION_METRICS:
        return 0.0
    label_N = jnp.asarray(label_N)
    if majority_class is None:
        w = np.ones(label_N.shape) if mask_N is None else np.asarray(mask_N, dtype=np.float64)
        majority_class = int(np.argmax(np.bincount(np.asarray(label_N), weights=w, minlength=num_classes)))
    const_1xN = jnp.full((1,) + label_N.shape, majority_class, label_N.dtype)
    return float(compute_metric(metric_name, const_1xN, label_N, num_classes, mask_N)[0])


# --------------------------------------------------------------------------- micro: agreement between seeds


@_jit("num_classes")
def vote_counts(pred_SxN, num_classes):
    """c[i, j] = number of seeds predicting class j on example i: int [N, C]. Out-of-range labels are not counted."""
    pred_SxN = _seeds(pred_SxN)
    return jnp.sum(pred_SxN[..., None] == jnp.arange(num_classes), axis=0, dtype=jnp.int32)


@_jit()
def consistency(pred_SxN, mask_N=None):
    """CON: share of examples on which all S seeds give the same label (right or wrong)."""
    pred_SxN = _seeds(pred_SxN)
    agree_N = jnp.all(pred_SxN == pred_SxN[:1], axis=0)
    return _wmean(agree_N, _weights(mask_N, pred_SxN.shape[1]))


@_jit()
def correct_consistency(pred_SxN, label_N, mask_N=None):
    """Share of examples on which all S seeds are right. (correct / CON is the right share of consistent ones.)"""
    pred_SxN = _seeds(pred_SxN)
    right_N = jnp.all(pred_SxN == jnp.asarray(label_N), axis=0)
    return _wmean(right_N, _weights(mask_N, pred_SxN.shape[1]))


def _sum_sq_counts(pred_SxN):
    """Σ_j c[i, j]² per example without knowing the classes: sort the seeds, sum each seed's tie-run length.

    A seed in a run of r equal labels contributes r, so the r seeds give r²; O(S log S) per example, O(S N) memory.
    """
    s = pred_SxN.shape[0]
    ps = jnp.sort(pred_SxN, axis=0)
    idx = jnp.arange(s)[:, None]
    new = jnp.concatenate([jnp.ones_like(ps[:1], bool), ps[1:] != ps[:-1]], axis=0)
    end = jnp.concatenate([ps[1:] != ps[:-1], jnp.ones_like(ps[:1], bool)], axis=0)
    first = jax.lax.cummax(jnp.where(new, idx, 0), axis=0)
    last = jax.lax.cummin(jnp.where(end, idx, s - 1), axis=0, reverse=True)
    return jnp.sum(last - first + 1, axis=0)


@_jit()
def pairwise_agreement(pred_SxN, mask_N=None):
    """Mean over seed pairs (a < b) of the share of equal predictions, = 1 − mean off-diagonal churn; NaN if S = 1.

    Per example, the share of agreeing ordered pairs is (Σ_j c_ij² − S) / (S(S − 1)); averaging it over examples
    equals averaging per-pair agreement over pairs, and avoids the S × S × N comparison.
    """
    pred_SxN = _seeds(pred_SxN)
    s = pred_SxN.shape[0]
    agree_N = (_sum_sq_counts(pred_SxN) - s) / (s * (s - 1))
    return _wmean(agree_N, _weights(mask_N, pred_SxN.shape[1]))


@_jit()
def churn_matrix(pred_SxN, mask_N=None):
    """churn[a, b] = share of examples where seeds a and b disagree: [S, S], symmetric, zero diagonal."""
    pred_SxN = _seeds(pred_SxN)
    w_N = _weights(mask_N, pred_SxN.shape[1])
    differ_SxSxN = pred_SxN[:, None, :] != pred_SxN[None, :, :]  # fused into the reduction by XLA
    return jnp.sum(differ_SxSxN * w_N, axis=-1) / jnp.sum(w_N)


@_jit("num_classes")
def fleiss_kappa(pred_SxN, num_classes, mask_N=None):
    """Fleiss' kappa with seeds as raters: (P̄ − Pₑ) / (1 − Pₑ). NaN if S = 1 or only one class is ever used."""
    pred_SxN = _seeds(pred_SxN)
    s = pred_SxN.shape[0]
    c_NxC = vote_counts(pred_SxN, num_classes).astype(_float())
    w_N = _weights(mask_N, pred_SxN.shape[1])
    p_bar = _wmean((jnp.sum(c_NxC**2, axis=1) - s) / (s * (s - 1)), w_N)
    p_C = jnp.sum(c_NxC * w_N[:, None], axis=0) / (jnp.sum(w_N) * s)
    p_e = jnp.sum(p_C**2)
    return (p_bar - p_e) / (1 - p_e)


@_jit("num_classes")
def majority_label(pred_SxN, num_classes):
    """Majority vote over seeds per example: int [N]; ties go to the smallest class."""
    return jnp.argmax(vote_counts(pred_SxN, num_classes), axis=1)  # argmax returns the first maximum


@_jit("num_classes")
def vote_share(pred_SxN, num_classes):
    """Share of seeds voting the majority label: [N], in [1/C, 1]."""
    return jnp.max(vote_counts(pred_SxN, num_classes), axis=1) / _seeds(pred_SxN).shape[0]


@_jit("num_classes")
def vote_entropy(pred_SxN, num_classes):
    """Entropy (nats) of the seeds' vote distribution per example: [N]; 0 when all agree."""
    p_NxC = vote_counts(pred_SxN, num_classes) / _seeds(pred_SxN).shape[0]
    return -jnp.sum(jax.scipy.special.xlogy(p_NxC, p_NxC), axis=1)  # xlogy: 0 log 0 = 0


@_jit("num_classes")
def ensemble_accuracy(pred_SxN, label_N, num_classes, mask_N=None):
    """Accuracy of the seeds' majority vote (scalar)."""
    return accuracy(majority_label(pred_SxN, num_classes), label_N, mask_N)


# ------------------------------------------------------------------------------------- micro: regression


@_jit()
def score_std(score_SxN):
    """Per-example std across seeds (ddof=1): [N]; NaN if S = 1."""
    return jnp.std(_seeds(score_SxN).astype(_float()), axis=0, ddof=1)


@_jit()
def consistency_within(score_SxN, tol=0.5, mask_N=None):
    """Share of examples whose max − min across seeds is ≤ tol.

    The default tol = 0.5 is a tenth of STS-B's 0–5 similarity scale (half a grade): runs within it give the
    same rounded grade or neighbouring ones. Pass a tol matched to the scale of other regression tasks.
    """
    score_SxN = _seeds(score_SxN).astype(_float())
    spread_N = jnp.max(score_SxN, axis=0) - jnp.min(score_SxN, axis=0)
    return _wmean(spread_N <= tol, _weights(mask_N, score_SxN.shape[1]))


# ---------------------------------------------------------------------------------------- CON_k curves


def _choose_ratio_table(s):
    """T[v, k] = C(v, k) / C(s, k) for v, k in 0..s as a stable product Π_{t<k} (v − t)/(s − t).

    Built on the host in float64 at trace time (s is a static shape), so it is exact to float rounding for any s
    (no huge binomials, no log-gamma cancellation); C(v, k) = 0 for v < k falls out of the zero factor.
    """
    v = np.arange(s + 1, dtype=np.float64)[:, None]
    t = np.arange(s, dtype=np.float64)[None, :]
    factors = (v - t) / (s - t)  # [s+1, s]
    table = np.concatenate([np.ones((s + 1, 1)), np.cumprod(factors, axis=1)], axis=1)
    return np.maximum(table, 0.0)  # products past a zero factor may be -0.0


def _curve_from_hist(hist_V, ks, s, total):
    """Σ_v hist[v] T[v, k] / total for each k; NaN for k outside 1..S."""
    table = jnp.asarray(_choose_ratio_table(s), _float())
    ks = jnp.asarray(ks)
    cols = jnp.take(table, jnp.clip(ks, 0, s), axis=1)  # [S+1, K]
    return jnp.where((ks >= 1) & (ks <= s), hist_V @ cols / total, jnp.nan)


@_jit("num_classes")
def consistency_curve(pred_SxN, ks, num_classes, mask_N=None):
    """Expected CON of k seeds drawn without replacement from the S: [len(ks)].

    CON_k = (1/N) Σᵢ Σⱼ C(c[i,j], k) / C(S, k), computed from the histogram of the counts c[i, j] and an exact
    ratio table; CON_S = consistency, CON_2 = pairwise_agreement, and k outside 1..S gives NaN. Predictions
    must lie in [0, num_classes).
    """
    pred_SxN = _seeds(pred_SxN)
    s = pred_SxN.shape[0]
    c_NxC = vote_counts(pred_SxN, num_classes)
    w_N = _weights(mask_N, pred_SxN.shape[1])
    hist_V = jnp.zeros((s + 1,), _float()).at[c_NxC].add(jnp.broadcast_to(w_N[:, None], c_NxC.shape))
    return _curve_from_hist(hist_V, ks, s, jnp.sum(w_N))


@_jit()
def correct_consistency_curve(pred_SxN, label_N, ks, mask_N=None):
    """Expected correct consistency of k of the S seeds: (1/N) Σᵢ C(c[i, yᵢ], k) / C(S, k), [len(ks)]."""
    pred_SxN = _seeds(pred_SxN)
    s = pred_SxN.shape[0]
    right_N = jnp.sum(pred_SxN == jnp.asarray(label_N), axis=0)
    w_N = _weights(mask_N, pred_SxN.shape[1])
    hist_V = jnp.zeros((s + 1,), _float()).at[right_N].add(w_N)
    return _curve_from_hist(hist_V, ks, s, jnp.sum(w_N))
