"""The report's SuperGLUE part: per-split task info (AX-b / AX-g on an RTE run), the unit metrics, consistency per
natural unit, and the combined GLUE + SuperGLUE table across runs laid out like the study's."""

from __future__ import annotations

import numpy as np

from jaxseed import stats as St
from jaxseed import units as U

EXTRAS = ("unit", "pair", "candidate", "answers")  # predictions.npz arrays the unit metrics read
NOTES = [
    "Natural units (SuperGLUE): COPA's unit is the question (the chosen option); MultiRC's the answer option "
    "(per-example CON) and the question (CON per unit: all seeds give the same answer set; correct: all seeds get "
    "every option right); ReCoRD's the query (all seeds choose the same entity; correct: all choose an exact-match "
    "answer). ReCoRD's baseline is chance (a uniformly random candidate); AX-g's gender parity has none.",
]


def split_info(info: dict, split: str) -> dict:
    """The task info that scores a split: an extra evaluation set (eval_tasks) has its own."""
    return (info.get("split_tasks") or {}).get(split, info)


def add_unit_stats(r: dict, info: dict, p, y, extras: dict, names: tuple, train_majority: int) -> None:
    """Adds the unit metrics' scores, expected max and baselines, and consistency per unit, to a report row."""
    r["benchmark"], r["unit"], r["unit_baseline"] = info.get("benchmark", "glue"), info.get("unit", "example"), {}
    for k in names:
        if k not in U.UNIT_METRICS:
            continue
        majority = train_majority if train_majority >= 0 else int(np.bincount(y, minlength=r["C"]).argmax())
        try:
            v = np.asarray(U.score(k, p, y, r["C"], extras), np.float64)
        except (KeyError, ValueError) as e:
            raise ValueError(f"{r['path']}/predictions.npz: cannot compute {k} for split '{r['split']}' ({e})") from None
        r["scores"][k], r["expected_max"][k] = v, np.asarray(St.expected_max(v), np.float64)
        r["unit_baseline"][k] = U.baseline(k, y, majority, r["C"], extras)
    r["scores"] = {k: r["scores"][k] for k in names}
    r["expected_max"] = {k: r["expected_max"][k] for k in names}
    r["units"] = None if r["reg"] else U.unit_summary(r["unit"], p, y, extras)


def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.2f}"


def _unit_con(r) -> tuple[str, str]:
    if r["reg"]:
        return _pct(r["con_tol"]), "–"
    u = r.get("units")
    return (_pct(u["consistency"]), _pct(u["correct_consistency"])) if u else (_pct(r["con"]), _pct(r["ccon"]))


def _metrics(r) -> str:
    return "; ".join(f"{k} {_pct(s['mean'])} ± {_pct(s['std'])}" for k, s in r["summary"].items())


UNIT_HEAD = ["Task", "Model", "Split", "S", "Unit", "Units", "Metrics (mean ± std)", "CON per unit",
             "Correct CON per unit", "CON per example"]
STUDY_HEAD = ["Benchmark", "Task", "Model", "Split", "S", "Metric", "Mean ± std", "Var", "CON", "Correct CON", "Unit"]


def tables(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]], str]]:
    sg = [r for r in rows if r.get("benchmark") == "superglue"]
    unit = [[r["task"], r["model"], r["split"], str(r["S"]), r["unit"],
             str(r["units"]["num_units"] if r.get("units") else r["N"]), _metrics(r), *_unit_con(r), _pct(r["con"])]
            for r in sg]
    order = sorted(rows, key=lambda r: (r.get("benchmark") != "glue", r["task"], r["split"]))
    study = [[r.get("benchmark", "glue").replace("superglue", "SuperGLUE").replace("glue", "GLUE"), r["task"],
              r["model"], r["split"], str(r["S"]), r["primary"],
              f"{_pct(r['summary'][r['primary']]['mean'])} ± {_pct(r['summary'][r['primary']]['std'])}",
              "–" if not np.isfinite(r["summary"][r["primary"]]["var"]) else f"{1e4 * r['summary'][r['primary']]['var']:.2f}",
              *_unit_con(r), r.get("unit", "example")] for r in order]
    out = [("SuperGLUE: official metrics and consistency per natural unit", UNIT_HEAD, unit, UNIT_CAPTION)] if unit else []
    if len({r["path"] for r in rows}) > 1 or sg:
        out.append(("GLUE + SuperGLUE across runs (macro: mean ± std over seeds; micro: CON per natural unit)",
                    STUDY_HEAD, study, STUDY_CAPTION))
    return out


UNIT_CAPTION = ("SuperGLUE tasks scored as the benchmark does (COPA per question, MultiRC per answer option and per "
                "question, ReCoRD per query). CON per unit: the share of units on which all S seeds give the same "
                "answer; correct CON per unit: the share all S seeds get right; CON per example counts each scored "
                "row (answer option, candidate) alone.")
STUDY_CAPTION = ("The study's layout: every task of every run, GLUE first, with its primary metric's mean ± std and "
                 "variance (×10⁴) over seeds, and consistency measured on the task's natural unit (last column).")
