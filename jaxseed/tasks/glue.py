"""GLUE: text fields, label space, official metrics and file layouts of each task.

Labels follow the Hugging Face `nyu-mll/glue` dataset, so the hub and a local glue_data folder give the same
examples with the same label ids.
"""

from __future__ import annotations

from jaxseed.tasks.base import Task


def _glue(name, text_fields, label_names, metrics, local_dir, text_cols, label_col, label_map=None,
          dev_splits=("validation",), files=None):
    files = files or {"train": "train.tsv", "validation": "dev.tsv"}
    return Task(name, text_fields, label_names, metrics, dev_splits, local_dir, files, text_cols, label_col, label_map)


_NLI2 = ("entailment", "not_entailment")
GLUE_TASKS: dict[str, Task] = {t.name: t for t in [
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
