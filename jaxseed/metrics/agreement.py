"""Micro metrics: how much the S seeds agree with each other (and with the labels), and CON_k curves.

Functions that take ``num_classes`` infer it from concrete predictions when it is None and refuse ids outside
[0, num_classes); under jit it must be given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxseed.metrics._base import _float, _jit, _seeds, _weights, _wmean
from jaxseed.metrics.task import accuracy


@_jit("num_classes")
def vote_counts(pred_SxN, num_classes=None):
    """c[i, j] = number of seeds predicting class j on example i: int [N, C] (C inferred from concrete input if None)."""
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
def fleiss_kappa(pred_SxN, num_classes=None, mask_N=None):
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
def majority_label(pred_SxN, num_classes=None):
    """Majority vote over seeds per example: int [N]; ties go to the smallest class."""
    return jnp.argmax(vote_counts(pred_SxN, num_classes), axis=1)  # argmax returns the first maximum


@_jit("num_classes")
def vote_share(pred_SxN, num_classes=None):
    """Share of seeds voting the majority label: [N], in [1/C, 1]."""
    return jnp.max(vote_counts(pred_SxN, num_classes), axis=1) / _seeds(pred_SxN).shape[0]


@_jit("num_classes")
def vote_entropy(pred_SxN, num_classes=None):
    """Entropy (nats) of the seeds' vote distribution per example: [N]; 0 when all agree."""
    p_NxC = vote_counts(pred_SxN, num_classes) / _seeds(pred_SxN).shape[0]
    return -jnp.sum(jax.scipy.special.xlogy(p_NxC, p_NxC), axis=1)  # xlogy: 0 log 0 = 0


@_jit("num_classes")
def ensemble_accuracy(pred_SxN, label_N, num_classes=None, mask_N=None):
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
def consistency_curve(pred_SxN, ks, num_classes=None, mask_N=None):
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


@_jit("k", "num_classes")
def consistency_k_examples(pred_SxN, k, num_classes=None):
    """Per example, the chance that k seeds drawn without replacement from the S all agree: [N].

    Σⱼ C(c[i,j], k) / C(S, k); its mean over examples is CON_k (``consistency_curve``), and at k = S it is the
    0/1 indicator of ``consistency``. Per example, so a bootstrap over examples can resample it; runs with
    different S compare at a common k.
    """
    pred_SxN = _seeds(pred_SxN)
    table = jnp.asarray(_choose_ratio_table(pred_SxN.shape[0])[:, k], _float())
    return jnp.sum(table[vote_counts(pred_SxN, num_classes)], axis=1)


@_jit("k")
def correct_consistency_k_examples(pred_SxN, label_N, k):
    """Per example, the chance that k seeds drawn without replacement from the S are all right: [N]."""
    pred_SxN = _seeds(pred_SxN)
    table = jnp.asarray(_choose_ratio_table(pred_SxN.shape[0])[:, k], _float())
    return table[jnp.sum(pred_SxN == jnp.asarray(label_N), axis=0)]
