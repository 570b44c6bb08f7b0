"""Seeds per device: estimate the memory one seed needs and pick `seed_chunk` so a chunk fits.

Memory of a chunk of S seeds on one device, in bytes (P = parameter count, 4 = float32 bytes):

    total(S)   = fixed + S * per_seed
    fixed      = 4 * P_backbone                    the pretrained backbone every chunk starts from; with
                                                   train_mode "head" also the one frozen copy all seeds read
               + overhead                          runtime + compiler working set (CPU: RUNTIME_OVERHEAD_CPU;
                                                   GPU: 0, it is outside bytes_in_use, and SAFETY covers the rest)
    per_seed   = STATE_COPIES * 4 * P_trained      float32 params, grads, Adam m and v, and the update
                                                   temporary: 5 copies (P_trained = backbone + head in full
                                                   mode, only the head in head mode)
               + activations
    activations (full mode, saved for the backward pass, summed over layers):
               = layers * (K_ACT * B*L*H + K_ATTN * B*heads*L*L) * 4 bytes
                 K_ACT  = float32 tensors of size B*L*H kept per layer (q, k, v, context, the two dense
                          outputs and their dropout masks, 2 LayerNorms, the 4H-wide intermediate before
                          and after GELU, ...), calibrated on CPU against peak RSS: see benchmarks/NOTES.md;
                 K_ATTN = float32 B*heads*L*L tensors per layer (scores, softmax, dropout bits, dropped probs).
      bfloat16: the matmul outputs are 2 bytes, LayerNorm/softmax stay float32: activations * BF16_FACTOR.
      remat:    only each layer's input is kept (1 tensor B*L*H per layer) plus one layer's full set.
                Not on CPU: there the measured peak with remat equals the peak without (MiniLM, S=1:
                1726 vs 1716 MB RSS; XLA's temp buffers 875 vs 878 MB), so no saving is counted.
      head:     no backbone gradient, so no saved activations: one layer's full set as working memory.
      seed loop (CPU default, `seed_loop`): a device steps its seeds one after another (train.slot_size), each
                seed's state in its own buffers, so only one seed's activations, gradients and update temporary
                are live at a time: they move to fixed, and per_seed keeps the PERSISTENT_COPIES a seed holds
                between steps.
      lora:     the base is frozen and shared: counted once in `fixed`, at its own dtype (bfloat16 by default
                for decoders); P_trained = adapters + head; the activations are those of full mode (the
                gradient reaches the adapters of the first layer, so every layer saves its tensors). A bfloat16
                base under float32 compute adds one float32 copy of its (non-embedding) weights to `fixed`.
    Decoders (Llama / Qwen) save per layer K_DEC_H tensors of size B*L*H, K_DEC_I of size B*L*I (the SwiGLU
    intermediates) and K_DEC_ATTN of size B*heads*L*L, fitted to XLA:CPU's buffer sizes at S = 1 and 3
    (vmapped); tests/test_lora_train.py checks the per-seed estimate against them.

Free memory: CPU, psutil's available memory; GPU/TPU, memory_stats() bytes_limit - bytes_in_use per device.
A chunk spreads over all devices, so a device holds chunk / devices seeds.
"""

from __future__ import annotations

import dataclasses

from jaxseed.config import ConfigError

STATE_COPIES = 5  # params, grads, Adam m, Adam v, the update temporary
PERSISTENT_COPIES = 3  # params, Adam m, Adam v: what a seed holds between its steps
K_ACT = 30.0  # float32 [B, L, H] tensors saved per layer (fitted to MiniLM S=1/4/8 peak RSS, benchmarks/NOTES.md)
K_ATTN = 4.0  # float32 [B, heads, L, L] tensors saved per layer
BF16_FACTOR = 0.6  # activations with bfloat16 matmul outputs, relative to float32
RUNTIME_OVERHEAD_CPU = 448 * 2**20  # XLA CPU runtime + compiler peak working set (fitted on CPU, as K_ACT)
SAFETY = 0.9  # use at most this share of the free memory
K_DEC_H, K_DEC_I, K_DEC_ATTN = 10.0, 4.0, 3.0  # decoder layers (fitted to XLA:CPU buffer sizes, S=1 vs 3)


@dataclasses.dataclass(frozen=True)
class Estimate:
    fixed_bytes: int
    per_seed_bytes: int
    state_bytes: int  # part of per_seed
    activation_bytes: int  # part of per_seed

    def total(self, seeds: int) -> int:
        return self.fixed_bytes + seeds * self.per_seed_bytes


def head_params(hidden: int, num_labels: int) -> int:
    return hidden * hidden + hidden + hidden * num_labels + num_labels


def layer_activation_elems(batch: int, length: int, hidden: int, heads: int) -> tuple[float, float]:
    """(elements of size B*L*H, elements of size B*heads*L*L) that one layer saves, times K_ACT / K_ATTN."""
    return K_ACT * batch * length * hidden, K_ATTN * batch * heads * length * length


def loops_seeds(seed_loop: bool | None, platform: str) -> bool:
    """Whether a device steps its seeds one after another (train.slot_size) rather than vmapped: `seed_loop`, or by
    default on CPU only, where XLA runs batched matmuls slower than the same matmuls one at a time."""
    return seed_loop if seed_loop is not None else platform == "cpu"


