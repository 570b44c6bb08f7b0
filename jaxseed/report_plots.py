"""The report's plots: per-seed strip plots, consistency against k, expected maximum, per-example agreement,
churn between seeds, training loss. ``rows`` are report.split_stats dicts; every function returns (file name,
caption) pairs of the PNGs it wrote into ``folder``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend/state, works headless
from matplotlib.ticker import MaxNLocator

from jaxseed import sweep_report


def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.2f}"


def _label(r: dict, dup: bool) -> str:
    s = f"{r['task']}/{r['model'].split('/')[-1]}/{r['split']}"
    return f"{s} ({r['path'].name})" if dup else s


def _save(fig: Figure, folder: Path, name: str, caption: str, out: list) -> None:
    fig.savefig(folder / name, dpi=100)
    out.append((name, caption))


def plots(rows: list[dict], folder: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    plain = [_label(r, False) for r in rows]
    labels = [_label(r, plain.count(p) > 1) for r, p in zip(rows, plain)]
    slug = [f"{i:02d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", lab)[:60] for i, lab in enumerate(plain)]

    for task in dict.fromkeys(r["task"] for r in rows):  # strip plot per task: one column per (model, split)
        idx = [i for i, r in enumerate(rows) if r["task"] == task]
        fig = Figure(figsize=(max(4.0, 1.6 * len(idx) + 2), 4), layout="constrained")
        ax = fig.subplots()
        for x, i in enumerate(idx):
            r = rows[i]
            v = 100 * r["scores"][r["primary"]]
            ax.scatter(x + np.linspace(-0.15, 0.15, len(v)), v, s=18, color="C0", zorder=3,
                       label="seed" if x == 0 else None)  # spread sideways so tied scores stay visible
            first = x == 0  # one legend entry per kind
            ax.hlines(100 * r["summary"][r["primary"]]["mean"], x - 0.3, x + 0.3, color="C1", lw=2,
                      label="mean" if first else None)
            ax.hlines(100 * r["baseline"][r["primary"]], x - 0.3, x + 0.3, color="gray", ls="--",
                      label="majority baseline" if first else None)
        ax.set_xticks(range(len(idx)), [labels[i].split("/", 1)[1] for i in idx], rotation=15, fontsize=8)
        ax.set_xlim(-0.6, len(idx) - 0.4)
        ax.set_ylabel(f"{rows[idx[0]]['primary']} (%)")
        ax.set_title(f"{task}: dev score of each seed")
        ax.legend(fontsize=8)
        name = "strip_" + re.sub(r"[^A-Za-z0-9._-]+", "_", task) + ".png"
        _save(fig, folder, name, f"{task}: the dev score of every seed (dots), their mean (orange) and the "
              "majority-class baseline (dashed); the vertical spread is the macro effect of the seed", out)

    cls = [i for i, r in enumerate(rows) if not r["reg"] and r["S"] > 1]
    if cls:  # consistency vs k: how fast agreement decays as seeds are added
        fig = Figure(figsize=(10, 4), layout="constrained")
        a1, a2 = fig.subplots(1, 2)
        for i in cls:
            a1.plot(rows[i]["ks"], 100 * rows[i]["con_curve"], marker=".", label=labels[i])
            a2.plot(rows[i]["ks"], 100 * rows[i]["ccon_curve"], marker=".", label=labels[i])
        for ax, t in ((a1, "consistency"), (a2, "correct consistency")):
            ax.set(xlabel="k seeds", ylabel=f"{t} (%)", title=f"Expected {t} of k seeds")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        a1.legend(fontsize=7)
        _save(fig, folder, "consistency_vs_k.png", "Expected consistency (all k seeds agree) and correct "
              "consistency (all k are right) of k seeds drawn from the S: the more seeds, the fewer examples they "
              "all agree on", out)

    # Expected max: what trying n seeds and keeping the best one buys.
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        ax.plot(np.arange(1, r["S"] + 1), 100 * r["expected_max"][r["primary"]], marker=".", label=labels[i])
    ax.set(xlabel="n seeds", ylabel="expected max of primary metric (%)", title="Expected maximum of n seeds")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, folder, "expected_max.png", "Expected best dev score when picking the best of n seeds (Dodge et "
          "al. 2019): how much trying more seeds and reporting the best one inflates a result", out)

    for i, r in enumerate(rows):
        fig = Figure(figsize=(5, 3.6), layout="constrained")
        ax = fig.subplots()
        if r["reg"]:
            ax.hist(r["example_std"], bins=30, color="C2")
            ax.set(xlabel="std of the S scores", ylabel="examples", title=f"{labels[i]}\nper-example score std")
            _save(fig, folder, f"agreement_{slug[i]}.png",
                  f"{labels[i]}: how far the seeds' scores for one example spread (std across seeds)", out)
            continue
        S = r["S"]  # vote shares are multiples of 1/S: one bar per possible value
        ax.hist(r["vote_share"], bins=(np.arange(S + 2) - 0.5) / S, color="C2", rwidth=0.9)
        ax.set_xlim(1 / int(r["C"]) - 1 / S, 1 + 1 / S)  # a majority share is never below 1/C
        ax.set(xlabel="share of seeds voting for the majority label", ylabel="examples",
               title=f"{labels[i]}\nper-example agreement (CON {_pct(r['con'])}%)")
        _save(fig, folder, f"agreement_{slug[i]}.png", f"{labels[i]}: per example, the share of seeds voting "
              "for the majority label; 1 = all seeds agree, lower = the example flips between seeds", out)

        fig = Figure(figsize=(5, 4.2), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(100 * r["churn"], cmap="viridis")
        fig.colorbar(im, ax=ax, label="churn (% of examples predicted differently)")
        ax.set(xlabel="seed", ylabel="seed", title=f"{labels[i]}\nchurn between seeds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # seeds are whole rows: no 0.5 ticks
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _save(fig, folder, f"churn_{slug[i]}.png",
              f"{labels[i]}: churn, the share of examples two seeds predict differently, for each pair", out)

    return out


def loss_plots(runs, folder: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for j, run in enumerate(runs):
        if not run.curves:
            continue
        loss = run.curves["loss"]
        step = run.curves.get("step", np.arange(loss.shape[0]))
        fig = Figure(figsize=(6, 3.6), layout="constrained")
        ax = fig.subplots()
        ax.plot(step, loss, color="C0", lw=0.6, alpha=0.5)
        ax.plot(step, loss.mean(axis=1), color="C1", lw=2, label="mean over seeds")
        name = run.path.name + sweep_report.label(run.member)  # a sweep member: its own seeds' curves
        ax.set(xlabel="step", ylabel="training loss", title=f"{name}: training loss of each seed")
        ax.legend(fontsize=8)
        _save(fig, folder, f"loss_{j:02d}.png",
              f"{name}: training loss of every seed (thin) and their mean (thick)", out)
    return out
