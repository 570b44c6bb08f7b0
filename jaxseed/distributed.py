"""Several processes in one run (TPU pod slices, GPU clusters): start-up with jax.distributed, the same-config
check, host copies of process-spanning arrays, and a one-line message when a peer process dies.

Seeds never communicate, so the `seed` mesh axis spanning every device of every process is the whole design:
each process holds the seeds of its own devices, the replicated data are put on every device by every process,
and results are gathered to all processes (collectives must be called by every process in the same order;
only process 0 prints and writes).

A dead peer is noticed by JAX's coordination service after `heartbeat_timeout` seconds without heartbeats;
the runtime then aborts the survivors from C++ with a long stack dump. So a distributed `jaxseed run` runs its
work in a child process whose C++ log goes to a file, and the parent turns such an abort into one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np

# Environment fallbacks for the command-line flags (a launcher can set these instead).
ENV = {"coordinator": "JAXSEED_COORDINATOR", "num_processes": "JAXSEED_NUM_PROCESSES",
       "process_id": "JAXSEED_PROCESS_ID", "bind": "JAXSEED_COORDINATOR_BIND",
       "heartbeat_timeout": "JAXSEED_HEARTBEAT_TIMEOUT", "init_timeout": "JAXSEED_INIT_TIMEOUT"}
WORKER_LOG_ENV = "JAXSEED_WORKER_LOG"  # set in the child: where its C++ log (fd 2) goes
PEER_DIED = "JAX distributed service detected fatal errors"  # the runtime's abort message when a peer is gone


@dataclasses.dataclass(frozen=True)
class Cluster:
    """How this process joins a multi-process run. `auto`: JAX's own cluster detection (SLURM, TPU pods,
    Open MPI, Kubernetes, ...); else the explicit coordinator address, process count and id."""

    auto: bool = False
    coordinator: str | None = None  # host:port of process 0
    num_processes: int | None = None
    process_id: int | None = None
    bind: str | None = None  # address process 0's coordinator listens on (default: all interfaces)
    heartbeat_timeout: int = 60  # seconds without heartbeats after which a process counts as dead
    init_timeout: int = 300  # seconds to wait for every process at start-up

    @property
    def enabled(self) -> bool:
        return self.auto or self.coordinator is not None


def from_args(auto: bool, coordinator, num_processes, process_id, bind, heartbeat_timeout, init_timeout,
              environ=os.environ) -> Cluster:
    """Flags win over the JAXSEED_* environment. Raises ValueError (one line) on an incomplete or bad set."""

    def pick(name, flag, cast=str):
        raw = flag if flag is not None else environ.get(ENV[name])
        if raw is None or raw == "":
            return None
        try:
            return cast(raw)
        except ValueError:
            raise ValueError(f"--{name.replace('_', '-')} (or {ENV[name]}): expected a number, got {raw!r}") from None

    c = Cluster(auto=auto, coordinator=pick("coordinator", coordinator), num_processes=pick("num_processes", num_processes, int),
                process_id=pick("process_id", process_id, int), bind=pick("bind", bind),
                heartbeat_timeout=pick("heartbeat_timeout", heartbeat_timeout, int) or Cluster.heartbeat_timeout,
                init_timeout=pick("init_timeout", init_timeout, int) or Cluster.init_timeout)
    explicit = {"--coordinator": c.coordinator, "--num-processes": c.num_processes, "--process-id": c.process_id}
    given = [k for k, v in explicit.items() if v is not None]
    if given and len(given) < 3 and not auto:
        missing = next(k for k, v in explicit.items() if v is None)
        raise ValueError(f"{missing} is needed with {', '.join(given)} (or use --distributed for cluster auto-detection)")
    if c.num_processes is not None and c.num_processes < 1:
        raise ValueError(f"--num-processes: expected a positive count, got {c.num_processes}")
    if c.process_id is not None and c.num_processes is not None and not 0 <= c.process_id < c.num_processes:
        raise ValueError(f"--process-id {c.process_id} is not in 0..{c.num_processes - 1}")
    if c.heartbeat_timeout < 1 or c.init_timeout < 1:
        raise ValueError("--heartbeat-timeout and --init-timeout must be positive numbers of seconds")
    return c


def initialize(c: Cluster) -> None:
    """jax.distributed.initialize; must come before any JAX computation."""
    import jax

    # The shutdown barrier waits this long too: a process that stops early (bad input on one host) then leaves
    # after one heartbeat timeout, and the others notice its silence one timeout later.
    kw = dict(heartbeat_timeout_seconds=c.heartbeat_timeout, initialization_timeout=c.init_timeout,
              shutdown_timeout_seconds=c.heartbeat_timeout)
    if c.coordinator is not None:
        kw |= dict(coordinator_address=c.coordinator, num_processes=c.num_processes, process_id=c.process_id,
                   coordinator_bind_address=c.bind)
    try:
        jax.distributed.initialize(**kw)
    except Exception as e:  # a missing cluster, an unreachable coordinator, a timeout: one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot join the multi-process run ({type(e).__name__}: {first[:300]})") from None


def is_primary() -> bool:
    import jax

    return jax.process_index() == 0


def wait_for_all(name: str) -> None:
    """A barrier across processes (none with one process): the others wait here while process 0 writes."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def to_host(x) -> np.ndarray:
    """A numpy copy of the whole array on every process; a collective when the array spans processes."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def check_same_config(resolved: dict) -> None:
    """Every process must run the same programs in the same order: refuse, on every process at once, when
    their resolved configs differ, naming the first key that does."""
    import jax

    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    keys = sorted(resolved)
    digest = lambda v: int.from_bytes(hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).digest()[:4], "little")
    mine = np.asarray([digest(resolved[k]) for k in keys] + [digest(keys)], np.uint32)
    every = np.asarray(multihost_utils.process_allgather(mine))  # [processes, keys + 1]
    for j in range(every.shape[1]):
        differ = np.flatnonzero(every[:, j] != every[0, j])
        if differ.size:
            name = "the set of keys (jaxseed versions differ?)" if j == len(keys) else f"config key '{keys[j]}'"
            raise ValueError(f"processes disagree on {name}: process {int(differ[0])} differs from process 0; "
                             f"every process must get the same config")


def redirect_native_log() -> None:
    """In the child: native messages (fds 1 and 2: the runtime's log, gloo's banners) go to the worker log;
    Python's stdout and stderr keep the terminal."""
    path = os.environ.get(WORKER_LOG_ENV)
    if not path:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = os.dup(1), os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = os.fdopen(out, "w", buffering=1)
    sys.stderr = os.fdopen(err, "w", buffering=1)


