"""Checkpoints of a run with orbax: one CheckpointManager per chunk of seeds, atomic commits, the last few kept.

Layout of the checkpoint folder (default <output_dir>/checkpoints; `checkpoint_dir` may put it on another disk):
  run.json             the config keys the results depend on, and the chunk size; written when training starts
  chunk-000/<step>/    orbax, one folder a step: `state` (trained parameters and optimizer state with the
                       divergence marks, all with the leading seed axis; losses so far; eval logits so far)
                       and `meta` (step, the chunk's seeds)
  kept-000/<step>/     with early_stop: the kept seeds' chunks, from the stopping step to the end (chunk-<k>
                       then end at the stopping step, so a resume re-derives the same choice)
Per-step randomness derives from (seed stream, step) and the data order from (order seed, epoch), so these
arrays are all a chunk needs to go on exactly where it stopped. orbax writes a step to a temporary folder and
renames it when complete, so a kill at any moment leaves the previous step intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import uuid
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from jaxseed.config import Config, ConfigError, to_dict

# Keys that may differ between a run and its resume: where things go and how often to save or print.
# Everything else changes the numbers, so a resume with another value is refused.
UNCHECKED_KEYS = ("output_dir", "overwrite", "log_every", "checkpoint_every", "checkpoint_dir",
                  "checkpoint_keep", "keep_weights", "resume")
# Test hook, "CHUNK:STEP[:MODE]": before step STEP of chunk CHUNK, SIGKILL (no mode), one SIGTERM ("term") or
# two ("term2"); or SIGKILL while the checkpoint of step STEP is being written ("save").
KILL_ENV = "JAXSEED_TEST_KILL"


class CheckpointError(RuntimeError):
    """A checkpoint write failed mid-run; the message names the last complete checkpoint."""


class Preempted(RuntimeError):
    """The run stopped on a signal after writing a checkpoint."""


def folder(cfg: Config) -> Path:
    return Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else cfg.resolved_output_dir / "checkpoints"


def fingerprint(cfg: Config) -> dict:
    return {k: v for k, v in to_dict(cfg).items() if k not in UNCHECKED_KEYS}


def read_run(cfg: Config) -> dict | None:
    path = folder(cfg) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else None


def check_resume(cfg: Config) -> None:
    """Refuses (ConfigError naming the key) a resume whose config changes anything the results depend on."""
    saved = read_run(cfg)
    if saved is None:
        return
    now = fingerprint(cfg)
    for key in list(now) + [k for k in saved["config"] if k not in now]:
        if json.loads(json.dumps(now.get(key), default=str)) != saved["config"].get(key):
            raise ConfigError(f"config key '{key}': {now.get(key)!r} differs from the interrupted run's "
                              f"{saved['config'].get(key)!r} (checkpoints in {folder(cfg)}); resume with the same "
                              f"value or set overwrite: true to start over")


def is_complete(cfg: Config) -> bool:
    """A resume of a run that already finished: nothing to do."""
    return cfg.resume and (cfg.resolved_output_dir / "metrics.json").is_file()


def check_output(cfg: Config) -> None:
    """Before any work: the output folder is empty (or overwrite), or holds the interrupted run being resumed
    with the same config; output and checkpoint folders can be written. ValueError / ConfigError otherwise."""
    out = cfg.resolved_output_dir
    interrupted = read_run(cfg) is not None and not (out / "metrics.json").is_file()
    if cfg.resume:
        check_resume(cfg)
    elif interrupted and not cfg.overwrite:
        raise ValueError(f"output_dir {out} holds an interrupted run (checkpoints in {folder(cfg)}): "
                         f"continue it with --resume, or set overwrite: true to start over")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite \
            and not (cfg.resume and interrupted):
        raise ValueError(f"output_dir exists and is not empty: {out} (set overwrite: true to replace it)")
    check_writable(out, "output_dir")
    check_writable(folder(cfg), "checkpoint_dir")


def move_results(tmp: Path, cfg: Config) -> None:
    """Puts the result files written to `tmp` in the output folder; drops the checkpoints unless keep_weights."""
    out, ckpt = cfg.resolved_output_dir, folder(cfg).absolute()
    if out.is_dir() and ckpt.parent == out.absolute():
        # The checkpoints live in the run folder: results move in beside them, metrics.json last, as it marks
        # the run complete; files of an overwritten earlier run go first.
        for old in out.iterdir():
            if old.absolute() != ckpt:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        for f in sorted(tmp.iterdir(), key=lambda f: f.name == "metrics.json"):
            f.replace(out / f.name)
        tmp.rmdir()
    else:
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    if not cfg.keep_weights:
        remove(cfg)


def check_writable(path: Path, what: str) -> None:
    """Creates `path` if needed and writes a probe file, removing what it created; ConfigError if it cannot."""
    path = Path(path)
    made = [p for p in [path, *path.parents] if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".jaxseed-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{what} {path} is not writable ({e.strerror or e})") from None
    finally:
        for p in made:  # innermost first: nothing left on disk by the check
            with contextlib.suppress(OSError):
                p.rmdir()


def chunk_size(cfg: Config, plan) -> int:
    """The chunk size of the run: the one saved in run.json when resuming, else plan() (then saved)."""
    saved = read_run(cfg)
    if saved is not None:
        return saved["chunk_size"]
    path = folder(cfg)
    path.mkdir(parents=True, exist_ok=True)
    size = plan()
    tmp = path / f".run.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"config": fingerprint(cfg), "chunk_size": size}, indent=2, default=str))
    tmp.replace(path / "run.json")  # atomic: run.json is whole or absent
    return size


def _kill_hook() -> tuple[int, int, str] | None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return None
    chunk, step, *mode = spec.split(":")
    return int(chunk), int(step), (mode or [""])[0]


class ChunkCheckpoints:
    """The checkpoints of one chunk of seeds."""

    def __init__(self, cfg: Config, chunk: int, total: int, prefix: str = "chunk"):
        self.dir = folder(cfg) / f"{prefix}-{chunk:03d}"  # early stop's phase 2 writes kept-<k>
        self.chunk, self.total, self.every = chunk, total, cfg.checkpoint_every
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(cfg.checkpoint_keep),
            cleanup_tmp_directories=True)  # a save cut off by a kill leaves a temporary folder: removed here
        self.mngr = ocp.CheckpointManager(self.dir.absolute(), options=options, item_names=("state", "meta"))
        self.kill = _kill_hook()

    def latest(self) -> int | None:
        return self.mngr.latest_step()

    def restore(self, fresh_state: dict) -> tuple[int, dict]:
        """(step, state) of the latest complete checkpoint, with the shardings and dtypes of fresh_state."""
        step = self.mngr.latest_step()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, fresh_state)
        out = self.mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        return step, out["state"]

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total

    def kill_before_step(self, step: int) -> None:
        if self.kill is None or self.kill[:2] != (self.chunk, step):
            return
        mode = self.kill[2]
        if mode == "":
            os.kill(os.getpid(), signal.SIGKILL)
        for _ in range({"term": 1, "term2": 2}.get(mode, 0)):
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the handler before the next bytecode

    def save(self, step: int, state: dict, meta: dict) -> None:
        try:
            self.mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                          meta=ocp.args.JsonSave({"step": step, **meta})), force=True)
        except Exception as e:  # also the error of an earlier, asynchronous save, raised here
            raise self._error(e) from e
        if self.kill == (self.chunk, step, "save"):  # test hook: a kill -9 while the write is in flight
            os.kill(os.getpid(), signal.SIGKILL)

    def finish(self, final_only: bool = False) -> None:
        """Waits for the last write; with final_only, drops every checkpoint but the last."""
        try:
            self.mngr.wait_until_finished()
            self.mngr.check_for_errors()
            if final_only:
                for s in self.mngr.all_steps()[:-1]:
                    self.mngr.delete(s)
        except Exception as e:
            raise self._error(e) from e
        finally:
            self.mngr.close()

    def _error(self, e: Exception) -> CheckpointError:
        with contextlib.suppress(Exception):  # an earlier save may still be committing
            self.mngr.wait_until_finished()
        last = None
        with contextlib.suppress(Exception):
            self.mngr.reload()
            last = self.mngr.latest_step()
        where = f"the last complete one is step {last} in {self.dir}" if last is not None else "no complete one yet"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return CheckpointError(f"writing a checkpoint in {self.dir} failed ({type(e).__name__}: {first}); {where}")


class StopSignals:
    """SIGTERM / SIGINT set `requested` (the training loop checkpoints and stops at the next step);
    a second signal exits at once."""

    def __init__(self):
        self.requested: int | None = None
        self._old = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.requested).name if self.requested else ""

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            return self
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested is not None:
            print(f"jaxseed: second {signal.Signals(signum).name}: stopping now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.requested = signum
        print(f"jaxseed: {signal.Signals(signum).name}: writing a checkpoint after this step "
              f"(send it again to stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def remove(cfg: Config) -> None:
    shutil.rmtree(folder(cfg), ignore_errors=True)
