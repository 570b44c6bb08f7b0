"""Typed run configuration, filled from YAML and `--set key=value` overrides.

Every problem with a config is a `ConfigError` with a one-line message naming the key; the CLI turns it into
exit code 2 before any work starts.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config key or value the run refuses, raised before any work."""


@dataclasses.dataclass(frozen=True)
class Seeds:
    """Three independent seed streams per run (Dodge et al. 2020): head init, data order, dropout."""

    init: tuple[int, ...]
    order: tuple[int, ...]
    dropout: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.init)


@dataclasses.dataclass(frozen=True)
class Config:
    task: str
    model: str
    seeds: Any = 4  # a count, a list of ints, or {init, order, dropout[, grid]}; see `resolve_seeds`
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 16  # per seed
    eval_batch_size: int = 64
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    dropout: float | None = None  # None keeps the checkpoint's hidden/attention dropout
    max_length: int = 128
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    train_mode: str = "full"  # full fine-tuning, or "head": a linear probe on a frozen, shared backbone
    data_dir: str | None = None  # None loads nyu-mll/glue through `datasets`; else a glue_data folder
    output_dir: str | None = None  # None: runs/<task>-<model name>
    overwrite: bool = False
    seed_chunk: int | None = None  # seeds per compiled program; None: as many as fit in free memory (planner)
    eval_every: int | None = None  # also evaluate every k steps
    log_every: int = 10
    dtype: str = "float32"  # compute dtype; parameters stay float32
    remat: bool = False
    seed_loop: bool | None = None  # step seeds one a device at a time instead of vmap (train.slot_size); None: on CPU
    # Sweeps: learning_rate, weight_decay and warmup_ratio above may also be lists; see `sweep_rows`.
    # SuperGLUE diagnostics: extra evaluation sets scored with the model trained on `task`, e.g. [axb, axg] on RTE
    eval_tasks: list | None = None
    # checkpoints and resume (checkpoint.py)
    checkpoint_every: int = 200  # steps between checkpoints; there is always one at the end of each chunk
    checkpoint_dir: str | None = None  # None: <output_dir>/checkpoints
    checkpoint_keep: int = 2  # the last few checkpoints of each chunk kept while it trains
    keep_weights: bool = True  # keep the final checkpoint (the trained weights, for `jaxseed export`) after the run
    resume: bool = False  # continue from the latest complete checkpoint (`jaxseed run --resume`)
    # LoRA (train_mode: lora): adapters + head trained per seed on one shared frozen base
    lora: dict | None = None  # {r, alpha, dropout, target_modules, rslora}; unset keys take peft's defaults
    base_dtype: str | None = None  # the frozen base's weights; None: bfloat16 for a decoder's LoRA base, else float32
    # "Start many, stop early" (Dodge et al. 2020; early_stop.py): {at, keep, holdout, split_seed}
    early_stop: dict | None = None

    @property
    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return Path("runs") / f"{self.task}-{Path(self.model.rstrip('/')).name}"


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_POSITIVE_INT = ("batch_size", "eval_batch_size", "max_length", "log_every", "checkpoint_every", "checkpoint_keep")
_OPTIONAL_POSITIVE_INT = ("max_steps", "max_train_examples", "max_eval_examples", "seed_chunk", "eval_every")
_FLOAT = ("learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm", "adam_beta1", "adam_beta2",
          "adam_epsilon", "epochs")
SWEEP_KEYS = ("learning_rate", "weight_decay", "warmup_ratio")  # a list sweeps: grid x seeds in one program
_CHOICES = {"train_mode": ("full", "head", "lora"), "dtype": ("float32", "bfloat16")}
_LORA_KEYS = ("r", "alpha", "dropout", "target_modules", "rslora")
_EARLY_STOP_KEYS = ("at", "keep", "holdout", "split_seed")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(key: str, ok: bool, want: str, value) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': expected {want}, got {value!r}")


def _number(key: str, v) -> float:
    # PyYAML reads "3e-5" (no dot) as a string; users write learning rates that way, so accept it.
    try:
        if not isinstance(v, bool) and isinstance(v, (int, float, str)):
            return float(v)
    except ValueError:
        pass
    raise ConfigError(f"config key '{key}': expected a number, got {v!r}")


