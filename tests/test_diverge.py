"""A seed whose loss goes non-finite stops inside the compiled step, is flagged with its step, and is left out of
the statistics; the other seeds are bit-identical to a run without it."""

import json

import numpy as np

from jaxseed import metrics as metrics_lib
from jaxseed.config import load_config
from jaxseed.report import build_report
from jaxseed.run import run, summary_table


def cfg(model_dir, glue_dir, out, seeds):
    return load_config(None, dict(task="rte", model=str(model_dir), data_dir=str(glue_dir), max_steps=6, batch_size=8,
                                  eval_batch_size=16, max_length=64, max_train_examples=64, max_eval_examples=48,
                                  learning_rate=3e-4, seeds=seeds, seed_chunk=len(seeds), output_dir=str(out)))


def test_a_diverging_seed_stops_alone(tiny_bert_dir, glue_dir, tmp_path):
    # Seed 1 gets a learning rate far too large: its weights overflow after the first update.
    bad = run(cfg(tiny_bert_dir, glue_dir, tmp_path / "bad", [0, 1, 2]), progress=False,
              hp={"learning_rate": [3e-4, 1e30, 3e-4]})
    good = run(cfg(tiny_bert_dir, glue_dir, tmp_path / "good", [0, 2]), progress=False)
    m = json.loads((bad / "metrics.json").read_text())
    [flag] = m["diverged"]
    loss = np.load(bad / "curves.npz")["loss"]
    assert flag["seed"] == 1 and 1 < flag["step"] <= 6
    assert np.isfinite(loss[:flag["step"] - 1, 1]).all() and np.isnan(loss[flag["step"]:, 1]).all()
    # The healthy seeds: bit-identical predictions, logits and losses to the run without seed 1.
    pb, pg = np.load(bad / "predictions.npz"), np.load(good / "predictions.npz")
    np.testing.assert_array_equal(pb["logits"][[0, 2]], pg["logits"])
    np.testing.assert_array_equal(loss[:, [0, 2]], np.load(good / "curves.npz")["loss"])
    # Consistency and the across-seed summary count the two healthy seeds only; per-seed scores list all three.
    split = m["splits"]["validation"]
    assert m["seeds_in_statistics"] == 2 and len(split["per_seed"]["accuracy"]) == 3
    assert split["consistency"] == float(metrics_lib.consistency(pg["pred"]))
    assert split == json.loads((good / "metrics.json").read_text())["splits"]["validation"] | {
        "per_seed": split["per_seed"]}
    table = summary_table(m)
    assert f"diverged at step {flag['step']}" in table and "1 diverged seed(s) left out" in table
    report = build_report([bad]).read_text()
    assert f"1 diverged seed(s) left out of every statistic: seed 1 (non-finite loss at step {flag['step']})" in report
