"""How each SuperGLUE task reaches the encoder, following the SuperGLUE baselines and jiant for encoders.

One small interface per formulation: rows of the hub's layout (jaxseed.readers) -> Examples, i.e. a tuple of
texts per row (one or two segments, truncated longest-first so a passage gives way first) and a label per
example. The train step then sees one fixed-shape batch kind per formulation:

- classify (BoolQ, CB, RTE, WiC, WSC, AX-b, AX-g): one sequence, C-way softmax.
- choice (COPA): C sequences an example, `premise + cause/effect question` paired with each choice; one score a
  sequence, softmax across the choices (train.py reshapes [B*C] scores to [B, C]).
- option (MultiRC): one binary example per (paragraph + question, answer option); `extras` keep the paragraph,
  question and answer ids, and the question is the unit.
- candidate (ReCoRD): one binary example per distinct candidate entity string, put in place of `@placeholder`;
  the query is the unit and its best-scoring candidate the prediction (jaxseed.units).

WiC and WSC spans reach the model by **span marking**: the target word (WiC) and the pronoun / noun phrase (WSC)
are wrapped in marker characters in the text. Marking needs no change to the encoder or the head, so it works
for every model family, frozen-backbone probes and adapters alike, and the first-token head sees the spans
through attention; entity markers match or beat span pooling for span-pair tasks (Baldini Soares et al. 2019).
"""

from __future__ import annotations

import json
import re
import string

import numpy as np

from jaxseed.data import Examples
from jaxseed.tasks import Task

COPA_QUESTION = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}  # jiant's prompts
WIC_MARK = ("*", "*")
WSC_NOUN_MARK, WSC_PRONOUN_MARK = ("[", "]"), ("*", "*")
_PAIR_FIELDS = {"boolq": ("question", "passage"), "cb": ("premise", "hypothesis"), "rte_sg": ("premise", "hypothesis"),
                "axb": ("sentence1", "sentence2"), "axg": ("premise", "hypothesis")}

# Known span-index errors in the official WSC files, fixed explicitly: (start of text, span, wrong index) -> right
# index. Any other span that does not align is an error.
WSC_FIXES = {
    # validation idx 42: span2_index 30 points at "use"; the pronoun "it" is word 31.
    ("When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble", 2, 30): 31,
}


def build(task: Task, rows: list[dict]) -> Examples:
    if task.name == "copa":
        return _copa(rows)
    if task.name == "multirc":
        return _multirc(rows)
    if task.name == "record":
        return _record(rows)
    if task.name == "wic":
        texts = [(mark(r["sentence1"], r["start1"], r["end1"], WIC_MARK, r["_where"]),
                  mark(r["sentence2"], r["start2"], r["end2"], WIC_MARK, r["_where"])) for r in rows]
    elif task.name == "wsc":
        texts = [(wsc_text(r),) for r in rows]
    else:
        a, b = _PAIR_FIELDS[task.name]
        texts = [(r[a], r[b]) for r in rows]
    extras = {"pair": _axg_pairs(rows)} if task.name == "axg" else {}
    return Examples(texts, _labels(rows), np.asarray([r["idx"] for r in rows], np.int64), extras=extras)


def _labels(rows) -> np.ndarray:
    return np.asarray([r["label"] for r in rows], np.int64)


def _copa(rows) -> Examples:
    texts = []
    for r in rows:
        if r["question"] not in COPA_QUESTION:
            raise ValueError(f"{r['_where']}: COPA question must be 'cause' or 'effect', got {r['question']!r}")
        prompt = f"{r['premise']} {COPA_QUESTION[r['question']]}"
        texts += [(prompt, r["choice1"]), (prompt, r["choice2"])]
    return Examples(texts, _labels(rows), np.asarray([r["idx"] for r in rows], np.int64), choices=2)


def _multirc(rows) -> Examples:
    ids = {k: np.asarray([r["idx"][k] for r in rows], np.int64) for k in ("paragraph", "question", "answer")}
    texts = [(r["paragraph"], f"{r['question']} {r['answer']}") for r in rows]
    extras = {"unit": ids["question"], "paragraph": ids["paragraph"], "question": ids["question"],
              "answer": ids["answer"]}
    return Examples(texts, _labels(rows), ids["answer"], extras=extras)


