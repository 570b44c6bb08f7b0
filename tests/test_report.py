"""The report: tables recomputed from predictions (checked against numpy by hand), plots, and bad input."""

import json
import math
import shutil
from itertools import combinations
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from jaxseed.report import REGRESSION_TOL, build_report, load_run, split_stats

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _task_info(name, num_labels, metrics, splits):
    return {"name": name, "num_labels": num_labels, "metrics": metrics, "primary_metric": metrics[0],
            "is_regression": num_labels == 1, "splits": splits}


def _write_run(path: Path, task, model, info, pred, label, split, with_metrics=True, curves=False):
    path.mkdir(parents=True)
    S, N = pred.shape
    (path / "config.json").write_text(json.dumps({"task": task, "model": model, "num_seeds": S, "task_info": info}))
    logits = (np.eye(info["num_labels"], dtype=np.float32)[pred] if info["num_labels"] > 1
              else pred.astype(np.float32))
    np.savez(path / "predictions.npz", pred=pred, logits=logits, label=label, example_id=np.arange(N),
             split=np.asarray(split), seed_init=np.arange(S), seed_order=np.arange(S) + 100,
             seed_dropout=np.arange(S) + 200)
    if with_metrics:  # a cache the way the engine writes it (only the fields the report cross-checks matter)
        splits = {}
        for s in dict.fromkeys(split):
            m = np.asarray(split) == s
            y, p = np.asarray(label)[m], pred[:, m]
            if info["is_regression"]:  # as jaxseed.run: consistency within the tolerance
                base, con = 0.0, float(np.mean(p.max(0) - p.min(0) <= REGRESSION_TOL))
            else:
                base, con = float(np.mean(y == np.bincount(y).argmax())), float(np.mean(np.all(p == p[0], 0)))
            splits[s] = {"num_examples": int(m.sum()), "majority_baseline": {k: base for k in info["metrics"]},
                         "consistency": con}
        (path / "metrics.json").write_text(json.dumps({"task": task, "model": model, "num_seeds": S,
                                                       "primary_metric": info["primary_metric"], "splits": splits}))
    if curves:
        step = np.arange(0, 50, 5)
        np.savez(path / "curves.npz", step=step, loss=np.exp(-step[:, None] / 20.0) + 0.01 * np.arange(S))
    return path


def _rte(tmp_path, **kw):
    """S=12, N=200, labels 60% class 0. Examples 0-119: every seed right; 120-149: every seed wrong;
    150-199: seed s < 11 right unless (j + s) % 3 == 0, seed 11 always wrong (so it scores exactly the 60% baseline)."""
    S, N = 12, 200
    rng = np.random.default_rng(0)
    label = rng.permutation(np.r_[np.zeros(120), np.ones(80)]).astype(np.int64)
    right = np.zeros((S, N), bool)
    right[:, :120] = True
    for j in range(150, N):
        for s in range(11):
            right[s, j] = (j + s) % 3 != 0
    pred = np.where(right, label, 1 - label).astype(np.int32)
    info = _task_info("rte", 2, ["accuracy"], ["validation"])
    return _write_run(tmp_path / "rte_run", "rte", "org/tiny-bert", info, pred, label, ["validation"] * N, **kw)


def _mnli(tmp_path, **kw):
    """S=5, 3 classes, two dev splits; each example has a main class held by >= 3 seeds (no majority ties)."""
    S, N = 5, 90
    rng = np.random.default_rng(1)
    label = rng.integers(0, 3, N)
    main = np.where(rng.random(N) < 0.7, label, (label + 1) % 3)
    pred = np.tile(main, (S, 1))
    for j in range(N):
        d = j % 3  # 0, 1 or 2 dissenting seeds
        for s in rng.choice(S, d, replace=False):
            pred[s, j] = (main[j] + rng.integers(1, 3)) % 3
    split = ["validation_matched"] * 50 + ["validation_mismatched"] * 40
    info = _task_info("mnli", 3, ["accuracy"], ["validation_matched", "validation_mismatched"])
    return _write_run(tmp_path / "mnli_run", "mnli", "org/tiny-bert", info, pred.astype(np.int32), label, split, **kw)


def _stsb(tmp_path, **kw):
    S, N = 6, 100
    rng = np.random.default_rng(2)
    label = rng.uniform(0, 5, N).astype(np.float32)
    noise = rng.normal(0, 1, (1, N)) * rng.normal(0, 0.3, (S, N))  # some examples spread wide, some not
    pred = (label + 0.4 * rng.normal(size=N) + noise).astype(np.float32)
    info = _task_info("stsb", 1, ["pearson", "spearman"], ["validation"])
    return _write_run(tmp_path / "stsb_run", "stsb", "org/tiny-roberta", info, pred, label, ["validation"] * N, **kw)


