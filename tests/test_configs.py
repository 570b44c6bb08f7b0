"""Every shipped config loads and names a known task; each study config has a smoke variant."""

from pathlib import Path

import pytest

from jaxseed.config import load_config, resolve_seeds
from jaxseed.tasks import get_task

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_is_valid(path):
    cfg = load_config(path)
    get_task(cfg.task)
    assert len(resolve_seeds(cfg.seeds)) >= 2


def test_every_study_config_has_a_smoke_variant():
    study = {p.name for p in CONFIGS if p.parent.name in ("glue", "superglue")}
    smoke = {p.name for p in CONFIGS if p.parent.name == "smoke"}
    assert study and study == smoke


def test_superglue_study_recipe():
    for p in CONFIGS:
        if p.parent.name == "superglue":
            cfg = load_config(p)
            assert get_task(cfg.task).benchmark == "superglue" and cfg.train_mode == "full"
            assert cfg.model == "FacebookAI/roberta-large" and len(resolve_seeds(cfg.seeds)) == 10
