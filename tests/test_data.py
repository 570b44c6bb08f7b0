"""Local glue_data loading against the published counts, the files' quirks, and tokenization."""

import numpy as np
import pytest

from jaxseed import data
from jaxseed.tasks import get_task

from conftest import minilm_dir

# Counts and label balance published with the data (and in GLUE's papers).
COUNTS = [
    ("cola", "train", 8551, [2528, 6023]), ("cola", "validation", 1043, [322, 721]),
    ("sst2", "train", 67349, None), ("sst2", "validation", 872, [428, 444]),
    ("mrpc", "train", 3668, [1194, 2474]), ("mrpc", "validation", 408, None),
    ("stsb", "train", 5749, None), ("stsb", "validation", 1500, None),
    ("qnli", "validation", 5463, [2702, 2761]),
    ("rte", "train", 2490, None), ("rte", "validation", 277, [146, 131]),
    ("wnli", "train", 635, [323, 312]), ("wnli", "validation", 71, None),
]


@pytest.mark.parametrize("task, split, n, balance", COUNTS)
def test_counts_and_labels(glue_dir, task, split, n, balance):
    ex = data.load_split(get_task(task), split, glue_dir)
    assert len(ex) == n == len(ex.label) == len(ex.example_id)
    np.testing.assert_array_equal(ex.example_id, np.arange(n))
    if balance is not None:
        np.testing.assert_array_equal(np.bincount(ex.label), balance)
    assert all(isinstance(t, str) and t for tup in ex.texts for t in tup)


def test_quirks(glue_dir):
    # RTE row 2164 has an extra empty field before its label: the label is still read from the last field.
    rte = data.load_split(get_task("rte"), "train", glue_dir)
    assert rte.label[2164] in (0, 1) and len(rte.texts[2164]) == 2
    # MRPC starts with a byte-order mark; quotes inside fields stay as they are.
    mrpc = data.load_split(get_task("mrpc"), "validation", glue_dir)
    assert mrpc.texts[0][1].startswith('"The foodservice pie business')
    # STS-B scores are floats in [0, 5].
    stsb = data.load_split(get_task("stsb"), "validation", glue_dir)
    assert stsb.label.dtype == np.float32 and stsb.label.min() >= 0 and stsb.label.max() <= 5
    # The task folder itself is accepted as data_dir.
    assert len(data.load_split(get_task("rte"), "validation", glue_dir / "RTE")) == 277


def test_mnli_and_qqp_layouts(tmp_path):
    """The two tasks whose files are not in the shared data: their glue_data layouts, written by hand."""
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    head = "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tgold_label\n"
    rows = ["0\t1\t1e\tgov\tx\tx\tx\tx\tA man eats.\tSomeone eats.\tentailment\tentailment\n",
            "1\t2\t2n\tgov\tx\tx\tx\tx\tA \"quoted\" word.\tIt rains.\tneutral\tneutral\n",
            "2\t3\t3c\tgov\tx\tx\tx\tx\tA cat sleeps.\tThe cat runs.\tcontradiction\tcontradiction\n"]
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        (mnli / name).write_text(head + "".join(rows))
    ex = data.load_split(get_task("mnli"), "validation_mismatched", tmp_path)
    assert ex.label.tolist() == [0, 1, 2] and ex.texts[1] == ('A "quoted" word.', "It rains.")
    qqp = tmp_path / "QQP"
    qqp.mkdir()
    (qqp / "dev.tsv").write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                 "5\t1\t2\tHow?\tWhy?\t0\n6\t3\t4\tbroken row\n7\t5\t6\tWho?\tWhom?\t1\n")
    ex = data.load_split(get_task("qqp"), "validation", tmp_path)
    assert ex.label.tolist() == [0, 1] and ex.example_id.tolist() == [0, 2]  # the malformed row is skipped


def test_errors(glue_dir, tmp_path):
    with pytest.raises(ValueError, match="data_dir not found"):
        data.load_split(get_task("rte"), "train", tmp_path / "nope")
    with pytest.raises(ValueError, match="missing data file for task 'qqp'"):
        data.load_split(get_task("qqp"), "train", glue_dir)
    with pytest.raises(ValueError, match="no split 'test'"):
        data.load_split(get_task("rte"), "test", glue_dir)
    bad = tmp_path / "RTE"
    bad.mkdir()
    (bad / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match="unknown label 'maybe'"):
        data.load_split(get_task("rte"), "validation", tmp_path)


def test_bucket_length():
    assert data.bucket_length(20, 128) == 32
    assert data.bucket_length(33, 128) == 64
    assert data.bucket_length(100, 128) == 128
    assert data.bucket_length(300, 128) == 128
    assert data.bucket_length(100, 100) == 100


def test_encode_matches_the_tokenizer(glue_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    ex = data.load_split(get_task("rte"), "validation", glue_dir).head(20)
    enc = data.encode(tok, ex, max_length=128)
    assert enc.ids_NxL.dtype == np.int32 and enc.ids_NxL.shape == (20, 128)
    for i in range(20):
        ref = tok(*ex.texts[i], truncation=True, max_length=128)
        n = len(ref["input_ids"])
        assert enc.ids_NxL[i, :n].tolist() == ref["input_ids"]
        assert enc.type_ids_NxL[i, :n].tolist() == ref["token_type_ids"]
        assert enc.mask_NxL[i].sum() == n and (enc.ids_NxL[i, n:] == tok.pad_token_id).all()
    short = data.encode(tok, data.load_split(get_task("sst2"), "validation", glue_dir), max_length=128)
    assert short.length == 64  # SST-2 sentences fit the 64 bucket: shorter steps