def _table(md: str, title: str):
    """Header and rows (as dicts) of the markdown table under '## title'."""
    lines = md.split(f"## {title}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split(" | ")]
    head = cells(lines[0])
    return head, [dict(zip(head, cells(line))) for line in lines[2:]]


def _row(rows, task, split):
    found = [r for r in rows if r["Task"] == task and r["Split"] == split]
    assert len(found) == 1, (task, split, rows)
    return found[0]


def _num(cell):
    return float(cell.split(" ± ")[0])


def _close(cell, value_pct, tol=0.0051):
    assert abs(_num(cell) - value_pct) <= tol, (cell, value_pct)


def _con_k(pred, k, C):
    S = pred.shape[0]
    counts = np.stack([(pred == c).sum(0) for c in range(C)], 1)
    return np.mean([sum(math.comb(int(n), k) for n in row) / math.comb(S, k) for row in counts])


def _kappa(pred, C):
    S, N = pred.shape
    counts = np.stack([(pred == c).sum(0) for c in range(C)], 1).astype(float)
    p_bar = np.mean(((counts ** 2).sum(1) - S) / (S * (S - 1)))
    pe = np.sum((counts.sum(0) / (N * S)) ** 2)
    return (p_bar - pe) / (1 - pe)


def _check_classification(row, pred, label, C, S):
    acc = (pred == label).mean(1)
    votes = np.stack([(pred == c).sum(0) for c in range(C)], 1)
    _close(row["Mean ± std"], 100 * acc.mean())
    assert row["Mean ± std"].endswith(f" ± {100 * acc.std(ddof=1):.2f}")  # std over seeds, ddof = 1
    _close(row["Var"], 1e4 * acc.var(ddof=1))
    assert row["Min–max"] == f"{100 * acc.min():.2f}–{100 * acc.max():.2f}"
    _close(row["CON"], 100 * np.mean(np.all(pred == pred[0], 0)))
    _close(row["Correct CON"], 100 * np.mean(np.all(pred == label, 0)))
    for k in (5, 10):
        if S >= k:
            _close(row[f"CON@{k}"], 100 * _con_k(pred, k, C))
        else:
            assert row[f"CON@{k}"] == "–"
    pairs = [np.mean(pred[a] == pred[b]) for a, b in combinations(range(S), 2)]
    _close(row["Pairwise agr."], 100 * np.mean(pairs))
    assert abs(float(row["Fleiss κ"]) - _kappa(pred, C)) <= 0.00051
    _close(row["Ensemble acc."], 100 * np.mean(votes.argmax(1) == label))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Three runs (RTE with a loss curve, STS-B, two-split MNLI) and their report, built once for the module."""
    tmp = tmp_path_factory.mktemp("runs")
    runs = [_rte(tmp, curves=True), _stsb(tmp), _mnli(tmp)]
    return runs, build_report(runs, tmp / "out"), tmp


def test_report_tables_match_numpy(built):
    runs, md_path, tmp = built
    out = tmp / "out"
    assert md_path == out / "report.md" and (out / "report.html").is_file()
    md, page = md_path.read_text(), (out / "report.html").read_text()
    assert "Fleiss κ" in md and "<th>Fleiss κ</th>" in page and "<th>Correct CON</th>" in page
    assert "in the cache but" not in md  # the engine-like caches agree with the predictions

    head, rows = _table(md, "Classification: macro and micro seed effects")
    assert len(rows) == 3  # rte + two MNLI splits; STS-B is in its own table

    z = np.load(runs[0] / "predictions.npz")
    rte = _row(rows, "rte", "validation")
    assert rte["S"] == "12" and rte["Model"] == "org/tiny-bert" and rte["Metric"] == "accuracy"
    assert rte["CON"] == "75.00" and rte["Correct CON"] == "60.00"  # by construction: 150 and 120 of 200
    assert rte["Failed"] == "1/12"  # seed 11 scores exactly the 60% majority baseline
    _check_classification(rte, z["pred"], z["label"], 2, 12)
    for cell in (rte["Mean ± std"], rte["CON"], rte["Pairwise agr."]):  # rendered in the HTML too
        assert f"<td>{cell}</td>" in page

    z = np.load(runs[2] / "predictions.npz")
    for split in ("validation_matched", "validation_mismatched"):
        m = z["split"] == split
        row = _row(rows, "mnli", split)
        assert row["S"] == "5"
        _check_classification(row, z["pred"][:, m], z["label"][m], 3, 5)

    _, reg = _table(md, "Regression (STS-B)")
    assert len(reg) == 1
    z = np.load(runs[1] / "predictions.npz")
    p, y = z["pred"].astype(float), z["label"].astype(float)
    pear = np.array([np.corrcoef(s, y)[0, 1] for s in p])
    rank = lambda a: np.argsort(np.argsort(a))
    spear = np.array([np.corrcoef(rank(s), rank(y))[0, 1] for s in p])
    row = reg[0]
    _close(row["Pearson mean ± std"], 100 * pear.mean())
    _close(row["Spearman mean ± std"], 100 * spear.mean())
    spread = p.max(0) - p.min(0)
    assert 0 < np.mean(spread <= REGRESSION_TOL) < 1  # the data exercise both sides of the tolerance
    _close(row[f"CON within ±{REGRESSION_TOL:g}"], 100 * np.mean(spread <= REGRESSION_TOL))
    assert abs(float(row["Mean per-example std"]) - p.std(0, ddof=1).mean()) <= 0.0011

    _, every = _table(md, "Every metric")
    assert {(r["Task"], r["Split"], r["Metric"]) for r in every} == {
        ("rte", "validation", "accuracy"), ("stsb", "validation", "pearson"), ("stsb", "validation", "spearman"),
        ("mnli", "validation_matched", "accuracy"), ("mnli", "validation_mismatched", "accuracy")}
    assert _row([r for r in every if r["Metric"] == "accuracy"], "rte", "validation")["Baseline"] == "60.00"


def test_plots_exist_are_png_and_are_referenced(built):
    _, md_path, tmp = built
    out = md_path.parent
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    kinds = [n.split("_")[0] for n in pngs]
    assert kinds.count("strip") == 3  # one per task
    assert kinds.count("agreement") == 4  # one per (run, split)
    assert kinds.count("churn") == 3  # classification only
    assert {"consistency_vs_k.png", "expected_max.png", "loss_00.png"} <= set(pngs)
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        img = mpimg.imread(out / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert f"]({name})" in md and f"src='{name}'" in page
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []  # no temporary folders left


def test_plotted_series_match_numpy(built):
    """The curves, histograms and heatmaps plot split_stats' arrays: check those against numpy by hand."""
    runs, _, _ = built
    run = load_run(runs[2])
    m = run.split == "validation_mismatched"
    pred, label = run.pred[:, m], run.label[m]
    r = split_stats(run, "validation_mismatched")
    S = pred.shape[0]
    assert r["ks"] == list(range(2, S + 1))
    right = (pred == label).sum(0)
    want_ccon = [np.mean([math.comb(int(v), k) / math.comb(S, k) for v in right]) for k in r["ks"]]
    np.testing.assert_allclose(r["con_curve"], [_con_k(pred, k, 3) for k in r["ks"]], atol=1e-6)
    np.testing.assert_allclose(r["ccon_curve"], want_ccon, atol=1e-6)
    churn = np.array([[np.mean(pred[a] != pred[b]) for b in range(S)] for a in range(S)])
    np.testing.assert_allclose(r["churn"], churn, atol=1e-6)
    votes = np.stack([(pred == c).sum(0) for c in range(3)], 1)
    np.testing.assert_allclose(r["vote_share"], votes.max(1) / S, atol=1e-6)
    acc = np.sort((pred == label).mean(1))
    k = np.arange(1, S + 1)
    emax = [np.sum(acc * ((k / S) ** n - ((k - 1) / S) ** n)) for n in k]  # Dodge et al. 2019, as written
    np.testing.assert_allclose(r["expected_max"]["accuracy"], emax, atol=1e-6)

    reg = split_stats(load_run(runs[1]), "validation")
    z = np.load(runs[1] / "predictions.npz")
    np.testing.assert_allclose(reg["example_std"], z["pred"].astype(float).std(0, ddof=1), rtol=1e-5)


def test_recomputes_without_metrics_json(built, tmp_path):
    runs, md_path, _ = built
    bare = []
    for run in runs:
        shutil.copytree(run, tmp_path / run.name)
        (tmp_path / run.name / "metrics.json").unlink()
        bare.append(tmp_path / run.name)
    without = build_report(bare, tmp_path / "out").read_text()
    tables = lambda md: md.split("\n## ", 1)[1]  # everything after the notes
    assert "Every metric" in tables(without) and tables(md_path.read_text()) == tables(without)
    assert "no cached baseline" in without and "no cached baseline" not in md_path.read_text()


def test_stale_cache_is_flagged_and_cached_baseline_wins(tmp_path):
    run = _rte(tmp_path)
    cache = json.loads((run / "metrics.json").read_text())
    cache["splits"]["validation"]["consistency"] = 0.5  # stale: the predictions say 0.75
    # metrics.json knows the training-set majority class, which predictions.npz cannot tell: the report uses it.
    cache["splits"]["validation"]["majority_baseline"]["accuracy"] = 0.77  # = the best seed: all 12 "fail"
    (run / "metrics.json").write_text(json.dumps(cache))
    md = build_report([run], tmp_path / "out").read_text()
    rte = _row(_table(md, "Classification: macro and micro seed effects")[1], "rte", "validation")
    assert rte["CON"] == "75.00" and rte["Failed"] == "12/12"
    assert "in the cache but" in md and "0.5000" in md
    assert _row(_table(md, "Every metric")[1], "rte", "validation")["Baseline"] == "77.00"


def test_tolerance_is_the_engines():
    from jaxseed.run import REGRESSION_TOLERANCE

    assert REGRESSION_TOL == REGRESSION_TOLERANCE


def test_default_out_dir_and_replacement(tmp_path):
    run = _stsb(tmp_path)
    md = build_report([run], None)
    assert md == run / "report" / "report.md"
    (run / "report" / "marker").write_text("old")
    build_report([run])
    assert md.is_file() and not (run / "report" / "marker").exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("breakage", ["missing_dir", "no_predictions", "garbage_npz", "bad_config", "bad_shape",
                                      "bad_labels", "unknown_metric"])
def test_bad_input_raises_value_error_naming_path(tmp_path, breakage):
    run = _rte(tmp_path)
    out = tmp_path / "out"
    named = run
    if breakage == "missing_dir":
        named = tmp_path / "nowhere"
    elif breakage == "no_predictions":
        (run / "predictions.npz").unlink()
    elif breakage == "garbage_npz":
        (run / "predictions.npz").write_bytes(b"not a zip file at all")
        named = run / "predictions.npz"
    elif breakage == "bad_config":
        (run / "config.json").write_text("{not json")
        named = run / "config.json"
    elif breakage == "bad_shape":
        z = dict(np.load(run / "predictions.npz"))
        z["label"] = z["label"][:-1]
        np.savez(run / "predictions.npz", **z)
        named = run / "predictions.npz"
    elif breakage == "bad_labels":
        z = dict(np.load(run / "predictions.npz"))
        z["pred"][0, 0] = 7  # no class 7 in a 2-class task
        np.savez(run / "predictions.npz", **z)
        named = run / "predictions.npz"
    elif breakage == "unknown_metric":
        cfg = json.loads((run / "config.json").read_text())
        cfg["task_info"]["metrics"] = ["accuracy", "bleu"]
        (run / "config.json").write_text(json.dumps(cfg))
        named = run / "config.json"
    with pytest.raises(ValueError) as err:
        build_report([_stsb(tmp_path), named if breakage == "missing_dir" else run], out)
    msg = str(err.value)
    assert str(named) in msg and "\n" not in msg
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_build_keeps_previous_report(tmp_path):
    run = _stsb(tmp_path)
    out = tmp_path / "out"
    build_report([run], out)
    before = (out / "report.md").read_text()
    shutil.rmtree(run)
    with pytest.raises(ValueError, match="run folder not found"):
        build_report([run], out)
    assert (out / "report.md").read_text() == before


def test_degenerate_single_seed_run(tmp_path):
    """S = 1, one class predicted everywhere: undefined statistics print as '–', nothing crashes."""
    label = np.r_[np.zeros(40), np.ones(24)].astype(np.int64)
    info = _task_info("rte", 2, ["accuracy"], ["validation"])
    run = _write_run(tmp_path / "one", "rte", "m", info, np.zeros((1, 64), np.int32), label, ["validation"] * 64,
                     with_metrics=False)
    md = build_report([run], tmp_path / "out").read_text()
    row = _row(_table(md, "Classification: macro and micro seed effects")[1], "rte", "validation")
    assert row["Mean ± std"] == "62.50 ± –" and row["Failed"] == "1/1"  # it is the majority baseline
    assert row["CON"] == "100.00" and row["CON@5"] == "–" and row["Fleiss κ"] == "–"
    assert "consistency_vs_k.png" not in md  # no k = 2..S to draw