def supervise(argv: list[str], c: Cluster) -> int:
    """Run `jaxseed ARGV` in a child process and return its exit code; when the runtime aborted it because a
    peer process died, say so in one line."""
    label = f"process {c.process_id}" if c.process_id is not None else f"pid {os.getpid()}"
    fd, log = tempfile.mkstemp(prefix=f"jaxseed-{label.replace(' ', '')}-", suffix=".log")
    os.close(fd)
    env = dict(os.environ, **{WORKER_LOG_ENV: log})
    child = subprocess.Popen([sys.executable, "-m", "jaxseed.cli", *argv], env=env, preexec_fn=_die_with_parent)
    # A scheduler's SIGTERM (preemption) or a Ctrl-C reaches the child, which does the stopping.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    code = child.wait()
    text = open(log, errors="replace").read()
    bar = "--no-progress" not in argv and c.process_id in (0, None)  # the child may have left its bar's line open
    if code != 0 and PEER_DIED in text:
        print(("\n" if bar else "") + f"jaxseed: error: {label}: lost contact with another process of the run (heartbeat timeout "
              f"{c.heartbeat_timeout} s), so this one stopped too; start every process again (with --resume "
              f"where checkpoints exist). Runtime log: {log}", file=sys.stderr)
        return 1
    if code < 0 or code == 134:  # killed by a signal, or another native abort: point at the log
        print(f"jaxseed: error: {label} ended abnormally (exit {code}); runtime log: {log}", file=sys.stderr)
        return 1
    os.unlink(log)
    return code


def _die_with_parent() -> None:
    """Linux: the child is killed with its supervisor (a scheduler's SIGKILL reaches only the supervisor)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
