"""SuperGLUE through the engine: a seed in a group of 3 equals the seed alone on a multiple-choice task (COPA) and
a grouped one (MultiRC); AX-b / AX-g ride on an RTE run; real all-MiniLM-L6-v2 on real CB and COPA through
`jaxseed run`, with per-unit predictions and metrics and a report; bad input is one line and exit 2."""

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from jaxseed import data as data_lib
from jaxseed.models import encoder as model_lib
from jaxseed import train as train_lib
from jaxseed.cli import main
from jaxseed.config import Seeds, load_config
from jaxseed.metrics import record_scores
from jaxseed.run import run
from jaxseed.tasks import get_task

from conftest import DATA, REPO, minilm_dir

SG = DATA / "superglue"
SEEDS = Seeds(init=(0, 1, 2), order=(3, 4, 5), dropout=(6, 7, 8))


def tiny_cfg(model_dir, task, **kw):
    base = dict(task=task, model=str(model_dir), data_dir=str(SG), max_steps=4, batch_size=4, eval_batch_size=16,
                learning_rate=3e-4, warmup_ratio=0.2, max_length=64, max_train_examples=24, max_eval_examples=16,
                seed_loop=False, seeds={"init": list(SEEDS.init), "order": list(SEEDS.order),
                                        "dropout": list(SEEDS.dropout)})
    return load_config(None, base | kw)


def make(cfg):
    from transformers import AutoTokenizer

    task = get_task(cfg.task)
    tok = AutoTokenizer.from_pretrained(cfg.model)
    enc = lambda s, n: data_lib.encode(tok, data_lib.load_split(task, s, cfg.data_dir).head(n), cfg.max_length)
    dev = {"validation": enc("validation", cfg.max_eval_examples)}
    return train_lib.make_train(cfg, task, model_lib.load_pretrained(cfg.model),
                                enc("train", cfg.max_train_examples), dev, progress=False), dev


@pytest.mark.parametrize("task", ["copa", "multirc"])
def test_seed_in_group_equals_seed_alone(tiny_bert_dir, task):
    train, dev = make(tiny_cfg(tiny_bert_dir, task, max_length=32, max_steps=3))
    group = train(SEEDS)
    logits = group.logits["validation"]
    if task == "copa":  # one score a choice, softmax across the two: [S, N, 2] over 16 questions
        assert dev["validation"].ids_NxL.shape[:2] == (16, 2) and logits.shape == (3, 16, 2)
    else:  # one binary example per answer option of the first 16 questions
        assert len(np.unique(dev["validation"].extras["unit"])) == 16 and logits.shape[1] == len(dev["validation"].label_N)
    assert len({tuple(p) for p in logits.argmax(-1)}) > 1 or task == "multirc"  # seeds differ
    # Multiple-choice scores are defined up to a shift: the softmax across choices ignores the head's output
    # bias, whose gradient is 0 up to rounding, and Adam turns that rounding into updates. Compare the scores
    # relative to their mean over the choices, which is all the loss and the predictions see.
    centred = lambda x: x - x.mean(-1, keepdims=True) if task == "copa" else x
    for k, (i, o, d) in enumerate(zip(SEEDS.init, SEEDS.order, SEEDS.dropout)):
        alone = train(Seeds((i,), (o,), (d,)))
        np.testing.assert_array_equal(logits[k].argmax(-1), alone.logits["validation"][0].argmax(-1))
        np.testing.assert_allclose(centred(logits[k]), centred(alone.logits["validation"][0]), atol=1e-4, rtol=0)
        np.testing.assert_allclose(group.loss_TxS[:, k], alone.loss_TxS[:, 0], atol=1e-4, rtol=0)


def test_rte_run_scores_axb_and_axg(tiny_bert_dir, tmp_path):
    cfg = tiny_cfg(tiny_bert_dir, "rte_sg", seeds=2, max_eval_examples=20, eval_tasks=["axb", "axg"],
                   output_dir=str(tmp_path / "rte"))
    out = run(cfg, progress=False)
    m = json.loads((out / "metrics.json").read_text())["splits"]
    assert list(m) == ["validation", "axb", "axg"]
    assert list(m["axb"]["per_seed"]) == ["mcc"] and list(m["axg"]["per_seed"]) == ["accuracy", "gender_parity"]
    z = np.load(out / "predictions.npz")
    axg = z["split"] == "axg"
    p = z["pred"][:, axg]
    want = [np.mean(p[s, ::2] == p[s, 1::2]) for s in range(2)]  # consecutive rows are the minimal pairs
    np.testing.assert_allclose(m["axg"]["per_seed"]["gender_parity"], want, atol=1e-6)
    assert json.loads((out / "config.json").read_text())["task_info"]["split_tasks"]["axb"]["metrics"] == ["mcc"]
    with pytest.raises(ValueError, match="eval_tasks"):
        run(tiny_cfg(tiny_bert_dir, "cb", eval_tasks=["axb"], output_dir=str(tmp_path / "cb")), progress=False)
    assert not (tmp_path / "cb").exists()


