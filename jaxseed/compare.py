"""Is run A better than run B beyond seed noise? Differences of means with Multi-Bootstrap intervals.

For each dev split and task metric: mean over seeds of A and of B, the difference A − B, its 95% Multi-Bootstrap
interval (Sellam et al. 2022, ``stats.multibootstrap``: each draw resamples seeds and examples), P(A > B) = the
share of draws with A − B > 0, and a verdict: "A better" / "B better" when the interval excludes 0, else "no
clear difference". The draws are *paired* (the same seed draws for both runs) when both runs record the same
seeds (predictions.npz seed_init/order/dropout), *unpaired* otherwise; examples are always shared, so both runs
must evaluate the same dev set.

Consistency and correct consistency belong to the whole set of seeds, not to one seed, so their rows resample
examples only: the per-example chance that k seeds agree (are all right), k = the smaller S of the two runs so
that runs with different S compare fairly (``metrics.consistency_k_examples``; at k = S it is plain CON).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import numpy as np

from jaxseed import metrics as M
from jaxseed import pages, sweep_report
from jaxseed import stats as St
from jaxseed.report import REGRESSION_TOL, Run, load_run

NUM_DRAWS = 1000
MAX_ALL_PAIRS = 4  # report: up to this many runs, compare every pair
HEAD = ["Split", "Metric", "A mean", "B mean", "A − B", "95% CI of A − B", "P(A > B)", "Verdict"]


def _name(run: Run) -> str:
    return run.path.name + sweep_report.label(run.member)


def _task(run: Run) -> str:
    return str(run.info.get("name") or run.config.get("task"))


def check_comparable(a: Run, b: Run) -> None:
    """Runs of different tasks or dev sets cannot be compared: one-line ValueError naming both folders."""
    if _task(a) != _task(b):
        raise ValueError(f"cannot compare runs of different tasks: {a.path} is {_task(a)}, {b.path} is {_task(b)}")
    same = (a.label.shape == b.label.shape and np.array_equal(a.split, b.split) and np.allclose(a.label, b.label)
            and (a.example_id is None or b.example_id is None or np.array_equal(a.example_id, b.example_id)))
    if not same:
        raise ValueError(f"cannot compare runs on different dev sets: {a.path} and {b.path} differ in their "
                         "examples, labels or splits")


def is_paired(a: Run, b: Run) -> bool:
    return a.seeds_Sx3 is not None and b.seeds_Sx3 is not None and np.array_equal(a.seeds_Sx3, b.seeds_Sx3)


@functools.lru_cache(maxsize=None)
def _metric_fn(name: str, num_classes: int):
    """One function object per (metric, C): multibootstrap's metric_fn is static and hashed by identity."""
    fn = M.METRICS[name]
    return functools.partial(fn, num_classes=num_classes) if name in ("mcc", "macro_f1") else fn


def _row(split, metric, out) -> dict:
    lo, hi = float(out["diff_ci_low"]), float(out["diff_ci_high"])
    verdict = "A better" if lo > 0 else "B better" if hi < 0 else "no clear difference"
    return {"split": split, "metric": metric, "a_mean": float(out["other_estimate"]), "b_mean": float(out["estimate"]),
            "diff": float(out["diff_estimate"]), "ci_low": lo, "ci_high": hi,
            "p_a_better": 1.0 - float(out["p_value"]), "verdict": verdict}


def compare_runs(a: Run, b: Run, key=None, num_draws: int = NUM_DRAWS) -> dict:
    """Every row of A vs B; one-line ValueError if they cannot be compared. Returns {"paired", "k", "rows"}."""
    check_comparable(a, b)
    key = jax.random.PRNGKey(0) if key is None else key
    paired = is_paired(a, b)
    reg, c = bool(a.info["is_regression"]), int(a.info["num_labels"])
    k = min(a.pred.shape[0], b.pred.shape[0])
    rows = []
    for split in dict.fromkeys(a.split.tolist()):
        m = a.split == split
        pa, pb, y = a.pred[:, m], b.pred[:, m], a.label[m]
        # Multi-Bootstrap's "other" is A, so its difference is A − B and p_value = P(A − B ≤ 0).
        for name in a.info["metrics"]:
            if name == "accuracy":  # decomposable: 0/1 scores, exact ties
                out = St.multibootstrap(key, pb == y, num_draws, pa == y, paired)
            else:
                out = St.multibootstrap(key, pb, num_draws, pa, paired, metric_fn=_metric_fn(name, c), label_N=y)
            rows.append(_row(split, name, out))
        if reg:  # regression: all S scores within the tolerance (S may differ; said in the notes)
            within = lambda p: (p.max(0) - p.min(0) <= REGRESSION_TOL)[None].astype(np.float32)
            rows.append(_row(split, f"consistency (±{REGRESSION_TOL:g})",
                             St.multibootstrap(key, within(pb), num_draws, within(pa), True)))
            continue
        for label, fn in ((f"consistency (k={k})", lambda p: M.consistency_k_examples(p, k, c)),
                          (f"correct consistency (k={k})", lambda p: M.correct_consistency_k_examples(p, y, k))):
            rows.append(_row(split, label, St.multibootstrap(key, fn(pb)[None], num_draws, fn(pa)[None], True)))
    return {"paired": paired, "k": k, "rows": rows}


