"""Statistics across seeds: expected maximum, Multi-Bootstrap, distribution-wise variance.

Same conventions as ``metrics.py``: a leading seed axis S, optional ``mask_N`` (True = real example), JAX's default
float (float32, float64 under ``jax.enable_x64``), jit-able with the arguments that set shapes marked static.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxseed.metrics import _float, _jit, _weights


@_jit()
def expected_max(scores_S):
    """E[max of n runs] for n = 1..S under the empirical distribution of the S scores (Dodge et al. 2019): [S].

    Σₖ v(k)((k/S)ⁿ − ((k−1)/S)ⁿ) with v sorted ascending, rearranged (summation by parts) into
    v(S) − Σ_{k<S} (v(k+1) − v(k)) (k/S)ⁿ: the same number, but every term is ≥ 0 and shrinks with n, so in floats
    too the result never exceeds the max and never decreases in n. Works on the last axis; a NaN score gives NaN.
    """
    v = jnp.sort(jnp.asarray(scores_S, _float()), axis=-1)
    s = v.shape[-1]
    n = jnp.arange(1, s + 1, dtype=v.dtype)[:, None]
    cdf_nxK = (jnp.arange(1, s, dtype=v.dtype) / s) ** n  # P(max of n ≤ v(k)), k < S
    return v[..., -1:] - jnp.diff(v, axis=-1) @ cdf_nxK.T


def _uniforms(key, shape):
    """Uniform [0, 1) floats with 24 random bits (as jax.random.uniform in float32), from a single ``bits`` call.

    All the bootstrap's randomness (examples and seeds, both systems) comes from this one call: on this 2-core CPU
    each threefry call site adds 0.3–0.5 s of compile time.
    """
    return (jax.random.bits(key, shape, jnp.uint32) >> 8).astype(jnp.float32) * 2.0**-24


def _counts(picks_DxM, used_M, size):
    """Multiplicities [D, size] of the picked indices (a pick counts if its slot is used), one flat scatter-add.

    Counts rather than gathered index lists: scoring a draw becomes a weighted sum (one matmul for all draws) and
    a [draws, S, N] gather is never built. A flat scatter compiles and runs faster on CPU than a vmapped one.
    """
    d = picks_DxM.shape[0]
    flat = (picks_DxM + size * jnp.arange(d)[:, None]).reshape(-1)
    return jnp.zeros((d * size,), _float()).at[flat].add(jnp.tile(used_M.astype(_float()), d)).reshape(d, size)


def _pick(u, n):
    """Uniform integers in [0, n) from uniforms u (n may be traced)."""
    return jnp.minimum((u * n).astype(jnp.int32), n - 1)


@_jit("num_draws", "paired", "metric_fn", "batch_size", n_from="correct_SxN")
def multibootstrap(key, correct_SxN, num_draws=1000, other_SxN=None, paired=True, *,
                   metric_fn: Callable | None = None, label_N=None, mask_N=None, batch_size=None):
    """Multi-Bootstrap (Sellam et al. 2022) over seeds and examples.

    Each draw resamples the seeds with replacement (shared by both systems when ``paired``; paired needs equal S)
    and the real examples with replacement (always shared), scores each seed on the resampled examples, averages
    over the resampled seeds. Vectorised over draws and jitted (``num_draws``, ``paired``, ``metric_fn``,
    ``batch_size`` are static: a new value recompiles; ``metric_fn`` is hashed by identity, so build a
    ``functools.partial`` once and reuse it rather than a fresh one per call).

    Two modes:
      * decomposable (``metric_fn=None``): ``correct_SxN`` holds per-example scores (1/0 correct, or a loss); a
        seed's score on a resample is the count-weighted mean, so all draws are one [D, N] × [N, S] matmul.
      * non-decomposable: ``correct_SxN``/``other_SxN`` are predictions and each seed's score is
        ``metric_fn(pred_SxN, label_N, mask_N=weights_N) -> [S]`` with weights_N the example multiplicities (every
        metric in ``metrics.py`` reads them as duplicated examples; bind extra args with functools.partial, e.g.
        ``partial(macro_f1, num_classes=3)``). Draws are mapped in batches of ``batch_size`` to bound memory.

    Returns a dict of scalars: ``estimate``, ``ci_low``, ``ci_high`` (2.5 / 97.5 percentiles over draws) for the
    system; with ``other_SxN`` also ``other_*`` and ``diff_*`` for other − system, and ``p_value`` = share of draws
    with difference ≤ 0 (small p: other is better). ``estimate``s are on the full data (mean over seeds). In the
    decomposable mode with 0/1 scores a tied draw is exactly 0 (counted as ≤ 0); through ``metric_fn`` a tie can
    land a rounding error either side of 0.
    """
    correct_SxN = jnp.asarray(correct_SxN)
    other_SxN = None if other_SxN is None else jnp.asarray(other_SxN)
    mask_N = jnp.ones(correct_SxN.shape[-1], bool) if mask_N is None else jnp.asarray(mask_N, bool)
    n, s = mask_N.shape[0], correct_SxN.shape[0]
    s_other = 0 if other_SxN is None or paired else other_SxN.shape[0]
    u = _uniforms(key, (num_draws, n + s + s_other))
    # Examples: n_real picks among the real ones. Real examples go first so the fixed N slots can use only the
    # first n_real (n_real may be traced); padded examples are never drawn.
    n_real_i = jnp.sum(mask_N)
    real_first = jnp.argsort(~mask_N, stable=True)
    w_DxN = _counts(real_first[_pick(u[:, :n], n_real_i)], jnp.arange(n) < n_real_i, n)
    v_DxS = _counts(_pick(u[:, n:n + s], s), jnp.ones(s, bool), s)

    if metric_fn is None:
        n_real = n_real_i.astype(_float())

        def per_seed(x_SxN):
            # Sums, not means, over the resampled examples ([D, S]) and the data ([S]): for 0/1 scores every
            # partial sum is an integer, exact in float32, so a tie between two systems is an exact 0.
            x_SxN = jnp.where(mask_N, jnp.asarray(x_SxN, _float()), 0)
            return w_DxN @ x_SxN.T, x_SxN.sum(-1), n_real
    else:
        if batch_size is None:  # keep one batch's [B, S, N] intermediates around 2**22 elements
            batch_size = max(1, 2**22 // correct_SxN.size)

        def per_seed(x_SxN):
            score = lambda w_N: metric_fn(x_SxN, label_N, mask_N=w_N)
            return jax.lax.map(score, w_DxN, batch_size=batch_size), score(mask_N.astype(_float())), 1.0

    def draws(x_SxN, v_DxS):  # [D] estimates over resampled seeds, and the point estimate
        m_DxS, m_S, scale = per_seed(x_SxN)
        return jnp.sum(v_DxS * m_DxS, axis=1) / (v_DxS.shape[1] * scale), jnp.mean(m_S) / scale

    est_D, point = draws(correct_SxN, v_DxS)
    names, points, draws_XxD = [""], [point], [est_D]
    if other_SxN is not None:
        if paired and other_SxN.shape[0] != s:
            raise ValueError(f"paired Multi-Bootstrap needs the same seeds: S = {s} vs {other_SxN.shape[0]}")
        v_other = v_DxS if paired else _counts(_pick(u[:, n + s:], s_other), jnp.ones(s_other, bool), s_other)
        other_D, other_point = draws(other_SxN, v_other)
        if paired and metric_fn is None:
            # Linear in the scores: score the difference directly, so equal systems give exactly 0 in every draw
            # and, for 0/1 scores, a tie is exactly 0 rather than ± rounding (which would move the p-value).
            diff_D, diff_point = draws(jnp.asarray(other_SxN, _float()) - jnp.asarray(correct_SxN, _float()), v_DxS)
        else:
            diff_D, diff_point = other_D - est_D, other_point - point
        names, points, draws_XxD = ["", "other_", "diff_"], [point, other_point, diff_point], [est_D, other_D, diff_D]
    # One percentile call over the stacked draws: a single sort to compile, not three.
    lo_X, hi_X = jnp.percentile(jnp.stack(draws_XxD), jnp.array([2.5, 97.5]), axis=1)
    out = {}
    for i, pre in enumerate(names):
        out.update({pre + "estimate": points[i], pre + "ci_low": lo_X[i], pre + "ci_high": hi_X[i]})
    if other_SxN is not None:
        out["p_value"] = jnp.mean(diff_D <= 0)
    return out


@_jit()
def distribution_variance(correct_SxN, mask_N=None):
    """Jordan (2024): split the seed variance of test-set accuracy into test-set and distribution-wise parts.

    With acc_s the test-set accuracy of run s (Var of error = Var of accuracy) and n real examples,
        σ̂² = n/(n−1) · (Var_s(acc_s) − (1/n²) Σᵢ Var_s(correct[s, i])),
    which is the mean over example pairs i ≠ j of Cov_s(correct_i, correct_j): an estimate of the run-to-run
    variance of the distribution-wise (infinite test set) accuracy, with the test set's own sampling noise taken
    out. Both variances over runs use ddof=1, so each is unbiased across runs (σ̂² is linear in them; another ddof
    would only rescale it by a factor like S/(S−1)) and ``test_set_var`` matches ``summarize``'s var. σ̂² can come
    out slightly negative; the std clips it at 0.

    Returns a dict of scalars: ``test_set_var``, ``test_set_std``, ``distribution_var``, ``distribution_std``,
    ``within_example_var`` (the (1/n²) Σᵢ Var_s term). NaN if S = 1.
    """
    x_SxN = jnp.asarray(correct_SxN, _float())
    w_N = _weights(mask_N, x_SxN.shape[-1])
    n = jnp.sum(w_N)
    x_SxN = jnp.where(w_N > 0, x_SxN, 0)
    test_var = jnp.var(x_SxN @ w_N / n, ddof=1)
    within = jnp.sum(w_N * jnp.var(x_SxN, axis=0, ddof=1)) / n**2
    dist_var = n / (n - 1) * (test_var - within)
    return {
        "test_set_var": test_var,
        "test_set_std": jnp.sqrt(test_var),
        "distribution_var": dist_var,
        "distribution_std": jnp.sqrt(jnp.maximum(dist_var, 0)),
        "within_example_var": within,
    }
