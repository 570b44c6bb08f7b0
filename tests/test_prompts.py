"""Decoder prompts: named fields one a line, right padding to the bucket, truncation that keeps the end."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from jaxseed import prompts
from jaxseed.data import Examples

from conftest import minilm_dir


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(minilm_dir()))  # adds [CLS] ... [SEP]; pad id 0


def examples(*rows):
    return Examples(list(rows), np.arange(len(rows)), np.arange(len(rows)))


def test_prompt_names_each_field_on_its_own_line():
    assert prompts.build_prompt(("premise", "hypothesis"), ("A dog runs.", "An animal moves.")) == \
        "premise: A dog runs.\nhypothesis: An animal moves."
    assert prompts.build_prompt(("sentence",), ("Great film.",)) == "sentence: Great film."


def test_right_padding_to_the_bucket(tok):
    enc = prompts.encode(tok, ("sentence",), examples(("good",), ("a rather longer sentence here",)), 128)
    assert enc.length == 32  # the smallest bucket holding the longest prompt
    want = tok("sentence: a rather longer sentence here")["input_ids"]
    n = len(want)
    assert enc.ids_NxL[1, :n].tolist() == want and enc.mask_NxL[1].tolist() == [1] * n + [0] * (32 - n)
    assert (enc.ids_NxL[1, n:] == tok.pad_token_id).all() and enc.mask_NxL[0].sum() < n


def test_truncation_keeps_the_end_and_the_special_tokens(tok):
    long_first = " ".join(f"w{i}" for i in range(200))
    enc = prompts.encode(tok, ("premise", "hypothesis"), examples((long_first, "the last words matter")), 24)
    ids = enc.ids_NxL[0].tolist()
    assert enc.length == 24 and enc.mask_NxL[0].sum() == 24
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    tail = tok("hypothesis: the last words matter", add_special_tokens=False)["input_ids"]
    assert ids[-1 - len(tail):-1] == tail  # the second field survives whole; the first lost its beginning


def test_pad_falls_back_to_eos_then_zero():
    class Tok:
        pad_token_id, eos_token_id = None, 7

    assert prompts.pad_id(Tok()) == 7
    Tok.eos_token_id = None
    assert prompts.pad_id(Tok()) == 0


def test_no_room_for_text_is_an_error(tok):
    with pytest.raises(ValueError, match="max_length 2"):
        prompts.encode(tok, ("sentence",), examples(("x",)), 2)
