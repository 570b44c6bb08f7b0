"""Decoder weights from Hugging Face safetensors (one file or sharded with an index; any float dtype on disk).

Our module names are transformers' own, so the mapping is mechanical: ('layers_3', 'self_attn', 'q_proj',
'kernel') <-> 'model.layers.3.self_attn.q_proj.weight' (transposed: torch stores Linear weights [out, in]).
The lm_head (tied or not) and any saved classification `score` are never read: the head is drawn per seed.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

from jaxseed.models.encoder import safetensors_files
from jaxseed.models.decoder import Decoder, DecoderConfig

_LEAF_HF = {"kernel": "weight", "bias": "bias", "scale": "weight", "embedding": "weight"}


def hf_name(path: tuple[str, ...]) -> str:
    """('layers_3', 'mlp', 'up_proj', 'kernel') -> 'layers.3.mlp.up_proj.weight' (without the 'model.' prefix)."""
    parts = [f"layers.{int(p.removeprefix('layers_'))}" if p.startswith("layers_") else p for p in path[:-1]]
    return ".".join(parts + [_LEAF_HF[path[-1]]])


def backbone_shapes(config: DecoderConfig, lora=None) -> dict:
    """The backbone's params tree as ShapeDtypeStructs (float32), from the module itself so it cannot drift."""
    ids = jnp.zeros((1, 2), jnp.int32)
    init = lambda k: Decoder(config, lora=lora).init(k, ids, jnp.ones_like(ids), deterministic=True)["params"]
    return jax.eval_shape(init, jax.random.key(0))


def _read_tensors(model_dir: pathlib.Path, name: str) -> dict:
    from safetensors import safe_open  # "flax" reads bf16/fp16 (numpy cannot)

    tensors = {}
    for file in safetensors_files(model_dir, name):
        with safe_open(model_dir / file, framework="flax") as f:
            for key in f.keys():
                norm = key.removeprefix("model.")
                if norm.startswith(("embed_tokens.", "layers.", "norm.")) and "rotary_emb" not in norm:
                    tensors.setdefault(norm, f.get_tensor(key))
    return tensors


def load_backbone(model_dir: pathlib.Path, config: DecoderConfig, base_dtype=jnp.bfloat16, name: str = "") -> dict:
    """The backbone params in base_dtype, kernels [in, out]."""
    tensors = _read_tensors(model_dir, name or str(model_dir))

    def load(path, want):
        key = hf_name(tuple(p.key for p in path))
        if key not in tensors:
            raise ValueError(f"model {name or str(model_dir)!r}: checkpoint has no weight 'model.{key}'")
        w = tensors.pop(key)
        w = w.T if path[-1].key == "kernel" else w
        if w.shape != want.shape:
            raise ValueError(f"model {name!r}: weight 'model.{key}' has shape {w.shape}, expected {want.shape}")
        return w.astype(base_dtype)

    return jax.tree_util.tree_map_with_path(load, backbone_shapes(config))
