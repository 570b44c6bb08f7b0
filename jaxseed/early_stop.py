"""Start many, stop early (Dodge et al. 2020): train every seed for a fraction of training, score each on a
held-out part of the *training* data, and train only the best to the end, in smaller chunks.

The held-out part is fixed by `early_stop.split_seed` alone (the same for every seed, independent of them) and
is removed from training, so the dev splits the study reports never enter the choice. Phase 1 runs the usual
chunks from step 0 to T = max(1, round(at * total)) with the usual schedule; phase 2 trains the kept seeds from
T to the end with their state (parameters, AdamW moments, step counts) carried over, so a kept seed's training
is exactly that of an unstopped run on the same reduced training set.

While phase 1 goes chunk by chunk, only the best `keep` seeds so far (per grid member of a sweep) are held on
the host: the top `keep` of (the top `keep` so far, this chunk) is the top `keep` of all, so host memory stays
at `keep` + one chunk of seeds whatever the number of seeds.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np

from jaxseed.data import Encoded

CHECKPOINT_PREFIX = "kept"  # phase 2's chunk folders: checkpoints/kept-<k>, apart from phase 1's chunk-<k>


@dataclasses.dataclass
class Plan:
    """What make_train needs to stop early. score(logits [S, N, C], held) -> [S] scores, higher is better; it
    is given the held-out examples only (tests spy on it)."""

    at: float
    keep: int  # seeds kept (of each grid member of a sweep)
    num_seeds: int  # seeds of each grid member: rows are grid-major
    held: Encoded
    score: Callable[[np.ndarray, Encoded], np.ndarray]

    def at_step(self, total: int) -> int:
        return min(total, max(1, int(self.at * total + 0.5)))  # rounded half up


def _take(enc: Encoded, rows) -> Encoded:
    return Encoded(enc.ids_NxL[rows], enc.mask_NxL[rows], enc.type_ids_NxL[rows], enc.label_N[rows],
                   enc.example_id_N[rows], {k: np.asarray(v)[rows] for k, v in enc.extras.items()})


def held_mask(unit_N, n: int, early_stop: dict, batch_size: int) -> np.ndarray:
    """Which of the n training examples are held out: `holdout` (a fraction, rounded half up, or a count) of
    the examples, or of the units (MultiRC questions, ReCoRD queries, unit_N) where the task has them, so that
    unit metrics see whole units; which ones is a permutation drawn from `split_seed` alone. ValueError (one
    line naming the key) when either part would be too small."""
    unit_N = np.arange(n) if unit_N is None else np.asarray(unit_N)
    units = np.unique(unit_N)
    h = early_stop["holdout"]
    n_held = h if isinstance(h, int) else int(h * len(units) + 0.5)
    if not 1 <= n_held < len(units):
        raise ValueError(f"config key 'early_stop.holdout': {h!r} holds out {n_held} of the {len(units)} training "
                         f"{'examples' if n == len(units) else 'units'}; expected at least 1 and fewer than all")
    chosen = np.random.default_rng(early_stop["split_seed"]).permutation(len(units))[:n_held]
    held_N = np.isin(unit_N, units[chosen])
    if (~held_N).sum() < batch_size:
        raise ValueError(f"config key 'early_stop.holdout': holding out {int(held_N.sum())} examples leaves "
                         f"{int((~held_N).sum())} to train on, fewer than batch_size {batch_size}")
    return held_N


def split(enc: Encoded, early_stop: dict, batch_size: int) -> tuple[Encoded, Encoded]:
    """(training part, held-out part) of the encoded training set (held_mask); both keep the set's order."""
    held_N = held_mask(enc.extras.get("unit"), len(enc.label_N), early_stop, batch_size)
    return _take(enc, np.flatnonzero(~held_N)), _take(enc, np.flatnonzero(held_N))


