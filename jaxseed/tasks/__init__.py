"""The task registry: GLUE (`glue.py`) and SuperGLUE (`superglue.py`), one `Task` record each."""

from __future__ import annotations

from jaxseed.tasks.base import Task
from jaxseed.tasks.glue import GLUE_TASKS
from jaxseed.tasks.superglue import SUPERGLUE_TASKS

TASKS: dict[str, Task] = GLUE_TASKS | SUPERGLUE_TASKS

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "ax-b": "axb", "ax-g": "axg", "rte-sg": "rte_sg"}


def get_task(name: str) -> Task:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return TASKS[key]


__all__ = ["Task", "TASKS", "GLUE_TASKS", "SUPERGLUE_TASKS", "get_task"]
