"""SuperGLUE readers and formulations on the real files: published sizes, Hugging Face label ids, the hub path
(a parquet copy in the hub's layout, built here from the jsonl as the `super_glue` script builds it), span
marking and its alignment with the tokenizer, AX-g's minimal pairs, ReCoRD on a hand-written file."""

import json
import shutil

import numpy as np
import pytest

from jaxseed import data as data_lib
from jaxseed import formulations, readers
from jaxseed.tasks import SUPERGLUE_TASKS, get_task

from conftest import DATA, REPO, minilm_dir

SG = DATA / "superglue"
RECORD = REPO / "tests" / "data" / "ReCoRD"


def load(name, split, data_dir=SG):
    return data_lib.load_split(get_task(name), split, data_dir)


@pytest.mark.parametrize("name, split, n", [
    ("cb", "train", 250), ("cb", "validation", 56), ("copa", "train", 400), ("copa", "validation", 100),
    ("multirc", "train", 27243), ("multirc", "validation", 4848), ("rte_sg", "train", 2490),
    ("rte_sg", "validation", 277), ("wic", "train", 5428), ("wic", "validation", 638), ("wsc", "train", 554),
    ("wsc", "validation", 104), ("axb", "test", 1104), ("axg", "test", 356), ("boolq", "validation", 3270)])
def test_published_split_sizes(name, split, n):
    ex = load(name, split)
    assert len(ex) == n == len(ex.example_id)
    assert len(ex.texts) == n * (2 if name == "copa" else 1)


def test_multirc_questions_and_ids():
    for split, questions in (("train", 5131), ("validation", 953)):
        ex = load("multirc", split)
        assert len(np.unique(ex.extras["unit"])) == questions
        assert len(np.unique(ex.extras["answer"])) == len(ex)  # answer ids are unique within a file
    first = json.loads((SG / "MultiRC" / "val.jsonl").read_text().splitlines()[0])
    q = first["passage"]["questions"][0]
    assert ex.texts[0] == (first["passage"]["text"], f"{q['question']} {q['answers'][0]['text']}")
    assert ex.label[:len(q["answers"])].tolist() == [a["label"] for a in q["answers"]]


def test_label_ids_follow_hugging_face():
    # Counts from the files: CB val 23 entailment / 28 contradiction / 5 neutral; COPA val 55 choice1;
    # RTE val 146 entailment; BoolQ val 2033 True; WSC val 66 False.
    assert np.bincount(load("cb", "validation").label).tolist() == [23, 28, 5]
    assert np.bincount(load("copa", "validation").label).tolist() == [55, 45]
    assert np.bincount(load("rte_sg", "validation").label).tolist() == [146, 131]
    assert np.bincount(load("boolq", "validation").label).tolist() == [1237, 2033]
    assert np.bincount(load("wsc", "validation").label).tolist() == [66, 38]
    axb = load("axb", "test")
    assert axb.example_id.dtype == np.int64 and axb.example_id[:3].tolist() == [0, 1, 2]  # "0", "1", ... in the file


