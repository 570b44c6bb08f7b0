"""Llama 3.x, Qwen2/2.5 and Qwen3 decoders with a sequence-classification head, in Flax linen.

Written against transformers' modeling_llama / modeling_qwen2 / modeling_qwen3 and their
GenericForSequenceClassification: pre-norm layers, RMSNorm (float32, cast back, then times the weight),
grouped-query attention, half-split RoPE (with Llama 3's frequency scaling), SwiGLU MLP, and a bias-free
`score` layer read at the last real token. Qwen2 adds q/k/v biases; Qwen3 a per-head RMSNorm on q and k
before RoPE and an explicit head_dim.

Params tree: {'backbone': {'embed_tokens', 'layers_<i>': {'self_attn': {'q_proj', ...}, 'mlp': {...},
'input_layernorm', 'post_attention_layernorm'}, 'norm'}, 'head': {'score': {'kernel'}}}; module names are
transformers' so LoRA target_modules read as in peft. The residual stream stays float32 and only the matmuls
run in `dtype` (as jaxseed's encoders do); the base weights may be stored in bfloat16 (`base_dtype`).

Pooling: transformers takes the rightmost token whose id is not the pad id. jaxseed pads on the right and
takes the last position of the attention mask, which is the same token whenever the pad id does not occur in
the text, and stays right when it does (a tokenizer without a pad token is padded with its eos id: a real eos
in the prompt is then still read, where transformers' id rule would skip it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxseed.models.lora import LoraDense, LoraSpec

FAMILIES = ("llama", "qwen2", "qwen3")
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_TARGETS = ("q_proj", "v_proj")  # peft's default for llama / qwen2 / qwen3


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    family: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rms_norm_eps: float
    rope_theta: float
    rope_llama3: tuple[float, float, float, int] | None  # (factor, low_freq_factor, high_freq_factor, orig max pos)
    attention_bias: bool  # q/k/v (and o, except Qwen2)
    mlp_bias: bool
    qk_norm: bool
    pad_token_id: int | None
    initializer_range: float
    attention_dropout: float = 0.0

    def with_dropout(self, rate: float) -> "DecoderConfig":
        return dataclasses.replace(self, attention_dropout=rate)  # decoders have no other dropout

    @classmethod
    def from_hf(cls, d: dict) -> "DecoderConfig":
        family = d.get("model_type")
        if family not in FAMILIES:
            raise ValueError(f"unsupported model_type {family!r}")
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"unsupported hidden_act {d['hidden_act']!r} (supported: silu)")
        if d.get("use_sliding_window") or any(t != "full_attention" for t in d.get("layer_types") or []):
            raise ValueError("unsupported use_sliding_window / layer_types: only full attention is supported")
        heads = d["num_attention_heads"]
        kv = d.get("num_key_value_heads") or heads
        if heads % kv:
            raise ValueError(f"num_attention_heads {heads} not divisible by num_key_value_heads {kv}")
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        key = "rope_parameters" if d.get("rope_parameters") else "rope_scaling"
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", "llama3"):
            raise ValueError(f"unsupported {key}.rope_type {rope_type!r} (supported: default, llama3)")
        if rope.get("partial_rotary_factor", d.get("partial_rotary_factor", 1.0)) != 1.0:
            raise ValueError("unsupported partial_rotary_factor (only 1.0)")
        llama3 = None
        if rope_type == "llama3":
            llama3 = (float(rope["factor"]), float(rope["low_freq_factor"]), float(rope["high_freq_factor"]),
                      int(rope["original_max_position_embeddings"]))
        pad = d.get("pad_token_id")
        return cls(
            family=family, vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
            num_layers=d["num_hidden_layers"], num_heads=heads, num_kv_heads=kv,
            head_dim=d.get("head_dim") or d["hidden_size"] // heads, intermediate_size=d["intermediate_size"],
            rms_norm_eps=d.get("rms_norm_eps", 1e-6),
            rope_theta=float(rope.get("rope_theta", d.get("rope_theta", 10000.0))), rope_llama3=llama3,
            attention_bias=True if family == "qwen2" else bool(d.get("attention_bias", False)),
            mlp_bias=bool(d.get("mlp_bias", False)), qk_norm=family == "qwen3",
            pad_token_id=pad[0] if isinstance(pad, list) else pad,
            initializer_range=d.get("initializer_range", 0.02), attention_dropout=d.get("attention_dropout", 0.0))

    def num_params(self, include_embeddings: bool = True) -> int:
        """Backbone parameter count (no lm_head, no score)."""
        H, I, K = self.hidden_size, self.intermediate_size, self.head_dim
        q, kv = self.num_heads * K, self.num_kv_heads * K
        attn = H * (q + 2 * kv) + q * H
        if self.attention_bias:
            attn += q + 2 * kv + (0 if self.family == "qwen2" else H)
        mlp = 3 * H * I + (2 * I + H if self.mlp_bias else 0)
        per_layer = attn + mlp + 2 * H + (2 * K if self.qk_norm else 0)
        return self.num_layers * per_layer + H + (self.vocab_size * H if include_embeddings else 0)


def rope_inv_freq(config: DecoderConfig) -> np.ndarray:
    """Inverse frequencies as transformers computes them (float32), with Llama 3's three bands."""
    dim = config.head_dim
    inv = (1.0 / (np.float32(config.rope_theta) ** (np.arange(0, dim, 2).astype(np.float32) / dim))).astype(np.float32)
    if config.rope_llama3 is None:
        return inv
    factor, low, high, orig = config.rope_llama3
    low_wl, high_wl = orig / low, orig / high
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > low_wl, inv / factor, inv)
    smooth = (orig / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_cos_sin(config: DecoderConfig, length: int):
    """cos, sin [L, head_dim] in float32 for positions 0..L-1 (right padding: every row starts at 0)."""
    freqs_LxK2 = jnp.arange(length, dtype=jnp.float32)[:, None] * jnp.asarray(rope_inv_freq(config))[None, :]
    emb_LxK = jnp.concatenate([freqs_LxK2, freqs_LxK2], axis=-1)
    return jnp.cos(emb_LxK), jnp.sin(emb_LxK)


def apply_rope(x_BxLxNxK, cos_LxK, sin_LxK):
    half = x_BxLxNxK.shape[-1] // 2
    rotated = jnp.concatenate([-x_BxLxNxK[..., half:], x_BxLxNxK[..., :half]], axis=-1)
    cos, sin = cos_LxK[:, None, :].astype(x_BxLxNxK.dtype), sin_LxK[:, None, :].astype(x_BxLxNxK.dtype)
    return x_BxLxNxK * cos + rotated * sin


class RMSNorm(nn.Module):
    eps: float

    @nn.compact
    def __call__(self, x):
        w = self.param("scale", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return w.astype(jnp.float32) * normed.astype(x.dtype)


def _linear(c, dt, features, name, bias, lora, deterministic):
    return LoraDense(features, use_bias=bias, dtype=dt, kernel_init=nn.initializers.normal(c.initializer_range),
                     lora=lora if lora is not None and lora.targets(name) else None, deterministic=deterministic,
                     name=name)


class Attention(nn.Module):
    config: DecoderConfig
    dtype: Any = jnp.float32
    lora: LoraSpec | None = None

    @nn.compact
    def __call__(self, x_BxLxD, bias_Bx1x1xLxL, cos, sin, deterministic: bool):
        from jaxseed.models.encoder import Dropout

        c, dt = self.config, self.dtype
        B, L, _ = x_BxLxD.shape
        N, G, K = c.num_heads, c.num_heads // c.num_kv_heads, c.head_dim
        lin = lambda f, name, bias: _linear(c, dt, f, name, bias, self.lora, deterministic)(x_BxLxD)
        q = lin(N * K, "q_proj", c.attention_bias).reshape(B, L, N, K)
        k = lin(c.num_kv_heads * K, "k_proj", c.attention_bias).reshape(B, L, c.num_kv_heads, K)
        v = lin(c.num_kv_heads * K, "v_proj", c.attention_bias).reshape(B, L, c.num_kv_heads, K)
        if c.qk_norm:  # Qwen3: per-head RMSNorm over head_dim, before RoPE
            q, k = RMSNorm(c.rms_norm_eps, name="q_norm")(q), RMSNorm(c.rms_norm_eps, name="k_norm")(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Query head h*G+g reads kv head h, as transformers' repeat_kv.
        q_BxLxHxGxK = q.reshape(B, L, c.num_kv_heads, G, K)
        scores = jnp.einsum("bqhgk,bthk->bhgqt", q_BxLxHxGxK, k).astype(jnp.float32) * K**-0.5
        probs = jax.nn.softmax(scores + bias_Bx1x1xLxL, axis=-1)
        probs = Dropout(c.attention_dropout)(probs, deterministic).astype(v.dtype)
        ctx = jnp.einsum("bhgqt,bthk->bqhgk", probs, v).reshape(B, L, N * K)
        o_bias = c.attention_bias and c.family != "qwen2"
        return _linear(c, dt, c.hidden_size, "o_proj", o_bias, self.lora, deterministic)(ctx)


class Layer(nn.Module):
    config: DecoderConfig
    dtype: Any = jnp.float32
    lora: LoraSpec | None = None

    @nn.compact
    def __call__(self, x_BxLxD, bias, cos, sin, deterministic: bool):
        c, dt = self.config, self.dtype
        h = RMSNorm(c.rms_norm_eps, name="input_layernorm")(x_BxLxD)
        x_BxLxD = x_BxLxD + Attention(c, dt, self.lora, name="self_attn")(h, bias, cos, sin, deterministic)
        h = RMSNorm(c.rms_norm_eps, name="post_attention_layernorm")(x_BxLxD)
        return x_BxLxD + Mlp(c, dt, self.lora, name="mlp")(h, deterministic).astype(jnp.float32)


class Mlp(nn.Module):
    """SwiGLU: down(silu(gate(h)) * up(h))."""

    config: DecoderConfig
    dtype: Any = jnp.float32
    lora: LoraSpec | None = None

    @nn.compact
    def __call__(self, h, deterministic: bool):
        c, dt = self.config, self.dtype
        lin = lambda f, name: _linear(c, dt, f, name, c.mlp_bias, self.lora, deterministic)
        return lin(c.hidden_size, "down_proj")(jax.nn.silu(lin(c.intermediate_size, "gate_proj")(h))
                                               * lin(c.intermediate_size, "up_proj")(h))


class Decoder(nn.Module):
    """Embeddings + layers + final norm; returns the last hidden states [B, L, D] in float32."""

    config: DecoderConfig
    dtype: Any = jnp.float32
    remat: bool = False
    lora: LoraSpec | None = None

    @nn.compact
    def __call__(self, ids_BxL, mask_BxL, deterministic: bool):
        c = self.config
        L = ids_BxL.shape[1]
        emb = nn.Embed(c.vocab_size, c.hidden_size, embedding_init=nn.initializers.normal(c.initializer_range),
                       name="embed_tokens")
        x_BxLxD = emb(ids_BxL).astype(jnp.float32)
        causal_LxL = jnp.tril(jnp.ones((L, L), bool))
        allowed = causal_LxL[None] & (mask_BxL[:, None, :] > 0)
        # finfo.min rather than -inf: a fully masked row gives a uniform softmax, not NaN.
        bias = jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min)[:, None, None]  # [B, 1, 1, L, L]
        cos, sin = rope_cos_sin(c, L)
        layer_cls = nn.remat(Layer, static_argnums=(5,)) if self.remat else Layer
        for i in range(c.num_layers):
            x_BxLxD = layer_cls(c, self.dtype, self.lora, name=f"layers_{i}")(x_BxLxD, bias, cos, sin, deterministic)
        return RMSNorm(c.rms_norm_eps, name="norm")(x_BxLxD)


def last_token(x_BxLxD, mask_BxL):
    """Hidden state at the last position of the attention mask (right padding)."""
    last_B = jnp.maximum(jnp.sum(mask_BxL > 0, axis=1) - 1, 0)
    return jnp.take_along_axis(x_BxLxD, last_B[:, None, None], axis=1)[:, 0]


class DecoderClassifier(nn.Module):
    """*ForSequenceClassification: a bias-free `score` on the last real token, in float32."""

    config: DecoderConfig
    num_labels: int
    dtype: Any = jnp.float32
    remat: bool = False
    lora: LoraSpec | None = None

    @nn.compact
    def __call__(self, ids_BxL, mask_BxL, type_ids_BxL=None, *, deterministic: bool):
        del type_ids_BxL  # decoders have no token types
        x = Decoder(self.config, self.dtype, self.remat, self.lora, name="backbone")(ids_BxL, mask_BxL, deterministic)
        return Head(self.config, self.num_labels, name="head")(last_token(x, mask_BxL))


class Head(nn.Module):
    config: DecoderConfig
    num_labels: int

    @nn.compact
    def __call__(self, x_BxD):
        return nn.Dense(self.num_labels, use_bias=False, dtype=jnp.float32, param_dtype=jnp.float32,
                        kernel_init=nn.initializers.normal(self.config.initializer_range), name="score")(x_BxD)


def init_head(key, config: DecoderConfig, num_labels: int) -> dict:
    """score ~ N(0, initializer_range), as transformers' _init_weights."""
    return {"score": {"kernel": config.initializer_range * jax.random.normal(key, (config.hidden_size, num_labels))}}
