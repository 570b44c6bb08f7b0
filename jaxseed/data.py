"""Load a task's examples (hub or local glue_data folder) and tokenize them once into fixed-shape int32 arrays.

SuperGLUE tasks are read by jaxseed.readers and shaped by jaxseed.formulations; they reach this module as the
same Examples (a multiple-choice task holds C rows an example, a grouped task per-row unit ids in `extras`).

Arrays are padded to a bucketed length (the smallest of BUCKETS that holds the longest example, capped at
max_length), so every batch of a task has one shape and the train step compiles once.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from jaxseed.tasks import Task

BUCKETS = (32, 64, 128, 256, 512)


@dataclasses.dataclass
class Examples:
    texts: list[tuple[str, ...]]  # one tuple of text fields per row: per example, or per (example, choice)
    label: np.ndarray  # int64 class ids, or float32 scores for regression; one per example
    example_id: np.ndarray  # int64, the dataset's `idx`
    choices: int = 0  # multiple choice (COPA): C rows of texts an example, scored together; 0: one row an example
    extras: dict = dataclasses.field(default_factory=dict)  # per-example arrays saved with the predictions;
    # "unit" (if present) groups examples into the task's natural unit (a MultiRC question, a ReCoRD query)

    def __len__(self) -> int:
        return len(self.label)

    def head(self, n: int | None) -> "Examples":
        """The first n examples, or with unit ids the first n units (whole questions or queries, so that
        per-unit metrics never see a cut unit)."""
        if n is None:
            return self
        if "unit" in self.extras:
            first = dict.fromkeys(self.extras["unit"].tolist())
            n = int(np.isin(self.extras["unit"], list(first)[:n]).sum())  # units are contiguous
        rows = n * max(self.choices, 1)
        return Examples(self.texts[:rows], self.label[:n], self.example_id[:n], self.choices,
                        {k: v[:n] for k, v in self.extras.items()})


@dataclasses.dataclass
class Encoded:
    ids_NxL: np.ndarray
    mask_NxL: np.ndarray
    type_ids_NxL: np.ndarray
    label_N: np.ndarray
    example_id_N: np.ndarray
    extras: dict = dataclasses.field(default_factory=dict)  # Examples.extras

    @property
    def length(self) -> int:
        return self.ids_NxL.shape[-1]  # multiple choice: ids are [N, C, L]


def load_split(task: Task, split: str, data_dir: str | Path | None = None) -> Examples:
    """`split` is "train" or one of task.dev_splits."""
    if split == "train" and not task.has_train:
        raise ValueError(f"task '{task.name}' has no training set: it is an evaluation set for a model trained on "
                         f"RTE (task rte_sg or rte with eval_tasks: [{task.name}])")
    if split != "train" and split not in task.dev_splits:
        raise ValueError(f"task '{task.name}' has no split '{split}' (dev splits: {', '.join(task.dev_splits)})")
    if task.benchmark == "superglue":
        from jaxseed import formulations, readers

        return formulations.build(task, readers.read_rows(task, split, data_dir))
    return _read_local(task, split, Path(data_dir)) if data_dir else _read_hub(task, split)


def _read_hub(task: Task, split: str) -> Examples:
    import datasets  # heavy import, only on the hub path

    try:
        ds = datasets.load_dataset(task.hub_path, task.name, split=split)
    except Exception as e:  # offline, unknown split, network: one line for the user
        raise ValueError(f"cannot load {task.hub_path}/{task.name} split '{split}' from the hub "
                         f"({type(e).__name__}); set data_dir to a local glue_data folder") from None
    texts = list(zip(*[ds[f] for f in task.text_fields]))
    dtype = np.float32 if task.is_regression else np.int64
    return Examples(texts, np.asarray(ds["label"], dtype), np.asarray(ds["idx"], np.int64))


def local_path(task: Task, split: str, data_dir: Path) -> Path:
    """The file of a split in a local data folder: the benchmark root (glue_data, SuperGLUE) or the task folder."""
    if not data_dir.is_dir():
        raise ValueError(f"data_dir not found: {data_dir}")
    name = task.local_files[split]
    path = data_dir / name if (data_dir / name).is_file() else data_dir / task.local_dir / name
    if not path.is_file():
        raise ValueError(f"missing data file for task '{task.name}' split '{split}': {path}")
    return path


def _read_local(task: Task, split: str, data_dir: Path) -> Examples:
    path = local_path(task, split, data_dir)
    # GLUE TSVs hold bare quote characters inside fields: no quoting. MRPC starts with a BOM: utf-8-sig.
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    has_header = isinstance(task.local_label_col, str) or isinstance(task.local_text_cols[0], str)
    if has_header:
        header, rows = rows[0], rows[1:]
        col = {name: i for i, name in enumerate(header)}
        try:
            text_idx = [col[c] if isinstance(c, str) else c for c in task.local_text_cols]
            label_idx = col[task.local_label_col] if isinstance(task.local_label_col, str) else task.local_label_col
        except KeyError as e:
            raise ValueError(f"{path}: header has no column {e}") from None
    else:
        text_idx, label_idx = list(task.local_text_cols), task.local_label_col
    need = max(text_idx + [label_idx]) + 1
    texts, labels, ids = [], [], []
    for i, row in enumerate(rows):
        if not row or len(row) < need:  # blank trailing lines; malformed rows (a few in QQP) are skipped
            continue
        raw = row[label_idx].strip()
        try:
            if task.is_regression:
                y = float(raw)
            elif task.local_label_map is not None:
                y = task.local_label_map[raw]
            else:
                y = int(raw)
        except (KeyError, ValueError):
            raise ValueError(f"{path}: row {i + 1 + has_header} has an unknown label {raw!r}") from None
        texts.append(tuple(row[j] for j in text_idx))
        labels.append(y)
        ids.append(i)
    dtype = np.float32 if task.is_regression else np.int64
    return Examples(texts, np.asarray(labels, dtype), np.asarray(ids, np.int64))


def bucket_length(longest: int, max_length: int) -> int:
    return min([b for b in BUCKETS if b >= longest] + [max_length])


def encode(tokenizer, examples: Examples, max_length: int) -> Encoded:
    """Tokenize once (truncating to max_length), then pad to the bucketed length with numpy. A multiple-choice
    task gives ids [N, C, L]. Truncation is longest-first, so a passage gives way before a question or answer."""
    columns = list(zip(*examples.texts)) if examples.texts else [[]]
    enc = tokenizer(*[list(c) for c in columns[:2]], truncation=True, max_length=max_length,
                    padding=False, return_token_type_ids=True, return_attention_mask=False)
    seqs, types = enc["input_ids"], enc.get("token_type_ids")
    length = bucket_length(max((len(s) for s in seqs), default=1), max_length)
    n = len(seqs)
    ids = np.full((n, length), tokenizer.pad_token_id, np.int32)
    mask = np.zeros((n, length), np.int32)
    tt = np.zeros((n, length), np.int32)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
        if types is not None:
            tt[i, :len(s)] = types[i]
    if examples.choices:
        ids, mask, tt = (a.reshape(-1, examples.choices, length) for a in (ids, mask, tt))
    return Encoded(ids, mask, tt, examples.label, examples.example_id, examples.extras)


def majority_class(label_N: np.ndarray) -> int:
    return int(np.bincount(label_N.astype(np.int64)).argmax())