def test_axg_minimal_pairs_are_consecutive_rows():
    rows = readers.read_rows(get_task("axg"), "test", SG)
    assert all(a["hypothesis"] == b["hypothesis"] and a["label"] == b["label"] and b["pair_id"] - a["pair_id"] == 2
               for a, b in zip(rows[::2], rows[1::2]))
    ex = load("axg", "test")
    assert ex.extras["pair"].tolist() == [i // 2 for i in range(356)]


def test_copa_rows_pair_the_prompt_with_each_choice():
    row = json.loads((SG / "COPA" / "val.jsonl").read_text().splitlines()[0])
    ex = load("copa", "validation")
    prompt = f"{row['premise']} What happened as a result?"  # question "effect"
    assert ex.choices == 2 and ex.texts[:2] == [(prompt, row["choice1"]), (prompt, row["choice2"])]
    assert ex.label[0] == row["label"] == 1


def _between(tokens, open_id, close_id):
    i = tokens.index(open_id)
    return tokens[i + 1:tokens.index(close_id, i + 1)]


def test_wic_marks_align_with_the_tokenizer():
    """The marked characters are exactly sentence[start:end], and the sub-word tokens between the marks are
    exactly the tokens of that target word."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    star = tok.convert_tokens_to_ids("*")
    rows = readers.read_rows(get_task("wic"), "validation", SG)
    ex = load("wic", "validation")
    for r, (a, b) in list(zip(rows, ex.texts))[:200]:
        for text, s, e, marked in ((r["sentence1"], r["start1"], r["end1"], a), (r["sentence2"], r["start2"], r["end2"], b)):
            assert marked == text[:s] + "*" + text[s:e] + "*" + text[e:]
            ids = tok(marked, add_special_tokens=False)["input_ids"]
            target = tok(text[s:e], add_special_tokens=False)["input_ids"]
            assert _between(ids, star, star) == target, (marked, text[s:e])


def test_wsc_spans_align_and_known_errors_are_fixed():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    ids_of = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    lb, rb, star = (tok.convert_tokens_to_ids(c) for c in "[]*")
    norm = lambda s: [formulations._word(w) for w in s.split()]
    for split in ("train", "validation"):
        rows = readers.read_rows(get_task("wsc"), split, SG)
        ex = load("wsc", split)
        for r, (text,) in zip(rows, ex.texts):
            noun = text[text.index("[") + 1:text.index("]")].replace("*", "")
            pronoun = text[text.index("*") + 1:text.index("*", text.index("*") + 1)]
            assert norm(noun) == norm(r["span1_text"]) and norm(pronoun) == norm(r["span2_text"]), text
            ids = ids_of(text)
            assert [t for t in _between(ids, lb, rb) if t != star] == ids_of(noun)
            assert _between(ids, star, star) == ids_of(pronoun)
    # Validation idx 42: span2_index 30 points at "use"; the explicit fix marks "it" (word 31).
    text = load("wsc", "validation").texts[42][0]
    assert "might want to use *it* , but" in text and "[safe]" in text
    # Nested spans ("their mothers" / "their") keep both marks.
    assert "[*their* mothers]" in load("wsc", "validation").texts[95][0]


def test_wsc_unknown_misalignment_fails_loudly():
    row = {"text": "The cup fell off the table because it was round .", "span1_text": "the table", "span1_index": 4,
           "span2_text": "it", "span2_index": 8, "_where": "x.jsonl: line 3"}
    with pytest.raises(ValueError, match=r"x.jsonl: line 3: WSC span2 'it' does not align with word 8 \('was'\)"):
        formulations.wsc_text(row)
    assert "because *it* was" in formulations.wsc_text(row | {"span2_index": 7})


def test_record_hand_written_file():
    """ReCoRD's real schema: inclusive entity / answer ends, repeated mentions, several gold answers."""
    lines = [json.loads(x) for x in (RECORD / "val.jsonl").read_text().splitlines()]
    for obj in lines:  # the file itself is consistent: every answer is an entity mention
        t = obj["passage"]["text"]
        spans = {(e["start"], e["end"]) for e in obj["passage"]["entities"]}
        for q in obj["qas"]:
            assert all(t[a["start"]:a["end"] + 1] == a["text"] and (a["start"], a["end"]) in spans for a in q["answers"])
    ex = data_lib.load_split(get_task("record"), "validation", RECORD)
    assert np.unique(ex.extras["unit"]).tolist() == [0, 1, 2, 3]
    q0 = ex.extras["unit"] == 0
    assert ex.extras["candidate"][q0].tolist() == ["John Smith", "Leeds", "Paris", "Smith"]  # sorted, deduplicated
    assert ex.label[q0].tolist() == [1, 0, 0, 1]
    assert json.loads(ex.extras["answers"][0]) == ["John Smith", "Smith"]
    q2 = ex.extras["unit"] == 2
    assert ex.extras["candidate"][q2].tolist() == ["Apollo 11", "Houston", "NASA"]  # two "Houston" mentions
    assert ex.texts[0][1] == "John Smith said he would buy a house in Leeds."
    assert "@highlight" not in ex.texts[0][0] and "- John Smith won" in ex.texts[0][0]
    assert len(ex.head(2)) == 8  # max_*_examples counts queries: the first two queries, whole


def _hf_rows(task, lines):
    """The hub's rows, built the way the `super_glue` loading script builds them from the jsonl (independent of
    jaxseed.readers): MultiRC flattened per answer, WSC's target flattened, labels as ClassLabel ids."""
    out = []
    for o in lines:
        if task.name == "record":
            t = o["passage"]["text"]
            out += [{"passage": t, "query": q["query"], "entities": sorted({t[e["start"]:e["end"] + 1] for e in o["passage"]["entities"]}),
                     "answers": sorted({a["text"] for a in q["answers"]}), "idx": {"passage": o["idx"], "query": q["idx"]}}
                    for q in o["qas"]]
            continue
        if task.name == "multirc":
            out += [{"paragraph": o["passage"]["text"], "question": q["question"], "answer": a["text"],
                     "idx": {"paragraph": o["idx"], "question": q["idx"], "answer": a["idx"]}, "label": int(bool(a["label"]))}
                    for q in o["passage"]["questions"] for a in q["answers"]]
            continue
        r = dict(o)
        r.update(r.pop("target", {}))
        names = list(task.label_names)
        r["label"] = {True: 1, False: 0}[r["label"]] if isinstance(r["label"], bool) else \
            r["label"] if isinstance(r["label"], int) else names.index(r["label"])
        if task.name == "axb":
            r = {k: r[k] for k in ("sentence1", "sentence2", "idx", "label")}
            r["idx"] = int(r["idx"])
        out.append(r)
    return out


@pytest.mark.parametrize("name, split, folder, file", [
    ("cb", "validation", "CB", "val.jsonl"), ("copa", "train", "COPA", "train.jsonl"),
    ("multirc", "validation", "MultiRC", "val.jsonl"), ("wsc", "validation", "WSC", "val.jsonl"),
    ("wic", "validation", "WiC", "val.jsonl"), ("axb", "test", "AX-b", "AX-b.jsonl"),
    ("boolq", "validation", "BoolQ", "val.jsonl"), ("record", "validation", "ReCoRD", "val.jsonl")])
def test_hub_reader_equals_local(name, split, folder, file, tmp_path, monkeypatch):
    import datasets

    task = get_task(name)
    root = RECORD.parent if name == "record" else SG
    lines = [json.loads(x) for x in (root / folder / file).read_text().splitlines() if x.strip()]
    path = tmp_path / f"{split}-00000-of-00001.parquet"
    datasets.Dataset.from_list(_hf_rows(task, lines)).to_parquet(str(path))
    real = datasets.load_dataset

    def fake(hub_path, config, split):  # what load_dataset("aps/super_glue", config) returns, from the local copy
        assert (hub_path, config) == ("aps/super_glue", task.hub_config)
        return real("parquet", data_files={split: str(path)}, split=split)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    hub = data_lib.load_split(task, split, None)
    local = load(name, split, root)
    assert hub.texts == local.texts and hub.choices == local.choices
    np.testing.assert_array_equal(hub.label, local.label)
    np.testing.assert_array_equal(hub.example_id, local.example_id)
    assert hub.extras.keys() == local.extras.keys()
    for k in local.extras:
        np.testing.assert_array_equal(hub.extras[k], local.extras[k])


def test_diagnostics_have_no_training_set():
    with pytest.raises(ValueError, match="task 'axb' has no training set"):
        load("axb", "train")


@pytest.mark.parametrize("line, needle", [
    ('{"premise": "a", "hypothesis": "b", "idx": 0, "label": "entailment"', "line 2: malformed JSON"),
    ('{"premise": "a", "hypothesis": "b", "idx": 0, "label": "maybe"}', "line 2: unknown label 'maybe'"),
    ('{"premise": "a", "hypothesis": "b", "idx": 0, "label": 1}', "line 2: unknown label 1"),
    ('{"premise": "a", "idx": 0, "label": "neutral"}', "line 2: missing field 'hypothesis'"),
])
def test_bad_rows_name_file_and_line(tmp_path, line, needle):
    (tmp_path / "CB").mkdir()
    good = (SG / "CB" / "val.jsonl").read_text().splitlines()[0]
    (tmp_path / "CB" / "val.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=needle) as e:
        load("cb", "validation", tmp_path)
    assert str(tmp_path / "CB" / "val.jsonl") in str(e.value) and "\n" not in str(e.value)
