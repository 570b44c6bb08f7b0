"""SuperGLUE metrics that need the grouping of examples into natural units, and consistency per unit.

Pure jax.numpy over stacked predictions ``pred_SxN`` with integer unit ids ``unit_N`` in [0, num_units) (dense:
see ``dense_units``), jitted with ``num_units`` static:

- the unit of MultiRC is the question (its answer options are the rows), of ReCoRD the query (one row per
  candidate entity; ``pred`` is 1 on the candidate a seed chose), of COPA the question (one row each already);
- ``unit_consistency``: share of units on which all seeds give identical predictions on every row, i.e. the same
  answer set (MultiRC) or the same entity (ReCoRD); ``unit_correct_consistency``: all seeds right on every row;
  ``chosen_correct_consistency``: all seeds chose a row with value 1 (ReCoRD: an exact-match answer);
- ``record_choice``: each seed's best-scoring candidate of each query; ``chosen_mean``: the mean over units of a
  per-row value at the chosen row (ReCoRD EM / F1 with the per-row max-over-gold values from ``record_values``);
- ``gender_parity`` (AX-g): share of minimal pairs given the same prediction.

``score`` computes any official SuperGLUE metric by name for a run's split (host entry point for run/report).
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxseed import metrics as M

UNIT_METRICS = ("multirc_f1a", "multirc_em", "record_f1", "record_em", "gender_parity")


def dense_units(unit_N) -> tuple[np.ndarray, int]:
    """Unit ids (any ints, rows of a unit contiguous or not) as 0..G-1 in order of first appearance, and G."""
    unit_N = np.asarray(unit_N)
    _, first, inv = np.unique(unit_N, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # sorted-unique order -> order of first appearance
    return rank[inv].astype(np.int32), int(first.size)


def _present(unit_N, num_units, mask_N):
    w_N = jnp.ones(unit_N.shape, jnp.float32) if mask_N is None else jnp.asarray(mask_N, jnp.float32)
    return w_N, jax.ops.segment_sum(w_N, unit_N, num_segments=num_units) > 0


def _unit_mean(ok_G, present_G):
    return jnp.sum(ok_G & present_G) / jnp.sum(present_G)


@functools.partial(jax.jit, static_argnames="num_units")
def unit_consistency(pred_SxN, unit_N, num_units, mask_N=None):
    """Share of units on which every seed predicts the same on every (real) row of the unit."""
    pred_SxN = jnp.atleast_2d(pred_SxN)
    w_N, present_G = _present(unit_N, num_units, mask_N)
    differ_N = jnp.any(pred_SxN != pred_SxN[:1], axis=0) * w_N
    return _unit_mean(jax.ops.segment_sum(differ_N, unit_N, num_segments=num_units) == 0, present_G)


@functools.partial(jax.jit, static_argnames="num_units")
def unit_correct_consistency(pred_SxN, label_N, unit_N, num_units, mask_N=None):
    """Share of units on which every seed is right on every (real) row of the unit (MultiRC: EM for all seeds)."""
    pred_SxN = jnp.atleast_2d(pred_SxN)
    w_N, present_G = _present(unit_N, num_units, mask_N)
    wrong_N = jnp.any(pred_SxN != label_N, axis=0) * w_N
    return _unit_mean(jax.ops.segment_sum(wrong_N, unit_N, num_segments=num_units) == 0, present_G)


@functools.partial(jax.jit, static_argnames="num_units")
def record_choice(score_SxN, unit_N, num_units):
    """1 on the row each seed scores highest within each unit (the first such row on ties), else 0: int [S, N]."""
    score_SxN = jnp.atleast_2d(score_SxN)
    n = score_SxN.shape[1]
    best_SxG = jax.vmap(lambda s: jax.ops.segment_max(s, unit_N, num_segments=num_units))(score_SxN)
    at_best_SxN = score_SxN == best_SxG[:, unit_N]
    rows_SxN = jnp.where(at_best_SxN, jnp.arange(n), n)
    first_SxG = jax.vmap(lambda r: jax.ops.segment_min(r, unit_N, num_segments=num_units))(rows_SxN)
    return (jnp.arange(n) == first_SxG[:, unit_N]).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames="num_units")
def chosen_mean(pred_SxN, value_N, unit_N, num_units):
    """Per seed, the mean over units of value_N at the row chosen in each unit (pred one-hot within units): [S]."""
    pred_SxN = jnp.atleast_2d(pred_SxN)
    _, present_G = _present(unit_N, num_units, None)
    per_SxG = jax.vmap(lambda p: jax.ops.segment_sum(p * value_N, unit_N, num_segments=num_units))(pred_SxN)
    return jnp.sum(per_SxG * present_G, axis=1) / jnp.sum(present_G)


@functools.partial(jax.jit, static_argnames="num_units")
def chosen_correct_consistency(pred_SxN, value_N, unit_N, num_units):
    """Share of units on which every seed chose a row whose value is 1 (ReCoRD: an exact-match answer)."""
    pred_SxN = jnp.atleast_2d(pred_SxN)
    _, present_G = _present(unit_N, num_units, None)
    hit_SxG = jax.vmap(lambda p: jax.ops.segment_sum(p * value_N, unit_N, num_segments=num_units))(pred_SxN)
    return _unit_mean(jnp.all(hit_SxG >= 1, axis=0), present_G)


@functools.partial(jax.jit, static_argnames="num_units")
def gender_parity(pred_SxN, pair_N, num_units):
    """AX-g gender parity score per seed: share of minimal pairs (rows with one pair id) predicted identically."""
    pred_SxN = jnp.atleast_2d(pred_SxN)
    seg = lambda f: jax.vmap(lambda p: f(p, pair_N, num_segments=num_units))(pred_SxN)
    return jnp.mean(seg(jax.ops.segment_max) == seg(jax.ops.segment_min), axis=1)


def record_values(candidate_N, answers_N) -> tuple[np.ndarray, np.ndarray]:
    """Per ReCoRD row, (exact match, token F1) of its candidate against its query's gold answers (JSON lists),
    each the max over gold answers with SQuAD normalisation (metrics.record_scores)."""
    pairs = [M.record_scores([c], [json.loads(a)]) for c, a in zip(candidate_N, answers_N)]
    em, f1 = (np.asarray(v, np.float32) for v in zip(*pairs)) if pairs else (np.zeros(0, np.float32),) * 2
    return em, f1


def _units(extras: dict, key: str = "unit"):
    if key not in extras:
        raise ValueError(f"this metric needs per-example '{key}' ids, which the predictions do not have")
    return dense_units(extras[key])


def score(name: str, pred_SxN, label_N, num_labels: int, extras: dict) -> np.ndarray:
    """One official metric per seed, by name: jaxseed.metrics' plain metrics or the unit metrics above."""
    pred = jnp.asarray(pred_SxN)
    label = None if label_N is None else jnp.asarray(label_N)  # ReCoRD and gender parity do not read it
    if name == "multirc_f1a":
        return np.asarray(M.multirc_f1a(pred, label))
    if name == "multirc_em":
        return np.asarray(M.multirc_em(pred, label, *_units(extras)))
    if name in ("record_em", "record_f1"):
        em, f1 = record_values(extras["candidate"], extras["answers"])
        return np.asarray(chosen_mean(pred, em if name == "record_em" else f1, *_units(extras)))
    if name == "gender_parity":
        return np.asarray(gender_parity(pred, *_units(extras, "pair")))
    fn = M.METRICS[name]
    return np.asarray(fn(pred, label, num_labels) if name in ("mcc", "macro_f1") else fn(pred, label))


