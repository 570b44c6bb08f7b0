"""The PyTorch workers of bench_train.py: transformers' Trainer, one run a seed, and a torch.func ensemble. Each
runs in its own process."""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time

from bench_common import NUM_LABELS, SCHEDULE_STEPS, OthersMeter, _iqr, _mem, rss_mb, synthetic


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
