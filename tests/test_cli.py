"""The command line: bad input is one line and exit code 2 with nothing written; a good run prints its tables."""

import subprocess
import sys

import numpy as np
import pytest

from jaxseed.cli import main

from conftest import REPO


def write_config(tmp_path, **kw):
    lines = {"task": "rte", "model": "unused", "max_steps": 2, "seeds": 2} | kw
    p = tmp_path / "c.yaml"
    p.write_text("".join(f"{k}: {v}\n" for k, v in lines.items()))
    return p


@pytest.mark.parametrize("extra, sets, needle", [
    ({"learning_rat": 0.1}, [], "unknown config key 'learning_rat'"),
    ({}, ["batch_size=-3"], "'batch_size'"),
    ({}, ["seeds={init: [1, 2], order: [1, 2, 3]}"], "'seeds.init'"),
    ({}, ["task=glu"], "unknown task 'glu'"),
    ({}, ["model=./no/such/folder"], "model './no/such/folder'"),
    ({}, ["model=nobody/no-such-model"], "model 'nobody/no-such-model'"),
    ({}, ["data_dir=/no/such/glue_data"], "data_dir not found"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, glue_dir, tiny_bert_dir, extra, sets, needle):
    out = tmp_path / "out"
    base = {"model": str(tiny_bert_dir), "data_dir": str(glue_dir), "output_dir": str(out)} | extra
    code = main(["run", str(write_config(tmp_path, **base)), *[f"--set={s}" for s in sets], "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.startswith("jaxseed: error: ") and err.count("\n") == 1, err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_refuses_to_overwrite(tmp_path, capsys, glue_dir, tiny_bert_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    cfg = write_config(tmp_path, model=str(tiny_bert_dir), data_dir=str(glue_dir), output_dir=str(out))
    assert main(["run", str(cfg)]) == 2
    assert "output_dir exists" in capsys.readouterr().err and (out / "keep.txt").exists()


def test_report_of_a_missing_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_entry_point_has_no_traceback(tmp_path):
    cfg = write_config(tmp_path, foo=1)
    proc = subprocess.run([sys.executable, "-m", "jaxseed.cli", "run", str(cfg)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.strip() == f"jaxseed: error: unknown config key 'foo' (known keys: " \
        + proc.stderr.split("(known keys: ")[1].strip() and "Traceback" not in proc.stderr


def test_run_then_report(tmp_path, capsys, glue_dir, tiny_bert_dir):
    out = tmp_path / "run"
    cfg = write_config(tmp_path, model=str(tiny_bert_dir), data_dir=str(glue_dir), output_dir=str(out),
                       max_train_examples=32, max_eval_examples=40, batch_size=8, max_length=64, seeds=3,
                       eval_every=1, eval_batch_size=8)
    assert main(["run", str(cfg), "--no-progress", "--set", "learning_rate=3e-4"]) == 0
    printed = capsys.readouterr().out
    assert "rte / validation  (40 examples, 3 seeds)" in printed and "consistency" in printed
    pred = np.load(out / "predictions.npz")["pred"]
    agree = np.mean((pred == pred[0]).all(axis=0))
    assert f"all seeds agree on {agree:.1%}" in printed
    evals = np.load(out / "evals.npz")
    assert evals["step"].tolist() == [1] and evals["pred_validation"].shape == (1, 3, 40)
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "report.md").exists() and (out / "report" / "report.html").exists()


def test_host_env_sets_the_allocator_once():
    from jaxseed.cli import HOST_MALLOC_ENV, host_env

    env = host_env({"PATH": "/bin"}, libc="glibc")  # by default: transparent huge pages for malloc's mmaps
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert host_env(env, libc="glibc") is None  # after the re-start: no loop
    both = host_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, libc="glibc")
    assert both["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"  # the user's tunables kept
    assert host_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, libc="glibc") is None  # the user's choice wins
    assert host_env({"JAXSEED_HOST_MALLOC": "default"}, libc="glibc") is None
    env = host_env({"PATH": "/bin", "JAXSEED_HOST_MALLOC": "tuned"}, libc="glibc")
    assert env == {"PATH": "/bin", "JAXSEED_HOST_MALLOC": "tuned", **HOST_MALLOC_ENV["tuned"]}
    assert host_env(env, libc="glibc") is None
    mine = host_env({"MALLOC_ARENA_MAX": "4", "JAXSEED_HOST_MALLOC": "tuned"}, libc="glibc")
    assert mine["MALLOC_ARENA_MAX"] == "4" and mine["MALLOC_MMAP_MAX_"] == "0"  # the user's value wins
    assert host_env({}, libc="") is None  # not glibc (musl, macOS): nothing to set
