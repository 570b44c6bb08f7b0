"""What a pause costs the work that follows it, under each host allocator setting of `jaxseed run`.

Three kinds of work are timed right after the previous call (busy) and after an idle gap, round by round:
  step     one engine training step of one seed (MiniLM, B = 16): XLA:CPU frees its temporary buffers at the end
           of a step and allocates them again in the next
  matmul   a chain of four 2048² float32 products: compute, almost no memory allocated
  resident one read-and-write pass over a 512 MB buffer that stays allocated (as a slot's state does)
Each JAXSEED_HOST_MALLOC setting (jaxseed/cli.py) runs in its own process. On a VM whose kernel reports free
pages to the host (virtio-balloon free page reporting), memory freed back to the kernel and left free for a
couple of seconds is handed to the host, and touching it again costs a fault on the host's side; memory the
process keeps (resident, or a heap that never returns it) does not.

    python benchmarks/after_idle.py --gap 4 --rounds 4 --out after_idle_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, ROOT, hardware, model_config, run_worker, versions  # noqa: E402


def worker(a: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bench_jax import slot_setup
    from jaxseed import train as T

    spec, data, (slot,) = slot_setup(model_config(a["model"]), a["batch_size"], a["seq_len"], [0], 1, 10_000)
    t = 0

    def step():
        nonlocal t
        T.step_slots(spec, [slot], {}, data, t)
        slot["loss"].block_until_ready()
        t += 1

    m = jnp.ones((a["matmul"], a["matmul"]), jnp.float32)
    chain = jax.jit(lambda x: ((x @ x) @ x) @ x)
    buf = np.ones(a["resident_mb"] * 2**20 // 8)
    work = {"step": step, "matmul": lambda: chain(m).block_until_ready(),
            "resident": lambda: np.add(buf, 1.0, out=buf)}

    def timed(f) -> float:
        t0 = time.perf_counter()
        f()
        return time.perf_counter() - t0

    for f in work.values():  # compile and warm
        f(), f()
    times = {k: {"busy": [], "after_idle": []} for k in work}
    for _ in range(a["rounds"]):
        for k, f in work.items():
            f()
            times[k]["busy"].append(timed(f))
            time.sleep(a["gap"])
            times[k]["after_idle"].append(timed(f))
    return {k: {w: {"median_s": statistics.median(v), "times_s": v} for w, v in d.items()} for k, d in times.items()}


def markdown(meta: dict, rows: list[dict]) -> str:
    hw = meta["hardware"]
    out = [f"# A pause before the work: {meta['out']}", "", f"Command: `{meta['command']}`", "",
           f"Hardware: {hw['cpu']}, {hw['cores']} cores, {hw['ram_gib']} GiB RAM. Versions: "
           + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v) + ".", "",
           f"Median of {meta['rounds']} rounds: the work right after the same work (busy) and after {meta['gap']} s "
           f"idle. step: one training step of one seed ({meta['model']}, B = {meta['batch_size']}, L = "
           f"{meta['seq_len']}); matmul: four {meta['matmul']}² float32 products; resident: a pass over "
           f"{meta['resident_mb']} MB kept allocated. One process per allocator setting (JAXSEED_HOST_MALLOC).", "",
           "| allocator | work | busy s | after idle s | after idle / busy |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['host_malloc']} | error: {r['error']} ||||")
            continue
        for k in ("step", "matmul", "resident"):
            b, i = r[k]["busy"]["median_s"], r[k]["after_idle"]["median_s"]
            out.append(f"| {r['host_malloc']} | {k} | {b:.4f} | {i:.4f} | {i / b:.2f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--gap", type=float, default=4.0, help="idle seconds before the timed call")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--host-malloc", default="hugepages,tuned", help="comma-separated JAXSEED_HOST_MALLOC settings")
    p.add_argument("--smoke", action="store_true", help="a tiny model, small buffers, short gaps, 2 rounds")
    p.add_argument("--out", default="after_idle_cpu")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("ROW " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    from jaxseed.cli import HOST_MALLOC_ENV

    settings = args.host_malloc.split(",")
    if bad := [s for s in settings if s not in HOST_MALLOC_ENV]:
        p.error(f"--host-malloc takes settings among {sorted(HOST_MALLOC_ENV)}, not {bad}")
    if args.gap < 0 or args.rounds < 1:
        p.error("--gap must be at least 0 and --rounds at least 1")
    a = dict(model=args.model, seq_len=args.seq_len, batch_size=args.batch_size, gap=args.gap, rounds=args.rounds,
             matmul=2048, resident_mb=512)
    if args.smoke:
        a |= dict(model="tiny", seq_len=16, batch_size=4, gap=0.05, rounds=2, matmul=64, resident_mb=8)
    meta = {"out": args.out, "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
            "hardware": hardware(), "versions": versions()} | a
    rows = [{"host_malloc": s} | run_worker(__file__, a, HOST_MALLOC_ENV[s], 1800) for s in settings]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / f"{args.out}.md").write_text(markdown(meta, rows))
    print(markdown(meta, rows))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
