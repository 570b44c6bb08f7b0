"""SuperGLUE's official metrics and consistency per natural unit against independent oracles: scikit-learn, plain
Python loops written from the definitions, and the ReCoRD / SQuAD evaluation as in the official script (the
`evaluate` super_glue metric), on random, ragged and degenerate inputs."""

import collections
import re
import string

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from jaxseed import units as U

TOL = 1e-6


# --- the official definitions, written out independently of jaxseed -----------------------------------------

def normalize_answer(s):
    """ReCoRD / SQuAD: lower case, remove punctuation, articles and extra whitespace (official script)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_official(pred, gold):
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def em_official(pred, gold):
    return float(normalize_answer(pred) == normalize_answer(gold))


def multirc_oracle(pred, label, question):
    """evaluate's super_glue multirc: group by question, EM = all options right; F1a = binary F1 over options."""
    groups = collections.defaultdict(list)
    for p, y, q in zip(pred, label, question):
        groups[q].append(p == y)
    return np.mean([all(v) for v in groups.values()]), f1_score(label, pred, zero_division=0)


def ragged(rng, n_questions, max_options=7):
    sizes = rng.integers(1, max_options + 1, n_questions)
    qids = rng.choice(10_000, n_questions, replace=False)  # arbitrary, non-contiguous ids
    return np.repeat(qids, sizes)


# --- tests ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_multirc_em_and_f1a_on_ragged_questions(seed):
    rng = np.random.default_rng(seed)
    question = ragged(rng, 40)
    n = len(question)
    label = rng.integers(0, 2, n)
    pred = rng.integers(0, 2, (5, n))
    pred[1] = label  # one perfect run
    pred[2] = 0  # all False: F1a 0
    pred[3] = 1  # all True
    pred[4][question == question[0]] = label[question == question[0]]  # one question surely right
    extras = {"unit": question}
    em = U.score("multirc_em", pred, label, 2, extras)
    f1a = U.score("multirc_f1a", pred, label, 2, extras)
    for s in range(5):
        want_em, want_f1 = multirc_oracle(pred[s], label, question)
        assert abs(em[s] - want_em) < TOL and abs(f1a[s] - want_f1) < TOL


def test_multirc_degenerate_labels():
    question = np.array([7, 7, 3, 3, 3, 9])
    label = np.zeros(6, int)  # no True option anywhere
    for pred in (np.zeros((1, 6), int), np.ones((1, 6), int)):
        want_em, want_f1 = multirc_oracle(pred[0], label, question)
        assert abs(U.score("multirc_em", pred, label, 2, {"unit": question})[0] - want_em) < TOL
        assert abs(U.score("multirc_f1a", pred, label, 2, {"unit": question})[0] - want_f1) < TOL


POOL = ["John Smith", "Smith", "the Smith", "Smith.", "JOHN SMITH", "Paris", "Paris, France", "an apple",
        "Apple", "New York Times", "The New York Times", "Times", "", "Mr. Smith", "smith's"]


@pytest.mark.parametrize("seed", range(4))
def test_record_em_f1_max_over_several_gold_answers(seed):
    """Random queries, candidates and several gold answers each; each seed's prediction is its best-scoring
    candidate (the first on ties): EM and F1 equal the official max-over-gold scores averaged over queries."""
    rng = np.random.default_rng(seed)
    query = ragged(rng, 30, 6)
    cands, answers = [], []
    for q in dict.fromkeys(query.tolist()):
        k = int((query == q).sum())
        c = list(rng.choice(POOL, k, replace=False))
        gold = sorted(set(rng.choice(POOL, rng.integers(1, 4)).tolist()))
        cands += c
        answers += [gold] * k
    import json
    extras = {"unit": query, "candidate": np.asarray(cands), "answers": np.asarray([json.dumps(a) for a in answers])}
    score = rng.integers(0, 3, (4, len(query))).astype(np.float32)  # small ints: many ties
    uid, g = U.dense_units(query)
    pred = np.asarray(U.record_choice(score, uid, g))
    em, f1 = U.score("record_em", pred, None, 2, extras), U.score("record_f1", pred, None, 2, extras)
    for s in range(4):
        ems, f1s = [], []
        for q in dict.fromkeys(query.tolist()):
            rows = np.flatnonzero(query == q)
            best = rows[np.argmax(score[s, rows])]  # numpy argmax: the first maximum
            assert pred[s, rows].tolist() == [int(r == best) for r in rows]
            ems.append(max(em_official(cands[best], a) for a in answers[best]))
            f1s.append(max(f1_official(cands[best], a) for a in answers[best]))
        assert abs(em[s] - np.mean(ems)) < TOL and abs(f1[s] - np.mean(f1s)) < TOL