def test_minilm_on_real_cb_and_copa_end_to_end(tmp_path, capsys):
    """all-MiniLM-L6-v2 fully fine-tuned, 4 seeds, a short schedule, through the command line; the report
    renders the per-unit tables. Scores are checked against scikit-learn on the saved predictions."""
    outs = {}
    for task, steps, length in (("cb", 12, 128), ("copa", 12, 64)):
        cfg = tmp_path / f"{task}.yaml"
        outs[task] = tmp_path / task
        cfg.write_text(f"task: {task}\nmodel: {minilm_dir()}\ndata_dir: {SG}\nseeds: 4\nmax_steps: {steps}\n"
                       f"batch_size: 8\nlearning_rate: 5e-5\nmax_length: {length}\noutput_dir: {outs[task]}\n")
        assert main(["run", str(cfg), "--no-progress"]) == 0
    capsys.readouterr()
    for task, n in (("cb", 56), ("copa", 100)):
        z = np.load(outs[task] / "predictions.npz")
        m = json.loads((outs[task] / "metrics.json").read_text())["splits"]["validation"]
        assert z["pred"].shape == (4, n) and z["logits"].shape == (4, n, 3 if task == "cb" else 2)
        np.testing.assert_array_equal(z["pred"], z["logits"].argmax(-1))
        np.testing.assert_allclose(m["per_seed"]["accuracy"], [accuracy_score(z["label"], p) for p in z["pred"]], atol=1e-6)
        if task == "cb":
            np.testing.assert_allclose(m["per_seed"]["macro_f1"],
                                       [f1_score(z["label"], p, average="macro") for p in z["pred"]], atol=1e-6)
        agree = np.mean(np.all(z["pred"] == z["pred"][0], axis=0))
        assert abs(m["consistency"] - agree) < 1e-6
    assert main(["report", str(outs["cb"]), str(outs["copa"]), "-o", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## SuperGLUE: official metrics and consistency per natural unit" in md
    assert "## GLUE + SuperGLUE across runs" in md
    copa_row = next(line for line in md.splitlines() if line.startswith("| copa |") and "| question |" in line)
    m = json.loads((outs["copa"] / "metrics.json").read_text())["splits"]["validation"]
    assert f"| {100 * m['consistency']:.2f} |" in copa_row
    assert (tmp_path / "report" / "report.html").is_file()


def _copy(tmp_path, folder, transform):
    d = tmp_path / "data" / folder
    d.mkdir(parents=True)
    for f in ("train.jsonl", "val.jsonl"):
        lines = (SG / folder / f).read_text().splitlines()
        (d / f).write_text("\n".join(transform(f, lines)) + "\n")
    return tmp_path / "data"


def _wsc_bad(f, lines):
    if f != "val.jsonl":
        return lines
    row = json.loads(lines[2])
    row["target"]["span2_index"] += 1  # an unknown misalignment
    return lines[:2] + [json.dumps(row)] + lines[3:]


@pytest.mark.parametrize("task, folder, transform, needle", [
    ("cb", "CB", lambda f, ls: ls[:5] + ['{"premise": "x", "hypothesis": "y", "idx": 5,'] + ls[5:], "train.jsonl: line 6: malformed JSON"),
    ("cb", "CB", lambda f, ls: ls if f == "train.jsonl" else ls[:3] + [ls[3].replace('"neutral"', '"Neutral"')
                                                                         .replace('"entailment"', '"Neutral"')
                                                                         .replace('"contradiction"', '"Neutral"')] + ls[4:],
     "val.jsonl: line 4: unknown label 'Neutral'"),
    ("wsc", "WSC", _wsc_bad, "val.jsonl: line 3: WSC span2"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, tiny_bert_dir, task, folder, transform, needle):
    data = _copy(tmp_path, folder, transform)
    out = tmp_path / "out"
    (tmp_path / "c.yaml").write_text("seeds: 2\n")
    code = main(["run", str(tmp_path / "c.yaml"), f"--set=task={task}", f"--set=model={tiny_bert_dir}", f"--set=data_dir={data}",
                 f"--set=output_dir={out}", "--set=max_steps=1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.startswith("jaxseed: error: ") and err.count("\n") == 1, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "data"]


def test_record_runs_on_the_hand_written_file(tiny_bert_dir, tmp_path):
    """ReCoRD end to end (the real files are not in the shared data): one chosen candidate per query and seed,
    EM / F1 equal to the official scores of the chosen strings, consistency per query."""
    data = tmp_path / "data" / "ReCoRD"
    data.mkdir(parents=True)
    for f in ("train.jsonl", "val.jsonl"):
        shutil.copy(REPO / "tests" / "data" / "ReCoRD" / "val.jsonl", data / f)
    cfg = tiny_cfg(tiny_bert_dir, "record", data_dir=str(data.parent), seeds=3, max_steps=2,
                   output_dir=str(tmp_path / "run"))
    out = run(cfg, progress=False)
    z = np.load(out / "predictions.npz")
    m = json.loads((out / "metrics.json").read_text())["splits"]["validation"]
    unit = z["unit"]
    for s in range(3):
        chosen = [z["candidate"][(unit == q) & (z["pred"][s] == 1)] for q in np.unique(unit)]
        assert all(len(c) == 1 for c in chosen)  # exactly one entity a query
        best = [z["candidate"][unit == q][np.argmax(np.diff(z["logits"][s][unit == q], axis=-1)[:, 0])]
                for q in np.unique(unit)]
        assert [c[0] for c in chosen] == best
        golds = [json.loads(z["answers"][unit == q][0]) for q in np.unique(unit)]
        em, f1 = record_scores(best, golds)
        assert abs(m["per_seed"]["record_em"][s] - em) < 1e-6 and abs(m["per_seed"]["record_f1"][s] - f1) < 1e-6
    assert m["units"]["unit"] == "query" and m["units"]["num_units"] == 4