def estimate(encoder, num_labels: int, batch: int, length: int, dtype: str = "float32", remat: bool = False,
             train_mode: str = "full", platform: str = "cpu", seed_loop: bool = False, lora_params: int = 0,
             base_bytes: int = 4) -> Estimate:
    """Memory for one seed and the shared part; `encoder` is a jaxseed.models.encoder.EncoderConfig or a
    models.decoder.DecoderConfig; lora_params: adapter parameters of one seed (train_mode lora)."""
    H, layers, heads = encoder.hidden_size, encoder.num_layers, encoder.num_heads
    p_backbone = encoder.num_params()
    if hasattr(encoder, "num_kv_heads"):  # a decoder: bias-free score head, SwiGLU layers
        p_head = H * num_labels
        one_layer = (K_DEC_H * H + K_DEC_I * encoder.intermediate_size) * batch * length * 4 \
            + K_DEC_ATTN * batch * heads * length * length * 4
    else:
        p_head = head_params(H, num_labels)
        act, attn = layer_activation_elems(batch, length, H, heads)
        one_layer = (act + attn) * 4
    if train_mode == "head":
        trained, activations = p_head, one_layer
    elif train_mode == "lora":
        trained, activations = lora_params + p_head, layers * one_layer
    elif train_mode == "full":
        trained = p_backbone + p_head
        if remat and platform != "cpu":
            activations = layers * batch * length * H * 4 + one_layer
        else:
            activations = layers * one_layer
    else:
        raise ValueError(f"train_mode {train_mode!r}")
    if dtype == "bfloat16":
        activations *= BF16_FACTOR
    state = STATE_COPIES * 4 * trained
    fixed = base_bytes * p_backbone + (RUNTIME_OVERHEAD_CPU if platform == "cpu" else 0)
    if base_bytes == 2 and dtype == "float32":  # XLA upcasts the bfloat16 base's matrices once a step, kept for backward
        fixed += 4 * encoder.num_params(include_embeddings=False)
    if seed_loop:  # one seed's transient state and activations at a time
        persistent = PERSISTENT_COPIES * 4 * trained
        return Estimate(int(fixed + activations + state - persistent), int(persistent), int(persistent),
                        int(activations))
    return Estimate(int(fixed), int(state + activations), int(state), int(activations))


def free_bytes(device=None) -> int:
    """Free memory of one device: bytes_limit - bytes_in_use where the backend reports it, else host RAM."""
    import jax

    device = device or jax.devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # CPU backends may not implement it
        pass
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    import psutil

    return int(psutil.virtual_memory().available)


def seeds_per_device(est: Estimate, free: int, safety: float = SAFETY) -> int:
    return max(0, int((free * safety - est.fixed_bytes) // est.per_seed_bytes))


def pick_seed_chunk(est: Estimate, n_seeds: int, free: int, n_devices: int = 1, safety: float = SAFETY) -> int:
    """Largest chunk (a multiple of n_devices, at most n_seeds rounded up to one) that fits; ConfigError if
    not even one seed per device fits."""
    per_dev = seeds_per_device(est, free, safety)
    if per_dev < 1:
        raise ConfigError(
            f"even one seed does not fit: it needs about {gib(est.total(1))} and {gib(free * safety)} of "
            f"{gib(free)} free is usable; try train_mode: head, remat: true, dtype: bfloat16, "
            f"or a smaller batch_size / max_length")
    want = -(-n_seeds // n_devices)  # seeds per device if everything ran at once
    return min(per_dev, want) * n_devices


def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def _estimate_for(cfg, encoder, num_labels: int, length: int, platform: str) -> Estimate:
    """The estimate for a jaxseed Config's run on `platform`."""
    from jaxseed import models
    from jaxseed.models.lora import num_adapter_params

    lora = models.lora_from_config(cfg, encoder)
    lora_params = num_adapter_params(models.backbone_shapes(encoder, lora)) if lora else 0
    base_bytes = 2 if models.base_dtype(cfg, encoder) == "bfloat16" else 4
    return estimate(encoder, num_labels, cfg.batch_size, length, cfg.dtype, cfg.remat, cfg.train_mode, platform,
                    loops_seeds(cfg.seed_loop, platform), lora_params, base_bytes)


def plan_for(cfg, encoder, num_labels: int, n_seeds: int, length: int | None = None) -> int:
    """seed_chunk for a jaxseed Config: cfg.seed_chunk when set, else what fits in the free memory."""
    import jax

    if cfg.seed_chunk:
        return cfg.seed_chunk
    devices = jax.devices()
    est = _estimate_for(cfg, encoder, num_labels, length or cfg.max_length, devices[0].platform)
    return pick_seed_chunk(est, n_seeds, free_bytes(devices[0]), len(devices))


def oom_message(cfg, encoder, num_labels: int, chunk: int, length: int, n_devices: int, free: int | None = None) -> str:
    """One line for an out-of-memory error: the seed_chunk that the planner thinks fits."""
    import jax

    est = _estimate_for(cfg, encoder, num_labels, length, jax.devices()[0].platform)
    free = free_bytes() if free is None else free
    fit = seeds_per_device(est, free) * n_devices
    if fit >= chunk or fit < 1:  # the estimate was too optimistic (or nothing is free now): halve
        fit = max(n_devices, (chunk // 2) // n_devices * n_devices)
    if chunk <= n_devices:
        return (f"out of device memory with one seed per device ({gib(est.total(1))} estimated); "
                f"try train_mode: head, remat: true, dtype: bfloat16, or a smaller batch_size / max_length")
    return (f"out of device memory with seed_chunk {chunk}; set seed_chunk: {fit} "
            f"(estimated {gib(est.per_seed_bytes)} per seed + {gib(est.fixed_bytes)} shared, {gib(free)} free)")