def test_record_hand_worked():
    # One query: candidates "Smith" (chosen) and "Paris"; gold "John Smith" and "Smith": EM 1, F1 1.
    # Another: "the Times" chosen, gold "New York Times": EM 0, F1 = 2 * (1/1 * 1/3) / (1 + 1/3) = 0.5.
    extras = {"unit": np.array([0, 0, 1, 1]), "candidate": np.array(["Smith", "Paris", "the Times", "Paris"]),
              "answers": np.array(['["John Smith", "Smith"]'] * 2 + ['["New York Times"]'] * 2)}
    pred = np.array([[1, 0, 1, 0]])
    assert abs(U.score("record_em", pred, None, 2, extras)[0] - 0.5) < TOL
    assert abs(U.score("record_f1", pred, None, 2, extras)[0] - 0.75) < TOL
    # Chance baseline: the mean over queries of the mean EM of its candidates: (1/2 + 0) / 2.
    assert abs(U.baseline("record_em", np.zeros(4, int), 0, 2, extras) - 0.25) < TOL


@pytest.mark.parametrize("seed", range(3))
def test_cb_axb_axg_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    y3, p3 = rng.integers(0, 3, 56), rng.integers(0, 3, (4, 56))
    p3[1] = 1  # a collapsed run: one class everywhere
    for s in range(4):
        assert abs(U.score("accuracy", p3, y3, 3, {})[s] - accuracy_score(y3, p3[s])) < TOL
        assert abs(U.score("macro_f1", p3, y3, 3, {})[s] - f1_score(y3, p3[s], average="macro")) < TOL
    y2, p2 = rng.integers(0, 2, 1104), rng.integers(0, 2, (3, 1104))
    p2[2] = 0  # constant: MCC 0, as scikit-learn
    for s in range(3):
        assert abs(U.score("mcc", p2, y2, 2, {})[s] - matthews_corrcoef(y2, p2[s])) < TOL


@pytest.mark.parametrize("seed", range(3))
def test_gender_parity(seed):
    rng = np.random.default_rng(seed)
    pair = np.arange(356) // 2
    pred = rng.integers(0, 2, (3, 356))
    pred[1] = np.repeat(rng.integers(0, 2, 178), 2)  # every pair identical: GPS 1
    gps = U.score("gender_parity", pred, None, 2, {"pair": pair})
    for s in range(3):
        want = np.mean([pred[s, 2 * k] == pred[s, 2 * k + 1] for k in range(178)])
        assert abs(gps[s] - want) < TOL
    assert gps[1] == 1.0


def unit_oracle(pred, label, unit):
    agree, right = [], []
    for u in dict.fromkeys(unit.tolist()):
        rows = unit == u
        agree.append(all((pred[:, rows] == pred[0, rows]).all(axis=0)))
        right.append((pred[:, rows] == label[rows]).all())
    return np.mean(agree), np.mean(right)


@pytest.mark.parametrize("seed", range(4))
def test_consistency_per_unit(seed):
    rng = np.random.default_rng(seed)
    unit = ragged(rng, 50, 5)
    label = rng.integers(0, 2, len(unit))
    pred = np.where(rng.random((6, len(unit))) < 0.9, label, 1 - label)  # mostly right: many agreeing units
    got = U.unit_summary("question", pred, label, {"unit": unit})
    want_con, want_ccon = unit_oracle(pred, label, unit)
    assert got["num_units"] == 50
    assert abs(got["consistency"] - want_con) < TOL and abs(got["correct_consistency"] - want_ccon) < TOL
    one = U.unit_summary("question", pred[:1], label, {"unit": unit})  # one seed always agrees with itself
    assert one["consistency"] == 1.0 and abs(one["correct_consistency"] - unit_oracle(pred[:1], label, unit)[1]) < TOL


def test_record_consistency_is_per_query_choice():
    # Two seeds, two queries: both choose the same entity in query 0 (a gold one), different ones in query 1.
    extras = {"unit": np.array([5, 5, 5, 8, 8]), "candidate": np.array(["A", "B", "C", "D", "E"]),
              "answers": np.array(['["B"]'] * 3 + ['["D"]'] * 2)}
    pred = np.array([[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]])
    got = U.unit_summary("query", pred, np.array([0, 1, 0, 1, 0]), extras)
    assert got == {"unit": "query", "num_units": 2, "consistency": 0.5, "correct_consistency": 0.5}
