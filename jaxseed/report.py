"""Seed-effect report: tables (like arXiv 2503.07329) and plots from one or more run folders.

Every statistic is recomputed from predictions.npz + config.json. metrics.json is only a cache: we cross-check it
and flag a mismatch in the report instead of trusting it. The one thing taken from it is the majority-class
baseline, because the engine scores the training-set majority class, which the predictions cannot tell.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend/state, works headless
from matplotlib.ticker import MaxNLocator

from jaxseed import metrics as M
from jaxseed import stats as St

REGRESSION_TOL = 0.5  # STS-B: seeds "agree" when their scores lie within 0.5 (0-5 scale), as jaxseed.run uses
CON_KS = (5, 10)  # the table's fixed-k consistency columns, comparable across runs with different S
_INFO_KEYS = ("num_labels", "metrics", "primary_metric", "is_regression")


@dataclass
class Run:
    path: Path
    config: dict
    info: dict
    pred: np.ndarray  # [S, N]
    label: np.ndarray  # [N]
    split: np.ndarray  # [N] str
    cache: dict | None  # metrics.json, if any
    curves: dict | None  # curves.npz {"step": [T], "loss": [T, S]}, if any
    left_out: tuple = ()  # (seed, step) of diverged seeds, dropped from pred and curves


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable JSON ({_one_line(e)})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return obj


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in keys if k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: unreadable npz ({_one_line(e)})") from None


def load_run(run_dir) -> Run:
    """Read and validate one run folder; any problem is a one-line ValueError naming the path."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"run folder not found: {path}")
    npz = path / "predictions.npz"
    if not npz.is_file():
        raise ValueError(f"no predictions.npz in run folder: {path}")
    if not (path / "config.json").is_file():
        raise ValueError(f"no config.json in run folder: {path}")
    config = _read_json(path / "config.json")
    info = config.get("task_info")
    if not isinstance(info, dict) or any(k not in info for k in _INFO_KEYS):
        raise ValueError(f"{path / 'config.json'}: missing or incomplete task_info (needs {', '.join(_INFO_KEYS)})")
    unknown = [k for k in info["metrics"] if k not in M.METRICS]
    if unknown or info["primary_metric"] not in info["metrics"]:
        raise ValueError(f"{path / 'config.json'}: task_info names metrics this report cannot compute: "
                         f"{unknown or info['primary_metric']}")
    arrays = _read_npz(npz, ("pred", "label", "split"))
    if "pred" not in arrays or "label" not in arrays:
        raise ValueError(f"{npz}: needs arrays 'pred' and 'label'")
    pred, label = arrays["pred"], arrays["label"]
    split = arrays.get("split", np.full(label.shape, (info.get("splits") or ["validation"])[0])).astype(str)
    if pred.ndim != 2 or min(pred.shape) < 1 or label.shape != (pred.shape[1],) or split.shape != label.shape:
        raise ValueError(f"{npz}: expected pred [S, N], label [N], split [N]; "
                         f"got {pred.shape}, {label.shape}, {split.shape}")
    if info["is_regression"]:
        pred, label = pred.astype(np.float32), label.astype(np.float32)
    else:
        c = int(info["num_labels"])
        if not (np.issubdtype(pred.dtype, np.integer) and pred.min() >= 0 and pred.max() < c
                and np.all(label == np.round(label)) and label.min() >= 0 and label.max() < c):
            raise ValueError(f"{npz}: pred and label must be class ids in [0, {c})")
        pred, label = pred.astype(np.int32), label.astype(np.int32)
    cache = _read_json(path / "metrics.json") if (path / "metrics.json").exists() else None
    curves = None
    if (path / "curves.npz").exists():
        curves = _read_npz(path / "curves.npz", ("step", "loss"))
        if curves.get("loss", np.zeros(0)).ndim != 2 or curves["loss"].shape[1] != pred.shape[0]:
            raise ValueError(f"{path / 'curves.npz'}: expected loss [T, S] with S = {pred.shape[0]}")
    # Seeds whose training diverged (non-finite loss) are left out of every statistic, as in metrics.json.
    left_out = tuple((int(d["seed"]), int(d["step"])) for d in (cache or {}).get("diverged", []))
    keep = np.setdiff1d(np.arange(pred.shape[0]), [s for s, _ in left_out])
    if left_out and len(keep):
        pred = pred[keep]
        if curves is not None:
            curves["loss"] = curves["loss"][:, keep]
    return Run(path, config, info, pred, label, split, cache, curves, left_out if len(keep) else ())


# ---------------------------------------------------------------- statistics per (run, split)

