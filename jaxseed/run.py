"""A whole study run: config → data → model → vmapped training → predictions [S, N] → metrics → one folder.

The folder holds config.json (resolved, with versions and devices), predictions.npz, metrics.json and
curves.npz (plus evals.npz with eval_every). It is written to a temporary sibling and renamed into place,
so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxseed import data as data_lib
from jaxseed import metrics as metrics_lib
from jaxseed import model as model_lib
from jaxseed import train as train_lib
from jaxseed.config import Config, ConfigError, resolve_seeds, to_dict
from jaxseed.distributed import is_primary
from jaxseed.tasks import Task, get_task

REGRESSION_TOLERANCE = 0.5  # on STS-B's 0-5 scale: seeds "agree" when their scores lie within this range


def _versions() -> dict:
    names = ["jaxseed", "jax", "jaxlib", "flax", "optax", "transformers", "datasets", "tokenizers", "numpy"]
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    out["python"] = platform.python_version()
    return out


def score(name: str, pred_SxN, label_N, num_labels: int) -> np.ndarray:
    """One task metric per seed."""
    fn = metrics_lib.METRICS[name]
    if name in ("mcc", "macro_f1"):
        return np.asarray(fn(pred_SxN, label_N, num_labels))
    return np.asarray(fn(pred_SxN, label_N))


def split_metrics(task: Task, pred_SxN, label_N, majority: int | None) -> dict:
    pred, label = jnp.asarray(pred_SxN), jnp.asarray(label_N)
    per_seed = {m: score(m, pred, label, task.num_labels) for m in task.metrics}
    baseline = {m: float(metrics_lib.majority_baseline(m, label, majority, task.num_labels)) for m in task.metrics}
    out = {
        "num_examples": int(label.shape[0]),
        "majority_baseline": baseline,
        "per_seed": {m: [float(x) for x in v] for m, v in per_seed.items()},
        "summary": {m: metrics_lib.summarize(v) for m, v in per_seed.items()},
        "failed_runs": {m: int(np.sum(metrics_lib.failed_runs(v, baseline[m]))) for m, v in per_seed.items()},
    }
    if task.is_regression:
        out["consistency"] = float(metrics_lib.consistency_within(pred, REGRESSION_TOLERANCE))
        out["consistency_tolerance"] = REGRESSION_TOLERANCE
        out["mean_example_std"] = float(jnp.mean(metrics_lib.score_std(pred)))
    else:
        out["consistency"] = float(metrics_lib.consistency(pred))
        out["correct_consistency"] = float(metrics_lib.correct_consistency(pred, label))
        out["pairwise_agreement"] = float(metrics_lib.pairwise_agreement(pred))
    return out


def predictions(task: Task, logits_SxNxC: np.ndarray) -> np.ndarray:
    return logits_SxNxC[..., 0] if task.is_regression else logits_SxNxC.argmax(-1).astype(np.int32)


def prepare(cfg: Config):
    """Every check on user input, before any training: a bad task, model, data folder or output folder
    raises ConfigError with one line."""
    try:
        task = get_task(cfg.task)
        seeds = resolve_seeds(cfg.seeds)
        if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
            raise ValueError(f"data_dir not found: {cfg.data_dir}")
        out = cfg.resolved_output_dir
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
            raise ValueError(f"output_dir exists and is not empty: {out} (set overwrite: true to replace it)")
        model_dir = model_lib.resolve_model_dir(cfg.model)
        train_ex = data_lib.load_split(task, "train", cfg.data_dir).head(cfg.max_train_examples)
        dev_ex = {s: data_lib.load_split(task, s, cfg.data_dir).head(cfg.max_eval_examples) for s in task.dev_splits}
        pretrained = model_lib.load_pretrained(str(model_dir))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return task, seeds, model_dir, pretrained, train_ex, dev_ex


def run(cfg: Config, progress: bool = True) -> Path:
    from transformers import AutoTokenizer  # heavy import, after the config is known to be valid

    task, seeds, model_dir, pretrained, train_ex, dev_ex = prepare(cfg)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    train_enc = data_lib.encode(tokenizer, train_ex, cfg.max_length)
    dev_enc = {s: data_lib.encode(tokenizer, e, cfg.max_length) for s, e in dev_ex.items()}
    if len(train_enc.label_N) < cfg.batch_size:
        raise ConfigError(f"config key 'batch_size': {cfg.batch_size} exceeds the {len(train_enc.label_N)} training examples")
    total, warmup = train_lib.num_steps(cfg, len(train_enc.label_N))
    result = train_lib.make_train(cfg, task, pretrained, train_enc, dev_enc, progress)(seeds)

    out = cfg.resolved_output_dir
    if not is_primary():  # several processes: process 0 alone writes the folder (it holds every seed's results)
        return out
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, cfg, task, seeds, pretrained, train_enc, dev_enc, result, total, warmup, model_dir)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write(folder: Path, cfg, task, seeds, pretrained, train_enc, dev_enc, result, total, warmup, model_dir):
    majority = None if task.is_regression else data_lib.majority_class(train_enc.label_N)
    splits = list(dev_enc)
    preds = {s: predictions(task, result.logits[s]) for s in splits}
    logits = {s: result.logits[s][..., 0] if task.is_regression else result.logits[s] for s in splits}
    np.savez(
        folder / "predictions.npz",
        pred=np.concatenate([preds[s] for s in splits], axis=1),
        logits=np.concatenate([logits[s] for s in splits], axis=1),
        label=np.concatenate([dev_enc[s].label_N for s in splits]),
        example_id=np.concatenate([dev_enc[s].example_id_N for s in splits]),
        split=np.concatenate([np.full(len(dev_enc[s].label_N), s) for s in splits]),
        seed_init=np.asarray(seeds.init), seed_order=np.asarray(seeds.order), seed_dropout=np.asarray(seeds.dropout))
    np.savez(folder / "curves.npz", step=np.arange(1, total + 1), loss=result.loss_TxS, lr=result.lr_TxS)
    history = []
    if result.history:
        np.savez(folder / "evals.npz", step=np.asarray([h[0] for h in result.history]),
                 **{f"pred_{s}": np.stack([predictions(task, h[1][s]) for h in result.history]) for s in splits})
        for step, lg in result.history:
            history.append({"step": step, **{s: {m: metrics_lib.summarize(score(m, jnp.asarray(predictions(task, lg[s])),
                                                                              dev_enc[s].label_N, task.num_labels))
                                                 for m in task.metrics} for s in splits}})
    metrics = {"task": task.name, "model": cfg.model, "num_seeds": len(seeds), "primary_metric": task.primary_metric,
               "splits": {s: split_metrics(task, preds[s], dev_enc[s].label_N, majority) for s in splits},
               "history": history,
               "timing": {"compile_s": result.compile_s, "train_s": result.train_s,
                          "steps_per_s": total / result.train_s if result.train_s > 0 else None}}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    resolved = to_dict(cfg)  # majority: the training set's majority class, for baselines recomputed later
    resolved.update({
        "task_info": task.info() | {"majority_class": majority}, "model_dir": str(model_dir), "encoder": pretrained.config.__dict__,
        "train_examples": int(len(train_enc.label_N)), "train_length": train_enc.length,
        "eval_lengths": {s: e.length for s, e in dev_enc.items()}, "total_steps": total, "warmup_steps": warmup,
        "versions": _versions(), "devices": [str(d) for d in jax.devices()], "platform": jax.default_backend(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    (folder / "config.json").write_text(json.dumps(resolved, indent=2, default=str))


def summary_table(metrics: dict, seeds=None) -> str:
    """A per-seed table and the across-seed summary, as printed at the end of `jaxseed run`."""
    lines = []
    for split, m in metrics["splits"].items():
        names = list(m["per_seed"])
        lines.append(f"{metrics['task']} / {split}  ({m['num_examples']} examples, {metrics['num_seeds']} seeds)")
        lines.append("  seed  " + "  ".join(f"{n:>9}" for n in names))
        for i in range(metrics["num_seeds"]):
            tag = "" if seeds is None else f" (init {seeds.init[i]}, order {seeds.order[i]}, dropout {seeds.dropout[i]})"
            lines.append(f"  {i:>4}  " + "  ".join(f"{m['per_seed'][n][i]:9.4f}" for n in names) + tag)
        for stat in ("mean", "std", "min", "max"):
            lines.append(f"  {stat:>4}  " + "  ".join(f"{m['summary'][n][stat]:9.4f}" for n in names))
        base = ", ".join(f"{n} {v:.4f}" for n, v in m["majority_baseline"].items())
        failed = ", ".join(f"{n} {v}" for n, v in m["failed_runs"].items())
        lines.append(f"  majority-class baseline: {base}; failed runs (at or below it): {failed}")
        if "correct_consistency" in m:
            lines.append(f"  all seeds agree on {m['consistency']:.1%} of examples (consistency); "
                         f"all seeds right on {m['correct_consistency']:.1%} (correct consistency)")
        else:
            lines.append(f"  all seeds within {m['consistency_tolerance']} of each other on {m['consistency']:.1%} of examples")
    return "\n".join(lines)
