"""The engine's promises: a seed in a vmapped group equals the seed alone; one compile per shape;
determinism; 8 simulated devices equal 1; a real pretrained model learns a real task."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxseed import data as data_lib
from jaxseed.models import encoder as model_lib
from jaxseed import train as train_lib
from jaxseed.config import Seeds, load_config
from jaxseed.run import run
from jaxseed.tasks import get_task

from conftest import REPO, minilm_dir

SEEDS = Seeds(init=(0, 1, 2), order=(3, 4, 5), dropout=(6, 7, 8))


def tiny_cfg(model_dir, glue_dir, **kw):
    base = dict(task="rte", model=str(model_dir), data_dir=str(glue_dir), max_steps=6, batch_size=8,
                eval_batch_size=16, learning_rate=3e-4, warmup_ratio=0.2, max_length=64,
                max_train_examples=64, max_eval_examples=48)
    base["seeds"] = {"init": list(SEEDS.init), "order": list(SEEDS.order), "dropout": list(SEEDS.dropout)}
    return load_config(None, base | kw)


def make(cfg):
    from transformers import AutoTokenizer

    task = get_task(cfg.task)
    tok = AutoTokenizer.from_pretrained(cfg.model)
    tr = data_lib.encode(tok, data_lib.load_split(task, "train", cfg.data_dir).head(cfg.max_train_examples), cfg.max_length)
    dev = {"validation": data_lib.encode(tok, data_lib.load_split(task, "validation", cfg.data_dir)
                                         .head(cfg.max_eval_examples), cfg.max_length)}
    return train_lib.make_train(cfg, task, model_lib.load_pretrained(cfg.model), tr, dev, progress=False)


class CompileCounter(logging.Handler):
    """Counts XLA compilations of the train step, from JAX's own compile log."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def emit(self, record):
        self.count += "Compiling jit(train_step)" in record.getMessage()


@pytest.fixture(scope="module")
def runs(tiny_bert_dir, glue_dir):
    """A vmapped group of 3 seeds, each seed alone, and a chunked run with other steps and learning rate,
    with the number of train-step compilations during each."""
    cfg = tiny_cfg(tiny_bert_dir, glue_dir, seed_loop=False)  # a vmapped group, whatever the backend
    counter, log = CompileCounter(), logging.getLogger("jax")  # JAX's loggers propagate to "jax"
    log.addHandler(counter)
    counts = []
    jax.clear_caches()  # an earlier test may have compiled the same program: count from an empty cache
    try:
        with jax.log_compiles():
            group = make(cfg)(SEEDS)
            counts.append(counter.count)
            alone = [make(cfg)(Seeds((i,), (o,), (d,))) for i, o, d in zip(SEEDS.init, SEEDS.order, SEEDS.dropout)]
            counts.append(counter.count)
            six = Seeds(SEEDS.init * 2, SEEDS.order * 2, SEEDS.dropout * 2)
            chunked = make(tiny_cfg(tiny_bert_dir, glue_dir, seed_chunk=3, max_steps=9, learning_rate=1e-3,
                                    seed_loop=False))(six)
            counts.append(counter.count)
    finally:
        log.removeHandler(counter)
    looped = make(tiny_cfg(tiny_bert_dir, glue_dir, seed_loop=True))(SEEDS)
    return dict(cfg=cfg, group=group, alone=alone, chunked=chunked, looped=looped, compiles=np.diff([0] + counts).tolist())


def test_seed_in_group_equals_seed_alone(runs):
    group = runs["group"].logits["validation"]
    preds = group.argmax(-1)
    assert len({tuple(p) for p in preds}) > 1, "seeds should disagree somewhere, or the test proves nothing"
    for k, alone in enumerate(runs["alone"]):
        a = alone.logits["validation"][0]
        np.testing.assert_array_equal(preds[k], a.argmax(-1))
        np.testing.assert_allclose(group[k], a, atol=1e-4, rtol=0)
        np.testing.assert_allclose(runs["group"].loss_TxS[:, k], alone.loss_TxS[:, 0], atol=1e-4, rtol=0)


def test_seeds_looped_in_the_program_equal_vmapped(runs):
    # The CPU default steps each device's seeds one at a time, each in its own buffers (train.slot_size): the
    # same numbers as one vmapped group.
    np.testing.assert_array_equal(runs["looped"].logits["validation"].argmax(-1),
                                  runs["group"].logits["validation"].argmax(-1))
    np.testing.assert_allclose(runs["looped"].logits["validation"], runs["group"].logits["validation"], atol=1e-4, rtol=0)


def test_seed_streams_are_independent(runs):
    # Seeds 0..2 share nothing, so their losses differ from the first step (different data order and dropout).
    first = runs["group"].loss_TxS[0]
    assert len(set(np.round(first, 6))) == 3


def test_compiles_once_per_shape(runs):
    group, alone, chunked = runs["compiles"]
    assert group == 1  # 6 steps, one program
    assert alone == 1  # S=1 is a new shape: one more program, shared by the three lone seeds
    assert chunked == 0  # 6 seeds in chunks of 3, 9 steps, a new learning rate: no new program


