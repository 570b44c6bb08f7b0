"""LoRA on a decoder: jaxseed `train_mode: lora` (S seeds in one program, one shared base) against a peft loop
over seeds (transformers + peft, the same model, r/alpha/targets, batch and length), on CPU.

Each contender runs in its own process, so its peak RSS is its own; contenders are interleaved over rounds,
because the CPU may be shared and its speed drifts: compare ratios within a round.

    python benchmarks/bench_lora.py --rounds 2 --out benchmarks/results/lora_cpu.json

Model: random weights in Qwen2.5-0.5B's layer shape (hidden 896, 14 heads, 2 kv heads, head_dim 64,
intermediate 4864, q/k/v biases), `--layers` of its 24 layers and a `--vocab` row embedding table (the
classifier never multiplies by the vocabulary, so only memory depends on it). LoRA r 8, alpha 16 on
q_proj/v_proj, AdamW; float32 compute in both; jaxseed keeps its default bfloat16 base, peft a float32 model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPE = dict(hidden_size=896, num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864,
             max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True)


def hf_config(layers: int, vocab: int, labels: int = 2) -> dict:
    return {"model_type": "qwen2", "vocab_size": vocab, "num_hidden_layers": layers, "pad_token_id": 0,
            "num_labels": labels, "hidden_act": "silu", "initializer_range": 0.02, **SHAPE}


def batches(steps, batch, length, vocab, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.integers(1, vocab, (batch, length)).astype(np.int32), rng.integers(0, 2, batch).astype(np.int32))
            for _ in range(steps)]


def run_jaxseed(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxseed import models
    from jaxseed import optim, train as T
    from jaxseed.models.decoder import DecoderConfig

    dc = DecoderConfig.from_hf(hf_config(args.layers, args.vocab))
    lora = models.lora_spec(dc, r=8, alpha=16)
    S, B, L = args.seeds, args.batch, args.length
    spec = T.StepSpec(dc, 2, B, lora=lora)
    shapes = models.backbone_shapes(dc)
    key = jax.random.key(0)
    frozen = {"backbone": jax.jit(lambda k: jax.tree.map(
        lambda s: (0.02 * jax.random.normal(k, s.shape)).astype(jnp.bfloat16), shapes))(key)}
    keys = T.seed_keys(np.arange(S), 0)
    trained = {"head": T.init_heads(dc, 2, keys, None), "backbone": T.init_adapters(dc, lora, keys)}
    hp = {"learning_rate": np.full(S, 1e-4, np.float32), "weight_decay": np.full(S, 0.01, np.float32),
          "warmup_steps": np.zeros(S, np.int32), "total_steps": np.full(S, 1000, np.int32)}
    opt = jax.vmap(optim.make_optimizer(spec, hp).init)(trained)
    data_b = batches(1, B * args.steps, L, args.vocab)[0]
    n = B * args.steps
    data = {"ids": jnp.asarray(data_b[0]), "mask": jnp.ones((n, L), jnp.int32), "type_ids": jnp.zeros((n, L), jnp.int32),
            "label": jnp.asarray(data_b[1])}
    perm = jnp.tile(jnp.arange(n), (S, 1))
    t0 = time.perf_counter()
    trained, opt, loss = T.train_step(spec, trained, opt, perm, hp, keys, frozen, data, jnp.int32(0))
    jax.block_until_ready(loss)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in range(1, args.steps + 1):
        trained, opt, loss = T.train_step(spec, trained, opt, perm, hp, keys, frozen, data, jnp.int32(t))
    jax.block_until_ready(loss)
    step_s = (time.perf_counter() - t0) / args.steps
    # seed-examples a second: every seed trains on B examples a step
    return {"step_s": step_s, "compile_s": compile_s, "seed_examples_s": S * B / step_s}


def run_peft(args) -> dict:
    import peft
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = transformers.Qwen2ForSequenceClassification(transformers.Qwen2Config(**hf_config(args.layers, args.vocab)))
    data = batches(args.steps + 1, args.batch, args.length, args.vocab)
    times = []
    for seed in range(args.seeds):  # what a researcher does today: one adapter after another on the same base
        torch.manual_seed(seed)
        pm = peft.get_peft_model(model, peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16,
                                                        target_modules=["q_proj", "v_proj"]))
        pm.train()
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.01)
        for t, (ids, y) in enumerate(data):
            if t == 1:
                t0 = time.perf_counter()  # the first step warms up the allocator and kernels
            out = pm(input_ids=torch.from_numpy(ids).long(), labels=torch.from_numpy(y).long())
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(pm.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        times.append((time.perf_counter() - t0) / args.steps)
        model = pm.unload()  # the base back without adapters, for the next seed
    step_s = sum(times) / len(times)
    return {"step_s": step_s, "seed_examples_s": args.batch / step_s}  # one seed at a time


def child(args) -> None:
    out = run_jaxseed(args) if args.contender == "jaxseed" else run_peft(args)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--contender", choices=["jaxseed", "peft"])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seed-loop", dest="seed_loop", action="store_true", default=None)
    p.add_argument("--vmap", dest="seed_loop", action="store_false")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.contender:
        return child(args)
    common = ["--layers", str(args.layers), "--vocab", str(args.vocab), "--batch", str(args.batch),
              "--length", str(args.length), "--steps", str(args.steps)]
    contenders = [("jaxseed S=4 (seed loop)", ["--contender", "jaxseed", "--seeds", "4", "--seed-loop"]),
                  ("jaxseed S=4 (vmap)", ["--contender", "jaxseed", "--seeds", "4", "--vmap"]),
                  ("jaxseed S=1", ["--contender", "jaxseed", "--seeds", "1"]),
                  ("peft loop, 1 seed", ["--contender", "peft", "--seeds", "1"])]
    rows = []
    env = os.environ | {"PYTHONPATH": str(REPO)}
    for r in range(args.rounds):
        for name, extra in contenders:
            proc = subprocess.run([sys.executable, __file__, *common, *extra], capture_output=True, text=True, env=env)
            line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
            if not line:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
            row = {"round": r, "contender": name, **json.loads(line[0][7:])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
