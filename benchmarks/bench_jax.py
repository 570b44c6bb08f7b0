"""The JAX workers of bench_train.py: the engine's step (jaxseed, -vmap, -seq, -bf16, -remat), where one seed's
step goes (breakdown), and the GEMM floor. Each runs in its own process."""

from __future__ import annotations

import math
import os
import statistics
import time

from bench_common import NUM_LABELS, SCHEDULE_STEPS, OthersMeter, _iqr, _mem, _timed, rss_mb, synthetic


def make_slots(spec, backbone, seeds: list[int], k: int, total: int, n_examples: int) -> list[dict]:
    """The seeds' state in slots of k seeds, each its own buffers, as jaxseed.train.make_train holds them
    (random-init weights, AdamW with a linear schedule of SCHEDULE_STEPS, warm-up total // 10 steps)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxseed import optim, train as T

    per_seed = NamedSharding(T.seed_mesh(), P("seed"))
    hp_of = lambda n: jax.device_put({"learning_rate": np.full(n, 2e-5, np.float32),
                                      "weight_decay": np.full(n, 0.01, np.float32),
                                      "warmup_steps": np.full(n, max(1, total // 10), np.int32),
                                      "total_steps": np.full(n, SCHEDULE_STEPS, np.int32)}, per_seed)
    keys = [T.seed_keys(np.asarray(seeds), st) for st in (T.STREAM_INIT, T.STREAM_ORDER, T.STREAM_DROPOUT)]
    slots = []
    for i in range(0, len(seeds), k):
        init, order, drop = (jax.device_put(x[i:i + k], per_seed) for x in keys)
        trained = jax.device_put({"head": T.init_heads(spec.encoder, NUM_LABELS, init, None),
                                  "backbone": jax.tree.map(lambda x: jnp.broadcast_to(x, (k,) + x.shape), backbone)},
                                 per_seed)
        opt = jax.jit(jax.vmap(optim.make_optimizer(spec, hp_of(1)).init), out_shardings=per_seed)(trained)
        slots.append({"trained": trained, "opt": opt, "perm": T.epoch_permutations(order, 0, n_examples),
                      "hp": hp_of(k), "drop": drop})
    return jax.block_until_ready(slots)


def slot_setup(hf_config: dict, batch_size: int, seq_len: int, seeds: list[int], k: int, total: int):
    """(spec, data, slots) of the in-process benchmarks (slot_overhead.py, after_idle.py): a random-init model,
    8 batches of synthetic tokens on the device shared by every seed, and the seeds' state in slots of k."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxseed import train as T
    from jaxseed.models import encoder as model_lib

    enc = model_lib.EncoderConfig.from_hf(hf_config)
    spec = T.StepSpec(enc, NUM_LABELS, batch_size)
    n = batch_size * 8
    ids, mask, types, label = synthetic(n, seq_len, enc.vocab_size)
    data = jax.device_put({"ids": ids, "mask": mask, "type_ids": types, "label": label},
                          NamedSharding(T.seed_mesh(), P()))
    backbone = model_lib.random_backbone(jax.random.PRNGKey(0), enc)
    return spec, data, make_slots(spec, backbone, seeds, k, total, n)


def worker_jax(a: dict) -> dict:
    import jax
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
    shared = NamedSharding(T.seed_mesh(), P())
    ids, mask, types, label = synthetic(a["n_examples"], L, enc.vocab_size)
    data = jax.device_put({"ids": ids, "mask": mask, "type_ids": types, "label": label}, shared)
    t0 = time.perf_counter()
    backbone = jax.block_until_ready(model_lib.random_backbone(jax.random.PRNGKey(0), enc))
    setup_model = time.perf_counter() - t0
    total = a["warmup"] + a["steps"]

    def run(seeds: list[int], n_steps: int):
        t0 = time.perf_counter()
        n = len(seeds)
        slots = make_slots(spec, backbone, seeds, n if vmap else T.slot_size(None, len(jax.devices()), n), total,
                           ids.shape[0])
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


def worker_breakdown(a: dict) -> dict:
    """Where one seed's step goes (S=1): forward, forward+backward without / with dropout, the whole step."""
    import jax
    import jax.numpy as jnp

    from jaxseed.models import encoder as model_lib
    from jaxseed import optim, train as T

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
    opt = optim.make_optimizer(spec, hp)
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
