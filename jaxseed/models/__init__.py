"""One entry point over model families: the encoders of jaxseed.models.encoder and the decoders of models.decoder.

`config` objects are EncoderConfig or DecoderConfig; everything below dispatches on their type, so train.py
and run.py never branch on the family themselves.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp

from jaxseed.models import encoder as encoder_lib
from jaxseed.models import decoder as decoder_lib
from jaxseed.models.lora import LoraSpec

ENCODER_LINEAR_NAMES = ("query", "key", "value", "attention_output", "intermediate", "output")
ENCODER_DEFAULT_TARGETS = ("query", "value")  # the LoRA paper's RoBERTa recipe, peft's default for BERT/RoBERTa
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def is_decoder(config) -> bool:
    return isinstance(config, decoder_lib.DecoderConfig)


def config_from_hf(d: dict):
    """EncoderConfig or DecoderConfig from a Hugging Face config.json mapping."""
    if d.get("model_type") in decoder_lib.FAMILIES:
        return decoder_lib.DecoderConfig.from_hf(d)
    if d.get("model_type") in encoder_lib.FAMILIES:
        return encoder_lib.EncoderConfig.from_hf(d)
    known = ", ".join(list(encoder_lib.FAMILIES) + list(decoder_lib.FAMILIES))
    raise ValueError(f"unsupported model_type {d.get('model_type')!r} (supported: {known})")


def read_config(model_dir: pathlib.Path):
    return config_from_hf(json.loads((pathlib.Path(model_dir) / "config.json").read_text()))


def load_pretrained(name_or_path: str, base_dtype: str | None = None) -> encoder_lib.Pretrained:
    """Backbone weights of an encoder (float32) or a decoder (base_dtype, default bfloat16)."""
    model_dir = encoder_lib.resolve_model_dir(name_or_path)
    config = read_config(model_dir)
    if not is_decoder(config):
        pre = encoder_lib.load_pretrained(str(model_dir))
        if base_dtype not in (None, "float32"):
            pre.backbone = jax.tree.map(lambda x: x.astype(DTYPES[base_dtype]), pre.backbone)
        return pre
    from jaxseed.models.decoder_params import load_backbone

    backbone = load_backbone(model_dir, config, DTYPES[base_dtype or "bfloat16"], name_or_path)
    return encoder_lib.Pretrained(config=config, backbone=backbone, pooler=None)


def classifier(config, num_labels: int, dtype=jnp.float32, remat: bool = False, lora: LoraSpec | None = None):
    cls = decoder_lib.DecoderClassifier if is_decoder(config) else encoder_lib.Classifier
    return cls(config, num_labels, dtype=dtype, remat=remat, lora=lora)


def init_head(key, config, num_labels: int, pooler: dict | None = None) -> dict:
    if is_decoder(config):
        return decoder_lib.init_head(key, config, num_labels)
    return encoder_lib.init_head(key, config, num_labels, pooler)


def linear_names(config) -> tuple[str, ...]:
    return decoder_lib.LINEAR_NAMES if is_decoder(config) else ENCODER_LINEAR_NAMES


def lora_spec(config, r: int = 8, alpha: float = 8.0, dropout: float = 0.0, target_modules=None,
              rslora: bool = False) -> LoraSpec:
    """A LoraSpec for this model; target_modules None means peft's default for the family. A name that matches
    no linear layer of the model is an error (as in peft)."""
    if target_modules is None:
        targets = decoder_lib.DEFAULT_TARGETS if is_decoder(config) else ENCODER_DEFAULT_TARGETS
    elif target_modules == "all-linear":
        targets = linear_names(config)
    else:
        targets = tuple(target_modules)
        unknown = [t for t in targets if t not in linear_names(config)]
        if unknown:
            raise ValueError(f"lora.target_modules: {unknown[0]!r} matches no layer of this model "
                             f"(its linear layers: {', '.join(linear_names(config))})")
    return LoraSpec(r=r, alpha=float(alpha), dropout=float(dropout), target_modules=targets, rslora=rslora)


def lora_from_config(cfg, config) -> LoraSpec | None:
    """The LoraSpec of a jaxseed Config (train_mode lora) for a model config; None for other train modes."""
    if cfg.train_mode != "lora":
        return None
    return lora_spec(config, **(cfg.lora or {}))


def base_dtype(cfg, config) -> str:
    """The frozen base's dtype: `base_dtype`, else bfloat16 for a decoder's LoRA base, else float32."""
    if cfg.base_dtype:
        return cfg.base_dtype
    return "bfloat16" if is_decoder(config) and cfg.train_mode == "lora" else "float32"


def backbone_shapes(config, lora: LoraSpec | None = None) -> dict:
    """The backbone params tree (ShapeDtypeStructs), with adapter leaves where `lora` targets."""
    if is_decoder(config):
        from jaxseed.models.decoder_params import backbone_shapes as shapes

        return shapes(config, lora)
    ids = jnp.zeros((1, 2), jnp.int32)
    init = lambda k: encoder_lib.Encoder(config, lora=lora).init(k, ids, jnp.ones_like(ids), deterministic=True)
    return jax.eval_shape(init, jax.random.key(0))["params"]
