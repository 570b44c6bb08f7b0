"""The seeds-per-device planner: its arithmetic on a hand-worked case, chunk picking, head mode, OOM message."""

import dataclasses

import jax
import pytest

from jaxseed import planner
from jaxseed.config import ConfigError, load_config
from jaxseed.models.encoder import EncoderConfig

MiB = 2**20
# A small hand-checkable encoder: H=8, 2 layers, 2 heads, I=16, vocab 10, 4 positions, 2 types.
ENC = EncoderConfig(family="bert", vocab_size=10, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
                    max_position_embeddings=4, type_vocab_size=2, layer_norm_eps=1e-12, hidden_dropout=0.1,
                    attention_dropout=0.1, pad_token_id=0, hidden_act="gelu", initializer_range=0.02)


def test_hand_worked_full_mode():
    # per layer: 4*(8*8+8) + (8*16+16) + (16*8+8) + 2*2*8 = 288 + 144 + 136 + 32 = 600; 2 layers = 1200
    # + embeddings LayerNorm 2*8 = 16; tables (10+4+2)*8 = 128  -> backbone 1344
    assert ENC.num_params() == 1344
    # head: 8*8+8 + 8*2+2 = 90
    assert planner.head_params(8, 2) == 90
    B, L = 3, 4
    est = planner.estimate(ENC, 2, B, L, platform="gpu")
    state = planner.STATE_COPIES * 4 * (1344 + 90)
    acts = 2 * (planner.K_ACT * B * L * 8 + planner.K_ATTN * B * 2 * L * L) * 4
    assert est.state_bytes == state == 28680
    assert est.activation_bytes == int(acts)
    assert est.per_seed_bytes == int(state + acts)
    assert est.fixed_bytes == 4 * 1344  # on GPU no runtime overhead is added
    assert est.total(5) == est.fixed_bytes + 5 * est.per_seed_bytes
    cpu = planner.estimate(ENC, 2, B, L, platform="cpu")
    assert cpu.fixed_bytes == 4 * 1344 + planner.RUNTIME_OVERHEAD_CPU


def test_seed_loop_keeps_one_seeds_activations():
    vm = planner.estimate(ENC, 2, 16, 128, platform="gpu")
    lp = planner.estimate(ENC, 2, 16, 128, platform="gpu", seed_loop=True)
    # each seed adds only what it holds between steps: parameters, Adam m and v (3 of the 5 state copies)
    assert lp.per_seed_bytes == vm.state_bytes * planner.PERSISTENT_COPIES // planner.STATE_COPIES
    # one seed's activations, gradients and update temporary at a time
    assert lp.fixed_bytes == vm.fixed_bytes + vm.activation_bytes + vm.state_bytes - lp.per_seed_bytes
    assert lp.total(1) == vm.total(1) and lp.total(8) < vm.total(8)
    assert planner.loops_seeds(None, "cpu") and not planner.loops_seeds(None, "gpu")
    assert planner.loops_seeds(True, "gpu") and not planner.loops_seeds(False, "cpu")


def test_head_mode_counts_the_backbone_once():
    full = planner.estimate(ENC, 2, 3, 4, platform="gpu")
    head = planner.estimate(ENC, 2, 3, 4, train_mode="head", platform="gpu")
    assert head.fixed_bytes == full.fixed_bytes == 4 * ENC.num_params()  # one shared backbone copy
    assert head.state_bytes == planner.STATE_COPIES * 4 * 90  # per seed: only the head's state
    assert head.per_seed_bytes < full.per_seed_bytes / 2
    big = dataclasses.replace(ENC, num_layers=20)
    # more layers: full mode's per-seed memory grows, head mode's does not (backbone is shared)
    assert planner.estimate(big, 2, 3, 4, platform="gpu").per_seed_bytes > full.per_seed_bytes
    assert planner.estimate(big, 2, 3, 4, train_mode="head", platform="gpu").per_seed_bytes == head.per_seed_bytes


