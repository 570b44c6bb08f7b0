"""Several processes in one run, as two processes on localhost (gloo collectives): the same predictions as one
process, a dead peer stops the others with one line, a resume after a kill equals the uninterrupted run, and
processes with different configs are refused."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from jaxseed.cli import main
from jaxseed.config import load_config
from jaxseed.run import run

from conftest import REPO

HEARTBEAT_S = 5  # the peer-death timeout these tests configure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_cfg(tmp_path, model_dir, glue_dir, **kw):
    base = dict(task="rte", model=str(model_dir), data_dir=str(glue_dir), seeds=5, max_steps=6, batch_size=8,
                eval_batch_size=16, learning_rate="3e-4", max_length=64, max_train_examples=64, max_eval_examples=48)
    path = tmp_path / f"c{len(list(tmp_path.glob('c*.yaml')))}.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in (base | kw).items()))
    return path


def launch(cfg, n, devices, sets=(), progress=False, extra=(), env1=None):
    """n processes of `jaxseed run` joined through a coordinator on a free localhost port."""
    port = free_port()
    env = os.environ | {"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices), "PYTHONPATH": str(REPO)}
    env.pop("XLA_FLAGS", None)
    cmd = lambda i: [sys.executable, "-m", "jaxseed.cli", "run", str(cfg), *[f"--set={s}" for s in sets],
                     "--coordinator", f"127.0.0.1:{port}", "--coordinator-bind", f"127.0.0.1:{port}",
                     "--num-processes", str(n), "--process-id", str(i), "--heartbeat-timeout", str(HEARTBEAT_S),
                     "--init-timeout", "120", *extra] + ([] if progress else ["--no-progress"])
    envs = [env | (env1 or {}) if i == 1 else env for i in range(n)]  # env1: process 1's extra variables
    return [subprocess.Popen(cmd(i), env=envs[i], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for i in range(n)]


def finish(procs, timeout=300):
    out = [p.communicate(timeout=timeout) for p in procs]
    return [p.returncode for p in procs], out


def one_process(cfg, devices, out):
    env = os.environ | {"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices), "PYTHONPATH": str(REPO)}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-m", "jaxseed.cli", "run", str(cfg), f"--set=output_dir={out}",
                           "--no-progress"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out / "predictions.npz")


def assert_same(a, b, atol):
    np.testing.assert_array_equal(a["pred"], b["pred"])
    np.testing.assert_allclose(a["logits"], b["logits"], atol=atol, rtol=0)
    for k in ("label", "example_id", "seed_init", "seed_order", "seed_dropout"):
        np.testing.assert_array_equal(a[k], b[k])


@pytest.fixture(scope="module")
def single(tiny_bert_dir, glue_dir, tmp_path_factory):
    """The reference: 6 seeds in one process on its one device, through the Python API."""
    out = tmp_path_factory.mktemp("single") / "run"
    cfg = load_config(None, dict(task="rte", model=str(tiny_bert_dir), data_dir=str(glue_dir), seeds=6, max_steps=6,
                                 batch_size=8, eval_batch_size=16, learning_rate=3e-4, max_length=64,
                                 max_train_examples=64, max_eval_examples=48, output_dir=str(out)))
    run(cfg, progress=False)
    return out


def test_two_processes_equal_one(tmp_path, tiny_bert_dir, glue_dir, single):
    single = np.load(single / "predictions.npz")
    """2 processes x 1 device, 5 seeds: identical to 1 process with 2 devices, and to 1 process with 1 device."""
    cfg = write_cfg(tmp_path, tiny_bert_dir, glue_dir, output_dir=tmp_path / "two")
    codes, outs = finish(launch(cfg, 2, 1))
    assert codes == [0, 0], [o[1][-2000:] for o in outs]
    assert "wrote" in outs[0][0] and outs[1][0] == ""  # process 0 alone prints and writes
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".yaml")) == ["two"]
    two = np.load(tmp_path / "two" / "predictions.npz")
    assert two["pred"].shape == (5, 48)
    assert_same(two, one_process(cfg, 2, tmp_path / "devices"), atol=0)  # the same programs, to the bit
    five = {k: single[k][:5] if k in ("pred", "logits") or k.startswith("seed_") else single[k] for k in single.files}
    assert_same(two, five, atol=1e-5)


def test_two_processes_two_devices_in_chunks(tmp_path, tiny_bert_dir, glue_dir, single):
    """2 processes x 2 devices, 6 seeds in chunks of 4 (the second padded): same as one process, one device."""
    cfg = write_cfg(tmp_path, tiny_bert_dir, glue_dir, seeds=6, seed_chunk=4, output_dir=tmp_path / "four")
    codes, outs = finish(launch(cfg, 2, 2))
    assert codes == [0, 0], [o[1][-2000:] for o in outs]
    assert_same(np.load(tmp_path / "four" / "predictions.npz"), np.load(single / "predictions.npz"), atol=1e-5)


def test_killed_process_then_resume_equals_uninterrupted(tmp_path, tiny_bert_dir, glue_dir, single):
    """6 seeds in chunks of 4 over 2 processes, checkpoints every 2 steps; process 1 is killed (-9) before step 3
    of the second chunk: both stop; both started again with --resume finish, equal to the uninterrupted run."""
    cfg = write_cfg(tmp_path, tiny_bert_dir, glue_dir, seeds=6, seed_chunk=4, checkpoint_every=2,
                    output_dir=tmp_path / "resumed")
    procs = launch(cfg, 2, 1, env1={"JAXSEED_TEST_KILL": "1:3"})
    codes, outs = finish(procs)
    assert codes == [1, 1], [o[1][-2000:] for o in outs]
    assert "lost contact with another process" in outs[0][1]
    assert (tmp_path / "resumed" / "checkpoints" / "chunk-000").is_dir()
    assert not (tmp_path / "resumed" / "predictions.npz").exists()
    codes, outs = finish(launch(cfg, 2, 1, extra=["--resume"]))
    assert codes == [0, 0], [o[1][-2000:] for o in outs]
    assert_same(np.load(tmp_path / "resumed" / "predictions.npz"), np.load(single / "predictions.npz"), atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "resumed" / "curves.npz")["loss"],
                               np.load(single / "curves.npz")["loss"], atol=1e-5, rtol=0)


def test_a_dead_process_stops_the_other(tmp_path, tiny_bert_dir, glue_dir):
    """kill -9 one process mid-run: the other exits 1 with one line within the heartbeat timeout."""
    cfg = write_cfg(tmp_path, tiny_bert_dir, glue_dir, max_steps=100000, output_dir=tmp_path / "dead")
    procs = launch(cfg, 2, 1, progress=True)
    seen = threading.Event()
    err0 = []

    def read():  # process 0's progress bar says when training runs
        for chunk in iter(lambda: procs[0].stderr.read(1), ""):
            err0.append(chunk)
            if not seen.is_set() and re.search(r"\| *[1-9]\d*/100000", "".join(err0[-200:])):
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert seen.wait(240), "".join(err0)[-2000:]
        procs[1].send_signal(signal.SIGKILL)  # its worker dies with it
        t0 = time.monotonic()
        procs[0].wait(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
    time.sleep(0.5)  # the reader thread drains what is left
    last = "".join(err0).replace("\r", "\n").strip().splitlines()[-1]
    assert procs[0].returncode == 1
    assert last.startswith("jaxseed: error: process 0: lost contact with another process") and "--resume" in last
    # HEARTBEAT_S plus the coordinator's polling; the margin is for a loaded machine
    assert elapsed < HEARTBEAT_S + 30, elapsed
    assert not (tmp_path / "dead" / "metrics.json").exists()  # only checkpoints: the run is not complete


def test_different_configs_are_refused(tmp_path, tiny_bert_dir, glue_dir):
    cfg = write_cfg(tmp_path, tiny_bert_dir, glue_dir, output_dir=tmp_path / "never")
    port = free_port()
    env = os.environ | {"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "jaxseed.cli", "run", str(cfg), f"--set=learning_rate={lr}",
                               "--coordinator", f"127.0.0.1:{port}", "--coordinator-bind", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i), "--heartbeat-timeout", str(HEARTBEAT_S),
                               "--no-progress"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i, lr in enumerate(["1e-4", "2e-4"])]
    codes, outs = finish(procs, timeout=180)
    assert codes == [2, 2]
    for out, err in outs:
        assert err == ("jaxseed: error: processes disagree on config key 'learning_rate': process 1 differs from "
                       "process 0; every process must get the same config\n"), err
        assert out == ""
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("flags, needle", [
    (["--coordinator", "127.0.0.1:1234"], "--num-processes is needed with --coordinator"),
    (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], "--process-id 2 is not in 0..1"),
    (["--coordinator", "h:1", "--num-processes", "two", "--process-id", "0"], "--num-processes (or JAXSEED_NUM_PROCESSES)"),
])
def test_bad_flags_are_one_line(tmp_path, capsys, flags, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: rte\nmodel: unused\n")
    assert main(["run", str(cfg), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxseed: error: ") and needle in err and err.count("\n") == 1, err
