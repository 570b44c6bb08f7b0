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


def run_script(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """benchmarks/<script> with args, offline and on CPU, from the repository root."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_bench_smoke(tmp_path):
    proc = run_script("bench_train.py", "--smoke", "--seeds", "2", "--contenders", ",".join(CONTENDERS),
                      "--out", "smoke", "--out-dir", str(tmp_path))
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
    import bench_common
    import bench_jax

    from jaxseed.models.encoder import EncoderConfig

    cfg = bench_common.model_config(name)
    enc = EncoderConfig.from_hf(cfg)
    B, L, H, I = 16, 128, enc.hidden_size, enc.intermediate_size
    shapes = bench_jax.gemm_shapes(enc, B, L)
    assert len(shapes) == enc.num_layers * (6 * 3 + 6)
    got = sum(2 * b * m * k * n for b, m, k, n in shapes)
    assert got == enc.num_layers * (6 * B * L * (4 * H * H + 2 * H * I) + 12 * B * L * L * H)
    formula = bench_common.flops_per_seed_step(cfg, B, L)
    assert 0.99 * formula < got < formula


def test_per_seed_summary_by_hand():
    """bench_summary: medians over repeats, per seed, against jaxseed S=1 and the Trainer, worked by hand."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_summary

    row = lambda c, S, step: dict(model="m", contender=c, seeds=S, step_time_s=step)
    rows = [row("jaxseed", 1, 1.0), row("jaxseed", 1, 1.2), row("jaxseed", 1, 0.9),  # median 1.0
            row("jaxseed", 4, 4.4), row("jaxseed", 4, 4.0), row("jaxseed", 4, 4.8),  # per seed 1.1, 1.0, 1.2
            row("hf-trainer", 1, 1.5), row("hf-trainer", 1, 1.1), dict(row("jaxseed", 8, 1.0), error="x")]
    out = {(s["contender"], s["seeds"]): s for s in bench_summary.per_seed_rows(rows)}
    assert set(out) == {("jaxseed", 1), ("jaxseed", 4), ("hf-trainer", 1)}  # the failed row is left out
    s4 = out[("jaxseed", 4)]
    assert math.isclose(s4["per_seed_step_s"], 1.1) and math.isclose(s4["min_s"], 1.0) and s4["repeats"] == 3
    assert math.isclose(s4["vs_jaxseed_s1"], 1.1)
    assert math.isclose(s4["trainer_per_seed_s"], 1.3) and math.isclose(s4["throughput_vs_trainer"], 1.3 / 1.1)
    assert "| m | jaxseed | 4 | 3 | 1.100 | 1.000–1.200 | 1.10× | 1.18× |" in bench_summary.markdown(rows)


def test_study_bench_smoke(tmp_path):
    """benchmarks/bench_study.py: jaxseed and the one-process-a-seed Trainer loop on real MRPC, 2 seeds, 2 steps."""
    proc = run_script("bench_study.py", "--smoke", "--out", "smoke", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "smoke.json").read_text())
    rows = {r["contender"]: r for r in data["rows"]}
    assert set(rows) == {"jaxseed", "hf-trainer-loop"} and rows["hf-trainer-loop"]["processes"] == 2
    for r in rows.values():
        assert len(r["accuracy"]) == 2 and all(0 < a < 1 for a in r["accuracy"])
        assert all(v >= 0 for k, v in r["phases"].items() if k != "write"), r["phases"]
    # The phases add up to the wall time (each process's, for the loop).
    assert math.isclose(sum(rows["jaxseed"]["phases"].values()), rows["jaxseed"]["wall_s"], rel_tol=1e-6)
    loop = rows["hf-trainer-loop"]
    assert math.isclose(sum(loop["phases"].values()), sum(loop["per_process_wall_s"]), rel_tol=1e-6)
    assert rows["jaxseed"]["phases"]["compile"] > 0 and loop["phases"]["compile"] == 0
    md = (tmp_path / "smoke.md").read_text()
    assert "| jaxseed | 1 |" in md and "| hf-trainer-loop | 2 |" in md and data["meta"]["dev_examples"] == 408


