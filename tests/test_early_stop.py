"""Start many, stop early: every seed to step T, the best on held-out training examples trained to the end in a
smaller program; a kept seed equals the same seed trained without stopping on the same reduced training set."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxseed import data as data_lib
from jaxseed import early_stop
from jaxseed import run as run_lib
from jaxseed import train as train_lib
from jaxseed.cli import main
from jaxseed.config import ConfigError, Seeds, load_config
from jaxseed.models import encoder as model_lib
from jaxseed.tasks import get_task

ES = {"at": 0.5, "keep": 2, "holdout": 16}


def config(model_dir, glue_dir, out, **kw):
    return dict(task="rte", model=str(model_dir), data_dir=str(glue_dir), max_steps=6, batch_size=8,
                eval_batch_size=16, learning_rate=3e-4, warmup_ratio=0.2, max_length=64, max_train_examples=64,
                max_eval_examples=48, seeds=6, seed_chunk=3, eval_every=2, checkpoint_every=2, output_dir=str(out),
                early_stop=ES, seed_loop=False) | kw  # vmapped: a program's seeds are its chunk's


def spied_run(cfg, monkeypatch, load_split=None):
    """run(cfg), recording the seeds of every train step and what every held-out scoring call was given."""
    steps, scored = [], []
    real_step, real_score = train_lib.train_step, run_lib.held_out_scores

    def step(spec, trained, opt, perm, *rest):
        steps.append((perm.shape[0], int(rest[-1])))  # perm_SxN: this program's seeds; the last argument: step
        return real_step(spec, trained, opt, perm, *rest)

    def score(task, logits, held):
        scored.append((np.asarray(logits).shape, held))
        return real_score(task, logits, held)

    monkeypatch.setattr(train_lib, "train_step", step)
    monkeypatch.setattr(run_lib, "held_out_scores", score)
    if load_split is not None:
        monkeypatch.setattr(data_lib, "load_split", load_split)
    out = run_lib.run(load_config(None, cfg), progress=False)
    monkeypatch.undo()
    return out, steps, scored


@pytest.fixture(scope="module")
def es_run(tiny_bert_dir, glue_dir, tmp_path_factory):
    """6 seeds in phase-1 programs of 3, stopped at step 3 of 6; the best 2 go on in one program of 2."""
    with pytest.MonkeyPatch.context() as mp:
        out, steps, scored = spied_run(config(tiny_bert_dir, glue_dir, tmp_path_factory.mktemp("es") / "run"), mp)
    return dict(out=out, steps=steps, scored=scored, metrics=json.loads((out / "metrics.json").read_text()),
                npz=dict(np.load(out / "predictions.npz")), held=dict(np.load(out / "early_stop.npz")))


def test_kept_seeds_finish_and_stopped_seeds_are_recorded(es_run):
    es, z, held = es_run["metrics"]["early_stop"], es_run["npz"], es_run["held"]
    assert es["at_step"] == 3 and es["seeds_started"] == 6 and es["seeds_kept"] == 2 and es["seeds_stopped"] == 4
    score = np.asarray([r["held_out_score"] for r in es["seeds"]])
    assert [r["row"] for r in es["seeds"]] == list(range(6)) and np.isfinite(score).all()
    kept = [r["row"] for r in es["seeds"] if r["kept"]]
    assert kept == sorted(sorted(range(6), key=lambda i: (-score[i], i))[:2])  # the best two, ties to the lower
    # The results hold the kept seeds only, trained to the end; the stopped ones have no dev predictions.
    assert es_run["metrics"]["num_seeds"] == 2 and z["pred"].shape == (2, 48)
    np.testing.assert_array_equal(z["seed_init"], kept)
    assert np.load(es_run["out"] / "curves.npz")["loss"].shape == (6, 2)
    assert np.load(es_run["out"] / "evals.npz")["pred_validation"].shape == (2, 2, 48)  # steps 2 and 4
    # early_stop.npz: every seed's held-out predictions and score, and which examples were held out
    assert held["pred"].shape == (6, 16) and len(np.unique(held["example_id"])) == 16
    np.testing.assert_allclose(held["score"], score)
    np.testing.assert_allclose(score, (held["pred"] == held["label"]).mean(1))
    np.testing.assert_array_equal(np.flatnonzero(held["kept"]), kept)
    ckpt = es_run["out"] / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("*-*")) == ["chunk-000", "chunk-001", "kept-000"]
    assert [p.name for p in (ckpt / "chunk-000").iterdir() if p.name.isdigit()] == ["3"]
    assert [p.name for p in (ckpt / "kept-000").iterdir() if p.name.isdigit()] == ["6"]
    from jaxseed.export import final_weights  # the kept seeds' weights, as their predictions

    assert {x.shape[0] for x in jax.tree.leaves(final_weights(es_run["out"]))} == {2}


def test_the_continuing_program_has_fewer_seeds(es_run):
    assert es_run["steps"] == [(3, t) for t in range(3)] * 2 + [(2, t) for t in range(3, 6)]
    es = es_run["metrics"]["early_stop"]
    assert es["chunk_size"] == 3 and es["kept_chunk_size"] == 2


def test_held_out_part_comes_from_training_and_is_removed_from_it(es_run, glue_dir):
    train = data_lib.load_split(get_task("rte"), "train", glue_dir).head(64)
    ids = es_run["held"]["example_id"]
    assert set(ids) <= set(train.example_id.tolist())
    expected = early_stop.held_mask(None, 64, {"holdout": 16, "split_seed": 0}, 8)  # split_seed alone fixes it
    np.testing.assert_array_equal(ids, train.example_id[expected])
    assert json.loads((es_run["out"] / "config.json").read_text())["train_examples"] == 48


def test_dev_set_is_never_used_for_the_choice(es_run, tiny_bert_dir, glue_dir, tmp_path, monkeypatch):
    # The scoring callback only ever saw the held-out training examples.
    assert len(es_run["scored"]) == 2  # once per phase-1 chunk
    for shape, held in es_run["scored"]:
        assert shape == (3, 16, 2)
        np.testing.assert_array_equal(held.example_id_N, es_run["held"]["example_id"])
        np.testing.assert_array_equal(held.label_N, es_run["held"]["label"])
    # Another dev set (the examples reversed, their labels flipped): the same scores and the same choice.
    real = data_lib.load_split

    def scrambled(task, split, data_dir=None):
        ex = real(task, split, data_dir)
        if split == "train":
            return ex
        return dataclasses.replace(ex, texts=ex.texts[::-1], label=1 - ex.label[::-1], example_id=ex.example_id[::-1])

    out, _, _ = spied_run(config(tiny_bert_dir, glue_dir, tmp_path / "run"), monkeypatch, scrambled)
    other = json.loads((out / "metrics.json").read_text())
    assert not np.array_equal(np.load(out / "predictions.npz")["label"], es_run["npz"]["label"])
    assert other["early_stop"]["seeds"] == es_run["metrics"]["early_stop"]["seeds"]


def test_kept_seed_equals_the_seed_trained_without_stopping(es_run, tiny_bert_dir, glue_dir):
    """The oracle: each kept seed, trained from step 0 to the end with no stop on the same reduced training set."""
    from transformers import AutoTokenizer

    cfg = load_config(None, config(tiny_bert_dir, glue_dir, None, early_stop=None, seed_chunk=2))
    task, tok = get_task("rte"), AutoTokenizer.from_pretrained(cfg.model)
    enc = lambda split, n: data_lib.encode(tok, data_lib.load_split(task, split, glue_dir).head(n), cfg.max_length)
    reduced, _ = early_stop.split(enc("train", 64), {"holdout": 16, "split_seed": 0}, 8)
    kept = tuple(int(s) for s in es_run["npz"]["seed_init"])
    alone = train_lib.make_train(cfg, task, model_lib.load_pretrained(cfg.model), reduced,
                                 {"validation": enc("validation", 48)}, progress=False)(Seeds(kept, kept, kept))
    np.testing.assert_allclose(es_run["npz"]["logits"], alone.logits["validation"], atol=1e-5)
    np.testing.assert_allclose(np.load(es_run["out"] / "curves.npz")["loss"], alone.loss_TxS, atol=1e-5)
    evals = np.load(es_run["out"] / "evals.npz")["pred_validation"]
    np.testing.assert_array_equal(evals, np.stack([h[1]["validation"].argmax(-1) for h in alone.history]))


@pytest.mark.parametrize("kill", ["1:1:term", "0:4:term"])  # in phase 1's second chunk; in phase 2
def test_sigterm_then_resume_equals_the_uninterrupted_run(es_run, tiny_bert_dir, glue_dir, tmp_path, monkeypatch,
                                                          kill):
    yaml = tmp_path / "c.yaml"
    yaml.write_text(json.dumps(config(tiny_bert_dir, glue_dir, tmp_path / "run")))
    monkeypatch.setenv("JAXSEED_TEST_KILL", kill)
    assert main(["run", str(yaml), "--no-progress"]) == 3
    monkeypatch.delenv("JAXSEED_TEST_KILL")
    assert main(["run", str(yaml), "--no-progress", "--resume"]) == 0
    z = np.load(tmp_path / "run" / "predictions.npz")
    for k in ("logits", "seed_init"):
        np.testing.assert_array_equal(z[k], es_run["npz"][k])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["early_stop"]["seeds"] == \
        es_run["metrics"]["early_stop"]["seeds"]


def test_report_compares_kept_seeds_with_an_unstopped_run(es_run, tiny_bert_dir, glue_dir, tmp_path, capsys):
    """keep = all seeds: the same reduced training set and schedule, none stopped: the reference."""
    ref = run_lib.run(load_config(None, config(tiny_bert_dir, glue_dir, tmp_path / "ref",
                                               early_stop=ES | {"keep": 6})), progress=False)
    zr = np.load(ref / "predictions.npz")
    kept = list(es_run["npz"]["seed_init"])
    np.testing.assert_allclose(zr["logits"][kept], es_run["npz"]["logits"], atol=1e-5)  # same seeds, same result
    assert main(["report", str(es_run["out"]), str(ref), "-o", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Early stopping: run" in md and md.count("| stopped |") == 4 and "## Early stopping against" in md
    acc = (zr["pred"] == zr["label"]).mean(1)
    top = sorted(range(6), key=lambda i: (-acc[i], i))[:2]
    row = next(line for line in md.splitlines() if line.startswith(f"| run | {ref.name} | validation |"))
    mine = acc[kept]
    assert f"| 2/6 | {100 * mine.mean():.2f} | {100 * mine.max():.2f} | 6 | {100 * acc.mean():.2f} |" in row
    assert f"| {sum(k in top for k in kept)}/2 | yes |" in row


@pytest.mark.parametrize("value, needle", [
    ("{at: 0.5, keep: 7}", "'early_stop.keep': 7 exceeds the 6 seeds"),
    ("{at: 0.5, keep: 0}", "'early_stop.keep'"),
    ("{at: 0.5, keep: 1.5}", "'early_stop.keep'"),
    ("{at: 1.0, keep: 2}", "'early_stop.at'"),
    ("{at: 0, keep: 2}", "'early_stop.at'"),
    ("{keep: 2}", "'early_stop.at' is required"),
    ("{at: 0.5, keep: 2, holdout: 1.5}", "'early_stop.holdout'"),
    ("{at: 0.5, keep: 2, holdout: 64}", "'early_stop.holdout': 64 holds out 64 of the 64"),
    ("{at: 0.5, keep: 2, holdout: 60}", "leaves 4 to train on, fewer than batch_size 8"),
    ("{at: 0.5, keep: 2, split_seed: -1}", "'early_stop.split_seed'"),
    ("{at: 0.5, keep: 2, patience: 3}", "unknown config key 'early_stop.patience'"),
    ("0.5", "'early_stop': expected a mapping"),
])
def test_bad_early_stop_is_one_line_exit_2_nothing_written(tiny_bert_dir, glue_dir, tmp_path, capsys, value, needle):
    yaml = tmp_path / "c.yaml"
    yaml.write_text(json.dumps(config(tiny_bert_dir, glue_dir, tmp_path / "run", early_stop=None)))
    assert main(["run", str(yaml), "--no-progress", "--set", f"early_stop={value}"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_keep_fraction_and_count_resolve_against_the_seeds():
    from jaxseed.config import keep_count

    cfg = load_config(None, {"task": "rte", "model": "m", "seeds": 10, "early_stop": {"at": 0.3, "keep": 0.25}})
    assert cfg.early_stop == {"at": 0.3, "keep": 0.25, "holdout": 0.1, "split_seed": 0}
    assert keep_count(cfg.early_stop, 10) == 3 and keep_count({"keep": 0.01}, 10) == 1
    assert keep_count({"keep": 10}, 10) == 10  # keep all: an unstopped reference that records held-out scores
    with pytest.raises(ConfigError, match="early_stop.keep"):
        load_config(None, {"task": "rte", "model": "m", "seeds": [3, 4], "early_stop": {"at": 0.3, "keep": 3}})


def test_choice_is_per_grid_member_and_ties_go_to_the_lower_row():
    score = np.asarray([0.5, 0.9, 0.5, 0.7, 0.1, 0.7, np.nan, 0.2])
    diverged = np.asarray([0, 0, 0, 0, 0, 1, 0, 0])
    # member 1 (rows 4-7): a diverged seed and a NaN score rank last
    assert early_stop.choose(range(8), score, diverged, num_seeds=4, keep=2) == [1, 3, 4, 7]
    assert early_stop.choose(range(4), score, diverged, num_seeds=4, keep=3) == [0, 1, 3]


def test_sweep_keeps_the_best_of_each_grid_member(es_run, tiny_bert_dir, glue_dir, tmp_path, capsys):
    out = run_lib.run(load_config(None, config(tiny_bert_dir, glue_dir, tmp_path / "run", seeds=3, eval_every=None,
                                               learning_rate=[3e-4, 1e-3], early_stop=ES | {"keep": 1})),
                      progress=False)
    es, z = json.loads((out / "metrics.json").read_text())["early_stop"], np.load(out / "predictions.npz")
    assert es["keep_per"] == "grid member" and es["seeds_started"] == 6 and es["seeds_kept"] == 2
    for g, lr in enumerate([3e-4, 1e-3]):
        mine = [r for r in es["seeds"] if np.isclose(r["learning_rate"], lr)]
        best = max(mine, key=lambda r: (r["held_out_score"], -r["row"]))
        assert [r["row"] for r in mine if r["kept"]] == [best["row"]] and best["row"] // 3 == g
    np.testing.assert_allclose(z["learning_rate"], [3e-4, 1e-3])
    from jaxseed import early_stop_report, report, sweep_report

    members = sweep_report.members(report.load_run(out))  # the report's tables per member (scores left out here)
    tables = early_stop_report.sections([(m, []) for m in members])
    assert [t[0] for t in tables] == ["Early stopping: run (lr=0.0003)", "Early stopping: run (lr=0.001)"]
    assert [[row[4] for row in t[2]] for t in tables] == [["kept" if r["kept"] else "stopped" for r in es["seeds"]
                                                           if np.isclose(r["learning_rate"], lr)] for lr in (3e-4, 1e-3)]