def _fmt(x, signed=False) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


def section(a: Run, b: Run, result: dict) -> tuple:
    """One page section (title, head, body, caption) for A vs B."""
    body = [[r["split"], r["metric"], _fmt(r["a_mean"]), _fmt(r["b_mean"]), _fmt(r["diff"], True),
             f"[{_fmt(r['ci_low'], True)}, {_fmt(r['ci_high'], True)}]", f"{r['p_a_better']:.3f}", r["verdict"]]
            for r in result["rows"]]
    how = ("paired: both runs record the same seeds, so each draw resamples the same seeds for both"
           if result["paired"] else "unpaired: the runs do not record the same seeds, so each run's seeds are "
           "resampled independently")
    caption = (f"A = {_name(a)}, B = {_name(b)} ({a.pred.shape[0]} and {b.pred.shape[0]} seeds). Percent; A − B with "
               f"its 95% Multi-Bootstrap interval over seeds and examples ({how}); P(A > B) is the share of "
               "bootstrap draws in which A scores higher. The verdict names a winner only when the interval "
               "excludes 0. Consistency rows resample examples only (the seeds are one set).")
    return (f"A = {_name(a)} vs B = {_name(b)}: {_task(a)}", HEAD, body, caption)


def report_sections(runs: list[Run], num_draws: int = NUM_DRAWS) -> list[tuple]:
    """For `jaxseed report`: every pair of runs on the same task and dev set (others are left out quietly); with
    more than MAX_ALL_PAIRS runs (a large sweep), each run against the first only, to keep the page readable."""
    out = []
    firsts = runs[:1] if len(runs) > MAX_ALL_PAIRS else runs
    for i, a in enumerate(firsts):
        for b in runs[i + 1:]:
            try:
                check_comparable(a, b)
            except ValueError:
                continue
            out.append(section(a, b, compare_runs(a, b, num_draws=num_draws)))
    return out


NOTES = [
    "Is A better than B beyond seed noise? For every metric: the mean over seeds of each run, the difference "
    "A − B and its 95% Multi-Bootstrap interval (Sellam et al. 2022: each of the bootstrap draws resamples the "
    "seeds and the dev examples with replacement), P(A > B) and a verdict.",
    "Verdict: 'A better' or 'B better' when the interval excludes 0; otherwise 'no clear difference': with these "
    "seeds and this dev set the difference is within seed and example noise.",
    "Consistency (k) is the expected share of examples on which k seeds agree, k = the smaller number of seeds "
    "of the two runs, so runs with different S compare fairly; correct consistency (k): all k are right.",
]


def build_compare(run_dirs, out_dir=None, num_draws: int = NUM_DRAWS) -> Path:
    """Write compare.md and compare.html for every pair of the runs (A = the earlier one); return compare.md.

    out_dir defaults to <first run dir>/compare. Everything is checked before anything is written.
    """
    run_dirs = list(run_dirs)
    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two run folders")
    runs = [m for d in run_dirs for m in sweep_report.members(load_run(d))]  # a sweep: each grid member
    for b in runs[1:]:
        check_comparable(runs[0], b)
    sections = [section(a, b, compare_runs(a, b, num_draws=num_draws))
                for i, a in enumerate(runs) for b in runs[i + 1:]]
    out = Path(out_dir) if out_dir is not None else Path(run_dirs[0]) / "compare"

    def fill(tmp: Path) -> None:
        notes = NOTES + [f"{num_draws} bootstrap draws; runs: " + ", ".join(str(r.path) for r in runs)]
        (tmp / "compare.md").write_text(pages.markdown("jaxseed compare", notes, sections, []), encoding="utf-8")
        (tmp / "compare.html").write_text(pages.html_page("jaxseed compare", notes, sections, []), encoding="utf-8")

    pages.write_folder(out, fill)
    return out / "compare.md"