def _validate(raw: dict) -> dict:
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}' (known keys: {', '.join(_FIELDS)})")
    for key in ("task", "model"):
        if key not in raw or raw[key] in (None, ""):
            raise ConfigError(f"config key '{key}' is required")
        _check(key, isinstance(raw[key], str), "a string", raw[key])
    out = dict(raw)
    for key, v in raw.items():
        if key in _POSITIVE_INT:
            _check(key, _is_int(v) and v > 0, "a positive integer", v)
        elif key in _OPTIONAL_POSITIVE_INT:
            _check(key, v is None or (_is_int(v) and v > 0), "a positive integer or null", v)
        elif key in SWEEP_KEYS and isinstance(v, (list, tuple)):
            _check(key, len(v) > 0, "a number or a non-empty list of numbers", v)
            try:
                out[key] = tuple(_number(key, x) for x in v)
            except ConfigError:
                raise ConfigError(f"config key '{key}': expected a number or a list of numbers, got {v!r}") from None
        elif key in _FLOAT:
            out[key] = _number(key, v)
        elif key in _CHOICES:
            _check(key, v in _CHOICES[key], " or ".join(map(repr, _CHOICES[key])), v)
        elif key in ("overwrite", "remat", "keep_weights", "resume"):
            _check(key, isinstance(v, bool), "true or false", v)
        elif key == "seed_loop":
            _check(key, v is None or isinstance(v, bool), "true, false or null", v)
        elif key in ("data_dir", "output_dir", "checkpoint_dir"):
            _check(key, v is None or isinstance(v, str), "a path or null", v)
        elif key == "eval_tasks":
            _check(key, v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                   "a list of task names or null", v)
        elif key == "dropout":
            _check(key, v is None or (isinstance(v, (int, float)) and 0 <= v < 1), "a number in [0, 1) or null", v)
        elif key == "lora":
            out[key] = _lora(v, raw.get("train_mode", Config.train_mode))
        elif key == "base_dtype":
            _check(key, v in (None, "float32", "bfloat16"), "'float32', 'bfloat16' or null", v)
        elif key == "early_stop":
            out[key] = _early_stop(v, len(resolve_seeds(raw.get("seeds", Config.seeds))))
    values = lambda key: out[key] if isinstance(out[key], tuple) else (out[key],)
    for key in ("learning_rate", "weight_decay", "max_grad_norm", "adam_epsilon", "epochs"):
        if key in out:
            _check(key, all(x >= 0 for x in values(key)), "a non-negative number", raw[key])
    for key in ("warmup_ratio", "adam_beta1", "adam_beta2"):
        if key in out:
            _check(key, all(0 <= x < 1 or (key == "warmup_ratio" and x == 1) for x in values(key)),
                   "a number in [0, 1)", raw[key])
    if out.get("base_dtype") == "bfloat16" and out.get("train_mode", Config.train_mode) == "full":
        raise ConfigError("config key 'base_dtype': bfloat16 needs a frozen base (train_mode head or lora)")
    if "epochs" in out and out["epochs"] == 0 and not out.get("max_steps"):
        raise ConfigError("config key 'epochs': must be positive unless max_steps is set")
    resolve_seeds(out.get("seeds", Config.seeds))
    return out


def _lora(v, train_mode: str) -> dict | None:
    """The `lora` mapping, checked key by key; which target names exist is checked against the model later."""
    if v is None:
        return None
    _check("lora", isinstance(v, dict), "a mapping {r, alpha, dropout, target_modules, rslora}", v)
    if train_mode != "lora":
        raise ConfigError(f"config key 'lora': only used with train_mode: lora (train_mode is {train_mode!r})")
    extra = sorted(set(v) - set(_LORA_KEYS))
    if extra:
        raise ConfigError(f"unknown config key 'lora.{extra[0]}' (known: {', '.join(_LORA_KEYS)})")
    out = dict(v)
    if "r" in v:
        _check("lora.r", _is_int(v["r"]) and v["r"] > 0, "a positive integer", v["r"])
    if "alpha" in v:
        out["alpha"] = _number("lora.alpha", v["alpha"])
        _check("lora.alpha", out["alpha"] > 0, "a positive number", v["alpha"])
    if "dropout" in v:
        out["dropout"] = _number("lora.dropout", v["dropout"])
        _check("lora.dropout", 0 <= out["dropout"] < 1, "a number in [0, 1)", v["dropout"])
    if "rslora" in v:
        _check("lora.rslora", isinstance(v["rslora"], bool), "true or false", v["rslora"])
    t = v.get("target_modules")
    _check("lora.target_modules", t is None or t == "all-linear" or (
        isinstance(t, list) and t and all(isinstance(x, str) and x for x in t)),
           "a non-empty list of module names, 'all-linear' or null", t)
    return out


