"""`jaxseed export`: the trained weights of chosen seeds of a run, one Hugging Face folder a seed.

The weights come from the final checkpoint of each chunk (kept unless the run set keep_weights: false). A folder
holds config.json (with the task's label names), model.safetensors and the tokenizer files, and loads with
transformers' AutoModelForSequenceClassification. Writers are chosen by train_mode, so other kinds of runs
(e.g. adapters) add a writer here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxseed.models import encoder as model_lib
from jaxseed.config import ConfigError

ARCHITECTURES = {"bert": "BertForSequenceClassification", "roberta": "RobertaForSequenceClassification"}


def final_weights(run_dir) -> dict:
    """The trained parameters of every seed of a finished run, stacked [S, ...] as numpy, from the checkpoints."""
    run_dir = Path(run_dir)
    cfg = _read(run_dir / "config.json")
    folder = Path(cfg["checkpoint_dir"]) if cfg.get("checkpoint_dir") else run_dir / "checkpoints"
    chunks = sorted(folder.glob("kept-*")) or sorted(folder.glob("chunk-*"))  # early_stop: the kept seeds' chunks
    if not chunks:
        raise ConfigError(f"no checkpoints in {folder} (the run kept no weights: keep_weights was false?)")
    parts = []
    for d in chunks:
        mngr = ocp.CheckpointManager(d.absolute(), options=ocp.CheckpointManagerOptions(create=False),
                                     item_names=("state", "meta"))
        step = mngr.latest_step()
        if step != cfg["total_steps"]:
            raise ConfigError(f"{d}: latest checkpoint is step {step}, not the final step {cfg['total_steps']}")
        out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
        n = len(out["meta"]["seeds"]["init"])  # padded seeds of the last chunk are dropped
        parts.append(jax.tree.map(lambda x: np.asarray(x)[:n], out["state"]["trained"]))
        mngr.close()
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"not a run folder (no {path.name}): {path.parent}")
    return json.loads(path.read_text())


def parse_seeds(spec: str | None, num_seeds: int) -> list[int]:
    if spec is None:
        return list(range(num_seeds))
    try:
        seeds = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated seed indices, got {spec!r}") from None
    bad = [s for s in seeds if not 0 <= s < num_seeds]
    if not seeds or bad:
        raise ConfigError(f"--seeds: {bad[0] if bad else spec!r} is not a seed index of this run (0-{num_seeds - 1})")
    return seeds


def hf_state_dict(params: dict, family: str) -> dict[str, np.ndarray]:
    """One seed's parameters {'backbone', 'head'} under transformers' XForSequenceClassification names."""
    prefix = "bert." if family == "bert" else "roberta."
    out = {}
    for path, w in jax.tree_util.tree_flatten_with_path(params["backbone"])[0]:
        keys = tuple(p.key for p in path)
        out[prefix + model_lib._hf_name(keys)] = w.T if keys[-1] == "kernel" else w  # flax [in, out] -> torch [out, in]
    dense, head_out = ("bert.pooler.dense", "classifier") if family == "bert" else ("classifier.dense", "classifier.out_proj")
    for ours, theirs in (("dense", dense), ("out", head_out)):
        out[f"{theirs}.weight"] = params["head"][ours]["kernel"].T
        out[f"{theirs}.bias"] = params["head"][ours]["bias"]
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def hf_config(run_cfg: dict, model_dir: Path) -> dict:
    base = json.loads((model_dir / "config.json").read_text())
    info = run_cfg["task_info"]
    family = run_cfg["encoder"]["family"]
    names = info["label_names"] or ["score"]
    base.update({"architectures": [ARCHITECTURES[family]], "num_labels": info["num_labels"],
                 "id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)},
                 "problem_type": "regression" if info["num_labels"] == 1 else "single_label_classification"})
    if run_cfg.get("dropout") is not None:
        base.update(hidden_dropout_prob=run_cfg["dropout"], attention_probs_dropout_prob=run_cfg["dropout"])
    return base


def _write_full(seed_dir: Path, params: dict, run_cfg: dict, model_dir: Path) -> None:
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer

    save_file(hf_state_dict(params, run_cfg["encoder"]["family"]), seed_dir / "model.safetensors",
              metadata={"format": "pt"})
    (seed_dir / "config.json").write_text(json.dumps(hf_config(run_cfg, model_dir), indent=2))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(seed_dir))


WRITERS = {"full": _write_full, "head": _write_full}  # train_mode -> writer of one seed's folder


def export(run_dir, out_dir, seeds: str | None = None) -> list[Path]:
    """Writes OUT/seed-<i> for each chosen seed index; returns the folders."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run_cfg = _read(run_dir / "config.json")
    mode = run_cfg.get("train_mode", "full")
    if mode not in WRITERS:
        raise ConfigError(f"export of train_mode '{mode}' runs is not supported")
    chosen = parse_seeds(seeds, len(run_cfg["seeds"]["init"]))
    model_dir = Path(run_cfg["model_dir"])
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"the run's model folder is gone: {model_dir} (its config and tokenizer are exported too)")
    taken = [out_dir / f"seed-{i}" for i in chosen if (out_dir / f"seed-{i}").exists()]
    if taken:
        raise ConfigError(f"{taken[0]} exists; choose another -o folder")
    trained = final_weights(run_dir)
    backbone = None
    if "backbone" not in trained:  # a frozen, shared backbone: the pretrained one
        backbone = jax.tree.map(np.asarray, model_lib.load_pretrained(str(model_dir)).backbone)
    written = []
    for i in chosen:
        params = jax.tree.map(lambda x: x[i], trained)
        params.setdefault("backbone", backbone)
        final, tmp = out_dir / f"seed-{i}", out_dir / f".seed-{i}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            WRITERS[mode](tmp, params, run_cfg, model_dir)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        written.append(final)
    return written
