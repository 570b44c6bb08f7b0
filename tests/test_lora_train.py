"""train_mode lora: one shared frozen base, per-seed adapters + head, seeds independent of their group,
the planner's per-seed memory, and real MiniLM learning SST-2 with adapters only."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseed import models, optim, planner
from jaxseed import train as train_lib
from jaxseed.config import Seeds, load_config
from jaxseed.models import lora as lora_lib
from jaxseed.models.decoder import DecoderConfig
from jaxseed.models.tiny import save_random_decoder
from jaxseed.run import run

from conftest import minilm_dir
from test_train import SEEDS, tiny_cfg

LORA = {"r": 4, "alpha": 8, "dropout": 0.1}


def make(cfg):
    """make_train for a decoder: prompts encoded as `jaxseed run` does."""
    from transformers import AutoTokenizer

    from jaxseed import data as data_lib
    from jaxseed import prompts
    from jaxseed.tasks import get_task

    task = get_task(cfg.task)
    tok = AutoTokenizer.from_pretrained(cfg.model)
    enc = lambda split, n: prompts.encode(tok, task.text_fields, data_lib.load_split(task, split, cfg.data_dir).head(n),
                                          cfg.max_length)
    mcfg = models.read_config(cfg.model)
    pre = models.load_pretrained(cfg.model, models.base_dtype(cfg, mcfg))
    return train_lib.make_train(cfg, task, pre, enc("train", cfg.max_train_examples),
                                {"validation": enc("validation", cfg.max_eval_examples)}, progress=False)


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    return save_random_decoder(tmp_path_factory.mktemp("tiny") / "llama", "llama")


@pytest.fixture(scope="module")
def runs(decoder_dir, glue_dir):
    """A vmapped LoRA group of 3 seeds and each seed alone, recording the pytrees the train step receives."""
    seen = []
    step = train_lib.train_step

    def spy(spec, trained, opt, perm, hp, keys, frozen, data, t):
        if not seen:
            seen.append((jax.tree.map(lambda x: (x.shape, x.dtype), trained),
                         jax.tree.map(lambda x: (x.shape, x.dtype), frozen)))
        return step(spec, trained, opt, perm, hp, keys, frozen, data, t)

    cfg = tiny_cfg(decoder_dir, glue_dir, train_mode="lora", lora=LORA, seed_loop=False, learning_rate=2e-3)
    train_lib.train_step = spy
    try:
        group = make(cfg)(SEEDS)
    finally:
        train_lib.train_step = step
    alone = [make(cfg)(Seeds((i,), (o,), (d,))) for i, o, d in zip(SEEDS.init, SEEDS.order, SEEDS.dropout)]
    return dict(cfg=cfg, group=group, alone=alone, seen=seen[0])


def test_seed_in_a_lora_group_equals_the_seed_alone(runs):
    group = runs["group"].logits["validation"]
    alone = np.concatenate([a.logits["validation"] for a in runs["alone"]])
    np.testing.assert_array_equal(group.argmax(-1), alone.argmax(-1))
    np.testing.assert_allclose(group, alone, atol=1e-4, rtol=0)
    assert not np.allclose(group[0], group[1], atol=1e-3)  # the seeds differ, so the comparison can fail


def test_one_shared_base_and_per_seed_adapters(runs, decoder_dir):
    trained, frozen = runs["seen"]
    base = jax.tree.map(lambda x: (x.shape, x.dtype), models.load_pretrained(str(decoder_dir)).backbone)
    # the frozen base: exactly the checkpoint's arrays, no seed axis, bfloat16 by default for a decoder
    assert frozen == {"backbone": base}
    assert all(dt == jnp.bfloat16 for _, dt in jax.tree.leaves(frozen, is_leaf=lambda x: isinstance(x, tuple)))
    # the trained tree: the adapters and the score head only, each with the seed axis in front
    leaves = jax.tree_util.tree_flatten_with_path(trained["backbone"], is_leaf=lambda x: isinstance(x, tuple))[0]
    assert leaves and all(lora_lib.is_adapter(p) and s[0] == 3 and dt == jnp.float32 for p, (s, dt) in leaves)
    assert trained["head"] == {"score": {"kernel": ((3, 32, 2), jnp.float32)}}
    a = runs["group"].trained["backbone"]["layers_0"]["self_attn"]["q_proj"]["lora_a"]
    b = runs["group"].trained["backbone"]["layers_0"]["self_attn"]["v_proj"]["lora_b"]
    assert not np.allclose(a[0], a[1])  # each seed draws its own A
    assert (np.abs(b).max(axis=(1, 2)) > 0).all()  # B starts at 0 and every seed trained it


def step_bytes(dc, lora, S, B, L, C=2):
    """XLA's buffer bytes (arguments + temporaries + outputs not aliased) of one vmapped LoRA train step."""
    spec = train_lib.StepSpec(dc, C, B, lora=lora)
    frozen = {"backbone": jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.bfloat16), models.backbone_shapes(dc))}
    keys = train_lib.seed_keys(np.arange(S), 0)
    trained = {"head": train_lib.init_heads(dc, C, keys, None), "backbone": train_lib.init_adapters(dc, lora, keys)}
    hp = {"learning_rate": np.full(S, 1e-3, np.float32), "weight_decay": np.zeros(S, np.float32),
          "warmup_steps": np.zeros(S, np.int32), "total_steps": np.full(S, 10, np.int32)}
    opt = jax.vmap(optim.make_optimizer(spec, hp).init)(trained)
    N = 2 * B
    data = {k: jnp.ones((N, L), jnp.int32) for k in ("ids", "mask", "type_ids")} | {"label": jnp.zeros(N, jnp.int32)}
    perm = jnp.tile(jnp.arange(N), (S, 1))
    m = train_lib.train_step.lower(spec, trained, opt, perm, hp, keys, frozen, data, jnp.int32(0)).compile() \
        .memory_analysis()
    return m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes


