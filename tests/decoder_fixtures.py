"""Tiny random decoder checkpoints for the engine and CLI tests (no download: built here with transformers)."""

import shutil
from pathlib import Path

from conftest import minilm_dir


def save_tiny_decoder(out: Path, family: str = "llama", seed: int = 0) -> Path:
    """A 2-layer, 32-wide random decoder of `family` saved as a Hugging Face checkpoint, with MiniLM's real
    WordPiece tokenizer (its [PAD] id 0 is the config's pad id); the weights are wide enough that examples and
    seeds get different predictions."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg_cls, model_cls = {"llama": (transformers.LlamaConfig, transformers.LlamaModel),
                          "qwen2": (transformers.Qwen2Config, transformers.Qwen2Model),
                          "qwen3": (transformers.Qwen3Config, transformers.Qwen3Model)}[family]
    extra = {"head_dim": 16} if family == "qwen3" else {}
    cfg = cfg_cls(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64, max_position_embeddings=512, pad_token_id=0, initializer_range=0.2,
                  tie_word_embeddings=True, **extra)
    out.mkdir(parents=True, exist_ok=True)
    model_cls(cfg).save_pretrained(out)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / f, out / f)
    return out