def _early_stop(v, num_seeds: int) -> dict | None:
    """The `early_stop` mapping, with defaults filled in. `keep` is checked against the seeds here (a sweep keeps
    that many of each grid member), so a keep larger than the seeds fails before any work."""
    if v is None:
        return None
    _check("early_stop", isinstance(v, dict), "a mapping {at, keep, holdout, split_seed}", v)
    extra = sorted(set(v) - set(_EARLY_STOP_KEYS))
    if extra:
        raise ConfigError(f"unknown config key 'early_stop.{extra[0]}' (known: {', '.join(_EARLY_STOP_KEYS)})")
    for key in ("at", "keep"):
        if key not in v:
            raise ConfigError(f"config key 'early_stop.{key}' is required")
    out = {"at": _number("early_stop.at", v["at"]), "keep": v["keep"], "holdout": v.get("holdout", 0.1),
           "split_seed": v.get("split_seed", 0)}
    _check("early_stop.at", 0 < out["at"] < 1, "a fraction of training in (0, 1)", v["at"])
    for key, what in (("keep", "seeds"), ("holdout", "training examples")):
        x = out[key]
        if isinstance(x, str):  # "0.5" from YAML strings, as for learning rates
            x = out[key] = _number(f"early_stop.{key}", x)
        ok = (_is_int(x) and x >= 1) or (isinstance(x, float) and 0 < x < 1)
        _check(f"early_stop.{key}", ok, f"a count >= 1 or a fraction in (0, 1) of the {what}", v.get(key, x))
    _check("early_stop.split_seed", _is_int(out["split_seed"]) and out["split_seed"] >= 0, "a non-negative integer",
           out["split_seed"])
    if _is_int(out["keep"]) and out["keep"] > num_seeds:
        raise ConfigError(f"config key 'early_stop.keep': {out['keep']} exceeds the {num_seeds} seeds")
    return out


def keep_count(early_stop: dict, num_seeds: int) -> int:
    """The number of seeds `early_stop.keep` keeps: a count as is, a fraction rounded half up, at least 1."""
    keep = early_stop["keep"]
    return keep if _is_int(keep) else max(1, min(num_seeds, int(keep * num_seeds + 0.5)))


def resolve_seeds(spec) -> Seeds:
    """A count n → seeds 0..n-1 on all three streams; a list → those ints on all three streams;
    a mapping {init, order, dropout} → lists zipped (a list of length 1 broadcasts), or their full
    product with `grid: true` (Dodge et al.'s init × order grids)."""

    def ints(name, v):
        v = [v] if _is_int(v) else v
        _check(f"seeds.{name}" if name else "seeds", isinstance(v, list) and v and all(_is_int(x) and x >= 0 for x in v),
               "a non-negative integer or a non-empty list of them", v)
        return list(v)

    if _is_int(spec):
        _check("seeds", spec > 0, "a positive count, a list of integers, or a mapping", spec)
        s = list(range(spec))
        return Seeds(tuple(s), tuple(s), tuple(s))
    if isinstance(spec, list):
        s = ints("", spec)
        return Seeds(tuple(s), tuple(s), tuple(s))
    _check("seeds", isinstance(spec, dict), "a count, a list of integers, or a mapping", spec)
    extra = set(spec) - {"init", "order", "dropout", "grid"}
    if extra:
        raise ConfigError(f"unknown config key 'seeds.{sorted(extra)[0]}' (known: init, order, dropout, grid)")
    grid = spec.get("grid", False)
    _check("seeds.grid", isinstance(grid, bool), "true or false", grid)
    lists = {k: ints(k, spec.get(k, 0)) for k in ("init", "order", "dropout")}
    if grid:
        rows = list(itertools.product(lists["init"], lists["order"], lists["dropout"]))
    else:
        n = max(len(v) for v in lists.values())
        for k, v in lists.items():
            if len(v) not in (1, n):
                raise ConfigError(f"config key 'seeds.{k}': has {len(v)} entries, expected 1 or {n} (or set grid: true)")
        rows = list(zip(*[v * n if len(v) == 1 else v for v in lists.values()]))
    init, order, dropout = (tuple(c) for c in zip(*rows))
    return Seeds(init, order, dropout)


def sweep_rows(cfg: Config, seeds: Seeds) -> tuple[Seeds, dict]:
    """The rows of a run: the grid of the swept values (learning_rate, then weight_decay, then warmup_ratio) times
    the seeds, grid-major. Returns the seeds of each row and {key: value of each row} for the SWEEP_KEYS; without
    lists that is the seeds as given and the scalar values repeated."""
    axes = [v if isinstance(v, tuple) else (v,) for v in (getattr(cfg, k) for k in SWEEP_KEYS)]
    grid = list(itertools.product(*axes))
    rows = Seeds(seeds.init * len(grid), seeds.order * len(grid), seeds.dropout * len(grid))
    return rows, {k: [g[i] for g in grid for _ in range(len(seeds))] for i, k in enumerate(SWEEP_KEYS)}


def is_sweep(cfg: Config) -> bool:
    return any(isinstance(getattr(cfg, k), tuple) for k in SWEEP_KEYS)


def parse_set(items: list[str]) -> dict:
    """`--set key=value` pairs; values are parsed as YAML so numbers, lists and mappings work."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: cannot parse value {value!r}") from None
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path}: expected a mapping of keys to values")
    raw.update(overrides or {})
    return Config(**_validate(raw))


def to_dict(cfg: Config) -> dict:
    d = dataclasses.asdict(cfg)
    s = resolve_seeds(cfg.seeds)
    d["seeds"] = {"init": list(s.init), "order": list(s.order), "dropout": list(s.dropout)}
    d["output_dir"] = str(cfg.resolved_output_dir)
    return d
