"""jaxseed.models.decoder against transformers' Llama / Qwen2 / Qwen3 *ForSequenceClassification."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

from jaxseed import models
from jaxseed.models import decoder as D
from jaxseed.models.decoder_params import load_backbone

torch.set_num_threads(2)
PAD = 0

FAMILIES = {
    # llama3 rope with a small original context so all three frequency bands occur at head_dim 16
    "llama": (transformers.LlamaConfig, transformers.LlamaForSequenceClassification,
              dict(rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                   tie_word_embeddings=True, rms_norm_eps=1e-5)),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForSequenceClassification,
              dict(tie_word_embeddings=True, rms_norm_eps=1e-6)),
    # head_dim 16 while hidden / heads = 12: Qwen3's explicit head_dim
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForSequenceClassification,
              dict(head_dim=16, tie_word_embeddings=False, rms_norm_eps=1e-6)),
}


def tiny_decoder(family, num_labels=3, seed=0, **extra):
    """A tiny HF decoder classifier with every parameter randomised (norm weights and biases too)."""
    torch.manual_seed(seed)
    cfg_cls, model_cls, kw = FAMILIES[family]
    hidden = 48 if family == "qwen3" else 64
    cfg = cfg_cls(vocab_size=101, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=96, max_position_embeddings=128, num_labels=num_labels, pad_token_id=PAD,
                  attn_implementation="eager", **{**kw, **extra})
    model = model_cls(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.15)
    return model


def tiny_batch(seed=0, lengths=(11, 7, 3, 1)):
    """Right-padded ids of mixed lengths; the pad id never occurs in the text."""
    rng = np.random.default_rng(seed)
    L = max(lengths)
    ids = rng.integers(1, 101, size=(len(lengths), L))
    mask = (np.arange(L)[None] < np.asarray(lengths)[:, None]).astype(np.int64)
    return np.where(mask == 1, ids, PAD), mask


def torch_logits(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()


def load(model, tmp_path, base_dtype=jnp.float32, **save_kw):
    model.save_pretrained(tmp_path, **save_kw)
    cfg = models.read_config(tmp_path)
    head = {"score": {"kernel": jnp.asarray(model.score.weight.detach().numpy()).T}}
    return cfg, {"backbone": load_backbone(tmp_path, cfg, base_dtype), "head": head}


def jax_logits(cfg, params, ids, mask, lora=None, num_labels=3):
    module = models.classifier(cfg, num_labels, lora=lora)
    return np.asarray(module.apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask), deterministic=True))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_match_transformers(family, tmp_path):
    model = tiny_decoder(family)
    cfg, params = load(model, tmp_path)
    ids, mask = tiny_batch()
    want = torch_logits(model, ids, mask)
    got = jax_logits(cfg, params, ids, mask)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert np.abs(want[0] - want[1]).max() > 1e-2  # rows differ: the pooled position matters


def test_llama3_rope_bands_match_transformers():
    model = tiny_decoder("llama")
    cfg = D.DecoderConfig.from_hf(model.config.to_dict())
    want = model.model.rotary_emb.inv_freq.numpy()
    got = D.rope_inv_freq(cfg)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    base = 1.0 / 10000.0 ** (np.arange(0, 16, 2) / 16)
    ratio = got / base
    # unchanged, smoothed and divided-by-factor frequencies all occur
    assert np.isclose(ratio, 1).any() and np.isclose(ratio, 1 / 8).any() and ((ratio < 0.99) & (ratio > 0.13)).any()


def test_rope_scaling_key_read_like_rope_parameters(tmp_path):
    model = tiny_decoder("llama")
    d = model.config.to_dict()
    rope = d.pop("rope_parameters")
    d["rope_theta"] = rope.pop("rope_theta")
    d["rope_scaling"] = rope  # the key hub files of Llama 3.x carry
    assert D.DecoderConfig.from_hf(d) == D.DecoderConfig.from_hf(model.config.to_dict())


def test_sharded_and_bf16_checkpoints(tmp_path):
    model = tiny_decoder("qwen2")
    cfg, ref = load(model, tmp_path / "one")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    sharded = load_backbone(tmp_path / "sharded", cfg, jnp.float32)
    jax.tree.map(np.testing.assert_array_equal, sharded, ref["backbone"])
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    bf16 = load_backbone(tmp_path / "bf16", cfg, jnp.bfloat16)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(bf16))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a, np.float32),
                                                            np.asarray(b.astype(jnp.bfloat16), np.float32)),
                 bf16, ref["backbone"])
    ids, mask = tiny_batch()
    close = jax_logits(cfg, {"backbone": bf16, "head": ref["head"]}, ids, mask)
    np.testing.assert_allclose(close, jax_logits(cfg, ref, ids, mask), atol=0.1)  # bf16 weights, f32 compute


def test_untied_lm_head_is_not_read(tmp_path):
    model = tiny_decoder("qwen3")
    model.save_pretrained(tmp_path)
    tensors = safetensors.numpy.load_file(tmp_path / "model.safetensors")
    assert "score.weight" in tensors and not any(k.startswith("lm_head") for k in tensors)
    cfg = models.read_config(tmp_path)
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(load_backbone(tmp_path, cfg, jnp.float32)))
    assert n == cfg.num_params() == sum(p.numel() for k, p in model.model.named_parameters())


@pytest.mark.parametrize("key,value,needle", [
    ("model_type", "mistral", "model_type"),
    ("rope_parameters", {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0}, "rope_parameters.rope_type"),
    ("hidden_act", "gelu", "hidden_act"),
    ("use_sliding_window", True, "use_sliding_window"),
])
def test_unsupported_config_values_name_the_key(key, value, needle):
    d = tiny_decoder("qwen2").config.to_dict()
    d[key] = value
    with pytest.raises(ValueError, match=needle) as e:
        models.config_from_hf(d)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tiny_random_checkpoint_loads_in_transformers(family, tmp_path):
    """jaxseed.models.tiny writes what transformers reads with no missing or unexpected weight, and the
    hidden states agree."""
    from jaxseed.models.tiny import save_random_decoder

    out = save_random_decoder(tmp_path / family, family)
    model, info = transformers.AutoModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    pre = models.load_pretrained(str(out), "float32")
    ids, mask = tiny_batch()
    with torch.no_grad():
        want = model.eval()(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    got = D.Decoder(pre.config).apply({"params": pre.backbone}, jnp.asarray(ids), jnp.asarray(mask), deterministic=True)
    np.testing.assert_allclose(np.asarray(got)[mask == 1], want[mask == 1], atol=1e-4, rtol=1e-4)
