"""Per-seed summary of repeated benchmark rows (bench_train.py --repeats R).

One row a (model, contender, S): the median over the R repeats of the per-seed step time (step time / S), its
range, and two ratios: against jaxseed at S = 1 (the cost of grouping seeds: 1.00 means none) and the HF
Trainer's per-seed throughput over this row's (≥ 1.00: this row is at least as fast per seed). The Trainer
loop runs seeds one after another, so its per-seed cost does not depend on S; its figure is the median over
all of its rows. Repeats run round-robin (every row once, then again), so slow spells of the machine hit every
row alike rather than one.
"""

from __future__ import annotations

import statistics


def per_seed_rows(rows: list[dict]) -> list[dict]:
    groups: dict = {}
    for r in rows:
        if "error" in r or "step_time_s" not in r or r.get("superseded"):
            continue
        groups.setdefault((r["model"], r["contender"], r["seeds"]), []).append(r["step_time_s"] / r["seeds"])
    out = []
    for (model, c, S), xs in groups.items():
        trainer = [x for (m, cc, _), ys in groups.items() if m == model and cc == "hf-trainer" for x in ys]
        alone = groups.get((model, "jaxseed", 1))
        med = statistics.median(xs)
        out.append({"model": model, "contender": c, "seeds": S, "repeats": len(xs), "per_seed_step_s": med,
                    "min_s": min(xs), "max_s": max(xs),
                    "vs_jaxseed_s1": med / statistics.median(alone) if alone else None,
                    "trainer_per_seed_s": statistics.median(trainer) if trainer else None,
                    "throughput_vs_trainer": statistics.median(trainer) / med if trainer else None})
    return out


def markdown(rows: list[dict]) -> list[str]:
    summary = per_seed_rows(rows)
    if not summary or max(s["repeats"] for s in summary) < 2:
        return []
    f = lambda v, p=3: "–" if v is None else f"{v:.{p}f}"
    lines = ["", "## Per seed, over the repeats", "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             "| model | contender | S | repeats | per-seed step s (median) | range | vs jaxseed S=1 | "
             "throughput vs HF Trainer |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['model']} | {s['contender']} | {s['seeds']} | {s['repeats']} | {f(s['per_seed_step_s'])} | "
                     f"{f(s['min_s'])}–{f(s['max_s'])} | {f(s['vs_jaxseed_s1'], 2)}× | "
                     f"{f(s['throughput_vs_trainer'], 2)}× |")
    return lines
