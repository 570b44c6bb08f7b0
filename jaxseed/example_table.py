"""Unstable examples: a per-example table of a run (examples.parquet) and the report section listing the dev
examples the seeds disagree on most.

Columns: example_id, split, the task's text fields, label, then for classification votes_<label name> (how many
seeds predict each class), majority_label (ties to the smaller id), vote_share (share of seeds voting for it) and
share_correct (share of seeds that are right); for regression score_mean, score_std (ddof=1), score_min,
score_max and abs_error (of the mean score).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxseed import metrics as M
from jaxseed import sweep_report

FILE = "examples.parquet"
TOP = 15  # examples listed in the report, per run and split
TEXT_COLUMNS = ("Text",)


def table(info: dict, pred_SxN, label_N, split_N, example_id_N, texts=None, text_fields=()) -> pd.DataFrame:
    """The per-example table; ``texts`` is one tuple of ``text_fields`` per example (or None: no text columns)."""
    pred_SxN, label_N = np.asarray(pred_SxN), np.asarray(label_N)
    cols = {"example_id": np.asarray(example_id_N), "split": np.asarray(split_N).astype(str)}
    if texts is not None:
        for j, name in enumerate(text_fields):
            cols[name] = [t[j] for t in texts]
    cols["label"] = label_N
    if info["is_regression"]:
        cols.update(score_mean=pred_SxN.mean(0), score_std=pred_SxN.std(0, ddof=1) if len(pred_SxN) > 1
                    else np.full(label_N.shape, np.nan), score_min=pred_SxN.min(0), score_max=pred_SxN.max(0),
                    abs_error=np.abs(pred_SxN.mean(0) - label_N))
        return pd.DataFrame(cols)
    c = int(info["num_labels"])
    names = info.get("label_names") or [str(j) for j in range(c)]
    votes_NxC = np.asarray(M.vote_counts(pred_SxN, c))
    for j, name in enumerate(names):
        cols[f"votes_{name}"] = votes_NxC[:, j]
    cols["majority_label"] = votes_NxC.argmax(1)
    cols["vote_share"] = votes_NxC.max(1) / pred_SxN.shape[0]
    cols["share_correct"] = (pred_SxN == label_N).mean(0)
    return pd.DataFrame(cols)


def write(folder: Path, task, pred_SxN, label_N, split_N, example_id_N, texts) -> None:
    """examples.parquet of a run (``task`` a tasks.Task; texts: one tuple of its text fields per example)."""
    table(task.info(), pred_SxN, label_N, split_N, example_id_N, texts, task.text_fields).to_parquet(
        folder / FILE, index=False)


def write_run(folder: Path, task, texts: dict) -> None:
    """examples.parquet from the run's predictions.npz (so the two always agree); texts: split -> text tuples."""
    with np.load(folder / "predictions.npz") as z:
        split = z["split"].astype(str)
        order = list(dict.fromkeys(split.tolist()))
        write(folder, task, z["pred"], z["label"], split, z["example_id"], [t for s in order for t in texts[s]])


def read(run_dir) -> pd.DataFrame | None:
    path = Path(run_dir) / FILE
    return pd.read_parquet(path) if path.is_file() else None


def _text(row, text_fields) -> str:
    parts = [str(row[f]) for f in text_fields if f in row and isinstance(row[f], str)]
    return " ‖ ".join(parts) if parts else "–"


def report_sections(runs) -> list[tuple]:
    """Per run and split: the TOP examples the seeds disagree on most (lowest majority vote share; for
    regression, highest score std), with text (from examples.parquet, where the run has one), gold and votes."""
    out = []
    for run in runs:
        info, saved = run.info, read(run.path)
        if run.pred.shape[0] < 2:
            continue
        df = table(info, run.pred, run.label, run.split,
                   run.example_id if run.example_id is not None else np.arange(run.label.shape[0]))
        text_fields = []
        if saved is not None and len(saved) == len(df) and np.array_equal(saved["example_id"], df["example_id"]):
            text_fields = [c for c in saved.columns if c not in df.columns]
            df = pd.concat([df, saved[text_fields]], axis=1)
        names = info.get("label_names")
        for split in dict.fromkeys(df["split"]):
            d = df[df["split"] == split]
            if info["is_regression"]:
                d = d.sort_values(["score_std", "example_id"], ascending=[False, True], kind="stable").head(TOP)
                head = ["Example id", "Text", "Gold", "Mean score", "Std over seeds", "Min–max"]
                body = [[int(r.example_id), _text(r, text_fields), f"{r.label:.2f}", f"{r.score_mean:.2f}",
                         f"{r.score_std:.2f}", f"{r.score_min:.2f}–{r.score_max:.2f}"] for r in d.itertuples()]
                what = "the largest spread of scores over seeds"
            else:  # only examples the seeds split on: a unanimous example is stable, even when wrong
                d = d[d["vote_share"] < 1].sort_values(["vote_share", "share_correct", "example_id"],
                                                       kind="stable").head(TOP)
                vote_cols = [c for c in df.columns if c.startswith("votes_")]
                label = lambda j: names[int(j)] if names else str(int(j))
                head = ["Example id", "Text", "Gold", "Votes", "Majority", "Seeds right"]
                body = [[int(r["example_id"]), _text(r, text_fields), label(r["label"]),
                         ", ".join(f"{c[6:]} {int(r[c])}" for c in vote_cols if r[c]), label(r["majority_label"]),
                         f"{round(r['share_correct'] * run.pred.shape[0])}/{run.pred.shape[0]}"]
                        for _, r in d.iterrows()]
                what = "the least agreement between seeds (lowest share voting for the majority label)"
            name = run.path.name + sweep_report.label(run.member)
            caption = (f"The {len(body)} {split} examples of {name} with {what}: these flip from seed to seed"
                       + ("" if body else " (none here: every seed gives every example the same label)")
                       + f". Gold is the dev label; the full table of every example is {FILE} in the run folder"
                       + ("" if saved is not None else " (this run has none, so no text is shown)") + ".")
            out.append((f"Unstable examples: {name} / {split}", head, body, caption))
    return out
