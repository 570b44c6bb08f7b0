"""Speed options change speed, not results: remat and bfloat16 compute after a short real training run, on CPU.

Measured on this 2-core CPU (tiny random BERT, RTE, 3 seeds, 6 steps, lr 3e-4; jax 0.10.2): remat logits are
bitwise equal (max |diff| 0.0); bfloat16 max |logit diff| 1.9e-2 (seeds looped, the CPU default) on logits up to
1.24, 100% agreement.
Stated bounds: remat within 1e-5 and identical predictions; bfloat16 within 0.05 and >= 90% agreement (room for
other CPUs and XLA versions).
"""

import numpy as np
import pytest

from test_train import SEEDS, make, tiny_cfg

REMAT_ATOL = 1e-5  # remat recomputes the same float32 ops: equal up to reassociation
BF16_ATOL = 0.05  # bfloat16 has an 8-bit mantissa (~4e-3 relative); 6 steps of training accumulate it
BF16_AGREE = 0.90  # share of (seed, example) predictions equal to the float32 run


@pytest.fixture(scope="module")
def trained(tiny_bert_dir, glue_dir):
    cfg = lambda **kw: tiny_cfg(tiny_bert_dir, glue_dir, **kw)
    out = {name: make(cfg(**kw))(SEEDS).logits["validation"]
           for name, kw in {"fp32": {}, "remat": {"remat": True}, "bf16": {"dtype": "bfloat16"}}.items()}
    # a control: a different learning rate must move the logits by far more than the bounds below,
    # or the bounds prove nothing
    out["other_lr"] = make(cfg(learning_rate=1e-3))(SEEDS).logits["validation"]
    return out


def test_control_is_far(trained):
    assert np.abs(trained["other_lr"] - trained["fp32"]).max() > 10 * BF16_ATOL


def test_remat_equals_float32(trained):
    ref, got = trained["fp32"], trained["remat"]
    print("remat max |diff|", np.abs(got - ref).max())
    np.testing.assert_array_equal(got.argmax(-1), ref.argmax(-1))
    np.testing.assert_allclose(got, ref, atol=REMAT_ATOL, rtol=0)


def test_bfloat16_close_to_float32(trained):
    ref, got = trained["fp32"], trained["bf16"]
    agree = (got.argmax(-1) == ref.argmax(-1)).mean()
    print("bf16 max |diff|", np.abs(got - ref).max(), "agreement", agree, "logit scale", np.abs(ref).max())
    assert agree >= BF16_AGREE
    np.testing.assert_allclose(got, ref, atol=BF16_ATOL, rtol=0)
    assert not np.array_equal(got, ref)  # bf16 really ran: otherwise the dtype option is not wired
