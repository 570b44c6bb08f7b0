"""What grouping seeds costs a seed, measured inside one process.

Where seeds are looped (CPU), `jaxseed run` holds a chunk's S seeds in S slots, each its own buffers, and a step
calls the same compiled program once a slot (jaxseed.train.step_slots). One seed's call does the same work whether
the other slots exist or not; what grouping can add is the cost of the process holding S seeds' state and of
cycling through S sets of buffers instead of reusing one. This script times both in the same process, interleaved
round by round so that slow spells of the machine hit both alike:

  alone    the step of slot 0 alone, called S times in a row (what a one-seed run does, S times)
  grouped  one step of all S slots, as a run does it, divided by S

and reports grouped / alone: 1.00 means a seed costs the same in a group as alone. Comparing separate processes
(bench_train.py, S = 1 against S = 4 or 8) also measures how each process lands on the machine, which on a
small VM varies by about ±10% from one process to the next; this ratio does not.

    python benchmarks/slot_overhead.py --seeds 4,8 --seq-len 64,128 --rounds 6 --repeats 2 --out slot_overhead_cpu

Each (S, L) runs in its own process, with the host allocator `jaxseed run` sets up (JAXSEED_HOST_MALLOC); repeats
run round-robin.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (RESULTS, ROOT, _iqr, hardware, model_config, rss_mb, run_worker, versions,  # noqa: E402
                          wait_quiet)


def worker(a: dict) -> dict:
    import jax

    from bench_jax import slot_setup
    from jaxseed import train as T

    base = rss_mb()
    S, B, L, R = a["seeds"], a["batch_size"], a["seq_len"], a["rounds"]
    ndev = len(jax.devices())
    if T.slot_size(None, ndev, S) != ndev:
        return {"error": f"seeds are vmapped, not looped, on {jax.default_backend()}: no slots to measure"}
    spec, data, slots = slot_setup(a["hf_config"], B, L, list(range(S)), ndev, 2 + R * 2 * S)
    t = 0

    def timed(group):  # one step of these slots: (seconds, minor page faults)
        nonlocal t
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        T.step_slots(spec, group, {}, data, t)
        jax.block_until_ready([sl["loss"] for sl in group])
        t += 1
        return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0

    for group in ([slots[0]], [slots[0]], slots):  # compile, then one warm step of each kind
        timed(group)
    alone, grouped = [], []
    for _ in range(R):
        alone += [timed([slots[0]]) for _ in range(S)]
        s, f = timed(slots)
        grouped.append((s / S, f / S))
    a_s, g_s = (statistics.median(x[0] for x in xs) for xs in (alone, grouped))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(alone_s=a_s, alone_iqr_s=_iqr([x[0] for x in alone]), grouped_s=g_s,
                grouped_iqr_s=_iqr([x[0] for x in grouped]), ratio=g_s / a_s,
                faults_alone=statistics.median(x[1] for x in alone),
                faults_grouped=statistics.median(x[1] for x in grouped), calls_alone=len(alone),
                steps_grouped=len(grouped), peak_rss_mb=round(peak), base_rss_mb=round(base),
                device=f"{jax.devices()[0].platform} x{ndev}")


def markdown(meta: dict, rows: list[dict]) -> str:
    hw = meta["hardware"]
    out = [f"# Grouping overhead in one process: {meta['out']}", "",
           f"Command: `{meta['command']}`", "",
           f"Hardware: {hw['cpu']}, {hw['cores']} cores, {hw['ram_gib']} GiB RAM. Versions: "
           + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v) + ".", "",
           f"Model {meta['model']} (random init), B = {meta['batch_size']} a seed, AdamW, dropout 0.1, full "
           f"fine-tuning; host allocator JAXSEED_HOST_MALLOC={meta['host_malloc']}. Per row, one process: "
           f"`alone` is the median of {meta['rounds']} rounds × S calls of one slot's step, `grouped` the median "
           "of one step of all S slots divided by S, interleaved round by round (see the script's docstring). "
           "Faults: minor page faults a seed-step.", "",
           "| S | L | repeat | alone s | grouped s a seed | grouped / alone | IQR alone | IQR grouped | faults alone | "
           "faults grouped | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['seeds']} | {r['seq_len']} | {r['repeat']} | error: {r['error']} |||||||")
            continue
        out.append(f"| {r['seeds']} | {r['seq_len']} | {r['repeat']} | {r['alone_s']:.3f} | {r['grouped_s']:.3f} | "
                   f"{r['ratio']:.3f} | {r['alone_iqr_s'][0]:.3f}–{r['alone_iqr_s'][1]:.3f} | "
                   f"{r['grouped_iqr_s'][0]:.3f}–{r['grouped_iqr_s'][1]:.3f} | {r['faults_alone']:.0f} | "
                   f"{r['faults_grouped']:.0f} | {r['peak_rss_mb']} |")
    out += ["", "Median over the repeats of grouped / alone:", "", "| S | L | repeats | grouped / alone |", "|---|---|---|---|"]
    keys = sorted({(r["seeds"], r["seq_len"]) for r in rows if "error" not in r})
    for s, length in keys:
        ratios = [r["ratio"] for r in rows if (r["seeds"], r["seq_len"]) == (s, length) and "error" not in r]
        out.append(f"| {s} | {length} | {len(ratios)} | {statistics.median(ratios):.3f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm")
    p.add_argument("--seeds", default="4,8", help="comma-separated S")
    p.add_argument("--seq-len", default="64,128", help="comma-separated L")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--repeats", type=int, default=1, help="processes per (S, L), run round-robin")
    p.add_argument("--host-malloc", default=os.environ.get("JAXSEED_HOST_MALLOC", "hugepages"))
    p.add_argument("--smoke", action="store_true", help="a tiny model, S = 2, L = 16, 2 rounds")
    p.add_argument("--out", default="slot_overhead_cpu")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("ROW " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.smoke:
        args.model, args.seeds, args.seq_len, args.batch_size, args.rounds = "tiny", "2", "16", 4, 2
    from jaxseed.cli import HOST_MALLOC_ENV

    if args.host_malloc not in HOST_MALLOC_ENV:
        p.error(f"--host-malloc must be one of {sorted(HOST_MALLOC_ENV)}, not {args.host_malloc!r}")
    try:
        seeds, lengths = ([int(x) for x in v.split(",")] for v in (args.seeds, args.seq_len))
    except ValueError:
        p.error("--seeds and --seq-len take comma-separated integers")
    if min(seeds) < 2 or min(lengths) < 1:
        p.error("--seeds must be at least 2 (one seed has nothing to group) and --seq-len at least 1")
    meta = {"out": args.out, "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
            "model": args.model, "batch_size": args.batch_size, "rounds": args.rounds, "host_malloc": args.host_malloc,
            "hardware": hardware(), "versions": versions()}
    rows = []
    for rep in range(args.repeats):
        for length in lengths:
            for s in seeds:
                if not args.smoke:
                    wait_quiet(0.3, 300, lambda m: print(m, file=sys.stderr))
                a = dict(seeds=s, seq_len=length, batch_size=args.batch_size, rounds=args.rounds,
                         hf_config=model_config(args.model))
                got = run_worker(__file__, a, HOST_MALLOC_ENV[args.host_malloc], args.timeout)
                row = dict(seeds=s, seq_len=length, repeat=rep + 1) | got
                print(json.dumps(row), file=sys.stderr)
                rows.append(row)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / f"{args.out}.md").write_text(markdown(meta, rows))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