def _record(rows) -> Examples:
    """One row per distinct entity string of a query: every mention of one string gives the same filled-in
    query, so scoring strings rather than mentions loses nothing and saves compute. Label: the string is a gold
    answer. Each row keeps its candidate and the query's gold answers (JSON) for the official scoring."""
    texts, label, qid, cand, gold = [], [], [], [], []
    for r in rows:
        if r["query"].count("@placeholder") != 1 or not r["entities"]:
            raise ValueError(f"{r['_where']}: a ReCoRD query needs one @placeholder and at least one entity")
        passage = r["passage"].replace("@highlight\n", "- ")  # the bullet markers, as readable text
        answers = json.dumps(list(r["answers"]))
        for e in r["entities"]:
            texts.append((passage, r["query"].replace("@placeholder", e)))
            label.append(int(e in r["answers"]))
            qid.append(r["idx"]["query"])
            cand.append(e)
            gold.append(answers)
    qid = np.asarray(qid, np.int64)
    extras = {"unit": qid, "candidate": np.asarray(cand, dtype=str), "answers": np.asarray(gold, dtype=str)}
    return Examples(texts, np.asarray(label, np.int64), qid, extras=extras)


def _axg_pairs(rows) -> np.ndarray:
    """AX-g's minimal pairs are consecutive rows (2k, 2k+1) sharing the hypothesis and the label: check it."""
    if len(rows) % 2:
        raise ValueError(f"{rows[-1]['_where']}: AX-g has an odd number of rows; minimal pairs are row pairs")
    for a, b in zip(rows[::2], rows[1::2]):
        if a["hypothesis"] != b["hypothesis"] or a["label"] != b["label"]:
            raise ValueError(f"{b['_where']}: not the minimal-pair partner of the row before it")
    return np.arange(len(rows)) // 2


def mark(text: str, start: int, end: int, marks: tuple[str, str], where: str) -> str:
    """text with text[start:end] wrapped in the two marks (a space on the outside keeps words apart)."""
    if not (0 <= start < end <= len(text)) or not text[start:end].strip():
        raise ValueError(f"{where}: span [{start}, {end}) is not a word of {text!r}")
    return f"{text[:start]}{marks[0]}{text[start:end]}{marks[1]}{text[end:]}"


_STRIP = string.punctuation + "\u201c\u201d\u2018\u2019"


def _word(w: str) -> str:
    w = w.lower().strip(_STRIP)
    return (w[:-2] if w.endswith("'s") else w).strip(_STRIP)


def wsc_span(text: str, span_text: str, index: int, key: int, where: str) -> tuple[int, int]:
    """Character range of a WSC span given as a whitespace-word index: checked against the span text (case,
    surrounding punctuation and possessive 's aside), through WSC_FIXES for the known errors, else an error."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    want = [_word(w) for w in span_text.split()]

    def aligned(i):
        got = [_word(text[s:e]) for s, e in words[i:i + len(want)]]
        return 0 <= i and got == want

    if not aligned(index):
        fixed = next((v for (head, k, bad), v in WSC_FIXES.items()
                      if k == key and bad == index and text.startswith(head)), None)
        if fixed is None or not aligned(fixed):
            got = " ".join(text[s:e] for s, e in words[index:index + len(want)])
            raise ValueError(f"{where}: WSC span{key} {span_text!r} does not align with word {index} ({got!r}) "
                             "of the text")
        index = fixed
    first, last = words[index], words[index + len(want) - 1]
    start, end = first[0], last[1]
    # Mark the span's own characters: leave out a quote before it, a comma or possessive 's after it.
    head, tail = span_text.split()[0].lower(), span_text.split()[-1].lower()
    start += max(text[first[0]:first[1]].lower().find(head), 0)
    pos = text[last[0]:last[1]].lower().rfind(tail)
    if pos >= 0 and last[0] + pos >= start:
        end = last[0] + pos + len(tail)
    return start, end


def wsc_text(r: dict) -> str:
    w = r["_where"]
    s1 = wsc_span(r["text"], r["span1_text"], r["span1_index"], 1, w)
    s2 = wsc_span(r["text"], r["span2_text"], r["span2_index"], 2, w)
    if s1[0] < s2[0] < s1[1] < s2[1] or s2[0] < s1[0] < s2[1] < s1[1]:
        raise ValueError(f"{w}: WSC spans cross each other")
    # Spans may nest ("their mothers" / "their"): at one position, closing marks come first, then opening marks
    # of the longer span first; a closing mark of the shorter span before the longer one's.
    events = sorted(e for (a, b), m in ((s1, WSC_NOUN_MARK), (s2, WSC_PRONOUN_MARK))
                    for e in ((a, 1, a - b, m[0]), (b, 0, b - a, m[1])))
    text, out, prev = r["text"], [], 0
    for pos, _, _, m in events:
        out += [text[prev:pos], m]
        prev = pos
    return "".join(out) + text[prev:]
