"""Time every metric and statistic of jaxseed.metrics / jaxseed.stats at study scale: S = 64 seeds, N = 10,000.

Each row is timed twice in a fresh process: ``first`` = trace + compile + run (what a report pays once per
shape), ``steady`` = best of three further runs. The headline is the sum of ``first`` over the core rows (target:
under 10 s on a 2-core CPU). Rows marked extra are reported but not counted.

    python benchmarks/bench_metrics.py [--seeds 64] [--examples 10000] [--out benchmarks/results/metrics_cpu.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from jaxseed import metrics as M
from jaxseed import stats as St


def timed(fn):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    steady = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        steady.append(time.perf_counter() - t0)
    return first, min(steady)


def synthetic(s, n, c, seed=0):
    """Labels, class predictions right ~85% of the time with seed-to-seed noise, regression scores, MultiRC groups."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, c, n).astype(np.int32)
    hard = rng.random(n) < 0.1  # examples every seed tends to get wrong
    flip = rng.random((s, n)) < np.where(hard, 0.7, 0.08)
    pred = np.where(flip, (label + rng.integers(1, c, (s, n))) % c, label).astype(np.int32)
    y_reg = (rng.uniform(0, 5, n) * 5).round() / 5
    score = (y_reg + rng.normal(0, 0.6, (s, n)) + rng.normal(0, 0.2, (s, 1))).astype(np.float32)
    group = np.sort(rng.integers(0, n // 5, n)).astype(np.int32)
    return label, pred, y_reg.astype(np.float32), score, group


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "metrics_cpu.json"))
    args = ap.parse_args()
    s, n, c = args.seeds, args.examples, args.classes

    t_start = time.perf_counter()
    jax.block_until_ready(jax.numpy.zeros(1) + 1)  # backend start-up, not a metric
    startup = time.perf_counter() - t_start

    label, pred, y_reg, score, group = synthetic(s, n, c)
    bpred, blabel = (pred > 0).astype(np.int32), (label > 0).astype(np.int32)
    correct = (pred == label).astype(np.float32)
    other = np.roll(correct, 1, axis=1)  # a second "system" for the paired bootstrap
    ks = np.arange(2, s + 1)
    key = jax.random.key(0)
    strings = [f"entity {i % 97}" for i in range(n)]
    golds = [[f"Entity {i % 89}", f"the entity {i % 97}"] for i in range(n)]

    core = {
        # task metrics, one value per seed
        "accuracy": lambda: M.accuracy(pred, label),
        "f1 (binary)": lambda: M.f1(bpred, blabel),
        "macro_f1": lambda: M.macro_f1(pred, label, c),
        "mcc": lambda: M.mcc(pred, label, c),
        "pearson": lambda: M.pearson(score, y_reg),
        "spearman": lambda: M.spearman(score, y_reg),
        "multirc_em": lambda: M.multirc_em(bpred, blabel, group, n // 5),
        "multirc_f1a": lambda: M.multirc_f1a(bpred, blabel),
        "record_scores (1 run, host)": lambda: M.record_scores(strings, golds),
        # across seeds
        "summarize": lambda: M.summarize(np.asarray(M.accuracy(pred, label))),
        "majority_baseline + failed_runs": lambda: M.failed_runs(
            M.accuracy(pred, label), M.majority_baseline("accuracy", label, None, c)),
        # micro
        "vote_counts": lambda: M.vote_counts(pred, c),
        "consistency": lambda: M.consistency(pred),
        "correct_consistency": lambda: M.correct_consistency(pred, label),
        "pairwise_agreement": lambda: M.pairwise_agreement(pred),
        "churn_matrix": lambda: M.churn_matrix(pred),
        "fleiss_kappa": lambda: M.fleiss_kappa(pred, c),
        "majority_label": lambda: M.majority_label(pred, c),
        "vote_share": lambda: M.vote_share(pred, c),
        "vote_entropy": lambda: M.vote_entropy(pred, c),
        "ensemble_accuracy": lambda: M.ensemble_accuracy(pred, label, c),
        "score_std": lambda: M.score_std(score),
        "consistency_within": lambda: M.consistency_within(score, 0.5),
        f"consistency_curve k=2..{s}": lambda: M.consistency_curve(pred, ks, c),
        f"correct_consistency_curve k=2..{s}": lambda: M.correct_consistency_curve(pred, label, ks),
        # stats
        "expected_max": lambda: St.expected_max(np.asarray(M.accuracy(pred, label))),
        f"multibootstrap paired, {args.draws} draws": lambda: St.multibootstrap(key, correct, args.draws, other),
        "distribution_variance": lambda: St.distribution_variance(correct),
    }
    mcc_c = functools.partial(M.mcc, num_classes=c)  # built once: metric_fn is a static (hashed) argument
    extra = {
        f"multibootstrap metric_fn=mcc, {args.draws} draws": lambda: St.multibootstrap(
            key, pred, args.draws, metric_fn=mcc_c, label_N=label),
    }

    rows = []
    for group_name, table in (("core", core), ("extra", extra)):
        for name, fn in table.items():
            first, steady = timed(fn)
            rows.append({"name": name, "group": group_name, "first_s": first, "steady_s": steady})

    total_first = sum(r["first_s"] for r in rows if r["group"] == "core")
    total_steady = sum(r["steady_s"] for r in rows if r["group"] == "core")
    width = max(len(r["name"]) for r in rows) + 2
    print(f"jaxseed metrics benchmark: S={s} seeds, N={n} examples, C={c} classes, "
          f"{jax.devices()[0].platform} x{os.cpu_count()} cores, jax {jax.__version__}")
    print(f"{'':{width}}{'first (compile+run)':>22}{'steady':>12}")
    for r in rows:
        tag = "  (extra)" if r["group"] == "extra" else ""
        print(f"{r['name']:{width}}{r['first_s']:>20.3f} s{r['steady_s'] * 1e3:>10.1f} ms{tag}")
    print(f"{'TOTAL core':{width}}{total_first:>20.3f} s{total_steady * 1e3:>10.1f} ms")
    print(f"(backend start-up {startup:.2f} s not included; 1-min load average at the end "
          f"{os.getloadavg()[0]:.1f})")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "seeds": s, "examples": n, "classes": c, "draws": args.draws,
        "total_first_s": total_first, "total_steady_s": total_steady, "target_s": 10.0,
        "backend_startup_s": startup, "load_average_1min": os.getloadavg()[0],
        "platform": jax.devices()[0].platform, "cpu_count": os.cpu_count(), "jax": jax.__version__,
        "machine": platform.machine(), "python": platform.python_version(),
        "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
