"""LoRA with peft's semantics: y = x W + b + dropout(x) A B * scale, only A and B (and the head) trained.

A is [in, r], initialised U(±1/sqrt(in)) as peft's kaiming_uniform_(a=sqrt(5)) on its [r, in] weight; B is
[r, out], zeros, so a fresh adapter leaves the model unchanged. scale = alpha / r, or alpha / sqrt(r) with
rsLoRA. Dropout acts on the adapter input only. The adapter runs in float32 whatever the base dtype, as peft's
autocast_adapter_dtype does, and its output is cast to the base output's dtype.

The adapters live in the same params tree as the base, as leaves `lora_a` / `lora_b` next to the targeted
module's `kernel`; `split` separates the two trees and `merge` joins them again inside the step, so the base
can stay one shared copy while the adapters carry the seed axis.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ADAPTER_LEAVES = ("lora_a", "lora_b")


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()
    rslora: bool = False

    @property
    def scale(self) -> float:
        return self.alpha / (math.sqrt(self.r) if self.rslora else self.r)

    def targets(self, name: str) -> bool:
        return name in self.target_modules


class LoraDense(nn.Module):
    """nn.Dense (same params, same numerics) plus a LoRA adapter when `lora` is set."""

    features: int
    use_bias: bool = True
    dtype: Any = None
    kernel_init: Any = nn.initializers.lecun_normal()
    lora: LoraSpec | None = None
    deterministic: bool = True

    @nn.compact
    def __call__(self, x):
        from jaxseed.models.encoder import Dropout  # one dropout implementation for the whole project

        d_in = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (d_in, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32) if self.use_bias else None
        x_, kernel_, bias_ = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = jnp.dot(x_, kernel_)
        if bias_ is not None:
            y = y + bias_
        if self.lora is None:
            return y
        r = self.lora.r
        bound = 1.0 / math.sqrt(d_in)
        a = self.param("lora_a", lambda k, s: jax.random.uniform(k, s, jnp.float32, -bound, bound), (d_in, r))
        b = self.param("lora_b", nn.initializers.zeros, (r, self.features), jnp.float32)
        h = Dropout(self.lora.dropout)(x, self.deterministic).astype(jnp.float32)
        return y + ((h @ a) @ b * self.lora.scale).astype(y.dtype)


def is_adapter(path) -> bool:
    return getattr(path[-1], "key", None) in ADAPTER_LEAVES


def split(params: dict) -> tuple[dict, dict]:
    """(base, adapters): two disjoint nested dicts whose merge is `params`."""

    def go(tree, want_adapter):
        out = {}
        for k, v in tree.items():
            if isinstance(v, dict):
                sub = go(v, want_adapter)
                if sub:
                    out[k] = sub
            elif (k in ADAPTER_LEAVES) == want_adapter:
                out[k] = v
        return out

    return go(params, False), go(params, True)


def merge(a: dict, b: dict) -> dict:
    """Deep union of two nested dicts with disjoint leaves (the frozen base and the trained part)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if k in out and isinstance(v, dict) and isinstance(out[k], dict) else v
    return out


def init_adapters(key, backbone_shapes: dict) -> dict:
    """Fresh adapters for every targeted module of a backbone whose shape tree (jax.eval_shape of the module's
    init with LoRA on) holds lora_a / lora_b leaves: A ~ U(±1/sqrt(in)), B = 0, one key per module."""
    _, shapes = split(backbone_shapes)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    keys = jax.random.split(key, max(1, len(leaves)))
    out = []
    for k, (path, s) in zip(keys, leaves):
        if path[-1].key == "lora_a":
            bound = 1.0 / math.sqrt(s.shape[0])
            out.append(jax.random.uniform(k, s.shape, jnp.float32, -bound, bound))
        else:
            out.append(jnp.zeros(s.shape, jnp.float32))
    return jax.tree_util.tree_unflatten(treedef, out)


def num_adapter_params(backbone_shapes: dict) -> int:
    return sum(int(math.prod(x.shape)) for x in jax.tree.leaves(split(backbone_shapes)[1]))
