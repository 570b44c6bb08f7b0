"""Smoke test of benchmarks/bench_train.py: a tiny model, 2 steps, every CPU contender, valid JSON + markdown.
Not a timed test: no assertion on speed."""

import json
import math
import os
import subprocess
import sys

from conftest import REPO

CONTENDERS = ["jaxseed-vmap", "jaxseed-seq", "hf-trainer", "torch-func"]
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