def test_remat_and_bf16_shrink_activations():
    base = planner.estimate(ENC, 2, 16, 128, platform="gpu")
    assert planner.estimate(ENC, 2, 16, 128, remat=True, platform="gpu").activation_bytes < base.activation_bytes
    assert planner.estimate(ENC, 2, 16, 128, dtype="bfloat16", platform="gpu").activation_bytes < base.activation_bytes
    cpu = planner.estimate(ENC, 2, 16, 128, platform="cpu")
    assert planner.estimate(ENC, 2, 16, 128, remat=True, platform="cpu") == cpu  # measured: no saving on CPU


def test_pick_seed_chunk():
    est = planner.Estimate(fixed_bytes=100 * MiB, per_seed_bytes=50 * MiB, state_bytes=0, activation_bytes=0)
    # fits all: 8 seeds need 100 + 400 MiB, 1000 MiB free (900 usable)
    assert planner.pick_seed_chunk(est, 8, 1000 * MiB) == 8
    # must chunk: (900 - 100) // 50 = 16 seeds per device, 40 seeds asked
    assert planner.pick_seed_chunk(est, 40, 1000 * MiB) == 16
    # 2 devices: 16 per device -> chunks of 32; few seeds -> rounded up to a multiple of the devices
    assert planner.pick_seed_chunk(est, 40, 1000 * MiB, n_devices=2) == 32
    assert planner.pick_seed_chunk(est, 3, 1000 * MiB, n_devices=2) == 4
    # one seed exactly: 100 + 50 = 150 <= 0.9 * 170
    assert planner.pick_seed_chunk(est, 8, 170 * MiB) == 1
    with pytest.raises(ConfigError, match="even one seed does not fit"):
        planner.pick_seed_chunk(est, 8, 160 * MiB)  # 0.9 * 160 = 144 < 150


def test_plan_for_respects_an_explicit_seed_chunk():
    cfg = load_config(None, {"task": "rte", "model": "m", "seed_chunk": 3})
    assert planner.plan_for(cfg, ENC, 2, 100) == 3
    auto = load_config(None, {"task": "rte", "model": "m"})
    assert planner.plan_for(auto, ENC, 2, 7) == 7  # a tiny model: everything fits in one chunk


def test_oom_message_names_a_chunk_that_fits():
    cfg = load_config(None, {"task": "rte", "model": "m", "batch_size": 16, "max_length": 128})
    platform = jax.devices()[0].platform
    est = planner.estimate(ENC, 2, 16, 128, platform=platform, seed_loop=planner.loops_seeds(None, platform))
    free = int((est.fixed_bytes + 6.5 * est.per_seed_bytes) / planner.SAFETY)  # 6 seeds fit
    msg = planner.oom_message(cfg, ENC, 2, 32, 128, 1, free=free)
    assert "seed_chunk 32" in msg and "set seed_chunk: 6" in msg and "\n" not in msg
    # the estimate said the chunk fits, yet it ran out: halve
    assert "set seed_chunk: 16" in planner.oom_message(cfg, ENC, 2, 32, 128, 1, free=10**15)


def test_train_turns_resource_exhausted_into_a_config_error(monkeypatch, tiny_bert_dir, glue_dir):
    from jaxseed import train as train_lib
    from test_train import SEEDS, make, tiny_cfg

    def oom(*a, **k):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123 bytes.")

    monkeypatch.setattr(train_lib, "train_step", oom)
    with pytest.raises(ConfigError, match=r"out of device memory with seed_chunk 4; set seed_chunk: 2"):
        make(tiny_cfg(tiny_bert_dir, glue_dir, seed_chunk=4, max_steps=2))(SEEDS)

    def other(*a, **k):
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(train_lib, "train_step", other)
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        make(tiny_cfg(tiny_bert_dir, glue_dir, max_steps=2))(SEEDS)
