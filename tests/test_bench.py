"""Smoke test of benchmarks/bench_train.py: a tiny model, 2 steps, every CPU contender, valid JSON + markdown.
Not a timed test: no assertion on speed."""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO

CONTENDERS = ["jaxseed", "jaxseed-vmap", "jaxseed-seq", "hf-trainer", "torch-func", "gemm-floor"]
REQUIRED = ["contender", "model", "seeds", "batch_size", "seq_len", "step_time_s", "examples_per_s", "compile_s",
            "peak_rss_mb", "peak_device_mb", "device", "mfu"]


def test_bench_smoke(tmp_path):
    cmd = [sys.executable, "benchmarks/bench_train.py", "--smoke", "--seeds", "2", "--contenders",
           ",".join(CONTENDERS), "--out", "smoke", "--out-dir", str(tmp_path)]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "smoke.json").read_text())
    rows = data["rows"]
    assert [r["contender"] for r in rows] == CONTENDERS
    for r in rows:
        assert "error" not in r, r
        missing = [k for k in REQUIRED if k not in r]
        assert not missing, (r["contender"], missing)
        assert r["model"] == "tiny" and r["seeds"] == 2 and r["batch_size"] == 4 and r["seq_len"] == 16
        for k in ("step_time_s", "examples_per_s", "peak_rss_mb", "mfu", "seed_runs_per_h"):
            assert isinstance(r[k], float) and math.isfinite(r[k]) and r[k] > 0, (r["contender"], k, r[k])
        assert r["peak_device_mb"] is None  # CPU: n/a
        assert r["finite"], r  # the training loss stayed finite
        assert math.isclose(r["examples_per_s"], 2 * 4 / r["step_time_s"])
    jax_rows = [r for r in rows if r["contender"].startswith("jaxseed")]
    assert all(r["plan_est_mb"] > 0 and "plan_err" in r for r in jax_rows)
    assert data["meta"]["peak"]["peak_flops"] > 0 and data["meta"]["versions"]["jax"]
    md = (tmp_path / "smoke.md").read_text()
    assert "| tiny | hf-trainer | 2 |" in md and "python benchmarks/bench_train.py --smoke" in md
    floor = rows[-1]
    assert floor["gemm_jax_s"] > 0 and floor["gemm_torch_s"] > 0
    assert floor["step_time_s"] == min(floor["gemm_jax_s"], floor["gemm_torch_s"])


@pytest.mark.parametrize("name", ["minilm", "bert-base", "roberta-large"])
def test_gemm_shapes_cover_the_model_flops(name):
    """The floor's products are the model's FLOPs formula less its bias and LayerNorm terms, worked by hand:
    per layer 6 * tokens * (4H^2 + 2HI) for the dense layers and 12 * B * L^2 * H for attention."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_train

    from jaxseed.models.encoder import EncoderConfig

    cfg = bench_train.model_config(name)
    enc = EncoderConfig.from_hf(cfg)
    B, L, H, I = 16, 128, enc.hidden_size, enc.intermediate_size
    shapes = bench_train.gemm_shapes(enc, B, L)
    assert len(shapes) == enc.num_layers * (6 * 3 + 6)
    got = sum(2 * b * m * k * n for b, m, k, n in shapes)
    assert got == enc.num_layers * (6 * B * L * (4 * H * H + 2 * H * I) + 12 * B * L * L * H)
    formula = bench_train.flops_per_seed_step(cfg, B, L)
    assert 0.99 * formula < got < formula
