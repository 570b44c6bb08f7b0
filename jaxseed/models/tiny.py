"""A tiny random decoder checkpoint for smoke runs: `python -m jaxseed.models.tiny OUT [--family llama]`.

Writes a Hugging Face folder (config.json, model.safetensors, tokenizer files) that transformers and jaxseed
both load: random weights drawn by our own Flax module (N(0, initializer_range), norms 1), so no torch and no
download is needed; the tokenizer is copied from `--tokenizer` (default all-MiniLM-L6-v2's WordPiece, whose
pip mirror ships with jaxseed's test environment), and the vocabulary is sized to it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil

import jax
import numpy as np

from jaxseed.models.decoder import DecoderConfig, FAMILIES

TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json", "tokenizer.model")


def hf_config(family: str, vocab_size: int, pad_token_id: int, hidden: int = 32, layers: int = 2, heads: int = 4,
              kv_heads: int = 2, intermediate: int = 64, initializer_range: float = 0.2) -> dict:
    d = {"model_type": family, "architectures": [{"llama": "LlamaModel", "qwen2": "Qwen2Model", "qwen3": "Qwen3Model"}[family]],
         "vocab_size": vocab_size, "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": kv_heads, "intermediate_size": intermediate, "max_position_embeddings": 512,
         "rms_norm_eps": 1e-5, "hidden_act": "silu", "pad_token_id": pad_token_id, "tie_word_embeddings": True,
         "initializer_range": initializer_range, "rope_theta": 500000.0, "torch_dtype": "float32"}
    if family == "llama":  # Llama 3.x's frequency scaling, at a small original context so every band occurs
        d["rope_scaling"] = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 64}
    if family == "qwen3":
        d["head_dim"] = 2 * hidden // heads  # an explicit head_dim that is not hidden / heads
    return d


def save_random_decoder(out, family: str = "llama", tokenizer: str = "sentence-transformers/all-MiniLM-L6-v2",
                        seed: int = 0, **shape) -> pathlib.Path:
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer

    from jaxseed.models.encoder import resolve_model_dir
    from jaxseed.models.decoder import Decoder
    from jaxseed.models.decoder_params import hf_name

    if family not in FAMILIES:
        raise ValueError(f"unsupported family {family!r} (supported: {', '.join(FAMILIES)})")
    tok_dir = resolve_model_dir(tokenizer)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    d = hf_config(family, len(tok), 0 if pad is None else int(pad), **shape)
    config = DecoderConfig.from_hf(d)
    ids = np.zeros((1, 2), np.int32)
    params = Decoder(config).init(jax.random.key(seed), ids, np.ones_like(ids), deterministic=True)["params"]
    tensors = {}
    for path, w in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = tuple(p.key for p in path)
        w = np.asarray(w, np.float32)
        tensors["model." + hf_name(keys)] = np.ascontiguousarray(w.T if keys[-1] == "kernel" else w)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(d, indent=2))
    for f in TOKENIZER_FILES:
        if (tok_dir / f).exists():
            shutil.copy(tok_dir / f, out / f)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m jaxseed.models.tiny", description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--family", default="llama", choices=FAMILIES)
    p.add_argument("--tokenizer", default="sentence-transformers/all-MiniLM-L6-v2")
    args = p.parse_args(argv)
    print(f"wrote {save_random_decoder(args.out, args.family, args.tokenizer)}")


if __name__ == "__main__":
    main()
