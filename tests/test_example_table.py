"""The per-example table (examples.parquet) and the report's unstable-examples section."""

import json

import numpy as np
import pandas as pd

from jaxseed import example_table as ET
from jaxseed import metrics as M
from jaxseed.report import build_report
from jaxseed.tasks import get_task

# 3 seeds x 5 examples of MNLI (entailment, neutral, contradiction); votes worked by hand below.
LABEL = np.array([0, 1, 2, 1, 0])
PRED = np.array([[0, 1, 2, 0, 1], [0, 1, 1, 0, 2], [0, 1, 2, 0, 0]])
TEXTS = [(f"premise {i}", f"hypothesis {i}") for i in range(5)]


def _folder(tmp_path, with_table=True):
    run = tmp_path / "mnli_run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "mnli"}))
    np.savez(run / "predictions.npz", pred=PRED, label=LABEL, example_id=np.arange(100, 105),
             split=np.array(["validation_matched"] * 3 + ["validation_mismatched"] * 2))
    if with_table:
        ET.write_run(run, get_task("mnli"), {"validation_matched": TEXTS[:3], "validation_mismatched": TEXTS[3:]})
    return run


def test_table_round_trips_through_pandas(tmp_path):
    run = _folder(tmp_path)
    df = pd.read_parquet(run / "examples.parquet")
    assert list(df.columns) == ["example_id", "split", "premise", "hypothesis", "label", "votes_entailment",
                                "votes_neutral", "votes_contradiction", "majority_label", "vote_share", "share_correct"]
    # Hand-worked: votes (3,0,0), (0,3,0), (0,1,2), (3,0,0), (1,1,1); majority 0, 1, 2, 0, tie -> 0.
    votes = df[["votes_entailment", "votes_neutral", "votes_contradiction"]].to_numpy()
    np.testing.assert_array_equal(votes, [[3, 0, 0], [0, 3, 0], [0, 1, 2], [3, 0, 0], [1, 1, 1]])
    z = np.load(run / "predictions.npz")
    np.testing.assert_array_equal(votes, [np.bincount(z["pred"][:, i], minlength=3) for i in range(5)])
    assert df["majority_label"].tolist() == [0, 1, 2, 0, 0] and df["example_id"].tolist() == [100, 101, 102, 103, 104]
    np.testing.assert_allclose(df["share_correct"], [1, 1, 2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(df["vote_share"], [1, 1, 2 / 3, 1, 1 / 3])
    assert df["premise"].tolist()[3] == "premise 3" and df["split"].tolist()[3] == "validation_mismatched"


def test_regression_table():
    score = np.array([[1.0, 2.0, 4.0], [1.5, 2.0, 0.0]])
    df = ET.table(get_task("stsb").info(), score, np.array([1.0, 2.5, 3.0]), ["validation"] * 3, [0, 1, 2])
    np.testing.assert_allclose(df["score_mean"], [1.25, 2.0, 2.0])
    np.testing.assert_allclose(df["score_std"], np.std(score, 0, ddof=1))
    np.testing.assert_allclose(df["abs_error"], [0.25, 0.5, 1.0])


def test_report_lists_the_least_agreed_examples_with_text(tmp_path):
    run = _folder(tmp_path)
    md = build_report([run], tmp_path / "rep").read_text()
    sec = md.split("## Unstable examples: mnli_run / validation_matched\n\n", 1)[1].split("\n\n", 1)[0]
    rows = sec.splitlines()[2:]
    # Least agreement first: example 102 (2 of 3 seeds agree), then the unanimous ones.
    assert rows[0].startswith("| 102 | premise 2 ‖ hypothesis 2 | contradiction | neutral 1, contradiction 2 |")
    assert "| 2/3 |" in rows[0] and len(rows) == 1  # unanimous examples are not listed
    mism = md.split("## Unstable examples: mnli_run / validation_mismatched\n\n", 1)[1].splitlines()[2]
    assert mism.startswith("| 104 | premise 4 ‖ hypothesis 4 | entailment | entailment 1, neutral 1, contradiction 1 |")


def test_minimal_folder_report_shows_the_metrics_consistency(tmp_path):
    """A folder holding only pred, label and a task name: the report's consistency is metrics.consistency's."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 150)
    pred = np.where(rng.random((5, 150)) < 0.8, label, 1 - label)
    run = tmp_path / "elsewhere"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "rte"}))
    np.savez(run / "predictions.npz", pred=pred, label=label)
    md = build_report([run], tmp_path / "rep").read_text()
    head, row = [line for line in md.splitlines() if line.startswith(("| Run |", "| elsewhere | rte"))][:2]
    cells = dict(zip(head.strip("|").split(" | "), row.strip("|").split(" | ")))
    assert float(cells["CON"]) == round(100 * float(M.consistency(pred)), 2)
    assert float(cells["Correct CON"]) == round(100 * float(M.correct_consistency(pred, label)), 2)
    assert "no text is shown" in md  # no examples.parquet: the unstable examples are listed without text