def baseline(name: str, label_N, majority: int, num_labels: int, extras: dict) -> float:
    """The majority-class baseline, scored with the same function as the runs. ReCoRD has no class to predict:
    its baseline is chance, a uniformly random candidate of each query. Gender parity has none (NaN): a
    constant prediction scores a perfect 1."""
    label_N = np.asarray(label_N)
    if name in ("record_em", "record_f1"):
        em, f1 = record_values(extras["candidate"], extras["answers"])
        unit, g = _units(extras)
        v = em if name == "record_em" else f1
        return float(np.mean(np.bincount(unit, v, g) / np.bincount(unit, minlength=g)))
    if name == "gender_parity":
        return float("nan")
    return float(score(name, np.full((1,) + label_N.shape, majority, label_N.dtype), label_N, num_labels, extras)[0])


def unit_summary(task_unit: str, pred_SxN, label_N, extras: dict) -> dict | None:
    """Consistency and correct consistency per natural unit, for tasks whose unit groups several rows."""
    if "unit" not in extras:
        return None
    unit, g = _units(extras)
    pred, label = jnp.asarray(pred_SxN), jnp.asarray(label_N)
    if "candidate" in extras:  # ReCoRD: the unit is right when the chosen entity is an exact-match answer
        em, _ = record_values(extras["candidate"], extras["answers"])
        correct = chosen_correct_consistency(pred, em, unit, g)
    else:
        correct = unit_correct_consistency(pred, label, unit, g)
    return {"unit": task_unit, "num_units": g, "consistency": float(unit_consistency(pred, unit, g)),
            "correct_consistency": float(correct)}