@partial(jax.jit, static_argnames=("names", "num_classes", "reg"))
def _device_stats(p, y, w, train_majority, names: tuple, num_classes: int, reg: bool) -> dict:
    """Every array statistic of one (run, split) in one compiled call (op-by-op JAX compiles each small op for
    each new shape: ~6 s per split on CPU against ~2 s). w masks the padding (see _pad)."""
    out = {"scores": {k: M.compute_metric(k, p, y, num_classes, mask_N=w) for k in names}}
    out["expected_max"] = {k: St.expected_max(v) for k, v in out["scores"].items()}
    if reg:
        out.update(con_tol=M.consistency_within(p, REGRESSION_TOL, mask_N=w), example_std=M.score_std(p))
        return out
    # The training set's majority class (config.json task_info), else the dev split's (ties to the smaller).
    dev_majority = jnp.argmax(jnp.bincount(y, weights=w, length=num_classes))
    majority = jnp.where(train_majority >= 0, train_majority, dev_majority)
    const = jnp.full((1,) + y.shape, majority, y.dtype)
    out["majority"] = {k: M.compute_metric(k, const, y, num_classes, mask_N=w)[0] for k in names}
    ks = tuple(range(2, p.shape[0] + 1))  # S is static under jit
    out.update(con=M.consistency(p, w), ccon=M.correct_consistency(p, y, w), pairwise=M.pairwise_agreement(p, w),
               kappa=M.fleiss_kappa(p, num_classes, w), ensemble=M.ensemble_accuracy(p, y, num_classes, w),
               vote_share=M.vote_share(p, num_classes), churn=M.churn_matrix(p, w),
               con_curve=M.consistency_curve(p, ks, num_classes, w) if ks else jnp.zeros(0),
               ccon_curve=M.correct_consistency_curve(p, y, ks, w) if ks else jnp.zeros(0))
    return out


def _pad(p, y):
    """Pad N to a power of two, masked out: runs and splits of similar size then share one compiled program."""
    n = p.shape[1]
    size = max(64, 1 << (n - 1).bit_length())
    w = (np.arange(size) < n).astype(np.float32)  # weights, not bool: jnp.bincount needs a number
    return np.pad(p, ((0, 0), (0, size - n))), np.pad(y, (0, size - n)), w


def split_stats(run: Run, split: str) -> dict:
    info, m = run.info, run.split == split
    p, y = run.pred[:, m], run.label[m]
    S, N = p.shape
    C, reg, primary = int(info["num_labels"]), bool(info["is_regression"]), info["primary_metric"]
    names = tuple(info["metrics"])
    train_majority = info.get("majority_class")
    train_majority = -1 if train_majority is None else int(train_majority)
    d = jax.tree.map(lambda a: np.asarray(a, np.float64), _device_stats(*_pad(p, y), train_majority, names, C, reg))
    for k in ("vote_share", "example_std"):  # per-example arrays: drop the padding
        if k in d:
            d[k] = d[k][:N]
    r = dict(task=run.config.get("task", info.get("name", "?")), model=str(run.config.get("model", "?")),
             split=split, S=S, N=N, C=C, reg=reg, primary=primary, path=run.path, ks=list(range(2, S + 1)))
    r.update({k: float(v) if np.ndim(v) == 0 and not isinstance(v, dict) else v
              for k, v in d.items() if k != "majority"})
    r["summary"] = {k: {a: float(b) for a, b in M.summarize(v).items()} for k, v in r["scores"].items()}
    # The engine scores the *training-set* majority class, which predictions.npz cannot tell us, so a baseline
    # cached in metrics.json wins; without one we use the dev split's majority class (and the notes say so).
    cached = {k: _cached(run, "splits", split, "majority_baseline", k) for k in names}
    r["baseline_cached"] = None not in cached.values() or train_majority >= 0
    r["baseline"] = {k: cached[k] if cached[k] is not None
                     else M.majority_baseline(k, y, None, C) if reg else float(d["majority"][k]) for k in names}
    r["failed"] = {k: int(np.sum(np.asarray(M.failed_runs(v, r["baseline"][k])))) for k, v in r["scores"].items()}
    return r


def _cached(run: Run, *keys):
    """A number from metrics.json by key path, or None: a cache of another shape is ignored, not fatal."""
    x = run.cache
    for k in keys:
        x = x.get(k) if isinstance(x, dict) else None
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _cache_notes(run: Run, rows: list[dict]) -> list[str]:
    """Say where metrics.json disagrees with what the predictions give (a stale or foreign cache)."""
    notes = []
    for r in rows:
        checks = [("consistency", _cached(run, "splits", r["split"], "consistency"),
                   r["con_tol"] if r["reg"] else r["con"]),
                  (f"mean {r['primary']}", _cached(run, "splits", r["split"], "summary", r["primary"], "mean"),
                   r["summary"][r["primary"]]["mean"])]
        for what, cached, ours in checks:
            if cached is not None and abs(cached - ours) > 1e-4:
                notes.append(f"{run.path}/metrics.json: {r['split']} {what} is {cached:.4f} in the cache but "
                             f"{ours:.4f} from predictions.npz; the tables use the latter.")
    return notes


