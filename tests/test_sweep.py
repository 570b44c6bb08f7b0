"""Sweeps: a grid of learning rates x seeds in one compiled step, each member equal to its single-value run;
the run folder records each row's values, and the report groups by them."""

import json
import logging

import jax
import numpy as np
import pandas as pd
import pytest

from jaxseed import planner
from jaxseed.cli import main
from jaxseed.config import ConfigError, Seeds, load_config, resolve_seeds, sweep_rows

from test_train import CompileCounter, make

LRS = [1e-4, 1e-3, 3e-3]


def test_sweep_rows_is_the_grid_times_the_seeds():
    cfg = load_config(None, {"task": "rte", "model": "m", "seeds": [5, 6], "learning_rate": ["1e-5", 2e-5],
                             "warmup_ratio": [0.0, 0.1]})
    rows, values = sweep_rows(cfg, resolve_seeds(cfg.seeds))
    assert rows.init == (5, 6) * 4
    assert values["learning_rate"] == [1e-5] * 4 + [2e-5] * 4
    assert values["warmup_ratio"] == [0.0, 0.0, 0.1, 0.1] * 2 and values["weight_decay"] == [0.01] * 8


@pytest.mark.parametrize("value, needle", [
    ("[1e-4, fast]", "'learning_rate': expected a number or a list of numbers"),
    ("[]", "'weight_decay'"),
    ("[0.1, 2]", "'warmup_ratio'"),
])
def test_bad_sweep_lists_are_one_line_and_exit_2(tmp_path, capsys, value, needle):
    key = needle.split("'")[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: rte\nmodel: unused\n")
    assert main(["run", str(cfg), "--set", f"{key}={value}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    with pytest.raises(ConfigError):
        load_config(cfg, {key: value})


def test_grid_compiles_once_and_members_equal_single_runs(tmp_path, capsys, glue_dir, tiny_bert_dir):
    out = tmp_path / "sweep"
    base = dict(task="rte", model=str(tiny_bert_dir), data_dir=str(glue_dir), output_dir=str(out), max_steps=5,
                batch_size=5, eval_batch_size=10, max_length=64, max_train_examples=40, max_eval_examples=30,
                warmup_ratio=0.2, seeds=[0, 1])
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(json.dumps(base))  # JSON is YAML
    counter, log = CompileCounter(), logging.getLogger("jax")
    log.addHandler(counter)
    jax.clear_caches()  # an earlier test may have compiled the same program: count from an empty cache
    try:
        with jax.log_compiles():
            assert main(["run", str(cfg_file), "--no-progress", "--set", f"learning_rate={LRS}",
                         "--set", "seed_chunk=6"]) == 0
            grid_compiles = counter.count
            singles = [make(load_config(cfg_file, {"learning_rate": lr, "seed_chunk": 2}))(Seeds((0, 1), (0, 1), (0, 1)))
                       for lr in LRS]
    finally:
        log.removeHandler(counter)
    assert grid_compiles == 1  # 3 learning rates x 2 seeds: the train step compiles once
    # The three single-value runs: vmapped, 2 seeds are a new shape (one more program, shared by the three); on
    # CPU every call steps one seed a device (train.slot_size), the grid's shape too: no new program.
    assert counter.count == (1 if planner.loops_seeds(None, jax.default_backend()) else 2)
    z = np.load(out / "predictions.npz")
    assert z["pred"].shape == (6, 30)
    np.testing.assert_allclose(z["learning_rate"], np.repeat(LRS, 2))
    np.testing.assert_array_equal(z["seed_init"], [0, 1] * 3)
    np.testing.assert_allclose(z["weight_decay"], 0.01) and np.testing.assert_allclose(z["warmup_ratio"], 0.2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["learning_rate"] for m in metrics["sweep"]] == LRS

    # Each member equals the same run with that single learning rate.
    for g, single in enumerate(singles):
        np.testing.assert_allclose(z["logits"][2 * g:2 * g + 2], single.logits["validation"], atol=1e-4)
        assert not np.allclose(z["logits"][2 * g:2 * g + 2], z["logits"][2 * ((g + 1) % 3):][:2], atol=1e-4)

    # The per-example table of a real run agrees with its predictions.
    df = pd.read_parquet(out / "examples.parquet")
    assert {"sentence1", "sentence2", "votes_entailment", "votes_not_entailment"} <= set(df.columns)
    np.testing.assert_array_equal(df["votes_not_entailment"], z["pred"].sum(0))
    np.testing.assert_array_equal(df["example_id"], z["example_id"])

    # The report: one row per learning rate, each over its own 2 seeds, and the metric-vs-lr plot.
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    md = (out / "report" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| sweep | rte |") and "| accuracy |" in line]
    for lr in LRS:
        mine = [r for r in rows if f"(lr={lr:g})" in r]
        assert len(mine) == 2 and all("| 2 |" in r for r in mine)  # both tables: this member's 2 seeds
        acc = (z["pred"][[LRS.index(lr) * 2, LRS.index(lr) * 2 + 1]] == z["label"]).mean(1).mean()
        assert f"| {100 * acc:.2f} ± " in mine[0]
    assert (out / "report" / "sweep_00_validation.png").is_file() and "against the learning rate" in md
