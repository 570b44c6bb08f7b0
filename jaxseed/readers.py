"""SuperGLUE readers: the official jsonl distribution and the Hugging Face hub give the same rows.

Both paths produce the hub's flat row layout (one dict a row: MultiRC one row an answer option, ReCoRD one row a
query, WSC's `target` flattened, labels as HF class ids), in file order, and
each row carries `_where` ("FILE: line N" or "HUB/CONFIG SPLIT row N") so later checks can name it.
jaxseed.formulations turns these rows into model inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from jaxseed.tasks import Task


_NLI = ("premise", "hypothesis", "idx", "label")
FIELDS = {  # what jaxseed.formulations reads from each row of the hub's layout
    "boolq": ("question", "passage", "idx", "label"), "cb": _NLI, "rte_sg": _NLI, "axg": _NLI + ("pair_id",),
    "axb": ("sentence1", "sentence2", "idx", "label"), "copa": ("premise", "choice1", "choice2", "question", "idx", "label"),
    "wic": ("sentence1", "sentence2", "start1", "end1", "start2", "end2", "idx", "label"),
    "wsc": ("text", "span1_index", "span2_index", "span1_text", "span2_text", "idx", "label"),
    "multirc": ("paragraph", "question", "answer", "idx", "label"), "record": ("passage", "query", "entities", "answers", "idx"),
}


def read_rows(task: Task, split: str, data_dir: str | Path | None) -> list[dict]:
    rows = _local_rows(task, split, Path(data_dir)) if data_dir else _hub_rows(task, split)
    for r in rows:
        missing = [f for f in FIELDS[task.name] if f not in r]
        if missing:
            raise ValueError(f"{r['_where']}: missing field '{missing[0]}'")
    return rows


def _hub_rows(task: Task, split: str) -> list[dict]:
    import datasets  # heavy import, only on the hub path

    try:
        ds = datasets.load_dataset(task.hub_path, task.hub_config, split=split)
    except Exception as e:  # offline, unknown split, network: one line for the user
        raise ValueError(f"cannot load {task.hub_path}/{task.hub_config} split '{split}' from the hub "
                         f"({type(e).__name__}); set data_dir to a local SuperGLUE folder") from None
    return hub_rows(task, ds, f"{task.hub_path}/{task.hub_config} {split}")


def hub_rows(task: Task, ds, where: str) -> list[dict]:
    """Rows of a loaded `datasets.Dataset` in the hub's layout (labels are already HF class ids)."""
    rows = ds.to_list()
    for i, r in enumerate(rows):
        r["_where"] = f"{where} row {i}"
        if task.name == "axb":  # a string in the jsonl; the hub may hold it either way
            r["idx"] = int(r["idx"])
    return rows


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; tolerates a missing final newline."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n}: malformed JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: line {n}: expected a JSON object")
            out.append((n, obj))
    return out


def _local_rows(task: Task, split: str, data_dir: Path) -> list[dict]:
    from jaxseed.data import local_path  # data imports this module lazily: no cycle at import time

    path = local_path(task, split, data_dir)
    rows = []
    for n, obj in read_jsonl(path):
        where = f"{path}: line {n}"
        try:
            rows += _flatten(task, obj, where)
        except KeyError as e:
            raise ValueError(f"{where}: missing field {e}") from None
    return rows


def _label(task: Task, raw, where: str) -> int:
    """A jsonl label (bool, string or int, depending on the task) as the HF class id."""
    names = task.label_names
    if isinstance(raw, bool):
        ok = names == ("False", "True")
        y = int(raw)
    elif isinstance(raw, str):
        ok, y = raw in task.local_label_map, task.local_label_map.get(raw)
    elif isinstance(raw, int):
        ok, y = task.name in ("copa", "multirc") and 0 <= raw < len(names), raw
    else:
        ok, y = False, None
    if not ok:
        raise ValueError(f"{where}: unknown label {raw!r} for task '{task.name}' (labels: {', '.join(names)})")
    return y


def _flatten(task: Task, obj: dict, where: str) -> list[dict]:
    """One official jsonl record as the hub's rows."""
    label = lambda o: _label(task, o["label"], where)  # only labelled files are read (not the test splits)
    if task.name == "multirc":
        p = obj["passage"]
        return [{"paragraph": p["text"], "question": q["question"], "answer": a["text"], "label": label(a),
                 "idx": {"paragraph": obj["idx"], "question": q["idx"], "answer": a["idx"]}, "_where": where}
                for q in p["questions"] for a in q["answers"]]
    if task.name == "record":
        p = obj["passage"]
        # Entity and answer `end` offsets are inclusive; the hub keeps the sorted set of entity / answer strings.
        entities = sorted({p["text"][e["start"]:e["end"] + 1] for e in p["entities"]})
        return [{"passage": p["text"], "query": q["query"], "entities": entities,
                 "answers": sorted({a["text"] for a in q["answers"]}),
                 "idx": {"passage": obj["idx"], "query": q["idx"]}, "_where": where} for q in obj["qas"]]
    row = {k: v for k, v in obj.items() if k != "target"}
    if task.name == "wsc":
        row.update(obj["target"])
    if task.name == "axb":
        row["idx"] = int(obj["idx"])
    row["label"] = label(obj)
    row["_where"] = where
    return [row]
