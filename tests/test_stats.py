"""Tests for jaxseed.stats: expected maximum, Multi-Bootstrap, Jordan's distribution-wise variance."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseed import metrics as M
from jaxseed import stats as St


def _np(x):
    return np.asarray(x, dtype=np.float64)


# ------------------------------------------------------------------------------------------- expected max


def test_expected_max_properties_and_direct_formula():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.7, 0.05, 12)
    em = _np(St.expected_max(scores))
    assert em.shape == (12,)
    np.testing.assert_allclose(em[0], scores.mean(), atol=1e-6)
    assert np.all(em <= scores.max() + 1e-7) and np.all(np.diff(em) >= -1e-7)
    # The documented formula, term by term in float64 (the library uses the summation-by-parts form).
    v, s = np.sort(scores), len(scores)
    k = np.arange(1, s + 1)
    direct = [np.sum(v * ((k / s) ** n - ((k - 1) / s) ** n)) for n in range(1, s + 1)]
    np.testing.assert_allclose(em, direct, atol=1e-6)
    # Batched over leading axes, and a single run is its own maximum.
    np.testing.assert_allclose(_np(St.expected_max(np.stack([scores, scores[::-1]]))), [em, em], atol=1e-6)
    np.testing.assert_allclose(_np(St.expected_max(scores[:1])), scores[:1], atol=1e-6)


def test_expected_max_matches_monte_carlo():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.5, 0.9, 10)
    em = _np(St.expected_max(scores))
    for n in (2, 5, 10):
        draws = rng.choice(scores, size=(20000, n), replace=True).max(axis=1)
        assert abs(draws.mean() - em[n - 1]) < 4 * draws.std() / np.sqrt(20000) + 1e-4


# ------------------------------------------------------------------------------------------- Multi-Bootstrap

# One shape and number of draws for most tests: each new (shape, draws, options) is a new compile.
BOOT = dict(num_draws=500)
S, N = 5, 400


def _systems(rng, s, n, p_a, p_b):
    """Per-example correctness of two systems whose seeds differ a little in overall accuracy."""
    acc_a = p_a + rng.normal(0, 0.01, (s, 1))
    acc_b = p_b + rng.normal(0, 0.01, (s, 1))
    return ((rng.random((s, n)) < acc_a).astype(np.float32), (rng.random((s, n)) < acc_b).astype(np.float32))


def test_multibootstrap_keys_and_interval():
    rng = np.random.default_rng(2)
    a, b = _systems(rng, S, N, 0.6, 0.8)
    out = St.multibootstrap(jax.random.key(0), a, other_SxN=b, **BOOT)
    assert set(out) == {"estimate", "ci_low", "ci_high", "other_estimate", "other_ci_low", "other_ci_high",
                        "diff_estimate", "diff_ci_low", "diff_ci_high", "p_value"}
    assert all(jnp.shape(v) == () for v in out.values())
    out = {k: float(v) for k, v in out.items()}
    np.testing.assert_allclose(out["estimate"], a.mean(), atol=1e-6)
    np.testing.assert_allclose(out["diff_estimate"], b.mean() - a.mean(), atol=1e-6)
    for pre in ("", "other_", "diff_"):
        assert out[pre + "ci_low"] < out[pre + "estimate"] < out[pre + "ci_high"]
    # 0.6 vs 0.8 on 400 examples (binomial sd of one seed ~0.025, of 5 seeds' mean ~0.011): b ahead in every draw.
    assert out["p_value"] == 0.0 and out["diff_ci_low"] > 0.1
    single = St.multibootstrap(jax.random.key(0), a, **BOOT)
    assert set(single) == {"estimate", "ci_low", "ci_high"}


def test_multibootstrap_same_distribution_gives_interval_around_zero():
    rng = np.random.default_rng(3)
    a, b = _systems(rng, S, N, 0.75, 0.75)
    for other, paired in ((b, True), (b[:3], False)):  # unpaired systems may have different numbers of seeds
        out = St.multibootstrap(jax.random.key(1), a, other_SxN=other, paired=paired, **BOOT)
        assert float(out["diff_ci_low"]) < 0 < float(out["diff_ci_high"])
        assert 0.05 < float(out["p_value"]) < 0.95
    # The very same predictions: every draw's difference is exactly 0.
    same = St.multibootstrap(jax.random.key(1), a, other_SxN=a, **BOOT)
    assert float(same["diff_ci_low"]) == float(same["diff_ci_high"]) == 0.0 and float(same["p_value"]) == 1.0


def _reference_multibootstrap(rng, x_SxN, num_draws):
    """Plain numpy Multi-Bootstrap with index gathers, as described by Sellam et al. (2022)."""
    s, n = x_SxN.shape
    out = []
    for _ in range(num_draws):
        seeds = rng.integers(0, s, s)
        examples = rng.integers(0, n, n)
        out.append(x_SxN[seeds][:, examples].mean(axis=1).mean())
    return np.array(out)


def test_multibootstrap_interval_width_matches_reference():
    # A real seed effect (sd 0.05 between seeds), so both resampling levels matter.
    rng = np.random.default_rng(4)
    a = (rng.random((S, N)) < 0.6 + 0.05 * rng.normal(size=(S, 1))).astype(np.float32)
    ref = _reference_multibootstrap(rng, a, 4000)
    out = St.multibootstrap(jax.random.key(2), a, **BOOT)
    width = float(out["ci_high"] - out["ci_low"])
    ref_width = np.percentile(ref, 97.5) - np.percentile(ref, 2.5)
    assert abs(width / ref_width - 1) < 0.2  # 500 draws pin a 95% interval's width to roughly ±10%
    # And not just the example level: without seed resampling the interval would be clearly narrower.
    example_only = np.array([a[:, rng.integers(0, N, N)].mean() for _ in range(4000)])
    assert width > 1.3 * (np.percentile(example_only, 97.5) - np.percentile(example_only, 2.5))


def test_multibootstrap_metric_fn_matches_decomposable():
    # With metric_fn=accuracy the same key draws the same resamples, so it must agree with the 0/1 matrix.
    rng = np.random.default_rng(5)
    label = rng.integers(0, 2, N)
    pred = np.where(rng.random((S, N)) < 0.8, label, 1 - label)
    other = np.where(rng.random((S, N)) < 0.7, label, 1 - label)
    key = jax.random.key(3)
    fast = St.multibootstrap(key, (pred == label).astype(np.float32), other_SxN=(other == label).astype(np.float32),
                             **BOOT)
    slow = St.multibootstrap(key, pred, other_SxN=other, metric_fn=M.accuracy, label_N=label, batch_size=64, **BOOT)
    for k in fast:
        np.testing.assert_allclose(float(slow[k]), float(fast[k]), atol=1e-6, err_msg=k)
    # A non-decomposable metric runs through the same path (functools.partial binds num_classes).
    out = St.multibootstrap(key, pred, metric_fn=functools.partial(M.mcc, num_classes=2), label_N=label, **BOOT)
    np.testing.assert_allclose(float(out["estimate"]), _np(M.mcc(pred, label)).mean(), atol=1e-6)
    assert float(out["ci_low"]) < float(out["estimate"]) < float(out["ci_high"])


def test_multibootstrap_mask_never_draws_padding():
    rng = np.random.default_rng(6)
    a, _ = _systems(rng, S, N, 0.7, 0.7)
    mask = np.arange(N) < 300
    padded = np.where(mask, a, 100.0)  # padding would drag any draw that touches it far above 1
    out = St.multibootstrap(jax.random.key(4), padded, mask_N=mask, **BOOT)
    np.testing.assert_allclose(float(out["estimate"]), a[:, :300].mean(), atol=1e-6)
    assert 0 < float(out["ci_low"]) < float(out["ci_high"]) < 1


def test_multibootstrap_jit_and_unpaired_sizes():
    rng = np.random.default_rng(7)
    a, b = _systems(rng, S, N, 0.7, 0.72)
    jitted = jax.jit(St.multibootstrap, static_argnames=("num_draws", "paired", "metric_fn", "batch_size"))
    x = jitted(jax.random.key(5), a, other_SxN=b, **BOOT)
    y = St.multibootstrap(jax.random.key(5), a, other_SxN=b, **BOOT)
    for k in x:
        np.testing.assert_allclose(float(x[k]), float(y[k]), atol=1e-6)
    # Unpaired systems may have different numbers of seeds; paired ones may not.
    out = St.multibootstrap(jax.random.key(5), a, other_SxN=b[:3], paired=False, **BOOT)
    np.testing.assert_allclose(float(out["other_estimate"]), b[:3].mean(), atol=1e-6)
    with pytest.raises(ValueError):
        St.multibootstrap(jax.random.key(5), a, other_SxN=b[:3], paired=True, **BOOT)


# ------------------------------------------------------------------------------------------- Jordan variance


def test_distribution_variance_is_mean_pairwise_covariance():
    # σ̂² equals the mean over example pairs i ≠ j of the (ddof=1) covariance across runs: an independent route.
    rng = np.random.default_rng(8)
    x = (rng.random((9, 15)) < rng.uniform(0.3, 0.9, (9, 1))).astype(np.float64)
    cov = np.cov(x, rowvar=False, ddof=1)
    off = cov[~np.eye(15, dtype=bool)].mean()
    with jax.enable_x64(True):
        out = St.distribution_variance(x)
        np.testing.assert_allclose(_np(out["distribution_var"]), off, atol=1e-12)
        np.testing.assert_allclose(_np(out["test_set_var"]), x.mean(axis=1).var(ddof=1), atol=1e-12)
    out32 = St.distribution_variance(x.astype(np.float32))
    np.testing.assert_allclose(_np(out32["distribution_var"]), off, atol=1e-6)


def test_distribution_variance_independent_coin_flips():
    # Every run's errors i.i.d. Bernoulli(p) over examples: nothing is shared between examples, so the
    # distribution-wise variance is ~0 while the test-set variance is the binomial p(1 − p)/n.
    rng = np.random.default_rng(9)
    s, n, p = 300, 2000, 0.3
    x = (rng.random((s, n)) < 1 - p).astype(np.float32)
    out = {k: float(v) for k, v in St.distribution_variance(x).items()}
    binom = p * (1 - p) / n
    assert abs(out["test_set_var"] / binom - 1) < 0.25
    assert abs(out["distribution_var"]) < 0.3 * binom
    np.testing.assert_allclose(out["within_example_var"], binom, rtol=0.05)


def test_distribution_variance_recovers_shared_offset():
    # Run s has accuracy 0.7 + δ_s on every example: σ̂² should recover Var(δ), the test-set variance adds the
    # binomial part on top.
    rng = np.random.default_rng(10)
    s, n = 300, 2000
    delta = rng.normal(0, 0.03, (s, 1))
    x = (rng.random((s, n)) < 0.7 + delta).astype(np.float32)
    out = {k: float(v) for k, v in St.distribution_variance(x).items()}
    tau2 = delta.var(ddof=1)
    assert abs(out["distribution_var"] / tau2 - 1) < 0.15
    assert out["test_set_var"] > out["distribution_var"]
    np.testing.assert_allclose(out["distribution_std"], np.sqrt(out["distribution_var"]), rtol=1e-6)
    # With a mask, padded columns (junk) drop out.
    mask = np.arange(n) < 1500
    masked = St.distribution_variance(np.where(mask, x, 5.0), mask)
    plain = St.distribution_variance(x[:, :1500])
    for k in plain:
        np.testing.assert_allclose(float(masked[k]), float(plain[k]), rtol=1e-4, err_msg=k)
