"""No silently wrong numbers: class counts are taken, inferred from concrete inputs, or refused."""

import jax
import numpy as np
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef

from jaxseed import metrics as M


def _three_class(seed=0, s=3, n=60):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    pred = np.where(rng.random((s, n)) < 0.6, label, rng.integers(0, 3, (s, n)))
    return pred, label


@pytest.mark.filterwarnings("ignore")
def test_three_class_metrics_without_a_count_are_right():
    pred, label = _three_class()
    np.testing.assert_allclose(np.asarray(M.mcc(pred, label)), [matthews_corrcoef(label, p) for p in pred], atol=1e-6)
    np.testing.assert_allclose(np.asarray(M.macro_f1(pred, label)),
                               [f1_score(label, p, average="macro") for p in pred], atol=1e-6)
    np.testing.assert_allclose(np.asarray(M.compute_metric("mcc", pred, label)), np.asarray(M.mcc(pred, label, 3)))
    assert np.asarray(M.vote_counts(pred)).shape == (60, 3)
    assert float(M.fleiss_kappa(pred)) == pytest.approx(float(M.fleiss_kappa(pred, 3)))
    np.testing.assert_allclose(np.asarray(M.consistency_curve(pred, [2, 3])),
                               np.asarray(M.consistency_curve(pred, [2, 3], 3)))
    # A class nobody predicts or has changes nothing, so inferring from the largest id is exact.
    np.testing.assert_allclose(np.asarray(M.mcc(pred, label, 5)), np.asarray(M.mcc(pred, label)), atol=1e-6)


@pytest.mark.parametrize("call, needle", [
    (lambda p, y: M.mcc(p, y, 2), "[0, 2)"),  # the old default: 3-class input was scored as 2-class
    (lambda p, y: M.macro_f1(p, y, 2), "[0, 2)"),
    (lambda p, y: M.f1(p, y), "[0, 2)"),  # binary F1 of 3-class ids
    (lambda p, y: M.vote_counts(p, 2), "[0, 2)"),
    (lambda p, y: M.ensemble_accuracy(p, y, 2), "[0, 2)"),
    (lambda p, y: M.mcc(p, y - 1), "from -1"),  # negative ids
    (lambda p, y: M.mcc(p + 0.5, y), "integer ids"),
    (lambda p, y: M.multirc_em(p % 2, y % 2, np.arange(60) // 10, 3), "num_groups=3"),
])
def test_out_of_range_ids_are_refused(call, needle):
    pred, label = _three_class()
    with pytest.raises(ValueError, match=None) as e:
        call(pred, label)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_traced_inputs_need_a_count():
    pred, label = _three_class()
    with pytest.raises(ValueError, match="pass num_classes"):
        jax.jit(lambda p, y: M.mcc(p, y))(pred, label)
    got = jax.jit(lambda p, y: M.mcc(p, y, 3))(pred, label)  # given: fine, and equal to the eager call
    np.testing.assert_allclose(np.asarray(got), np.asarray(M.mcc(pred, label)), atol=1e-6)


def test_padding_may_hold_anything_and_groups_are_inferred():
    pred, label = _three_class()
    mask = np.arange(60) < 50
    junk = np.where(mask, pred, 9)
    np.testing.assert_allclose(np.asarray(M.mcc(junk, label, None, mask)),
                               [matthews_corrcoef(label[:50], p[:50]) for p in pred], atol=1e-6)
    label2, group = np.array([1, 0, 1, 0]), np.array([0, 0, 1, 1])
    pred2 = np.array([[1, 0, 1, 1]])
    assert float(M.multirc_em(pred2, label2, group)[0]) == 0.5  # one of two questions fully right
