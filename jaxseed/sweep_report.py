"""Sweeps in the report: a run whose rows differ in swept hyperparameters (predictions.npz learning_rate,
weight_decay, warmup_ratio per row) is reported as one run per grid member, so every macro and micro statistic
is grouped by value, and the primary metric is plotted against the learning rate with the spread of the seeds.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxseed import metrics as M
from jaxseed.config import SWEEP_KEYS

SHORT = {"learning_rate": "lr", "weight_decay": "wd", "warmup_ratio": "warmup"}


def swept(run) -> list[str]:
    """The hyperparameters whose per-row values differ within the run."""
    return [k for k in SWEEP_KEYS if run.hparams and k in run.hparams and len(np.unique(run.hparams[k])) > 1]


def label(member: dict | None) -> str:
    return "" if not member else " (" + ", ".join(f"{SHORT[k]}={v:g}" for k, v in member.items()) + ")"


def _cache(run, values: dict):
    """The member's own entry of metrics.json's "sweep" list (same shape as the top level), or None."""
    for entry in (run.cache or {}).get("sweep") or []:
        if isinstance(entry, dict) and all(isinstance(entry.get(k), (int, float)) and np.isclose(entry[k], v)
                                           for k, v in values.items()):
            return entry
    return None


def members(run) -> list:
    """The run itself, or one Run per grid member (its rows, its cache entry, its curves)."""
    keys = swept(run)
    if not keys:
        return [run]
    grid_S = list(zip(*(run.hparams[k].tolist() for k in keys)))
    out = []
    for member in dict.fromkeys(grid_S):
        rows = np.asarray([g == member for g in grid_S])
        curves = None if not run.curves else {**run.curves, "loss": run.curves["loss"][:, rows]}
        out.append(dataclasses.replace(
            run, pred=run.pred[rows], seeds_Sx3=None if run.seeds_Sx3 is None else run.seeds_Sx3[rows],
            hparams={k: v[rows] for k, v in run.hparams.items()}, member=dict(zip(keys, member)),
            cache=_cache(run, dict(zip(keys, member))), curves=curves))
    return out


def plots(runs, folder: Path) -> list[tuple[str, str]]:
    """Primary metric against the learning rate (log scale): every seed, the mean and ± one std, one line per
    combination of the other swept values, one figure per run and dev split."""
    out = []
    for j, run in enumerate(runs):
        if "learning_rate" not in swept(run):
            continue
        primary, c = run.info["primary_metric"], int(run.info["num_labels"])
        others = [k for k in swept(run) if k != "learning_rate"]
        for split in dict.fromkeys(run.split.tolist()):
            m = run.split == split
            score_S = np.asarray(M.compute_metric(primary, run.pred[:, m], run.label[m],
                                                  None if run.info["is_regression"] else c), np.float64)
            fig = Figure(figsize=(6.4, 4.2), layout="constrained")
            ax = fig.subplots()
            combos = list(zip(*(run.hparams[k].tolist() for k in others))) if others else [()] * len(score_S)
            for i, combo in enumerate(dict.fromkeys(combos)):
                rows = np.asarray([x == combo for x in combos])
                lr_S, sc_S = run.hparams["learning_rate"][rows], 100 * score_S[rows]
                lrs = np.unique(lr_S)
                mean = np.array([np.nanmean(sc_S[lr_S == v]) for v in lrs])
                std = np.array([np.nanstd(sc_S[lr_S == v], ddof=1) if np.sum(lr_S == v) > 1 else 0 for v in lrs])
                name = label(dict(zip(others, combo))).strip(" ()") or "mean over seeds"
                ax.scatter(lr_S, sc_S, s=14, color=f"C{i}", alpha=0.6)
                ax.plot(lrs, mean, color=f"C{i}", marker="o", label=name)
                ax.fill_between(lrs, mean - std, mean + std, color=f"C{i}", alpha=0.15)
            ax.set_xscale("log")
            ax.set(xlabel="learning rate", ylabel=f"{primary} (%)",
                   title=f"{run.path.name} / {split}: {primary} against the learning rate")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            name = f"sweep_{j:02d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", split) + ".png"
            fig.savefig(folder / name, dpi=100)
            out.append((name, f"{run.path.name} / {split}: dev {primary} of every seed (dots) against the learning "
                              "rate; the line is the mean over seeds and the band ± one std across seeds."))
    return out
