"""`jaxseed run` / `jaxseed report` with a tiny random decoder and LoRA; bad LoRA input is one line, exit 2."""

import json
from pathlib import Path

import numpy as np
import pytest

from jaxseed.cli import main
from jaxseed.models.tiny import save_random_decoder
from jaxseed.tasks import GLUE_TASKS

from conftest import REPO

CONFIGS = REPO / "configs"


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return save_random_decoder(tmp_path_factory.mktemp("m") / "tiny-llama", "llama")


def test_llama_recipes_cover_glue_and_have_smoke_variants():
    study = {p.name for p in (CONFIGS / "llama").glob("*.yaml")}
    # one Llama recipe a GLUE task (configs/glue also holds variants such as sst2_early_stop.yaml)
    assert study == {f"{t}.yaml" for t in GLUE_TASKS}
    assert study <= {p.name for p in (CONFIGS / "glue").glob("*.yaml")}
    assert study == {p.name for p in (CONFIGS / "llama_smoke").glob("*.yaml")}


def test_smoke_config_runs_then_reports(tmp_path, capsys, glue_dir, tiny_llama):
    out = tmp_path / "run"
    sets = [f"model={tiny_llama}", f"data_dir={glue_dir}", f"output_dir={out}", "max_eval_examples=40", "seeds=3"]
    assert main(["run", str(CONFIGS / "llama_smoke" / "rte.yaml"), "--no-progress",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    printed = capsys.readouterr().out
    assert "rte / validation  (40 examples, 3 seeds)" in printed
    pred = np.load(out / "predictions.npz")["pred"]
    assert pred.shape == (3, 40)
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["train_mode"] == "lora" and resolved["encoder"]["family"] == "llama"
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "report.md").exists() and (out / "report" / "report.html").exists()


def unsupported_model(tmp_path: Path, tiny_llama: Path) -> Path:
    bad = tmp_path / "mistral"
    bad.mkdir()
    d = json.loads((tiny_llama / "config.json").read_text()) | {"model_type": "mistral"}
    (bad / "config.json").write_text(json.dumps(d))
    return bad


@pytest.mark.parametrize("sets, needle", [
    (["model=UNSUPPORTED"], "unsupported model_type 'mistral'"),
    (["lora={target_modules: [q_proj, nope]}"], "lora.target_modules: 'nope' matches no layer"),
    (["lora={r: 0}"], "config key 'lora.r': expected a positive integer, got 0"),
    (["train_mode=full"], "config key 'lora': only used with train_mode: lora"),
    (["lora={rank: 8}"], "unknown config key 'lora.rank'"),
    (["base_dtype=float16"], "config key 'base_dtype'"),
    (["train_mode=full", "lora=null", "base_dtype=bfloat16"], "'base_dtype': bfloat16 needs a frozen base"),
])
def test_bad_lora_input_is_one_line_and_exit_2(tmp_path, capsys, glue_dir, tiny_llama, sets, needle):
    out = tmp_path / "out"
    if any("UNSUPPORTED" in s for s in sets):
        sets = [s.replace("UNSUPPORTED", str(unsupported_model(tmp_path, tiny_llama))) for s in sets]
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [f"model={tiny_llama}", f"data_dir={glue_dir}", f"output_dir={out}", *sets]
    code = main(["run", str(CONFIGS / "llama_smoke" / "rte.yaml"), "--no-progress", *[a for s in args for a in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.startswith("jaxseed: error: ") and err.count("\n") == 1, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == before
