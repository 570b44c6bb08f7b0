"""SuperGLUE: the eight tasks and the two diagnostics, with their official metrics and natural units.

Label ids follow the Hugging Face dataset (`aps/super_glue`, the parquet copy of the old `super_glue` script):
CB entailment 0, contradiction 1, neutral 2; RTE / AX-b / AX-g entailment 0, not_entailment 1; COPA choice1 0;
BoolQ, MultiRC, WiC, WSC False 0, True 1. Local files are the official jsonl distribution (one folder per task
holding train.jsonl and val.jsonl; AX-b / AX-g one file each). How each task reaches the encoder is in
jaxseed.formulations; the metrics that need the grouping into units are in jaxseed.units.
"""

from __future__ import annotations

from jaxseed.tasks.base import Task

_BOOL = ("False", "True")
_NLI2 = ("entailment", "not_entailment")
_FILES = {"train": "train.jsonl", "validation": "val.jsonl"}


def _sg(name, label_names, metrics, local_dir, *, hub_config=None, formulation="classify", unit="example",
        files=None, dev_splits=("validation",), has_train=True):
    files = files or _FILES
    return Task(name, (), label_names, metrics, dev_splits, local_dir, files, (), "label",
                {n: i for i, n in enumerate(label_names)}, hub_path="aps/super_glue", benchmark="superglue",
                hub_config=hub_config or name, formulation=formulation, unit=unit, has_train=has_train)


def _diagnostic(name, local_dir, metrics):
    return _sg(name, _NLI2, metrics, local_dir, files={"test": f"{local_dir}.jsonl"}, dev_splits=("test",),
               has_train=False)


SUPERGLUE_TASKS: dict[str, Task] = {t.name: t for t in [
    _sg("boolq", _BOOL, ("accuracy",), "BoolQ"),
    _sg("cb", ("entailment", "contradiction", "neutral"), ("accuracy", "macro_f1"), "CB"),
    _sg("copa", ("choice1", "choice2"), ("accuracy",), "COPA", formulation="choice", unit="question"),
    _sg("multirc", _BOOL, ("multirc_f1a", "multirc_em"), "MultiRC", formulation="option", unit="question"),
    _sg("record", _BOOL, ("record_f1", "record_em"), "ReCoRD", formulation="candidate", unit="query"),
    _sg("rte_sg", _NLI2, ("accuracy",), "RTE", hub_config="rte"),  # GLUE keeps the name `rte`
    _sg("wic", _BOOL, ("accuracy",), "WiC"),
    _sg("wsc", _BOOL, ("accuracy",), "WSC"),
    _diagnostic("axb", "AX-b", ("mcc",)),
    _diagnostic("axg", "AX-g", ("accuracy", "gender_parity")),
]}
