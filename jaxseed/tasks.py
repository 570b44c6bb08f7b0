"""The task registry: text fields, label space, official metrics and file layouts of each GLUE task.

Labels follow the Hugging Face `nyu-mll/glue` dataset, so the hub and a local glue_data folder give the same
examples with the same label ids. SuperGLUE tasks join this registry later.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Task:
    name: str  # registry name, also the nyu-mll/glue config name
    text_fields: tuple[str, ...]  # column names in nyu-mll/glue
    label_names: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]  # official GLUE metrics; the first is the primary one
    dev_splits: tuple[str, ...]
    local_dir: str  # folder inside a glue_data directory
    local_files: dict  # split -> file name
    local_text_cols: tuple  # header names, or column indices where the file has no header
    local_label_col: str | int  # header name, or index; the label is read from the end when negative
    local_label_map: dict | None = None  # file label string -> id; None: the file holds ids (or floats)
    hub_path: str = "nyu-mll/glue"

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def info(self) -> dict:
        return {"name": self.name, "num_labels": self.num_labels, "label_names": self.label_names,
                "metrics": list(self.metrics), "primary_metric": self.primary_metric,
                "is_regression": self.is_regression, "splits": list(self.dev_splits)}


def _glue(name, text_fields, label_names, metrics, local_dir, text_cols, label_col, label_map=None,
          dev_splits=("validation",), files=None):
    files = files or {"train": "train.tsv", "validation": "dev.tsv"}
    return Task(name, text_fields, label_names, metrics, dev_splits, local_dir, files, text_cols, label_col, label_map)


_NLI2 = ("entailment", "not_entailment")
TASKS: dict[str, Task] = {t.name: t for t in [
    # CoLA files have no header: source, label, original judgement, sentence.
    _glue("cola", ("sentence",), ("unacceptable", "acceptable"), ("mcc",), "CoLA", (3,), 1),
    _glue("sst2", ("sentence",), ("negative", "positive"), ("accuracy",), "SST-2", ("sentence",), "label"),
    _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy"), "MRPC",
          ("#1 String", "#2 String"), "Quality"),
    _glue("stsb", ("sentence1", "sentence2"), None, ("pearson", "spearman"), "STS-B",
          ("sentence1", "sentence2"), "score"),
    _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"), "QQP",
          ("question1", "question2"), "is_duplicate"),
    _glue("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",), "MNLI",
          ("sentence1", "sentence2"), -1, {"entailment": 0, "neutral": 1, "contradiction": 2},
          dev_splits=("validation_matched", "validation_mismatched"),
          files={"train": "train.tsv", "validation_matched": "dev_matched.tsv",
                 "validation_mismatched": "dev_mismatched.tsv"}),
    _glue("qnli", ("question", "sentence"), _NLI2, ("accuracy",), "QNLI", ("question", "sentence"), -1,
          {"entailment": 0, "not_entailment": 1}),
    # One RTE train row has an extra empty field; the label is always the last field.
    _glue("rte", ("sentence1", "sentence2"), _NLI2, ("accuracy",), "RTE", ("sentence1", "sentence2"), -1,
          {"entailment": 0, "not_entailment": 1}),
    _glue("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",), "WNLI",
          ("sentence1", "sentence2"), -1),
]}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


def get_task(name: str) -> Task:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return TASKS[key]
