"""`jaxseed run CONFIG.yaml [--set key=value ...] [--resume] [multi-process flags]`, `jaxseed report RUN_DIR
[RUN_DIR ...] [-o OUT]`, `jaxseed compare RUN_A RUN_B [RUN ...] [-o OUT] [--draws D]` and
`jaxseed export RUN_DIR [--seeds 0,3] -o OUT`.

Bad input is one line on stderr and exit code 2, with no traceback and nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

# The host allocator, set by re-starting `jaxseed run` once (glibc reads it at start-up only). XLA:CPU frees and
# re-allocates hundreds of MB every step; glibc serves such blocks with fresh mmaps, so every step page-faults
# them in again, 4 KiB at a time (MiniLM, B=16, L=64, one seed: 140k faults and 0.27 s of kernel time a step).
# JAXSEED_HOST_MALLOC:
#   hugepages (default)  glibc.malloc.hugetlb=1: those mmaps get transparent huge pages, so the same memory
#                        faults in 2 MiB at a time (760 faults a step) and the peak RSS is unchanged
#                        (benchmarks/NOTES.md); a no-op where the kernel's THP setting is "never"
#   tuned                glibc keeps freed memory (no mmap, no trim): as fast, and the first step after a pause is
#                        not slowed where a VM hands freed memory back to its host, but peak RSS is twice as
#                        high, which the planner does not model
#   default              glibc as it comes
HOST_MALLOC_ENV = {
    "hugepages": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    "tuned": {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**36)},
    "default": {},
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxseed", description="Many fine-tuning seeds in one compiled JAX program.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train S seeds and write predictions and metrics to one folder")
    r.add_argument("config", help="YAML config file")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (the value is parsed as YAML); repeatable")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its latest complete checkpoint (same as resume: true)")
    d = r.add_argument_group("several processes (hosts): jax.distributed; each flag also reads a JAXSEED_* variable")
    d.add_argument("--distributed", action="store_true",
                   help="join a multi-process run found by JAX's cluster detection (SLURM, TPU pods, Open MPI, ...)")
    d.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address (JAXSEED_COORDINATOR)")
    d.add_argument("--num-processes", metavar="N", help="processes in the run (JAXSEED_NUM_PROCESSES)")
    d.add_argument("--process-id", metavar="I", help="this process, 0..N-1 (JAXSEED_PROCESS_ID)")
    d.add_argument("--coordinator-bind", metavar="ADDR:PORT",
                   help="where process 0 listens (default all interfaces; JAXSEED_COORDINATOR_BIND)")
    d.add_argument("--heartbeat-timeout", metavar="S",
                   help="seconds of silence after which a peer counts as dead and the run stops (default 60)")
    d.add_argument("--init-timeout", metavar="S", help="seconds to wait for every process at start-up (default 300)")
    ex = sub.add_parser("export", help="write seeds of a run as Hugging Face model folders")
    ex.add_argument("run_dir")
    ex.add_argument("--seeds", default=None, help="comma-separated seed indices (default: all)")
    ex.add_argument("-o", "--output", required=True, help="output folder; one seed-<i> folder a seed")
    rep = sub.add_parser("report", help="tables and plots of seed effects from one or more run folders")
    rep.add_argument("run_dirs", nargs="+")
    rep.add_argument("-o", "--output", default=None, help="output folder (default: RUN_DIR/report)")
    cmp = sub.add_parser("compare", help="is run A better than run B beyond seed noise (Multi-Bootstrap)")
    cmp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="two or more run folders of one task")
    cmp.add_argument("-o", "--output", default=None, help="output folder (default: RUN_A/compare)")
    cmp.add_argument("--draws", type=int, default=1000, help="bootstrap draws (default 1000)")
    return p


def host_env(environ: dict, libc: str | None = None) -> dict | None:
    """The environment to re-start `jaxseed run` with, or None to go on as is: JAXSEED_HOST_MALLOC's setting
    (hugepages unless told otherwise) on glibc, when not yet in place; values the user set win."""
    libc = platform.libc_ver()[0] if libc is None else libc
    mode = environ.get("JAXSEED_HOST_MALLOC", "hugepages")
    if libc != "glibc" or mode not in HOST_MALLOC_ENV:
        return None
    env = dict(environ)
    for key, value in HOST_MALLOC_ENV[mode].items():
        if key == "GLIBC_TUNABLES":  # a colon-separated list: add ours unless the user set that tunable
            have = environ.get(key, "")
            if value.split("=")[0] not in have:
                env[key] = f"{have}:{value}" if have else value
        else:
            env.setdefault(key, value)
    return None if env == dict(environ) else env


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = host_env(os.environ) if argv is None and args.command == "run" else None
    if env is not None:  # the process entry point, before jax starts its threads: re-start with the allocator set
        os.execve(sys.executable, [sys.executable, "-m", "jaxseed.cli", *sys.argv[1:]], env)
    from jaxseed import distributed
    from jaxseed.config import ConfigError, load_config, parse_set, resolve_seeds, sweep_rows, to_dict

    try:
        if args.command == "run":
            try:
                cluster = distributed.from_args(args.distributed, args.coordinator, args.num_processes, args.process_id,
                                                args.coordinator_bind, args.heartbeat_timeout, args.init_timeout)
            except ValueError as e:
                raise ConfigError(str(e)) from None
            if cluster.enabled and distributed.WORKER_LOG_ENV not in os.environ:
                return distributed.supervise(sys.argv[1:] if argv is None else argv, cluster)
            cfg = load_config(args.config, parse_set(args.overrides) | ({"resume": True} if args.resume else {}))
            if cluster.enabled:  # the child of supervise(): join the others before any JAX work
                distributed.redirect_native_log()
                try:
                    distributed.initialize(cluster)
                    distributed.check_same_config(to_dict(cfg))
                except ValueError as e:
                    raise ConfigError(str(e)) from None
            from jaxseed.checkpoint import CheckpointError, Preempted, is_complete
            from jaxseed.run import run, summary_table

            primary = distributed.is_primary()
            done = is_complete(cfg)
            try:
                out = run(cfg, progress=not args.no_progress and primary)
            except Preempted as e:
                print(f"jaxseed: {e}; continue with: jaxseed run {' '.join(sys.argv[2:] if argv is None else argv[1:])}"
                      f"{'' if cfg.resume else ' --resume'}", file=sys.stderr)
                return 3
            except CheckpointError as e:
                print(f"jaxseed: error: {e}; once there is room, continue with --resume", file=sys.stderr)
                return 1
            if primary:
                rows = sweep_rows(cfg, resolve_seeds(cfg.seeds))[0]  # with a sweep: the grid x the seeds
                print(summary_table(json.loads((out / "metrics.json").read_text()), rows))
                print(f"{out} is already complete: nothing to resume" if done else f"wrote {out}")
            distributed.wait_for_all("jaxseed run written")
        elif args.command == "export":
            from jaxseed.export import export

            for path in export(args.run_dir, args.output, args.seeds):
                print(f"wrote {path}")
        else:
            from jaxseed.compare import build_compare
            from jaxseed.report import build_report

            try:
                if args.command == "compare":
                    if args.draws < 1:
                        raise ValueError(f"--draws must be positive, got {args.draws}")
                    path = build_compare(args.run_dirs, args.output, args.draws)
                    print(path.read_text().split("\n## ", 1)[1] if "\n## " in path.read_text() else "")
                else:
                    path = build_report(args.run_dirs, args.output)
            except ValueError as e:  # the one-line complaint about a run folder
                raise ConfigError(str(e)) from None
            print(f"wrote {path}")
    except ConfigError as e:
        print(f"jaxseed: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