# ---------------------------------------------------------------- tables

def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.2f}"


def _num(x, digits: int) -> str:
    return f"{x:.{digits}f}" if x is not None and np.isfinite(x) else "–"  # NaN: e.g. κ when one class only


def _mean_std(s: dict) -> str:
    return f"{_pct(s['mean'])} ± {_pct(s['std'])}"


def _con_at(r: dict, k: int) -> str:
    return _pct(float(r["con_curve"][r["ks"].index(k)])) if k in r["ks"] else "–"


def _common(r):
    return [r["task"], r["model"], r["split"], str(r["S"])]


def _macro(r, k):
    s = r["summary"][k]
    return [_mean_std(s), _num(1e4 * s["var"], 2), f"{_pct(s['min'])}–{_pct(s['max'])}", f"{r['failed'][k]}/{r['S']}"]


CLS_HEAD = ["Task", "Model", "Split", "S", "Metric", "Mean ± std", "Var", "Min–max", "Failed", "CON",
            "Correct CON"] + [f"CON@{k}" for k in CON_KS] + ["Pairwise agr.", "Fleiss κ", "Ensemble acc."]
REG_HEAD = ["Task", "Model", "Split", "S", "Pearson mean ± std", "Var", "Min–max", "Failed",
            "Spearman mean ± std", f"CON within ±{REGRESSION_TOL:g}", "Mean per-example std"]
ALL_HEAD = ["Task", "Model", "Split", "S", "Metric", "Mean ± std", "Var", "Min–max", "Failed", "Baseline",
            "E[max of S]"]


def _tables(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    cls = [_common(r) + [r["primary"]] + _macro(r, r["primary"]) + [_pct(r["con"]), _pct(r["ccon"])]
           + [_con_at(r, k) for k in CON_KS] + [_pct(r["pairwise"]), _num(r["kappa"], 3), _pct(r["ensemble"])]
           for r in rows if not r["reg"]]
    reg = [_common(r) + _macro(r, "pearson") + [_mean_std(r["summary"]["spearman"]), _pct(r["con_tol"]),
                                                _num(float(np.mean(r["example_std"])), 3)]
           for r in rows if r["reg"] and {"pearson", "spearman"} <= set(r["summary"])]
    every = [_common(r) + [k] + _macro(r, k) + [_pct(r["baseline"][k]), _pct(float(r["expected_max"][k][-1]))]
             for r in rows for k in r["summary"]]
    out = [("Classification: macro and micro seed effects", CLS_HEAD, cls),
           ("Regression (STS-B)", REG_HEAD, reg), ("Every metric", ALL_HEAD, every)]
    return [t for t in out if t[2]]


NOTES = [
    "Scores, shares and consistencies are in percent (×100, 2 decimals); std and Var are over seeds (ddof = 1), "
    "Var in percent²; NaN scores (a collapsed, constant STS-B run) are left out of them and count as failed; "
    "Fleiss' κ is the raw coefficient; the mean per-example std of STS-B is on the 0–5 label scale.",
    "CON: share of dev examples on which all S seeds predict the same label; Correct CON: share all S get right. "
    "CON@k: expected CON of k seeds drawn without replacement from the S (– when S < k); CON@2 is the pairwise "
    "agreement.",
    "Failed: runs scoring at or below the majority-class baseline (Dodge et al. 2020): the training-set majority "
    "class as scored in metrics.json, or the dev split's own majority class where a run has no metrics.json. "
    "E[max of S]: expected best of S draws from the observed scores (Dodge et al. 2019).",
    f"STS-B runs agree on an example when all S scores lie within ±{REGRESSION_TOL:g} of each other.",
]


# ---------------------------------------------------------------- plots

def _label(r: dict, dup: bool) -> str:
    s = f"{r['task']}/{r['model'].split('/')[-1]}/{r['split']}"
    return f"{s} ({r['path'].name})" if dup else s


def _save(fig: Figure, folder: Path, name: str, caption: str, out: list) -> None:
    fig.savefig(folder / name, dpi=100)
    out.append((name, caption))


def _plots(rows: list[dict], folder: Path) -> list[tuple[str, str]]:
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
        _save(fig, folder, name, f"{task}: per-seed scores, their mean and the majority baseline", out)

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
        _save(fig, folder, "consistency_vs_k.png", "Consistency and correct consistency against k", out)

    # Expected max: what trying n seeds and keeping the best one buys.
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        ax.plot(np.arange(1, r["S"] + 1), 100 * r["expected_max"][r["primary"]], marker=".", label=labels[i])
    ax.set(xlabel="n seeds", ylabel="expected max of primary metric (%)", title="Expected maximum of n seeds")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, folder, "expected_max.png", "Expected best dev score among n seeds (Dodge et al. 2019)", out)

    for i, r in enumerate(rows):
        fig = Figure(figsize=(5, 3.6), layout="constrained")
        ax = fig.subplots()
        if r["reg"]:
            ax.hist(r["example_std"], bins=30, color="C2")
            ax.set(xlabel="std of the S scores", ylabel="examples", title=f"{labels[i]}\nper-example score std")
            _save(fig, folder, f"agreement_{slug[i]}.png", f"{labels[i]}: per-example std across seeds", out)
            continue
        S = r["S"]  # vote shares are multiples of 1/S: one bar per possible value
        ax.hist(r["vote_share"], bins=(np.arange(S + 2) - 0.5) / S, color="C2", rwidth=0.9)
        ax.set_xlim(1 / int(r["C"]) - 1 / S, 1 + 1 / S)  # a majority share is never below 1/C
        ax.set(xlabel="share of seeds voting for the majority label", ylabel="examples",
               title=f"{labels[i]}\nper-example agreement (CON {_pct(r['con'])}%)")
        _save(fig, folder, f"agreement_{slug[i]}.png", f"{labels[i]}: histogram of per-example vote share", out)

        fig = Figure(figsize=(5, 4.2), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(100 * r["churn"], cmap="viridis")
        fig.colorbar(im, ax=ax, label="churn (% of examples predicted differently)")
        ax.set(xlabel="seed", ylabel="seed", title=f"{labels[i]}\nchurn between seeds")
        _save(fig, folder, f"churn_{slug[i]}.png", f"{labels[i]}: churn between every pair of seeds", out)

    return out


def _loss_plots(runs: list[Run], folder: Path) -> list[tuple[str, str]]:
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
        ax.set(xlabel="step", ylabel="training loss", title=f"{run.path.name}: training loss of each seed")
        ax.legend(fontsize=8)
        _save(fig, folder, f"loss_{j:02d}.png", f"{run.path.name}: training loss per seed", out)
    return out


# ---------------------------------------------------------------- writing

def _markdown(tables, notes, figures) -> str:
    cell = lambda s: str(s).replace("|", "\\|")
    lines = ["# jaxseed report", ""] + [f"- {n}" for n in NOTES + notes] + [""]
    for title, head, body in tables:
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body] + [""]
    lines += ["## Plots", ""] + [f"![{cap}]({name})\n" for name, cap in figures]
    return "\n".join(lines)


