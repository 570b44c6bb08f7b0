"""ReCoRD scores (host side): SQuAD-style normalised exact match and token F1."""

from __future__ import annotations

import collections
import math
import re
import string


_DROP_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _squad_tokens(s: str) -> list[str]:
    """SQuAD v1.1 / ReCoRD answer normalisation, as tokens: lower case, drop punctuation and articles."""
    return _ARTICLES.sub(" ", s.lower().translate(_DROP_PUNCT)).split()


def _token_f1(pred: list[str], gold: list[str]) -> float:
    same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def record_scores(predictions: list[str], answers: list[list[str]]) -> tuple[float, float]:
    """ReCoRD (exact match, token F1) of one run, each the max over the gold answers, averaged over examples.

    Fractions in [0, 1] (the official script multiplies by 100). An example with no gold answer scores 0.
    Exact match compares the normalised strings, i.e. the token lists joined by single spaces.
    """
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} answer lists")
    if not predictions:
        return math.nan, math.nan
    em = f1s = 0.0
    for pred, golds in zip(predictions, answers):
        p = _squad_tokens(pred)
        gs = [_squad_tokens(g) for g in golds]
        em += max((float(p == g) for g in gs), default=0.0)
        f1s += max((_token_f1(p, g) for g in gs), default=0.0)
    return em / len(predictions), f1s / len(predictions)