def choose(rows, score, diverged, num_seeds: int, keep: int) -> list[int]:
    """The kept rows among `rows` (indices into score / diverged): the best `keep` of each grid member (row //
    num_seeds), by score, a diverged or NaN score last, ties to the lower row. Sorted by row."""
    rows = sorted(rows)
    key = lambda r: (bool(diverged[r]), -score[r] if np.isfinite(score[r]) else math.inf, r)
    out = []
    for g in sorted({r // num_seeds for r in rows}):
        out += sorted((r for r in rows if r // num_seeds == g), key=key)[:keep]
    return sorted(out)


def _rows_of(part: dict, idx) -> dict:
    import jax

    return jax.tree.map(lambda x: x[idx], part)


def train_kept(plan: Plan, run_chunk, chunks: list[list[int]], size: int, ndev: int, total: int):
    """Both phases. run_chunk(k, rows, chunk_size, prefix, desc, until=, state=) trains the rows `rows` as
    chunk k (train.make_train). Returns (phase 2's chunk results, as make_train's chunks, for the kept rows in
    order; the record: step T, every row's held-out score and logits, the kept rows, phase 1's times)."""
    import jax

    T = plan.at_step(total)
    n = sum(len(c) for c in chunks)
    score, diverged = np.full(n, np.nan), np.zeros(n, np.int32)
    held_logits, best, best_rows, steps = None, None, [], []
    compile_s = train_s = 0.0
    for k, rows in enumerate(chunks):
        state, loss_TxS, history, logits, c_s, t_s = run_chunk(k, rows, size, "chunk", "seeds", until=T)
        compile_s, train_s = compile_s + c_s, train_s + t_s
        s = np.asarray(plan.score(logits, plan.held), np.float64)
        score[rows], diverged[rows] = s, np.asarray(state["opt"].diverged)
        if held_logits is None:
            held_logits = np.zeros((n,) + logits.shape[1:], np.float32)
        held_logits[rows] = logits
        steps = [h[0] for h in history]
        part = {"state": state, "loss": loss_TxS.T,  # per row: [T] losses and [E, N, C] evaluations per split
                "evals": {sp: np.stack([h[1][sp] for h in history], 1) for sp in (history[0][1] if history else {})}}
        cand = part if best is None else jax.tree.map(lambda a, b: np.concatenate([a, b]), best, part)
        cand_rows = best_rows + list(rows)
        kept = choose(cand_rows, score, diverged, plan.num_seeds, plan.keep)
        best = _rows_of(cand, np.asarray([cand_rows.index(r) for r in kept]))
        best_rows = kept
        del state, cand, part
    # Phase 2: the kept rows in fewer seeds a program: min(the chunk size, the kept seeds), a multiple of devices
    size2 = -(-min(size, len(best_rows)) // ndev) * ndev
    parts = []
    for k, start in enumerate(range(0, len(best_rows), size2)):
        idx = np.arange(start, min(start + size2, len(best_rows)))
        pad = np.concatenate([idx, np.full(size2 - len(idx), idx[-1])])  # padded rows repeat the last one
        mine = _rows_of(best, pad)
        state = {"trained": mine["state"]["trained"], "opt": mine["state"]["opt"], "step": T,
                 "loss": list(mine["loss"].T),
                 "history": [(e, {sp: v[:len(idx), i] for sp, v in mine["evals"].items()}) for i, e in enumerate(steps)]}
        parts.append(run_chunk(k, [best_rows[i] for i in idx], size2, CHECKPOINT_PREFIX, "kept seeds", state=state))
    kept_N = np.zeros(n, bool)
    kept_N[best_rows] = True
    record = {"at_step": T, "score": score, "diverged": diverged, "kept": kept_N, "kept_rows": best_rows,
              "held_logits": held_logits, "chunk_size": size, "kept_chunk_size": size2,
              "compile_s": compile_s, "train_s": train_s}
    return parts, record


def results(record: dict, plan: Plan, cfg, rows, values: dict, metric: str, held_pred) -> tuple[dict, dict]:
    """metrics.json's `early_stop` section and the arrays of early_stop.npz, for every row (kept or stopped)."""
    from jaxseed.config import SWEEP_KEYS, is_sweep

    es = cfg.early_stop
    seeds = []
    for i in range(len(rows)):
        r = {"row": i, "init": int(rows.init[i]), "order": int(rows.order[i]), "dropout": int(rows.dropout[i]),
             "held_out_score": None if not np.isfinite(record["score"][i]) else float(record["score"][i]),
             "kept": bool(record["kept"][i])}
        r |= {k: float(values[k][i]) for k in SWEEP_KEYS} if is_sweep(cfg) else {}
        r |= {"diverged_at": int(record["diverged"][i])} if record["diverged"][i] else {}
        seeds.append(r)
    section = {"at": es["at"], "at_step": record["at_step"], "keep": plan.keep, "keep_per": "grid member" if
               is_sweep(cfg) else "run", "holdout": es["holdout"], "split_seed": es["split_seed"],
               "held_out_examples": int(len(plan.held.label_N)), "metric": metric,
               "seeds_started": len(rows), "seeds_kept": int(record["kept"].sum()),
               "seeds_stopped": int((~record["kept"]).sum()),
               "chunk_size": record["chunk_size"], "kept_chunk_size": record["kept_chunk_size"],
               "phase1_timing": {"compile_s": record["compile_s"], "train_s": record["train_s"]}, "seeds": seeds}
    arrays = {"example_id": plan.held.example_id_N, "label": plan.held.label_N, "pred": held_pred,
              "score": record["score"], "kept": record["kept"], "seed_init": np.asarray(rows.init),
              "seed_order": np.asarray(rows.order), "seed_dropout": np.asarray(rows.dropout)}
    return section, arrays


def write(folder: Path, section: dict, arrays: dict, metrics: dict) -> None:
    metrics["early_stop"] = section
    np.savez(Path(folder) / "early_stop.npz", **arrays)


def summary_line(section: dict) -> str:
    per = " of each grid member" if section["keep_per"] == "grid member" else ""
    return (f"early stop: {section['seeds_stopped']} of {section['seeds_started']} seeds stopped at step "
            f"{section['at_step']}, the best {section['keep']}{per} kept by {section['metric']} on "
            f"{section['held_out_examples']} held-out training examples (scores in metrics.json, early_stop)")
