"""Training throughput of jaxseed against PyTorch, doing the same work for every contender.

Same work: the same random-init model config, S seeds, per-seed batch B of synthetic token data at length L
(no padding: every attention mask is all ones), AdamW (lr 2e-5, weight decay 0.01 off biases/LayerNorm,
linear warmup then decay, global-norm clipping 1.0 per seed), dropout 0.1, binary classification.

Contenders (each (contender, model, S) runs in its own subprocess, so peak RSS does not mix; the workers are in
bench_jax.py and bench_torch.py, what they share in bench_common.py):
  jaxseed          the engine as `jaxseed run` sets it up: S seeds stepped by one compiled program
                   (jaxseed.train.train_step), in slots of one seed a device on CPU, all vmapped on accelerators
                   (jaxseed.train.slot_size)
  jaxseed-vmap     S seeds vmapped in one program, on every backend (seed_loop: false)
  jaxseed-seq      the S=1 program, run for the S seeds one after another
  jaxseed-bf16     jaxseed with dtype bfloat16 (float32 master weights)
  jaxseed-remat    jaxseed with activation rematerialisation
  hf-trainer       transformers' Trainer (PyTorch), one run per seed in a loop
  torch-func       a torch.func ensemble: stack_module_state + vmap(functional_call), AdamW on stacked params
  gemm-floor       not a training run: only the matrix products of S seeds' steps (forward and backward, the
                   shapes of the real step), best of JAX and torch. No implementation that computes them with
                   these libraries' GEMMs can step faster: a lower bound on any contender's step time.
                   (It holds every product's operands at once: about 16 GB for BERT-base in float32.)
  jaxseed-breakdown  not a contender: one seed's forward / backward / dropout bits / optimizer timed apart

Figures per row:
  step_time_s      median wall time of one optimizer step of all S seeds, after `--warmup` steps
                   (jaxseed-seq / hf-trainer: S x the median per-seed step; they run seeds one after another and
                   each seed gets ceil(steps / S) timed steps, at least 3)
  examples_per_s   S * B / step_time_s
  compile_s        first step minus a steady step (jax: trace + XLA compile; torch: first-step allocation)
  setup_s          per-run setup that repeats for every run (model build, Trainer init, state init)
  seed_runs_per_h  for SCHEDULE_STEPS = 466 steps (3 epochs of RTE: 2490 examples // 16 = 155 steps x 3 + 1):
                   time for S seed-runs = compile_s * programs + setup_s * runs + 466 * step_time_s
  mfu              S * flops_per_seed_step / step_time_s / peak_flops, with
                   flops_per_seed_step = 6 * N * B * L + 12 * layers * B * L^2 * H
                   (N = encoder params without embeddings; 6 = 2 forward + 4 backward flops per param per token;
                   the attention term is QK^T and PV: 2 * 2 * B * L^2 * H forward per layer, x3 with backward),
                   peak_flops = measured dense fp32 matmul peak on CPU (max of JAX and torch, 2048^3 and 4096^3),
                   measured bf16 matmul peak on GPU
  peak_rss_mb      ru_maxrss of the subprocess; base_rss_mb its RSS after imports, before the model exists
  peak_device_mb   GPU: peak bytes in use; CPU: n/a (null; the host RSS is the device memory)
  plan_est_mb      jaxseed.planner's estimate for the run (jaxseed rows); plan_meas_mb = peak_rss - base_rss

    python benchmarks/bench_train.py --models minilm --seeds 1,4,8 --steps 20 --warmup 3 --out train_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_summary  # noqa: E402
from bench_common import (NUM_LABELS, RESULTS, ROOT, SCHEDULE_STEPS, flops_per_seed_step, hardware,  # noqa: E402
                          measure_peak, model_config, run_worker, versions, wait_quiet)

CONTENDERS = ["jaxseed", "jaxseed-vmap", "jaxseed-seq", "hf-trainer", "torch-func", "jaxseed-bf16", "jaxseed-remat",
              "gemm-floor", "jaxseed-breakdown"]
REQUIRED = ["contender", "model", "seeds", "batch_size", "seq_len", "step_time_s", "examples_per_s", "compile_s",
            "peak_rss_mb", "peak_device_mb", "device", "mfu"]


def worker(a: dict) -> dict:
    """One row, in this (sub)process; the torch workers import torch, the JAX ones JAX."""
    import bench_jax
    import bench_torch

    fn = {"jaxseed-breakdown": bench_jax.worker_breakdown, "gemm-floor": bench_jax.worker_gemm_floor,
          "hf-trainer": bench_torch.worker_hf, "torch-func": bench_torch.worker_torch_func}
    return fn.get(a["contender"], bench_jax.worker_jax)(a)


# --- driver -------------------------------------------------------------------------------------------

def run_one(a: dict, timeout: float, host_malloc: str) -> dict:
    from jaxseed.cli import HOST_MALLOC_ENV

    if host_malloc == "as-run":  # jaxseed as `jaxseed run` sets it up (its default allocator); others as they come
        host_malloc = "hugepages" if a["contender"].startswith("jaxseed") else "default"
    return run_worker(__file__, a, HOST_MALLOC_ENV[host_malloc], timeout)


def finish(row: dict, a: dict, peak: float):
    S, B = a["seeds"], a["batch_size"]
    if "error" in row or "step_time_s" not in row:  # the breakdown row: times of parts, no throughput
        return row
    row["examples_per_s"] = S * B / row["step_time_s"]
    row["mfu"] = S * a["flops_per_seed_step"] / row["step_time_s"] / peak
    t = row["compile_s"] * row["programs"] + row["setup_s"] * row["runs"] + SCHEDULE_STEPS * row["step_time_s"]
    row["seed_runs_per_h"] = S * 3600 / t
    if "plan_est_mb" in row:
        row["plan_err"] = row["plan_est_mb"] / row["plan_meas_mb"] - 1
    return row


HOST_MALLOC_TEXT = {
    "as-run": "each contender as its users run it: jaxseed rows with what `jaxseed run` sets by default "
              "(JAXSEED_HOST_MALLOC=hugepages: GLIBC_TUNABLES=glibc.malloc.hugetlb=1), PyTorch rows with glibc defaults",
    "default": "glibc defaults, for every contender alike",
    "hugepages": "GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (JAXSEED_HOST_MALLOC=hugepages), for every contender alike",
    "tuned": "glibc malloc tuned as JAXSEED_HOST_MALLOC=tuned sets it (MALLOC_ARENA_MAX=1, MALLOC_MMAP_MAX_=0, "
             "MALLOC_TRIM_THRESHOLD_=2^36), for every contender alike",
}


def markdown(meta: dict, rows: list[dict]) -> str:
    f = lambda v, p=2: "n/a" if v is None else (f"{v:.{p}f}" if isinstance(v, float) else str(v))
    lines = [f"# Training throughput: {meta['out']}", "",
             f"Command: `{meta['command']}`", "",
             f"Hardware: {meta['hardware']['cpu']}, {meta['hardware']['cores']} cores, {meta['hardware']['ram_gib']} GiB RAM; "
             f"GPU: {'none (the GPU targets were not measured)' if not meta['gpu'] else meta['gpu']}. "
             f"Measured dense {meta['peak']['dtype']} matmul peak: {meta['peak']['peak_flops'] / 1e9:.0f} GFLOP/s "
             f"({', '.join(f'{k} {v}' for k, v in meta['peak']['measured'].items())} GFLOP/s); MFU is relative to it.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             "Host allocator: " + HOST_MALLOC_TEXT.get(meta.get("host_malloc", "default"),
                                                       f"{meta.get('host_malloc')}, for every contender alike") + ".", "",
             f"Same work per contender: B={meta['batch_size']} per seed, L={meta['seq_len']}, AdamW + linear schedule + "
             f"clipping, dropout 0.1, random-init weights, synthetic tokens. Step time = median over the timed steps "
             f"(`steps` column) after {meta['warmup']} warm-up steps; seed-runs/h for a {SCHEDULE_STEPS}-step schedule "
             "(3 epochs of RTE) = S × 3600 / (compile × programs + setup × runs + 466 × step). Load: cores used by "
             "other processes before / during each row (this process excluded), and the 1-min load average before it "
             "(which still holds the previous row's own load as it decays; the others column does not).", "",
             "| model | contender | S | step s | ex/s | ex/s/seed | seed-runs/h | compile s | setup s | MFU | peak RSS MB | plan est MB | plan meas MB | est err | steps | others before/during | loadavg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["contender"] == "jaxseed-breakdown" or r.get("superseded"):  # superseded: re-run, kept in the JSON
            continue
        if "error" in r:
            lines.append(f"| {r['model']} | {r['contender']} | {r['seeds']} | error: {r['error']} |" + " |" * 13)
            continue
        lines.append(
            f"| {r['model']} | {r['contender']} | {r['seeds']} | {f(r['step_time_s'], 3)} | {f(r['examples_per_s'], 1)} | "
            f"{f(r['examples_per_s'] / r['seeds'], 2)} | {f(r['seed_runs_per_h'], 1)} | {f(r['compile_s'], 1)} | "
            f"{f(r['setup_s'], 1)} | {r['mfu']:.1%} | {f(r['peak_rss_mb'], 0)} | {f(r.get('plan_est_mb'), 0)} | "
            f"{f(r.get('plan_meas_mb') if 'plan_est_mb' in r else None, 0)} | "
            f"{'n/a' if 'plan_err' not in r else format(r['plan_err'], '+.0%')} | {r['steps_timed']} | "
            f"{r['others_cores_before']}/{r['others_cores_during']} | {r['loadavg_before'][0]} |")
    lines += bench_summary.markdown(rows)
    lines += ["", "peak device memory: n/a on CPU (the host RSS is the device memory).", ""]
    for r in rows:
        if r["contender"] == "gemm-floor" and "error" not in r:
            torch_s = "" if r.get("gemm_torch_s") is None else f", torch {r['gemm_torch_s']:.3f} s"
            lines.append(f"GEMM floor, {r['model']}, S={r['seeds']}: the step's matrix products alone take JAX "
                         f"{r['gemm_jax_s']:.3f} s{torch_s} ({r['gemm_flops_per_seed'] / 1e9:.1f} GFLOP a seed); "
                         "no contender built on these GEMMs can step faster, so its ex/s is an upper bound.")
    for r in rows:
        if r["contender"] == "jaxseed-breakdown" and "error" not in r:
            lines.append(f"Breakdown, {r['model']}, one seed (median s): " + ", ".join(
                f"{k.removesuffix('_s')} {v:.3f}" for k, v in r.items() if k.endswith("_s") and isinstance(v, float)
                and k not in ("waited_s", "wall_s")))
    return "\n".join(lines)


def rescore(path: Path):
    from jaxseed import planner
    from jaxseed.models.encoder import EncoderConfig

    data = json.loads(path.read_text())
    for r in data["rows"]:
        if "plan_est_mb" not in r or "error" in r:
            continue
        c = r["contender"]
        est = planner.estimate(EncoderConfig.from_hf(model_config(r["model"])), NUM_LABELS, r["batch_size"],
                               r["seq_len"], "bfloat16" if c == "jaxseed-bf16" else "float32", c == "jaxseed-remat",
                               "full", "cpu" if r["device"].startswith("cpu") else "gpu", r.get("seed_loop", False))
        r["plan_est_mb"] = est.total(1 if c == "jaxseed-seq" else r["seeds"]) / 2**20
        r["plan_per_seed_mb"] = est.per_seed_bytes / 2**20
        r["plan_err"] = r["plan_est_mb"] / r["plan_meas_mb"] - 1
    path.write_text(json.dumps(data, indent=2))
    path.with_suffix(".md").write_text(markdown(data["meta"], data["rows"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="minilm")
    p.add_argument("--seeds", default="1,4,8")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--contenders", default="jaxseed-vmap,jaxseed-seq,hf-trainer,torch-func")
    p.add_argument("--out", default="train_cpu")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, 1 warm-up, no waiting for quiet")
    p.add_argument("--quiet-cores", type=float, default=0.5, help="wait until other processes use at most this")
    p.add_argument("--max-wait", type=float, default=180.0)
    p.add_argument("--timeout", type=float, default=1500.0, help="per row")
    p.add_argument("--skip", default="", help="contender@S pairs to leave out, e.g. torch-func@8 (for time)")
    p.add_argument("--rescore", action="store_true",
                   help="recompute the planner's estimates in an existing NAME.json with the current planner, rewrite NAME.md")
    p.add_argument("--host-malloc", choices=["as-run", "hugepages", "tuned", "default"], default="as-run",
                   help="glibc malloc: as-run (jaxseed rows as `jaxseed run` sets it, i.e. hugepages; the others "
                        "glibc defaults), or one JAXSEED_HOST_MALLOC setting for every contender alike")
    p.add_argument("--repeats", type=int, default=1, help="run every row R times, round-robin (bench_summary.py)")
    p.add_argument("--worker")
    args = p.parse_args(argv)
    if args.rescore:
        return rescore(Path(args.out_dir) / f"{args.out}.json")
    if args.worker:
        print("ROW " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.smoke:
        args.models, args.steps, args.warmup, args.seq_len, args.batch_size = "tiny", 2, 1, 16, 4
        args.max_wait = 0
    log = lambda m: print(m, file=sys.stderr, flush=True)
    import jax

    gpu = jax.default_backend() == "gpu"
    if any(m == "roberta-large" for m in args.models.split(",")) and not gpu:
        log("note: roberta-large is meant for a GPU")
    peak = measure_peak(args.smoke)
    log(f"peak {peak['dtype']} matmul: {peak['peak_flops'] / 1e9:.0f} GFLOP/s {peak['measured']}")
    meta = {"out": args.out, "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
            "hardware": hardware(), "gpu": str(jax.devices()[0]) if gpu else None, "peak": peak,
            "versions": versions(), "batch_size": args.batch_size, "seq_len": args.seq_len, "warmup": args.warmup,
            "steps": args.steps, "schedule_steps": SCHEDULE_STEPS, "host_malloc": args.host_malloc}
    from jaxseed.cli import HOST_MALLOC_ENV

    meta["host_malloc_env"] = HOST_MALLOC_ENV
    rows = []
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = [(rep, model, S, c) for rep in range(args.repeats) for model in args.models.split(",")
            for S in [int(s) for s in args.seeds.split(",")] for c in args.contenders.split(",")]  # round-robin
    for rep, model, S, c in plan:
        cfg = model_config(model)
        if c not in CONTENDERS:
            raise SystemExit(f"unknown contender {c!r} (known: {', '.join(CONTENDERS)})")
        if f"{c}@{S}" in args.skip.split(",") or (c == "jaxseed-breakdown" and S != 1):
            continue
        a = dict(contender=c, model=model, seeds=S, batch_size=args.batch_size, seq_len=args.seq_len,
                 steps=args.steps, warmup=args.warmup, hf_config=cfg,
                 n_examples=max(args.batch_size * (args.steps + args.warmup), 64),
                 flops_per_seed_step=flops_per_seed_step(cfg, args.batch_size, args.seq_len))
        load = wait_quiet(args.quiet_cores, args.max_wait, log)
        log(f"{model} {c} S={S} (repeat {rep + 1} of {args.repeats}) ...")
        t0 = time.perf_counter()
        row = {k: a[k] for k in ("contender", "model", "seeds", "batch_size", "seq_len")} | load | {"repeat": rep}
        row |= finish(run_one(a, args.timeout, args.host_malloc), a, peak["peak_flops"])
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        log(f"  -> {json.dumps({k: row.get(k) for k in ('step_time_s', 'examples_per_s', 'compile_s', 'peak_rss_mb', 'plan_est_mb', 'plan_meas_mb', 'others_cores_during', 'error')})}")
        (out_dir / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        (out_dir / f"{args.out}.md").write_text(markdown(meta, rows))
    log(f"wrote {out_dir / (args.out + '.json')} and .md")


if __name__ == "__main__":
    main()
