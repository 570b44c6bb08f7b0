"""Prompts for decoder classifiers: a task's text fields as one string, tokenized once into fixed-shape arrays.

The prompt names each field and puts one field on a line, in the task's field order:

    premise: A man is playing a guitar.
    hypothesis: A person plays music.

(a single-field task gives one line, e.g. "sentence: ..."). The tokenizer's own special tokens wrap the whole
prompt (Llama 3: <|begin_of_text|> in front; Qwen: none). Rows are padded on the right to the bucketed length
(as jaxseed.data.encode), with the tokenizer's pad token, or its eos token when it has none (Llama 3); the
classifier reads the last position of the attention mask, so the pad id never changes a prediction.
Truncation to max_length keeps the END of the prompt: the classifier reads the last token, and the last field
(hypothesis, question, second sentence) is the one the label is about, so a long first field loses its
beginning rather than the second field its end. The special tokens are always kept.
"""

from __future__ import annotations

import numpy as np

from jaxseed.data import Encoded, Examples, bucket_length

FIELD_SEPARATOR = "\n"


def build_prompt(field_names, texts) -> str:
    return FIELD_SEPARATOR.join(f"{name}: {text}" for name, text in zip(field_names, texts))


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """(prefix, suffix) ids the tokenizer adds around any text, found on a probe string."""
    probe = "hello world"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i:i + len(bare)] == bare:
            return list(full[:i]), list(full[i + len(bare):])
    return [], []


def pad_id(tokenizer) -> int:
    for tok in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tok is not None:
            return int(tok)
    return 0


def encode(tokenizer, field_names, examples: Examples, max_length: int) -> Encoded:
    prefix, suffix = special_tokens(tokenizer)
    keep = max_length - len(prefix) - len(suffix)
    if keep < 1:
        raise ValueError(f"max_length {max_length} leaves no room for text after the special tokens")
    prompts = [build_prompt(field_names, t) for t in examples.texts]
    bodies = tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else []
    seqs = [prefix + list(b[-keep:]) + suffix for b in bodies]
    length = bucket_length(max((len(s) for s in seqs), default=1), max_length)
    n = len(seqs)
    ids = np.full((n, length), pad_id(tokenizer), np.int32)
    mask = np.zeros((n, length), np.int32)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    enc = Encoded(ids, mask, np.zeros((n, length), np.int32), examples.label, examples.example_id)
    if getattr(examples, "extras", None):  # per-example fields some tasks carry (e.g. SuperGLUE units) ride along
        enc.extras = examples.extras
    return enc
