"""A whole study run: config → data → model → vmapped training → predictions [S, N] → metrics → one folder.

The folder holds config.json (resolved, with versions and devices), predictions.npz, metrics.json,
examples.parquet (one row per dev example) and curves.npz (plus evals.npz with eval_every). It is written to
a temporary sibling and renamed into place, so a failed run leaves nothing half-written.
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

from jaxseed import checkpoint as checkpoint_lib
from jaxseed import data as data_lib
from jaxseed import early_stop as early_stop_lib
from jaxseed import example_table
from jaxseed import metrics as metrics_lib
from jaxseed.models import encoder as model_lib
from jaxseed import models, prompts
from jaxseed import train as train_lib
from jaxseed import units as units_lib
from jaxseed.config import (SWEEP_KEYS, Config, ConfigError, Seeds, is_sweep, keep_count, resolve_seeds,
                            sweep_rows, to_dict)
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


def score(name: str, pred_SxN, label_N, num_labels: int, extras: dict | None = None) -> np.ndarray:
    """One task metric per seed (SuperGLUE's unit metrics from jaxseed.units)."""
    if name in units_lib.UNIT_METRICS:
        return units_lib.score(name, pred_SxN, label_N, num_labels, extras or {})
    fn = metrics_lib.METRICS[name]
    if name in ("mcc", "macro_f1"):
        return np.asarray(fn(pred_SxN, label_N, num_labels))
    return np.asarray(fn(pred_SxN, label_N))


def held_out_scores(task: Task, logits_SxNxC, held) -> np.ndarray:
    """Early stop's choice: each seed's primary metric on the held-out training examples (never a dev split)."""
    pred = jnp.asarray(predictions(task, np.asarray(logits_SxNxC), held.extras))
    return np.asarray(score(task.primary_metric, pred, held.label_N, task.num_labels, held.extras))


def split_metrics(task: Task, pred_SxN, label_N, majority: int | None, extras: dict | None = None) -> dict:
    pred, label = jnp.asarray(pred_SxN), jnp.asarray(label_N)
    per_seed = {m: score(m, pred, label, task.num_labels, extras) for m in task.metrics}
    if task.benchmark == "superglue":
        baseline = {m: units_lib.baseline(m, label, majority, task.num_labels, extras or {}) for m in task.metrics}
    else:
        baseline = {m: float(metrics_lib.majority_baseline(m, label, majority, task.num_labels)) for m in task.metrics}
    out = {
        "num_examples": int(label.shape[0]),
        "majority_baseline": baseline,
        "per_seed": {m: [float(x) for x in v] for m, v in per_seed.items()},
        "summary": {m: metrics_lib.summarize(v) for m, v in per_seed.items()},
        "failed_runs": {m: int(np.sum(metrics_lib.failed_runs(v, baseline[m]))) for m, v in per_seed.items()
                        if np.isfinite(baseline[m])},  # AX-g gender parity has no baseline
    }
    if task.is_regression:
        out["consistency"] = float(metrics_lib.consistency_within(pred, REGRESSION_TOLERANCE))
        out["consistency_tolerance"] = REGRESSION_TOLERANCE
        out["mean_example_std"] = float(jnp.mean(metrics_lib.score_std(pred)))
    else:
        out["consistency"] = float(metrics_lib.consistency(pred))
        out["correct_consistency"] = float(metrics_lib.correct_consistency(pred, label))
        out["pairwise_agreement"] = float(metrics_lib.pairwise_agreement(pred))
    units = units_lib.unit_summary(task.unit, pred, label, extras or {})
    if units is not None:  # MultiRC questions, ReCoRD queries: the natural unit groups several rows
        out["units"] = units
    return out


def predictions(task: Task, logits_SxNxC: np.ndarray, extras: dict | None = None) -> np.ndarray:
    if task.formulation == "candidate":  # ReCoRD: 1 on each seed's best-scoring candidate of each query
        unit, g = units_lib.dense_units(extras["unit"])
        return np.asarray(units_lib.record_choice(logits_SxNxC[..., 1] - logits_SxNxC[..., 0], unit, g))
    return logits_SxNxC[..., 0] if task.is_regression else logits_SxNxC.argmax(-1).astype(np.int32)


def eval_tasks(cfg: Config, task: Task) -> dict[str, Task]:
    """The extra evaluation sets (SuperGLUE AX-b / AX-g on an RTE run): split name -> task. They must share the
    training task's label space, and are read from the same data_dir."""
    out = {}
    for name in cfg.eval_tasks or []:
        et = get_task(name)
        if et.label_names != task.label_names or et.formulation != "classify" or task.formulation != "classify":
            raise ValueError(f"config key 'eval_tasks': '{et.name}' has labels {et.label_names}, which a model "
                             f"trained on '{task.name}' ({task.label_names}) cannot predict")
        out[et.name] = et
    return out


def prepare(cfg: Config):
    """Every check on user input, before any training: a bad task, model, data folder or output folder
    raises ConfigError with one line."""
    try:
        task = get_task(cfg.task)
        seeds = resolve_seeds(cfg.seeds)
        if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
            raise ValueError(f"data_dir not found: {cfg.data_dir}")
        checkpoint_lib.check_output(cfg)  # not empty, an interrupted run, a refused resume, not writable
        model_dir = model_lib.resolve_model_dir(cfg.model)
        model_config = models.read_config(model_dir)  # unsupported model_type / config values: one line
        models.lora_from_config(cfg, model_config)  # LoRA target names checked before any weight is read
        if models.is_decoder(model_config) and getattr(task, "formulation", "classify") != "classify":
            raise ValueError(f"task '{task.name}': decoder models support classification tasks only")
        train_ex = data_lib.load_split(task, "train", cfg.data_dir).head(cfg.max_train_examples)
        if cfg.early_stop:  # a held-out part too small, or too large to leave a batch: refused before any work
            early_stop_lib.held_mask(train_ex.extras.get("unit"), len(train_ex), cfg.early_stop, cfg.batch_size)
        dev_ex = {s: data_lib.load_split(task, s, cfg.data_dir).head(cfg.max_eval_examples) for s in task.dev_splits}
        dev_ex |= {s: data_lib.load_split(et, et.dev_splits[0], cfg.data_dir).head(cfg.max_eval_examples)
                   for s, et in eval_tasks(cfg, task).items()}
        pretrained = models.load_pretrained(str(model_dir), models.base_dtype(cfg, model_config))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return task, seeds, model_dir, pretrained, train_ex, dev_ex


def run(cfg: Config, progress: bool = True, hp: dict | None = None) -> Path:
    """hp: optional per-seed hyperparameter values (make_train's train); they are not part of the config, so a
    resume must pass the same ones."""
    from transformers import AutoTokenizer  # heavy import, after the config is known to be valid

    if checkpoint_lib.is_complete(cfg):
        return cfg.resolved_output_dir
    phases = {"started_at": time.time()}  # the run's phases in metrics.json's timing (benchmarks/bench_study.py)
    task, seeds, model_dir, pretrained, train_ex, dev_ex = prepare(cfg)
    phases["load_s"] = time.time() - phases["started_at"]
    if cfg.overwrite and not cfg.resume:  # a fresh start: an earlier run's checkpoints must not be resumed
        checkpoint_lib.remove(cfg)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if models.is_decoder(pretrained.config):  # a prompt of named fields, truncated from the front
        enc = lambda ex: prompts.encode(tokenizer, task.text_fields, ex, cfg.max_length)
    else:
        enc = lambda ex: data_lib.encode(tokenizer, ex, cfg.max_length)
    train_enc = enc(train_ex)
    dev_enc = {s: enc(e) for s, e in dev_ex.items()}
    phases["tokenize_s"] = time.time() - phases["started_at"] - phases["load_s"]
    early = None
    if cfg.early_stop:  # a fixed part of the training set, removed from training, chooses the seeds kept
        train_enc, held_enc = early_stop_lib.split(train_enc, cfg.early_stop, cfg.batch_size)
        early = early_stop_lib.Plan(cfg.early_stop["at"], keep_count(cfg.early_stop, len(seeds)), len(seeds), held_enc,
                                    lambda logits, held: held_out_scores(task, logits, held))
    if len(train_enc.label_N) < cfg.batch_size:
        raise ConfigError(f"config key 'batch_size': {cfg.batch_size} exceeds the {len(train_enc.label_N)} training examples")
    total, warmup = train_lib.num_steps(cfg, len(train_enc.label_N))
    result = train_lib.make_train(cfg, task, pretrained, train_enc, dev_enc, progress, checkpoints=True,
                                  early=early)(seeds, hp)

    out = cfg.resolved_output_dir
    if not is_primary():  # several processes: process 0 alone writes the folder (it holds every seed's results)
        return out
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rows, values = sweep_rows(cfg, seeds)  # a sweep's rows: the grid x the seeds
        es = None
        if result.early_stop is not None:  # every row recorded; the results hold the kept rows only
            held_pred = predictions(task, result.early_stop["held_logits"], early.held.extras)
            es = early_stop_lib.results(result.early_stop, early, cfg, rows, values, task.primary_metric, held_pred)
            kept = result.early_stop["kept_rows"]
            rows = Seeds(*(tuple(s[i] for i in kept) for s in (rows.init, rows.order, rows.dropout)))
            values = {k: [v[i] for i in kept] for k, v in values.items()}
        _write(tmp, cfg, task, rows, pretrained, train_enc, dev_enc, result, total, warmup, model_dir, values, es,
               phases)
        example_table.write_run(tmp, task, {s: e.texts for s, e in dev_ex.items()})
        checkpoint_lib.move_results(tmp, cfg)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write(folder: Path, cfg, task, seeds, pretrained, train_enc, dev_enc, result, total, warmup, model_dir, values,
           early_stop=None, phases=None):
    majority = None if task.is_regression else data_lib.majority_class(train_enc.label_N)
    splits = list(dev_enc)
    split_task = {s: task for s in splits} | eval_tasks(cfg, task)
    preds = {s: predictions(task, result.logits[s], dev_enc[s].extras) for s in splits}
    logits = {s: result.logits[s][..., 0] if task.is_regression else result.logits[s] for s in splits}
    np.savez(
        folder / "predictions.npz", **_extras(dev_enc),
        pred=np.concatenate([preds[s] for s in splits], axis=1),
        logits=np.concatenate([logits[s] for s in splits], axis=1),
        label=np.concatenate([dev_enc[s].label_N for s in splits]),
        example_id=np.concatenate([dev_enc[s].example_id_N for s in splits]),
        split=np.concatenate([np.full(len(dev_enc[s].label_N), s) for s in splits]),
        seed_init=np.asarray(seeds.init), seed_order=np.asarray(seeds.order), seed_dropout=np.asarray(seeds.dropout),
        **({k: np.asarray(v, np.float64) for k, v in values.items()} if is_sweep(cfg) else {}))  # sweep rows
    np.savez(folder / "curves.npz", step=np.arange(1, total + 1), loss=result.loss_TxS, lr=result.lr_TxS)
    history = []
    if result.history:
        np.savez(folder / "evals.npz", step=np.asarray([h[0] for h in result.history]),
                 **{f"pred_{s}": np.stack([predictions(task, h[1][s]) for h in result.history]) for s in splits})
        for step, lg in result.history:
            history.append({"step": step, **{s: {m: metrics_lib.summarize(score(
                m, jnp.asarray(predictions(task, lg[s], dev_enc[s].extras)), dev_enc[s].label_N,
                task.num_labels, dev_enc[s].extras)) for m in split_task[s].metrics} for s in splits}})
    metrics = {"task": task.name, "model": cfg.model, "num_seeds": len(seeds), "primary_metric": task.primary_metric,
               "splits": {s: split_metrics(split_task[s], preds[s], dev_enc[s].label_N, majority, dev_enc[s].extras)
                          for s in splits},
               "history": history, "sweep": _sweep_metrics(cfg, split_task, preds, dev_enc, majority, values),
               "timing": (phases or {}) | {"compile_s": result.compile_s, "train_s": result.train_s,
                                           "eval_s": result.eval_s,
                                           "steps_per_s": total / result.train_s if result.train_s > 0 else None}}
    _leave_out_diverged(metrics, result.diverged_S,
                        lambda keep: {s: split_metrics(split_task[s], preds[s][keep], dev_enc[s].label_N, majority,
                                                         dev_enc[s].extras) for s in splits})
    if early_stop is not None:  # metrics.json's early_stop section; early_stop.npz: the held-out ids and scores
        early_stop_lib.write(folder, *early_stop, metrics)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    resolved = to_dict(cfg)  # majority: the training set's majority class, for baselines recomputed later
    if cfg.checkpoint_dir:  # absolute, so `jaxseed export` finds the weights from anywhere
        resolved["checkpoint_dir"] = str(Path(cfg.checkpoint_dir).absolute())
    resolved.update({
        "task_info": task.info() | {"majority_class": majority,
                                    "split_tasks": {s: t.info() for s, t in split_task.items() if t is not task}},
        "model_dir": str(model_dir), "encoder": pretrained.config.__dict__,
        "train_examples": int(len(train_enc.label_N)), "train_length": train_enc.length,
        "eval_lengths": {s: e.length for s, e in dev_enc.items()}, "total_steps": total, "warmup_steps": warmup,
        "versions": _versions(), "devices": [str(d) for d in jax.devices()], "platform": jax.default_backend(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    (folder / "config.json").write_text(json.dumps(resolved, indent=2, default=str))


def _sweep_metrics(cfg, split_task, preds, dev_enc, majority, values) -> list:
    """With swept hyperparameters: the split metrics of each grid member's rows (the top level pools all rows)."""
    if not is_sweep(cfg):
        return []
    keys = list(zip(*(values[k] for k in SWEEP_KEYS)))
    out = []
    for member in dict.fromkeys(keys):
        rows = np.asarray([key == member for key in keys])
        out.append(dict(zip(SWEEP_KEYS, member)) | {"splits": {
            s: split_metrics(split_task[s], preds[s][rows], dev_enc[s].label_N, majority, dev_enc[s].extras)
            for s in preds}})
    return out


def _extras(dev_enc: dict) -> dict:
    """Per-example extras (unit ids, MultiRC paragraph/question/answer ids, ReCoRD candidates and gold answers,
    AX-g pairs) as predictions.npz arrays over all splits; a split without one is filled with -1 or ""."""
    keys = dict.fromkeys(k for e in dev_enc.values() for k in e.extras)
    out = {}
    for k in keys:
        like = next(e.extras[k] for e in dev_enc.values() if k in e.extras)
        fill = "" if like.dtype.kind == "U" else -1
        out[k] = np.concatenate([e.extras.get(k, np.full(len(e.label_N), fill, like.dtype)) for e in dev_enc.values()])
    return out


def _leave_out_diverged(metrics: dict, diverged_S, splits_of) -> None:
    """Seeds whose loss or gradient norm became non-finite: listed with that step under `diverged`, and the
    across-seed statistics of every split recomputed without them (splits_of(keep_S)); per-seed scores keep all."""
    diverged = np.zeros(metrics["num_seeds"], np.int32) if diverged_S is None else np.asarray(diverged_S)
    keep = diverged == 0
    metrics["diverged"] = [{"seed": i, "step": int(d)} for i, d in enumerate(diverged) if d]
    metrics["seeds_in_statistics"] = int(keep.sum()) if keep.any() else metrics["num_seeds"]
    if keep.any() and not keep.all():  # all diverged: nothing healthy to compare, so the statistics keep them all
        for split, m in splits_of(keep).items():
            metrics["splits"][split] = m | {"per_seed": metrics["splits"][split]["per_seed"]}


def summary_table(metrics: dict, seeds=None) -> str:
    """A per-seed table and the across-seed summary, as printed at the end of `jaxseed run`."""
    lines = []
    for split, m in metrics["splits"].items():
        names = list(m["per_seed"])
        lines.append(f"{metrics['task']} / {split}  ({m['num_examples']} examples, {metrics['num_seeds']} seeds)")
        lines.append("  seed  " + "  ".join(f"{n:>9}" for n in names))
        diverged = {d["seed"]: d["step"] for d in metrics.get("diverged", [])}
        es = metrics.get("early_stop")
        if es:  # the rows are the kept seeds
            seeds = Seeds(*zip(*[(r["init"], r["order"], r["dropout"]) for r in es["seeds"] if r["kept"]]))
        for i in range(metrics["num_seeds"]):
            tag = "" if seeds is None else f" (init {seeds.init[i]}, order {seeds.order[i]}, dropout {seeds.dropout[i]})"
            tag += f"  diverged at step {diverged[i]}" if i in diverged else ""
            lines.append(f"  {i:>4}  " + "  ".join(f"{m['per_seed'][n][i]:9.4f}" for n in names) + tag)
        for stat in ("mean", "std", "min", "max"):
            lines.append(f"  {stat:>4}  " + "  ".join(f"{m['summary'][n][stat]:9.4f}" for n in names))
        if diverged:
            left = metrics["num_seeds"] - metrics["seeds_in_statistics"]
            lines.append(f"  {left} diverged seed(s) left out of mean, std, min, max, failed runs and consistency")
        base = ", ".join(f"{n} {v:.4f}" for n, v in m["majority_baseline"].items())
        failed = ", ".join(f"{n} {v}" for n, v in m["failed_runs"].items())
        lines.append(f"  majority-class baseline: {base}; failed runs (at or below it): {failed}")
        if "correct_consistency" in m:
            lines.append(f"  all seeds agree on {m['consistency']:.1%} of examples (consistency); "
                         f"all seeds right on {m['correct_consistency']:.1%} (correct consistency)")
        else:
            lines.append(f"  all seeds within {m['consistency_tolerance']} of each other on {m['consistency']:.1%} of examples")
        if "units" in m:
            u = m["units"]
            lines.append(f"  per {u['unit']} ({u['num_units']}): all seeds agree on {u['consistency']:.1%}, "
                         f"all seeds right on {u['correct_consistency']:.1%}")
    if metrics.get("early_stop"):
        lines.append(early_stop_lib.summary_line(metrics["early_stop"]))
    return "\n".join(lines)
