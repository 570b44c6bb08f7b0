"""Tests for jaxseed.metrics: oracle comparisons (scikit-learn, scipy), hand-worked cases, degenerate inputs.

Precision: the library computes in float32 by default with care (normalised counts, blocked sums), and the
oracle comparisons hold at 1e-6 in float32. The score inputs lie on coarse grids, so casting them to float32
neither creates nor breaks ties (arbitrary float64 scores can collide in float32). A few tests also run under
jax.enable_x64 (the `x64` fixture) to check the float64 path at the same tolerance. Shapes are kept few because
on a 2-core CPU compiling each (function, shape) is what costs time here.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from jaxseed import metrics as M

TOL = 1e-6
SHAPES = [(1, 7), (3, 100), (10, 1000)]
ORACLE_CASES = [(s, n, c, False) for (s, n) in SHAPES for c in (2, 3)] + [(10, 1000, 3, True)]  # (S, N, C, x64)


@pytest.fixture(params=[False, True], ids=["f32", "x64"])
def x64(request):
    with jax.enable_x64(request.param):
        yield request.param


def _np(x):
    return np.asarray(x, dtype=np.float64)


def _classes(rng, s, n, c):
    """Labels and predictions that are right about 60% of the time, so the metrics are away from 0."""
    label = rng.integers(0, c, n)
    noise = rng.integers(0, c, (s, n))
    pred = np.where(rng.random((s, n)) < 0.6, label, noise)
    return pred, label


def _scores(rng, s, n):
    """STS-B-like labels on a 0-5 grid (ties) and correlated scores, rounded so they tie too."""
    label = np.round(rng.uniform(0, 5, n) * 5) / 5
    score = np.round((label + rng.normal(0, 1.5, (s, n))) * 4) / 4
    return score, label


# ------------------------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("s,n,c,use_x64", ORACLE_CASES)
@pytest.mark.filterwarnings("ignore")
def test_classification_metrics_match_sklearn(s, n, c, use_x64):
    with jax.enable_x64(use_x64):
        _check_classification(s, n, c)


def _check_classification(s, n, c):
    rng = np.random.default_rng(100 * s + n + c)
    pred, label = _classes(rng, s, n, c)
    np.testing.assert_allclose(_np(M.accuracy(pred, label)), [accuracy_score(label, p) for p in pred], atol=TOL)
    np.testing.assert_allclose(_np(M.macro_f1(pred, label, c)),
                               [f1_score(label, p, average="macro", zero_division=0) for p in pred], atol=TOL)
    np.testing.assert_allclose(_np(M.mcc(pred, label, c)), [matthews_corrcoef(label, p) for p in pred], atol=TOL)
    if c == 2:
        np.testing.assert_allclose(_np(M.f1(pred, label)), [f1_score(label, p, zero_division=0) for p in pred],
                                   atol=TOL)


@pytest.mark.parametrize("s,n,use_x64", [(s, n, False) for s, n in SHAPES] + [(10, 1000, True)])
def test_correlations_match_scipy(s, n, use_x64):
    with jax.enable_x64(use_x64):
        _check_correlations(s, n)


def _check_correlations(s, n):
    rng = np.random.default_rng(7 * s + n)
    score, label = _scores(rng, s, n)
    np.testing.assert_allclose(_np(M.pearson(score, label)), [scipy.stats.pearsonr(p, label)[0] for p in score],
                               atol=TOL)
    np.testing.assert_allclose(_np(M.spearman(score, label)),
                               [scipy.stats.spearmanr(p, label)[0] for p in score], atol=TOL)


# The tests below reuse the oracle shapes on purpose: a masked call shares the compiled code of an unmasked one.


@pytest.mark.filterwarnings("ignore")
def test_masked_equals_oracle_on_subset():
    rng = np.random.default_rng(3)
    pred, label = _classes(rng, 3, 100, 3)
    score, slabel = _scores(rng, 3, 100)
    mask = rng.random(100) < 0.7
    # Padded slots hold junk that must not leak into the result.
    junk_pred = np.where(mask, pred, 7)
    junk_score = np.where(mask, score, np.nan)
    sub = lambda a: a[..., mask]
    np.testing.assert_allclose(_np(M.accuracy(junk_pred, label, mask)),
                               [accuracy_score(sub(label), sub(p)) for p in pred], atol=TOL)
    np.testing.assert_allclose(_np(M.macro_f1(junk_pred, label, 3, mask)),
                               [f1_score(sub(label), sub(p), average="macro") for p in pred], atol=TOL)
    np.testing.assert_allclose(_np(M.mcc(junk_pred, label, 3, mask)),
                               [matthews_corrcoef(sub(label), sub(p)) for p in pred], atol=TOL)
    bpred, blabel = pred % 2, label % 2
    np.testing.assert_allclose(_np(M.f1(bpred, blabel, mask)),
                               [f1_score(sub(blabel), sub(p)) for p in bpred], atol=TOL)
    np.testing.assert_allclose(_np(M.pearson(junk_score, slabel, mask)),
                               [scipy.stats.pearsonr(sub(p), sub(slabel))[0] for p in score], atol=TOL)
    np.testing.assert_allclose(_np(M.spearman(junk_score, slabel, mask)),
                               [scipy.stats.spearmanr(sub(p), sub(slabel))[0] for p in score], atol=TOL)


def test_weights_act_as_duplicated_examples():
    # The Multi-Bootstrap scores a resample through integer weights; that must equal scoring the resampled data.
    rng = np.random.default_rng(4)
    pred, label = _classes(rng, 3, 100, 3)
    score, slabel = _scores(rng, 3, 100)
    idx = rng.integers(0, 100, 100)
    w = np.bincount(idx, minlength=100).astype(np.float32)
    for name in M.METRICS:
        if name in M.REGRESSION_METRICS:
            p, y = score, slabel
        else:
            p, y = (pred % 2, label % 2) if name == "f1" else (pred, label)
        got = M.compute_metric(name, p, y, num_classes=3, mask_N=w)
        want = M.compute_metric(name, p[:, idx], y[idx], num_classes=3)
        np.testing.assert_allclose(_np(got), _np(want), atol=TOL, err_msg=name)


@pytest.mark.filterwarnings("ignore")
def test_degenerate_inputs():
    label = np.array([0, 1, 1, 0, 1, 0, 0])
    zeros, ones = np.zeros((1, 7), int), np.ones((1, 7), int)
    assert _np(M.mcc(zeros, label)) == 0 and _np(M.mcc(ones, label)) == 0  # constant prediction
    assert _np(M.f1(zeros, label)) == 0
    assert _np(M.f1(zeros, np.zeros(7, int))) == 0  # no positives anywhere: zero_division=0
    assert _np(M.mcc(label[None], np.zeros(7, int))) == 0  # constant labels
    # Macro F1 ignores a class nobody has or predicts (class 2 here), as scikit-learn does without labels=.
    np.testing.assert_allclose(_np(M.macro_f1(label[None], label, 3)), 1.0)
    # Constant scores (0.1 is not exact in binary: a naive mean would not cancel) or labels give NaN, never 0.
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(10, 1000)), rng.normal(size=1000)
    const = np.full((10, 1000), 0.1)
    assert np.all(np.isnan(_np(M.pearson(const, y)))) and np.all(np.isnan(_np(M.spearman(const, y))))
    assert np.all(np.isnan(_np(M.pearson(x, np.full(1000, 3.0)))))
    assert np.all(np.isnan(_np(M.spearman(x, np.full(1000, 3.0)))))
    x[0, 10] = np.nan  # a NaN score poisons its own run only
    for fn in (M.pearson, M.spearman):
        r = _np(fn(x, y))
        assert np.isnan(r[0]) and np.all(np.isfinite(r[1:]))
    # All examples masked: NaN (0/0), not a silent number.
    assert np.isnan(_np(M.accuracy(label[None], label, np.zeros(7, bool))))


def test_shapes_jit_and_vmap():
    rng = np.random.default_rng(6)
    pred, label = _classes(rng, 3, 100, 3)
    assert M.accuracy(pred[0], label).shape == ()  # 1-D input: one run, a scalar
    assert M.mcc(np.stack([pred, pred]), label, 3).shape == (2, 3)  # extra leading axes are vmapped
    assert M.consistency(pred[0]) == 1.0  # micro metrics read 1-D as S = 1
    # Every metric is jitted already; check one also nests in an outer jit, with a traced mask.
    mask = np.arange(100) < 80
    outer = jax.jit(lambda p, y, m: M.mcc(p, y, 3, m))
    np.testing.assert_allclose(_np(outer(pred, label, mask)), _np(M.mcc(pred, label, 3, mask)), atol=1e-6)
    batch = np.stack([pred, np.roll(pred, 1, axis=1)])
    np.testing.assert_allclose(_np(jax.vmap(M.consistency)(batch)), [_np(M.consistency(b)) for b in batch])
    got = jax.jit(M.consistency_curve, static_argnums=2)(pred, jnp.arange(1, 4), 3)
    np.testing.assert_allclose(_np(got), _np(M.consistency_curve(pred, [1, 2, 3], 3)), atol=1e-6)


# ------------------------------------------------------------------------------------------- hand-worked

# 3 seeds x 5 examples, 3 classes.
#            i:  0  1  2  3  4
HAND_LABEL = [0, 1, 2, 1, 0]
HAND_PRED = [[0, 1, 2, 0, 1],   # seed 0: right on 0,1,2      -> acc 3/5
             [0, 1, 1, 0, 2],   # seed 1: right on 0,1        -> acc 2/5
             [0, 1, 2, 0, 0]]   # seed 2: right on 0,1,2,4    -> acc 4/5
# Vote counts c[i] per class: i0 (3,0,0), i1 (0,3,0), i2 (0,1,2), i3 (3,0,0), i4 (1,1,1).
# All agree on i0, i1, i3 -> CON = 3/5. All right on i0, i1 -> correct consistency = 2/5.
# Churn (0,1): differ on i2, i4 -> 2/5; (0,2): i4 -> 1/5; (1,2): i2, i4 -> 2/5; mean churn 1/3 -> agreement 2/3.
# Fleiss: P_i = (Σc² − 3)/6 = 1, 1, 1/3, 1, 0 -> P̄ = 2/3; class totals 7, 5, 3 of 15 -> Pe = 83/225;
#         κ = (2/3 − 83/225) / (1 − 83/225) = 67/142.
# Majority: 0, 1, 2, 0, tie -> 0; shares 1, 1, 2/3, 1, 1/3; ensemble right on i0..i2, i4 -> 4/5.
# Right counts r = 3, 3, 2, 0, 1 -> correct CON_k: k=1 9/15, k=2 (1+1+1/3)/5 = 7/15, k=3 2/5.


def test_hand_worked_micro():
    p, y = np.array(HAND_PRED), np.array(HAND_LABEL)
    np.testing.assert_allclose(_np(M.accuracy(p, y)), [0.6, 0.4, 0.8], atol=TOL)
    np.testing.assert_array_equal(np.asarray(M.vote_counts(p, 3)),
                                  [[3, 0, 0], [0, 3, 0], [0, 1, 2], [3, 0, 0], [1, 1, 1]])
    np.testing.assert_allclose(_np(M.consistency(p)), 0.6, atol=TOL)
    np.testing.assert_allclose(_np(M.correct_consistency(p, y)), 0.4, atol=TOL)
    np.testing.assert_allclose(_np(M.churn_matrix(p)), [[0, .4, .2], [.4, 0, .4], [.2, .4, 0]], atol=TOL)
    np.testing.assert_allclose(_np(M.pairwise_agreement(p)), 2 / 3, atol=TOL)
    np.testing.assert_allclose(_np(M.fleiss_kappa(p, 3)), 67 / 142, atol=TOL)
    np.testing.assert_array_equal(np.asarray(M.majority_label(p, 3)), [0, 1, 2, 0, 0])
    np.testing.assert_allclose(_np(M.vote_share(p, 3)), [1, 1, 2 / 3, 1, 1 / 3], atol=TOL)
    h2 = math.log(3) - 2 / 3 * math.log(2)  # −(1/3 ln 1/3 + 2/3 ln 2/3)
    np.testing.assert_allclose(_np(M.vote_entropy(p, 3)), [0, 0, h2, 0, math.log(3)], atol=TOL)
    np.testing.assert_allclose(_np(M.ensemble_accuracy(p, y, 3)), 0.8, atol=TOL)
    np.testing.assert_allclose(_np(M.consistency_curve(p, [1, 2, 3], 3)), [1, 2 / 3, 0.6], atol=TOL)
    np.testing.assert_allclose(_np(M.correct_consistency_curve(p, y, [1, 2, 3])), [9 / 15, 7 / 15, 0.4], atol=TOL)
    # Masking out example 4 (the three-way split): CON 3/4, correct 2/4, agreement (1+1+1/3+1)/4 = 5/6,
    # churn (0,1) = 1/4 (i2 only), P̄ = 5/6, totals 6, 4, 2 of 12 -> Pe = 56/144, κ = (5/6 − 56/144)/(88/144) = 8/11.
    m = np.array([1, 1, 1, 1, 0], bool)
    np.testing.assert_allclose(_np(M.consistency(p, m)), 0.75, atol=TOL)
    np.testing.assert_allclose(_np(M.correct_consistency(p, y, m)), 0.5, atol=TOL)
    np.testing.assert_allclose(_np(M.pairwise_agreement(p, m)), 5 / 6, atol=TOL)
    np.testing.assert_allclose(_np(M.churn_matrix(p, m))[0, 1], 0.25, atol=TOL)
    np.testing.assert_allclose(_np(M.fleiss_kappa(p, 3, m)), 8 / 11, atol=TOL)
    np.testing.assert_allclose(_np(M.consistency_curve(p, [2, 3], 3, m)), [5 / 6, 0.75], atol=TOL)


def test_micro_degenerate():
    same = np.tile(np.array([0, 1, 2, 1]), (4, 1))
    assert _np(M.consistency(same)) == 1 and _np(M.pairwise_agreement(same)) == 1
    np.testing.assert_allclose(_np(M.fleiss_kappa(same, 3)), 1.0, atol=1e-6)
    assert np.isnan(_np(M.fleiss_kappa(np.zeros((3, 4), int), 3)))  # one class only: Pe = 1
    assert np.isnan(_np(M.pairwise_agreement(same[:1])))  # S = 1: no pairs


def test_pairwise_agreement_equals_one_minus_mean_churn():
    rng = np.random.default_rng(8)
    pred, _ = _classes(rng, 7, 200, 4)
    mask = rng.random(200) < 0.8
    churn = _np(M.churn_matrix(pred, mask))
    off = churn[~np.eye(7, dtype=bool)]
    np.testing.assert_allclose(_np(M.pairwise_agreement(pred, mask)), 1 - off.mean(), atol=1e-6)
    brute = np.mean(pred[:, None, mask] != pred[None, :, mask], axis=-1)
    np.testing.assert_allclose(churn, brute, atol=1e-6)


# ------------------------------------------------------------------------------------------- CON_k curves


def test_consistency_curve_endpoints():
    rng = np.random.default_rng(9)
    pred, label = _classes(rng, 10, 500, 3)
    mask = rng.random(500) < 0.9
    curve = _np(M.consistency_curve(pred, range(1, 11), 3, mask))
    np.testing.assert_allclose(curve[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(curve[1], _np(M.pairwise_agreement(pred, mask)), atol=1e-6)
    np.testing.assert_allclose(curve[-1], _np(M.consistency(pred, mask)), atol=1e-6)
    assert np.all(np.diff(curve) <= 1e-7)  # more seeds, fewer chances to all agree
    cc = _np(M.correct_consistency_curve(pred, label, range(1, 11), mask))
    np.testing.assert_allclose(cc[0], _np(M.accuracy(pred, label, mask)).mean(), atol=1e-6)
    np.testing.assert_allclose(cc[-1], _np(M.correct_consistency(pred, label, mask)), atol=1e-6)
    assert np.all(np.isnan(_np(M.consistency_curve(pred, [0, 11], 3))))  # k outside 1..S


def test_consistency_curve_brute_force_subsets():
    rng = np.random.default_rng(10)
    pred, label = _classes(rng, 6, 40, 3)
    pred = np.where(rng.random((6, 40)) < 0.3, pred, label)  # more agreement, so large k is not all zero
    for k in range(1, 7):
        subsets = list(itertools.combinations(range(6), k))
        con = np.mean([np.mean(np.all(pred[list(c)] == pred[c[0]], axis=0)) for c in subsets])
        right = np.mean([np.mean(np.all(pred[list(c)] == label, axis=0)) for c in subsets])
        np.testing.assert_allclose(_np(M.consistency_curve(pred, [k], 3))[0], con, atol=TOL)
        np.testing.assert_allclose(_np(M.correct_consistency_curve(pred, label, [k]))[0], right, atol=TOL)


def test_consistency_curve_exact_for_many_seeds(x64):
    # S = 1000: C(1000, 500) overflows float64, so a naive ratio fails; compare to exact integer arithmetic.
    s, n = 1000, 12
    rng = np.random.default_rng(11)
    ones = rng.integers(900, 1001, n)  # seeds voting class 1 per example
    pred = (np.arange(s)[:, None] < ones[None, :]).astype(int)
    ks = [2, 10, 100, 500, 900, 1000]
    exact = [sum(math.comb(int(c), k) + math.comb(s - int(c), k) for c in ones) / (n * math.comb(s, k))
             for k in ks]
    got = _np(M.consistency_curve(pred, ks, 2))
    np.testing.assert_allclose(got, exact, rtol=1e-6 if not x64 else 1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------- regression micro


def test_regression_micro():
    rng = np.random.default_rng(12)
    score = rng.normal(size=(5, 30))
    np.testing.assert_allclose(_np(M.score_std(score)), score.std(axis=0, ddof=1), atol=1e-6)
    hand = np.array([[0.0, 1.0, 2.0, 5.0], [0.4, 1.6, 2.0, 0.0], [0.2, 1.0, 2.5, 5.0]])
    # spreads 0.4, 0.6, 0.5, 5.0 -> within 0.5: examples 0 and 2 (0.5 is allowed) -> 2/4
    np.testing.assert_allclose(_np(M.consistency_within(hand, 0.5)), 0.5)
    np.testing.assert_allclose(_np(M.consistency_within(hand, 0.5, np.array([1, 0, 1, 0], bool))), 1.0)
    np.testing.assert_allclose(_np(M.consistency_within(hand)), 0.5)  # default tol 0.5


# ------------------------------------------------------------------------------------------- grouped tasks


def test_multirc():
    # 3 questions: q0 = examples 0-2, q1 = 3-4, q2 = 5. Run 0 gets q0 and q2 fully right; run 1 only q1.
    label = np.array([1, 0, 1, 0, 1, 1])
    group = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([[1, 0, 1, 1, 1, 1], [0, 0, 1, 0, 1, 0]])
    np.testing.assert_allclose(_np(M.multirc_em(pred, label, group, 3)), [2 / 3, 1 / 3], atol=1e-6)
    # Masking example 3 (run 0's only mistake) makes run 0 exact on every question.
    np.testing.assert_allclose(_np(M.multirc_em(pred, label, group, 3, np.arange(6) != 3)), [1, 1 / 3], atol=1e-6)
    # A group with no real example does not count: mask q2 away entirely.
    np.testing.assert_allclose(_np(M.multirc_em(pred, label, group, 4, np.arange(6) != 5)), [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(_np(M.multirc_f1a(pred, label)), [f1_score(label, p) for p in pred], atol=1e-6)


def test_record_scores():
    preds = ["The Eiffel Tower", "Paris, France", "x", "an apple"]
    golds = [["Eiffel  tower"], ["Berlin", "Paris"], [], ["Apple!", "pear"]]
    em, f1 = M.record_scores(preds, golds)
    # EM: 1, 0, 0 (no gold), 1. F1: 1, "paris france" vs "paris" = 2·(1/2)·1/(3/2) = 2/3, 0, 1.
    assert em == pytest.approx(2 / 4)
    assert f1 == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)


# ------------------------------------------------------------------------------------------- across seeds


def test_summarize_and_failed_runs():
    scores = np.array([0.7, 0.5, np.nan, 0.9])
    out = M.summarize(scores)
    ok = scores[~np.isnan(scores)]
    assert out["mean"] == pytest.approx(ok.mean()) and out["std"] == pytest.approx(ok.std(ddof=1))
    assert out["var"] == pytest.approx(ok.var(ddof=1)) and (out["min"], out["max"]) == (0.5, 0.9)
    assert (out["n"], out["num_nan"]) == (3, 1) and all(isinstance(out[k], float) for k in ("mean", "std"))
    assert math.isnan(M.summarize([0.3])["std"])
    np.testing.assert_array_equal(np.asarray(M.failed_runs(scores, 0.5)), [False, True, True, False])


@pytest.mark.filterwarnings("ignore")
def test_majority_baseline():
    rng = np.random.default_rng(13)
    label = rng.integers(0, 3, 101)
    maj = int(np.argmax(np.bincount(label)))
    const = np.full(101, maj)
    assert M.majority_baseline("accuracy", label, maj, 3) == pytest.approx(accuracy_score(label, const))
    assert M.majority_baseline("macro_f1", label, maj, 3) == pytest.approx(f1_score(label, const, average="macro"))
    assert M.majority_baseline("mcc", label, maj, 3) == 0.0
    assert M.majority_baseline("accuracy", label, None, 3) == M.majority_baseline("accuracy", label, maj, 3)
    blabel = label % 2
    assert M.majority_baseline("f1", blabel, 1, 2) == pytest.approx(f1_score(blabel, np.ones(101, int)))
    assert M.majority_baseline("f1", blabel, 0, 2) == 0.0
    assert M.majority_baseline("pearson", label, maj, 3) == 0.0
    # A collapsed run sits exactly on the baseline and counts as failed; a better one does not.
    runs = np.stack([const, label])
    base = M.majority_baseline("accuracy", label, maj, 3)
    np.testing.assert_array_equal(np.asarray(M.failed_runs(M.accuracy(runs, label), base)), [True, False])


def test_metrics_registry():
    assert set(M.METRICS) == {"accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman"}
    assert M.METRICS["mcc"] is M.mcc
