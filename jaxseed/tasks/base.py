"""The Task record shared by the GLUE and SuperGLUE registries."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Task:
    name: str  # registry name; for GLUE also the nyu-mll/glue config name
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
    # SuperGLUE
    benchmark: str = "glue"
    hub_config: str | None = None  # the hub dataset's config name; None: `name`
    formulation: str = "classify"  # classify | choice (COPA) | option (MultiRC) | candidate (ReCoRD); see formulations.py
    unit: str = "example"  # the natural unit consistency is measured on: example, question (COPA, MultiRC), query
    has_train: bool = True  # AX-b / AX-g: evaluation sets only, scored with a model trained on RTE

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
                "is_regression": self.is_regression, "splits": list(self.dev_splits),
                "benchmark": self.benchmark, "formulation": self.formulation, "unit": self.unit}


