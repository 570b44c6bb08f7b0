"""Early stopping in the report: which seeds a run stopped, and what its kept seeds reached against a run that
stopped none (metrics.json's `early_stop` section; run.py, early_stop.py)."""

from __future__ import annotations

import json

import numpy as np

from jaxseed import sweep_report


def _section(run) -> dict | None:
    """metrics.json's early_stop section of the whole run (a sweep member's cache is its own entry only)."""
    try:
        es = json.loads((run.path / "metrics.json").read_text()).get("early_stop")
    except (OSError, ValueError):
        return None
    return es if isinstance(es, dict) and isinstance(es.get("seeds"), list) else None


def _records(run, es: dict) -> list[dict]:
    """The section's seed records of this Run (of its grid member, for a sweep)."""
    member = run.member or {}
    return [r for r in es["seeds"] if all(k in r and np.isclose(r[k], v) for k, v in member.items())]


def _final(run, stats: list[dict], primary: str) -> dict:
    """split -> {(init, order, dropout): final dev score} of the run's (non-diverged) rows."""
    if run.seeds_Sx3 is None:
        return {}
    return {r["split"]: {tuple(int(x) for x in s): float(v) for s, v in zip(run.seeds_Sx3, r["scores"][primary])}
            for r in stats if primary in r["scores"]}


def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.2f}"


def _name(run) -> str:
    return run.path.name + sweep_report.label(run.member)


def sections(per_run: list) -> list[tuple]:
    """per_run: (Run, its split_stats rows) for every run (sweep member) of the report."""
    out, stopped, refs = [], [], []
    for run, stats in per_run:
        es = _section(run)
        primary = run.info["primary_metric"]
        final = _final(run, stats, primary)
        if es is None:
            refs.append((run, final, None))
            continue
        recs = _records(run, es)
        splits = list(final)
        body = [[_name(run), str(r["row"]), f"{r['init']}/{r['order']}/{r['dropout']}", _pct(r["held_out_score"]),
                 "kept" if r["kept"] else "stopped"]
                + [_pct(final[s].get((r["init"], r["order"], r["dropout"]))) if r["kept"] else "–" for s in splits]
                for r in recs]
        head = ["Run", "Row", "Seeds (init/order/dropout)", f"Held-out {primary} at step {es['at_step']}", "Status"]
        out.append((f"Early stopping: {_name(run)}", head + [f"Final {primary} ({s})" for s in splits], body,
                    CAPTION.format(at=es["at"], step=es["at_step"], n=es["held_out_examples"], keep=es["keep"])))
        (refs if all(r["kept"] for r in recs) else stopped).append((run, final, es))
    body = []
    for run, final, es in stopped:
        kept = [(r["init"], r["order"], r["dropout"]) for r in _records(run, es) if r["kept"]]
        for ref, ref_final, ref_es in refs:
            if ref.config.get("task") != run.config.get("task") or (ref.member or {}).keys() != (run.member or {}).keys() \
                    or any(not np.isclose(v, ref.member[k]) for k, v in (run.member or {}).items()):
                continue
            same_train = ref_es is not None and all(ref_es.get(k) == es.get(k) for k in ("holdout", "split_seed"))
            for split, scores in final.items():
                if split not in ref_final:
                    continue
                mine = np.asarray([scores[s] for s in kept if s in scores])
                theirs = ref_final[split]
                top = sorted(theirs, key=lambda s: (-theirs[s], s))[:len(kept)]
                among = f"{sum(s in top for s in kept)}/{len(kept)}" if all(s in theirs for s in kept) else "–"
                body.append([_name(run), _name(ref), split, f"{len(kept)}/{len(_records(run, es))}",
                             _pct(mine.mean() if len(mine) else None), _pct(mine.max() if len(mine) else None),
                             str(len(theirs)), _pct(np.mean(list(theirs.values()))),
                             _pct(max(theirs.values(), default=None)), among, "yes" if same_train else "no"])
    if body:
        out.append(("Early stopping against an unstopped run", COMPARE_HEAD, body, COMPARE_CAPTION))
    return out


CAPTION = ("Start many, stop early (Dodge et al. 2020): every seed was trained to step {step} (a fraction {at} of "
           "training), scored on {n} held-out training examples (never the dev set), and only the best {keep} "
           "(of each grid member, in a sweep) were trained to the end. One row per seed started: its held-out "
           "score when the choice was made, whether it was kept, and a kept seed's final dev score; stopped seeds "
           "have no dev predictions. The other tables of this report count the kept seeds only.")
COMPARE_HEAD = ["Early-stop run", "Unstopped run", "Split", "Kept", "Kept mean", "Kept max", "Unstopped S",
                "Unstopped mean", "Unstopped max", "Kept among unstopped top-k", "Same training set"]
COMPARE_CAPTION = ("Did stopping early keep the good seeds? The kept seeds' final dev score (mean and best) against "
                   "every seed of a run of the same task that stopped none (e.g. the same config with keep equal to "
                   "the seeds, which trains on the same reduced training set). Kept among unstopped top-k: how many "
                   "of the k kept seeds are among the k best of the unstopped run by final dev score (when that run "
                   "has the same seeds; – otherwise). Same training set: both runs held out the same training "
                   "examples (same holdout and split_seed); a plain run trains on all of them, so its scores are "
                   "not quite comparable.")