def test_chunks_equal_one_group(runs):
    # Seeds repeat in the second chunk: equal seeds give equal results whatever chunk they run in.
    lg = runs["chunked"].logits["validation"]
    np.testing.assert_array_equal(lg[:3], lg[3:])
    assert runs["chunked"].loss_TxS.shape == (9, 6)


def test_full_mode_trains_per_seed_backbones(runs):
    tr = runs["group"].trained
    assert set(tr) == {"backbone", "head"}
    leaf = jax.tree.leaves(tr["backbone"])[0]
    assert leaf.shape[0] == 3 and not np.allclose(leaf[0], leaf[1])


@pytest.mark.parametrize("n,limit,want", [(408, 64, 59), (64, 64, 64), (65, 64, 33), (1, 64, 1), (48, 16, 16),
                                          (48, 20, 16), (5, 1, 1)])
def test_eval_batch_by_hand(n, limit, want):
    assert train_lib.eval_batch(n, limit) == want


def test_eval_batch_pads_less_than_a_row_a_batch():
    for n in range(1, 300):
        for limit in (1, 7, 16, 64):
            b = train_lib.eval_batch(n, limit)
            batches = -(-n // b)
            assert b <= limit and batches == -(-n // limit) and b * batches - n < batches, (n, limit, b)


def test_eval_batch_size_does_not_change_predictions(runs, tiny_bert_dir, glue_dir):
    """48 dev examples in 3 batches of 16 (the fixture) or 7 of 7 (6 rows of padding): the same logits."""
    other = make(tiny_cfg(tiny_bert_dir, glue_dir, seed_loop=False, eval_batch_size=7))(SEEDS)
    ref = runs["group"].logits["validation"]
    assert ref.shape == other.logits["validation"].shape == (3, 48, 2)
    np.testing.assert_allclose(other.logits["validation"], ref, atol=1e-5)


def test_head_mode_shares_a_frozen_backbone(tiny_bert_dir, glue_dir):
    cfg = tiny_cfg(tiny_bert_dir, glue_dir, train_mode="head", max_steps=3)
    res = make(cfg)(SEEDS)
    assert set(res.trained) == {"head"}  # the backbone is one shared, frozen copy: never S copies
    k = res.trained["head"]["out"]["kernel"]
    assert k.shape[0] == 3 and not np.allclose(k[0], k[1])


def test_same_config_twice_gives_identical_predictions(tiny_bert_dir, glue_dir, tmp_path):
    outs = [run(tiny_cfg(tiny_bert_dir, glue_dir, output_dir=str(tmp_path / f"r{i}")), progress=False) for i in (1, 2)]
    a, b = (np.load(o / "predictions.npz") for o in outs)
    assert set(a.files) == {"pred", "logits", "label", "example_id", "split", "seed_init", "seed_order", "seed_dropout"}
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])
    assert a["pred"].shape == (3, 48) and a["logits"].shape == (3, 48, 2)
    m = json.loads((outs[0] / "metrics.json").read_text())
    acc = (a["pred"] == a["label"]).mean(axis=1)
    np.testing.assert_allclose(m["splits"]["validation"]["per_seed"]["accuracy"], acc, atol=1e-6)


def test_eight_devices_equal_one(runs, tiny_bert_dir, glue_dir, tmp_path):
    """3 seeds on 8 simulated CPU devices: the seed axis is padded to 8, sharded, and the padding dropped."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import jax, numpy as np
        assert jax.device_count() == 8, jax.devices()
        from test_train import make, tiny_cfg, SEEDS
        res = make(tiny_cfg({str(tiny_bert_dir)!r}, {str(glue_dir)!r}))(SEEDS)
        leaf = jax.tree.leaves(res.trained)[0]
        np.save({str(tmp_path / 'logits.npy')!r}, res.logits["validation"])
    """)
    env = os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    eight = np.load(tmp_path / "logits.npy")
    one = runs["group"].logits["validation"]
    np.testing.assert_array_equal(eight.argmax(-1), one.argmax(-1))
    np.testing.assert_allclose(eight, one, atol=1e-4, rtol=0)


def test_minilm_beats_majority_on_sst2(glue_dir, tmp_path):
    """Real all-MiniLM-L6-v2 weights, real SST-2: every one of 4 seeds beats the majority-class baseline."""
    cfg = load_config(None, dict(task="sst2", model=str(minilm_dir()), data_dir=str(glue_dir), seeds=4,
                                 max_steps=60, batch_size=16, learning_rate=1e-4, max_length=64,
                                 max_train_examples=2000, output_dir=str(tmp_path / "run")))
    out = run(cfg, progress=False)
    m = json.loads((out / "metrics.json").read_text())["splits"]["validation"]
    baseline = m["majority_baseline"]["accuracy"]
    assert m["num_examples"] == 872 and 0.49 < baseline < 0.52
    accs = m["per_seed"]["accuracy"]
    assert len(accs) == 4 and min(accs) > baseline + 0.1, (accs, baseline)