def test_planner_per_seed_estimate_within_25_percent_of_xla():
    dc = DecoderConfig("llama", 512, 192, 2, 6, 2, 32, 512, 1e-5, 5e5, None, False, False, False, 0, 0.02)
    lora = models.lora_spec(dc, r=8, alpha=16)
    B, L = 4, 128
    measured = (step_bytes(dc, lora, 3, B, L) - step_bytes(dc, lora, 1, B, L)) / 2
    est = planner.estimate(dc, 2, B, L, train_mode="lora", seed_loop=False, base_bytes=2,
                           lora_params=lora_lib.num_adapter_params(models.backbone_shapes(dc, lora)))
    assert abs(est.per_seed_bytes / measured - 1) < 0.25, (est.per_seed_bytes, measured)
    # the base is counted once, at 2 bytes a parameter, whatever the number of seeds
    assert est.total(4) - est.total(1) == 3 * est.per_seed_bytes
    upcast = 4 * dc.num_params(include_embeddings=False)  # the float32 view of the bf16 matrices, once
    assert est.fixed_bytes == 2 * dc.num_params() + upcast + planner.RUNTIME_OVERHEAD_CPU


def test_seed_chunk_null_fits_all_seeds_of_a_lora_run(decoder_dir, glue_dir):
    cfg = tiny_cfg(decoder_dir, glue_dir, train_mode="lora", lora=LORA, seeds=16, seed_chunk=None)
    dc = models.read_config(str(decoder_dir))
    assert planner.plan_for(cfg, dc, 2, 16, 64) == 16  # tiny adapters: all 16 seeds in one chunk
    full = planner._estimate_for(tiny_cfg(decoder_dir, glue_dir), dc, 2, 64, "cpu")
    lora = planner._estimate_for(cfg, dc, 2, 64, "cpu")
    assert lora.state_bytes < full.state_bytes / 20  # adapters + head, not the whole model, per seed


def test_minilm_lora_beats_majority_on_sst2(glue_dir, tmp_path):
    """Real all-MiniLM-L6-v2, real SST-2, query/value adapters (r 8, alpha 16) and the head: 4 seeds all learn."""
    cfg = load_config(None, dict(task="sst2", model=str(minilm_dir()), data_dir=str(glue_dir), seeds=4,
                                 train_mode="lora", lora={"r": 8, "alpha": 16}, max_steps=60, batch_size=16,
                                 learning_rate=1e-3, max_length=64, max_train_examples=2000,
                                 output_dir=str(tmp_path / "run")))
    out = run(cfg, progress=False)
    m = json.loads((out / "metrics.json").read_text())["splits"]["validation"]
    baseline = m["majority_baseline"]["accuracy"]
    accs = m["per_seed"]["accuracy"]
    assert m["num_examples"] == 872 and len(accs) == 4 and min(accs) > baseline + 0.1, (accs, baseline)
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["train_mode"] == "lora" and resolved["lora"] == {"r": 8, "alpha": 16.0}