def _html(tables, notes, figures) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>jaxseed report</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
             "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}"
             "td:nth-child(-n+3){text-align:left}"
             "img{max-width:100%}</style></head><body><h1>jaxseed report</h1><ul>"]
    parts += [f"<li>{e(n)}</li>" for n in NOTES + notes] + ["</ul>"]
    for title, head, body in tables:
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in body]
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    parts += [f"<figure><img src='{e(n)}' alt='{e(c)}'><figcaption>{e(c)}</figcaption></figure>" for n, c in figures]
    return "\n".join(parts + ["</body></html>"])


def _split_order(run: Run) -> list[str]:
    present = list(dict.fromkeys(run.split.tolist()))
    declared = [s for s in run.info.get("splits", []) if s in present]
    return declared + [s for s in present if s not in declared]


def build_report(run_dirs, out_dir=None) -> Path:
    """Write report.md, report.html and PNG plots for the run folders; return the path of report.md.

    out_dir defaults to <first run dir>/report. The report is built in a temporary sibling folder and renamed
    into place only when complete, so a failure leaves any previous report untouched and nothing half-written.
    """
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ValueError("no run folders given")
    runs = [load_run(d) for d in run_dirs]  # validate everything before touching the disk
    rows, notes = [], []
    for run in runs:
        rr = [split_stats(run, s) for s in _split_order(run)]
        rows += rr
        notes += _cache_notes(run, rr)
        if run.left_out:
            notes.append(f"{run.path}: {len(run.left_out)} diverged seed(s) left out of every statistic: "
                         + ", ".join(f"seed {s} (non-finite loss at step {t})" for s, t in run.left_out) + ".")
        if not all(r["baseline_cached"] for r in rr):
            notes.append(f"{run.path}: no cached baseline in metrics.json; "
                         "baselines use the dev split's majority class.")
    out = Path(out_dir) if out_dir is not None else Path(run_dirs[0]) / "report"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        figures = _plots(rows, tmp) + _loss_plots(runs, tmp)
        tables = _tables(rows)
        (tmp / "report.md").write_text(_markdown(tables, notes, figures), encoding="utf-8")
        (tmp / "report.html").write_text(_html(tables, notes, figures), encoding="utf-8")
        if out.exists():  # swap: move the old report aside, move the new one in, then drop the old one
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(old / "report")
            try:
                tmp.rename(out)
            except OSError:
                (old / "report").rename(out)  # put the previous report back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "report.md"