def test_study_summary_by_hand():
    """bench_study: per-repeat ratios against the same repeat's loop, and medians over repeats, worked by hand."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_study

    def row(c, rep, wall):
        return dict(contender=c, repeat=rep, wall_s=wall, phases=dict.fromkeys(bench_study.PHASES, wall / 7),
                    processes=1, accuracy=[0.5, 0.7])

    rows = [row("jaxseed", 1, 90.0), row("hf-trainer-loop", 1, 100.0), row("hf-trainer-loop", 2, 120.0),
            row("jaxseed", 2, 126.0), row("jaxseed", 3, 80.0), row("hf-trainer-loop", 3, 100.0)]
    out = {m["contender"]: m for m in bench_study.summary(rows)}
    js = out["jaxseed"]
    assert js["repeats"] == 3 and js["wall_s"] == 90.0 and js["vs_loop_each"] == [0.9, 1.05, 0.8]
    assert js["vs_loop"] == 0.9 and math.isclose(js["phases"]["train"], 90 / 7)
    assert out["hf-trainer-loop"]["vs_loop"] == 1.0 and out["hf-trainer-loop"]["wall_s"] == 100.0
    meta = dict(out="t", command="c", hardware=dict(cpu="x", cores=2, ram_gib=1), versions={}, model_name="m",
                task="mrpc", seeds=2, max_steps=1, max_length=8, dev_examples=3, repeats=3)
    md = bench_study.markdown(meta, rows)
    assert "| jaxseed | 1 | 2 | 126.0 | 1.05× |" in md and "| jaxseed | 3 | 90.0 | 0.90× (0.90, 1.05, 0.80) |" in md


def test_slot_overhead_smoke(tmp_path):
    """benchmarks/slot_overhead.py: one process, a tiny model, 2 slots; the ratio is the two medians' quotient."""
    proc = run_script("slot_overhead.py", "--smoke", "--out", "smoke", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "smoke.json").read_text())
    (r,) = data["rows"]
    assert (r["seeds"], r["seq_len"], r["calls_alone"], r["steps_grouped"]) == (2, 16, 4, 2)
    assert r["alone_s"] > 0 and r["grouped_s"] > 0
    assert math.isclose(r["ratio"], r["grouped_s"] / r["alone_s"], rel_tol=1e-12)
    md = (tmp_path / "smoke.md").read_text()
    assert "python benchmarks/slot_overhead.py --smoke" in md and f"| 2 | 16 | 1 | {r['ratio']:.3f} |" in md


def test_slot_overhead_refuses_one_seed(tmp_path):
    proc = run_script("slot_overhead.py", "--seeds", "1", "--out-dir", str(tmp_path), timeout=120)
    assert proc.returncode == 2 and "--seeds must be at least 2" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_after_idle_smoke(tmp_path):
    """benchmarks/after_idle.py: every allocator setting in its own process, every kind of work timed busy and
    after the gap every round; the medians are the medians of those times; a bad setting is refused."""
    args = ["--smoke", "--out", "smoke", "--out-dir", str(tmp_path)]
    proc = run_script("after_idle.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert [r["host_malloc"] for r in rows] == ["hugepages", "tuned"]
    for r in rows:
        for k in ("step", "matmul", "resident"):
            for when in ("busy", "after_idle"):
                ts = r[k][when]["times_s"]
                assert len(ts) == 2 and all(t > 0 for t in ts) and r[k][when]["median_s"] == sum(ts) / 2
    assert "| tuned | step |" in (tmp_path / "smoke.md").read_text()
    bad = run_script("after_idle.py", *args, "--host-malloc", "jemalloc", timeout=120)
    assert bad.returncode == 2 and "--host-malloc takes settings among" in bad.stderr
