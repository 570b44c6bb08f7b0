"""Nothing lost: kill -9 and SIGTERM at chosen points, resumed until done, equal an uninterrupted run bit for bit;
a resume that changes the numbers is refused; failed checkpoint writes and unwritable folders are one line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxseed import checkpoint as ck
from jaxseed.cli import main
from jaxseed.config import load_config
from jaxseed.export import final_weights
from jaxseed.run import run

from conftest import REPO

TIMEOUT = 300  # per subprocess: a generous bound on a loaded machine


def config(model_dir, glue_dir, out, **kw):
    return dict(task="rte", model=str(model_dir), data_dir=str(glue_dir), max_steps=6, batch_size=8,
                eval_batch_size=16, learning_rate=3e-4, max_length=64, max_train_examples=64, max_eval_examples=48,
                seeds=3, seed_chunk=2, checkpoint_every=2, eval_every=2, output_dir=str(out)) | kw


def write_yaml(path, cfg):
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in cfg.items()))
    return path


def cli(yaml, *args, kill=None):
    env = {k: v for k, v in os.environ.items() if k != ck.KILL_ENV} | {"PYTHONPATH": str(REPO)}
    env |= {ck.KILL_ENV: kill} if kill else {}
    return subprocess.run([sys.executable, "-m", "jaxseed.cli", "run", str(yaml), "--no-progress", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=TIMEOUT)


def assert_same_run(a, b):
    for name in ("predictions.npz", "curves.npz", "evals.npz"):
        x, y = np.load(a / name), np.load(b / name)
        assert x.files == y.files
        for k in x.files:
            np.testing.assert_array_equal(x[k], y[k], err_msg=f"{name}:{k}")
    wa, wb = final_weights(a), final_weights(b)
    import jax

    for (path, u), v in zip(jax.tree_util.tree_flatten_with_path(wa)[0], jax.tree.leaves(wb)):
        np.testing.assert_array_equal(u, v, err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def reference(tiny_bert_dir, glue_dir, tmp_path_factory):
    """The uninterrupted run: 3 seeds in chunks of 2 (the second chunk padded), 6 steps, checkpoints every 2."""
    out = tmp_path_factory.mktemp("ref") / "run"
    return run(load_config(None, config(tiny_bert_dir, glue_dir, out)), progress=False)


def test_kill_9_anywhere_then_resume_is_bit_identical(reference, tiny_bert_dir, glue_dir, tmp_path, capsys):
    out = tmp_path / "run"
    yaml = write_yaml(tmp_path / "c.yaml", config(tiny_bert_dir, glue_dir, out))
    chunk0 = out / "checkpoints" / "chunk-000"
    # Killed before step 3 of the first chunk: steps 2 (maybe still being written: then nothing) is what is left.
    p = cli(yaml, kill="0:3")
    assert p.returncode == -9, p.stderr[-2000:]
    assert not (out / "metrics.json").exists()
    # A plain run now refuses, naming --resume: the interrupted run is not thrown away.
    assert main(["run", str(yaml), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "interrupted run" in err and "--resume" in err and err.count("\n") == 1, err
    # Killed while the checkpoint of step 4 is being written: its temporary folder is left, step 4 is not complete.
    p = cli(yaml, "--resume", kill="0:4:save")
    assert p.returncode == -9, p.stderr[-2000:]
    assert (chunk0 / "4.orbax-checkpoint-tmp").exists() and not (chunk0 / "4").exists()
    # Killed in the second chunk, after the first finished.
    p = cli(yaml, "--resume", kill="1:3")
    assert p.returncode == -9, p.stderr[-2000:]
    assert sorted(x.name for x in chunk0.iterdir()) == ["6"]  # a finished chunk keeps its final checkpoint only
    assert main(["run", str(yaml), "--no-progress", "--resume"]) == 0  # in this process: the same program
    assert_same_run(reference, out)
    assert main(["run", str(yaml), "--no-progress", "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_sigterm_checkpoints_then_resume_is_bit_identical(reference, tiny_bert_dir, glue_dir, tmp_path):
    out = tmp_path / "run"
    yaml = write_yaml(tmp_path / "c.yaml", config(tiny_bert_dir, glue_dir, out, checkpoint_every=100))
    p = cli(yaml, kill="0:3:term")  # SIGTERM before step 3: step 3 finishes, is saved, the run stops
    assert p.returncode == 3, p.stderr[-2000:]
    assert "SIGTERM" in p.stderr and f"run {yaml} --no-progress --resume" in p.stderr
    assert (out / "checkpoints" / "chunk-000" / "4").exists()  # off the every-100 schedule: the signal's checkpoint
    # A second signal exits at once, without a checkpoint.
    p = cli(yaml, "--resume", kill="1:2:term2")
    assert p.returncode == 128 + 15 and "second SIGTERM" in p.stderr, p.stderr[-2000:]
    assert not (out / "checkpoints" / "chunk-001").exists() or not any((out / "checkpoints" / "chunk-001").iterdir())
    assert main(["run", str(yaml), "--no-progress", "--resume"]) == 0
    assert_same_run(reference, out)


def test_resume_with_another_learning_rate_is_refused(tiny_bert_dir, glue_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    yaml = write_yaml(tmp_path / "c.yaml", config(tiny_bert_dir, glue_dir, out, seeds=2))
    monkeypatch.setenv(ck.KILL_ENV, "0:3:term")  # a SIGTERM to this process: handled, checkpointed, stopped
    assert main(["run", str(yaml), "--no-progress"]) == 3
    assert "SIGTERM" in capsys.readouterr().err
    monkeypatch.delenv(ck.KILL_ENV)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["run", str(yaml), "--resume", "--no-progress", "--set", "learning_rate=1e-3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxseed: error: config key 'learning_rate'") and err.count("\n") == 1, err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # the checkpoint untouched


def test_unwritable_output_folder_is_refused_before_training(tiny_bert_dir, glue_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a folder cannot be made under a file, whoever runs the test
    for key in ("output_dir", "checkpoint_dir"):
        cfg = config(tiny_bert_dir, glue_dir, tmp_path / "out") | {key: str(blocker / "run")}
        assert main(["run", str(write_yaml(tmp_path / "c.yaml", cfg)), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"{key} {blocker / 'run'}" in err and "not writable" in err and err.count("\n") == 1, err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "file"]


def test_failed_write_is_one_line_and_the_last_checkpoint_resumes(reference, tiny_bert_dir, glue_dir, tmp_path,
                                                                   capsys, monkeypatch):
    out = tmp_path / "run"
    yaml = write_yaml(tmp_path / "c.yaml", config(tiny_bert_dir, glue_dir, out))
    import orbax.checkpoint as ocp

    real_save, calls = ocp.CheckpointManager.save, []

    def disk_full_at_step_4(self, step, *a, **kw):
        calls.append(step)
        if step == 4:
            raise OSError(28, "No space left on device")
        return real_save(self, step, *a, **kw)

    monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full_at_step_4)
    assert main(["run", str(yaml), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "the last complete one is step 2" in err and err.count("\n") == 1, err
    monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
    assert main(["run", str(yaml), "--no-progress", "--resume"]) == 0
    assert_same_run(reference, out)
