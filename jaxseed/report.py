"""Seed-effect report: tables (like arXiv 2503.07329) and plots from one or more run folders.

Every statistic is recomputed from predictions.npz + config.json. metrics.json is only a cache: we cross-check it
and flag a mismatch in the report instead of trusting it. The one thing taken from it is the majority-class
baseline, because the engine scores the training-set majority class, which the predictions cannot tell.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxseed import metrics as M
from jaxseed import pages, report_plots, sweep_report
from jaxseed import report_units as RU
from jaxseed import stats as St
from jaxseed import units as U
from jaxseed.config import SWEEP_KEYS
from jaxseed.tasks import get_task

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
    example_id: np.ndarray | None = None  # [N], if recorded
    seeds_Sx3: np.ndarray | None = None  # (init, order, dropout) of each row, if recorded: runs sharing them pair up
    hparams: dict | None = None  # swept key -> value of each row [S], if recorded
    member: dict | None = None  # a sweep's grid member this Run holds the rows of (sweep_report.members)
    extras: dict | None = None  # per-example unit ids, pairs, ReCoRD candidates / answers (SuperGLUE), if any
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
    if info is None and isinstance(config.get("task"), str):  # predictions made elsewhere: the registry fills in
        try:
            info = get_task(config["task"]).info()
        except ValueError as e:
            raise ValueError(f"{path / 'config.json'}: {e}") from None
    if not isinstance(info, dict) or any(k not in info for k in _INFO_KEYS):
        raise ValueError(f"{path / 'config.json'}: missing or incomplete task_info (needs {', '.join(_INFO_KEYS)})")
    unknown = [k for i in [info, *(info.get("split_tasks") or {}).values()] for k in i["metrics"]
               if k not in M.METRICS and k not in U.UNIT_METRICS]
    if unknown or info["primary_metric"] not in info["metrics"]:
        raise ValueError(f"{path / 'config.json'}: task_info names metrics this report cannot compute: "
                         f"{unknown or info['primary_metric']}")
    arrays = _read_npz(npz, ("pred", "label", "split", "example_id", "seed_init", "seed_order", "seed_dropout")
                       + SWEEP_KEYS + RU.EXTRAS)
    if "pred" not in arrays or "label" not in arrays:
        raise ValueError(f"{npz}: needs arrays 'pred' and 'label'")
    pred, label = arrays["pred"], arrays["label"]
    split = arrays.get("split", np.full(label.shape, (info.get("splits") or ["validation"])[0])).astype(str)
    example_id = arrays.get("example_id")
    if pred.ndim != 2 or min(pred.shape) < 1 or label.shape != (pred.shape[1],) or split.shape != label.shape \
            or (example_id is not None and example_id.shape != label.shape):
        raise ValueError(f"{npz}: expected pred [S, N], label [N], split [N], example_id [N]; got {pred.shape}, "
                         f"{label.shape}, {split.shape}, {None if example_id is None else example_id.shape}")
    seeds = [arrays.get(k) for k in ("seed_init", "seed_order", "seed_dropout")]
    seeds_Sx3 = np.stack(seeds, 1) if all(x is not None and x.shape == pred.shape[:1] for x in seeds) else None
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
    hparams = {k: arrays[k].astype(np.float64) for k in SWEEP_KEYS if k in arrays and arrays[k].shape == pred.shape[:1]}
    extras = {k: arrays[k] for k in RU.EXTRAS if k in arrays and arrays[k].shape == label.shape}
    # Seeds whose training diverged (non-finite loss) are left out of every statistic, as in metrics.json.
    left_out = tuple((int(d["seed"]), int(d["step"])) for d in (cache or {}).get("diverged", []))
    keep = np.setdiff1d(np.arange(pred.shape[0]), [s for s, _ in left_out])
    if left_out and len(keep):
        pred = pred[keep]
        if curves is not None:
            curves["loss"] = curves["loss"][:, keep]
        seeds_Sx3 = None if seeds_Sx3 is None else seeds_Sx3[keep]
        hparams = {k: v[keep] for k, v in hparams.items()}
    return Run(path, config, info, pred, label, split, cache, curves, example_id, seeds_Sx3, hparams or None,
               extras=extras, left_out=left_out if len(keep) else ())


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
    info, m = RU.split_info(run.info, split), run.split == split
    p, y = run.pred[:, m], run.label[m]
    S, N = p.shape
    C, reg, primary = int(info["num_labels"]), bool(info["is_regression"]), info["primary_metric"]
    names = tuple(info["metrics"])
    train_majority = run.info.get("majority_class")
    train_majority = -1 if train_majority is None else int(train_majority)
    plain = tuple(k for k in names if k in M.METRICS)  # SuperGLUE's unit metrics: report_units below
    d = jax.tree.map(lambda a: np.asarray(a, np.float64), _device_stats(*_pad(p, y), train_majority, plain, C, reg))
    for k in ("vote_share", "example_std"):  # per-example arrays: drop the padding
        if k in d:
            d[k] = d[k][:N]
    model = str(run.config.get("model", "?"))
    model = "/".join(Path(model).parts[-2:]) if Path(model).is_absolute() else model  # a local folder: short
    model += sweep_report.label(run.member)  # a sweep member: with its values
    r = dict(task=run.config.get("task", info.get("name", "?")), model=model, run=run.path.name,
             split=split, S=S, N=N, C=C, reg=reg, primary=primary, path=run.path, ks=list(range(2, S + 1)))
    r.update({k: float(v) if np.ndim(v) == 0 and not isinstance(v, dict) else v
              for k, v in d.items() if k != "majority"})
    extras = {k: v[m] for k, v in (run.extras or {}).items()}
    RU.add_unit_stats(r, info, p, y, extras, names, train_majority)
    r["summary"] = {k: {a: float(b) for a, b in M.summarize(v).items()} for k, v in r["scores"].items()}
    # The engine scores the *training-set* majority class, which predictions.npz cannot tell us, so a baseline
    # cached in metrics.json wins; without one we use the dev split's majority class (and the notes say so).
    cached = {k: _cached(run, "splits", split, "majority_baseline", k) for k in names}
    r["baseline_cached"] = None not in cached.values() or train_majority >= 0
    r["baseline"] = {k: cached[k] if cached[k] is not None else r["unit_baseline"][k] if k in r["unit_baseline"]
                     else M.majority_baseline(k, y, None, C) if reg else float(d["majority"][k]) for k in names}
    r["failed"] = {k: int(np.sum(np.asarray(M.failed_runs(v, r["baseline"][k])))) if np.isfinite(r["baseline"][k])
                   else 0 for k, v in r["scores"].items()}  # no baseline (AX-g gender parity): none failed
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
    return [r["run"], r["task"], r["model"], r["split"], str(r["S"])]


def _macro(r, k):
    s = r["summary"][k]
    return [_mean_std(s), _num(1e4 * s["var"], 2), f"{_pct(s['min'])}–{_pct(s['max'])}", f"{r['failed'][k]}/{r['S']}"]


CLS_HEAD = ["Run", "Task", "Model", "Split", "S", "Metric", "Mean ± std", "Var", "Min–max", "Failed", "CON",
            "Correct CON"] + [f"CON@{k}" for k in CON_KS] + ["Pairwise agr.", "Fleiss κ", "Ensemble acc."]
REG_HEAD = ["Run", "Task", "Model", "Split", "S", "Pearson mean ± std", "Var", "Min–max", "Failed",
            "Spearman mean ± std", f"CON within ±{REGRESSION_TOL:g}", "Mean per-example std"]
ALL_HEAD = ["Run", "Task", "Model", "Split", "S", "Metric", "Mean ± std", "Var", "Min–max", "Failed", "Baseline",
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
    out = [("Classification: macro and micro seed effects", CLS_HEAD, cls, CLS_CAPTION), *RU.tables(rows),
           ("Regression (STS-B)", REG_HEAD, reg, REG_CAPTION), ("Every metric", ALL_HEAD, every, ALL_CAPTION)]
    return [t for t in out if t[2]]


CLS_CAPTION = ("One row per run and dev split, over its S seeds. Macro effect: the task's primary metric as mean ± "
               "std over seeds, its variance and range, and how many seeds failed (scored no better than always "
               "predicting the majority class). Micro effect: CON, the share of examples on which every seed "
               "predicts the same label, and Correct CON, the share every seed gets right; CON@k is CON expected "
               "for k seeds, comparable across runs with different S; the ensemble is the seeds' majority vote.")
REG_CAPTION = ("STS-B, scored by correlation with the gold similarity: Pearson and Spearman over seeds, the share "
               f"of examples whose S scores lie within ±{REGRESSION_TOL:g} of each other, and the mean per-example "
               "std of the scores across seeds.")
ALL_CAPTION = ("Every metric of each task (the first table shows only the primary one), with the majority-class "
               "baseline and the expected best score if one picked the best of S seeds (E[max of S]).")


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
    *RU.NOTES,
]


# ---------------------------------------------------------------- writing

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
    whole = [load_run(d) for d in run_dirs]  # validate everything before touching the disk
    runs = [m for run in whole for m in sweep_report.members(run)]  # a sweep: one Run per grid member
    rows, notes, per_run = [], [], []
    for run in runs:
        rr = [split_stats(run, s) for s in _split_order(run)]
        rows += rr
        per_run.append((run, rr))
        notes += _cache_notes(run, rr)
        if run.left_out:
            notes.append(f"{run.path}: {len(run.left_out)} diverged seed(s) left out of every statistic: "
                         + ", ".join(f"seed {s} (non-finite loss at step {t})" for s, t in run.left_out) + ".")
        if not all(r["baseline_cached"] for r in rr):
            notes.append(f"{run.path}: no cached baseline in metrics.json; "
                         "baselines use the dev split's majority class.")
    out = Path(out_dir) if out_dir is not None else Path(run_dirs[0]) / "report"
    from jaxseed import compare as compare_lib, example_table as examples_lib  # both build on this module
    from jaxseed import early_stop_report


    extra = compare_lib.report_sections(runs)  # several runs of one task: is one better beyond seed noise?
    extra += examples_lib.report_sections(runs)  # the examples the seeds disagree on most
    extra += early_stop_report.sections(per_run)  # runs that stopped seeds early: which, and what the kept reached

    def fill(tmp: Path) -> None:
        figures = report_plots.plots(rows, tmp) + sweep_report.plots(whole, tmp) + report_plots.loss_plots(runs, tmp)
        tables = _tables(rows) + extra
        (tmp / "report.md").write_text(pages.markdown("jaxseed report", NOTES + notes, tables, figures),
                                       encoding="utf-8")
        (tmp / "report.html").write_text(pages.html_page("jaxseed report", NOTES + notes, tables, figures,
                                                         text_columns=examples_lib.TEXT_COLUMNS), encoding="utf-8")

    pages.write_folder(out, fill)
    return out / "report.md"
