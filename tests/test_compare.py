"""jaxseed compare: verdicts on runs built to differ (or not), equality with an independent NumPy paired
Multi-Bootstrap on the same random draws, and bad input."""

import json
import math

import jax
import numpy as np
import pytest

from jaxseed import stats as St
from jaxseed.cli import main
from jaxseed.compare import compare_runs
from jaxseed.report import load_run

DRAWS = 400


def write_run(path, task, pred, label, seeds=None):
    """A folder as another tool would write it: predictions.npz (pred, label[, seeds]) and config.json {task}."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"task": task}))
    extra = {} if seeds is None else {"seed_init": seeds, "seed_order": seeds, "seed_dropout": seeds}
    np.savez(path / "predictions.npz", pred=np.asarray(pred, np.int32), label=np.asarray(label), **extra)
    return path


def runs_with_accuracy(rng, n, accs, label):
    """One [S, N] prediction matrix per entry of accs: each seed right on an example with that probability."""
    return [np.where(rng.random((len(accs[0]), n)) < np.asarray(a)[:, None], label, 1 - label) for a in accs]


def _rows(result):
    return {r["metric"]: r for r in result["rows"]}


def test_a_better_by_construction(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 300)
    pa, pb = runs_with_accuracy(rng, 300, [[0.85] * 6, [0.7] * 6], label)
    a = load_run(write_run(tmp_path / "a", "mrpc", pa, label, np.arange(6)))
    b = load_run(write_run(tmp_path / "b", "mrpc", pb, label, np.arange(6)))
    result = compare_runs(a, b, num_draws=DRAWS)
    assert result["paired"]
    for name in ("f1", "accuracy"):
        r = _rows(result)[name]
        assert r["ci_low"] > 0 and r["p_a_better"] > 0.95 and r["verdict"] == "A better", r
    # Turned around, B is the better one.
    r = _rows(compare_runs(b, a, num_draws=DRAWS))["accuracy"]
    assert r["ci_high"] < 0 and r["p_a_better"] < 0.05 and r["verdict"] == "B better"
    # A's seeds agree with each other more, so its consistency is higher too.
    assert _rows(result)["consistency (k=6)"]["diff"] > 0


def test_same_distribution(tmp_path):
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 300)
    pa, pb = runs_with_accuracy(rng, 300, [[0.8] * 6, [0.8] * 6], label)
    a = load_run(write_run(tmp_path / "a", "rte", pa, label))
    b = load_run(write_run(tmp_path / "b", "rte", pb, label))
    result = compare_runs(a, b, num_draws=DRAWS)
    assert not result["paired"]  # no seeds recorded: unpaired
    for r in result["rows"]:
        assert r["ci_low"] <= 0 <= r["ci_high"] and r["verdict"] == "no clear difference", r
    # The same seeds' predictions in another order (and under other seed ids): exactly the same distribution.
    c = load_run(write_run(tmp_path / "c", "rte", pa[::-1], label, np.arange(6) + 10))
    r = _rows(compare_runs(a, c, num_draws=DRAWS))["accuracy"]
    assert r["diff"] == 0 and abs(r["p_a_better"] - 0.5) < 0.1 and r["ci_low"] < 0 < r["ci_high"]


def _np_f1(p, y):
    tp, fp, fn = np.sum((p == 1) & (y == 1)), np.sum((p == 1) & (y == 0)), np.sum((p == 0) & (y == 1))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def _np_multibootstrap(key, a_SxN, b_SxN, y_N, metric, draws):
    """MultiBERTs' paired Multi-Bootstrap written out: per draw, resample seeds (shared by A and B) and examples
    with replacement; score each drawn seed on the drawn examples; average over the drawn seeds. Uses the random
    uniforms of jaxseed.stats so the draws are the same; all arithmetic in float64 NumPy."""
    s, n = a_SxN.shape
    u = np.asarray(St._uniforms(key, (draws, n + s)))
    pick = lambda u_, m: np.minimum((u_ * np.float32(m)).astype(np.int32), m - 1)  # the float32 product
    ex_DxN, seed_DxS = pick(u[:, :n], n), pick(u[:, n:], s)
    est = lambda x: np.array([np.mean([metric(x[j, e], y_N[e]) for j in sd]) for e, sd in zip(ex_DxN, seed_DxS)])
    diff_D = est(a_SxN) - est(b_SxN)
    lo, hi = np.percentile(diff_D, [2.5, 97.5])
    full = lambda x: np.mean([metric(row, y_N) for row in x])
    return {"a_mean": full(a_SxN), "b_mean": full(b_SxN), "ci_low": lo, "ci_high": hi,
            "p_a_better": np.mean(diff_D > 0)}


def _np_k_consistency(p_SxN, k, y=None):
    """Per example: C(c, k) / C(S, k) summed over classes (or, with labels, for the gold class only)."""
    s = p_SxN.shape[0]
    counts = [np.sum(p_SxN == y, 0)] if y is not None else [np.sum(p_SxN == c, 0) for c in range(2)]
    return sum(np.array([math.comb(int(v), k) for v in c]) for c in counts) / math.comb(s, k)


def _np_example_bootstrap(key, xa_N, xb_N, draws):
    n = xa_N.shape[0]
    u = np.asarray(St._uniforms(key, (draws, n + 1)))
    ex = np.minimum((u[:, :n] * np.float32(n)).astype(np.int32), n - 1)
    diff = xa_N[ex].mean(1) - xb_N[ex].mean(1)
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return {"a_mean": xa_N.mean(), "b_mean": xb_N.mean(), "ci_low": lo, "ci_high": hi, "p_a_better": np.mean(diff > 0)}


def test_equals_numpy_paired_multibootstrap(tmp_path):
    rng = np.random.default_rng(2)
    label = rng.integers(0, 2, 120)
    pa, pb = runs_with_accuracy(rng, 120, [[0.8, 0.75, 0.7, 0.85, 0.8], [0.78, 0.7, 0.72, 0.8, 0.76]], label)
    a = load_run(write_run(tmp_path / "a", "mrpc", pa, label, np.arange(5)))
    b = load_run(write_run(tmp_path / "b", "mrpc", pb, label, np.arange(5)))
    key = jax.random.PRNGKey(7)
    rows = _rows(compare_runs(a, b, key=key, num_draws=200))
    want = {"accuracy": _np_multibootstrap(key, pa, pb, label, lambda p, y: np.mean(p == y), 200),
            "f1": _np_multibootstrap(key, pa, pb, label, _np_f1, 200),
            "consistency (k=5)": _np_example_bootstrap(key, _np_k_consistency(pa, 5), _np_k_consistency(pb, 5), 200),
            "correct consistency (k=5)": _np_example_bootstrap(key, _np_k_consistency(pa, 5, label),
                                                               _np_k_consistency(pb, 5, label), 200)}
    for metric, w in want.items():
        for field, value in w.items():
            assert rows[metric][field] == pytest.approx(value, abs=1e-6), (metric, field)
        assert rows[metric]["diff"] == pytest.approx(w["a_mean"] - w["b_mean"], abs=1e-6)


def test_cli_writes_pages_and_refuses_bad_pairs(tmp_path, capsys):
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 80)
    pa, pb = runs_with_accuracy(rng, 80, [[0.9] * 3, [0.6] * 3], label)
    a, b = write_run(tmp_path / "a", "rte", pa, label), write_run(tmp_path / "b", "rte", pb, label)
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "cmp"), "--draws", "200"]) == 0
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| validation | accuracy |" in md and "A better" in md and (tmp_path / "cmp" / "compare.html").is_file()
    capsys.readouterr()
    other_task = write_run(tmp_path / "c", "mrpc", pa, label)
    other_dev = write_run(tmp_path / "d", "rte", pa[:, :70], label[:70])
    for bad, needle in ((other_task, "different tasks"), (other_dev, "different dev sets")):
        assert main(["compare", str(a), str(bad), "-o", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.startswith("jaxseed: error: ") and err.count("\n") == 1, err
        assert not (tmp_path / "bad").exists()


def test_report_of_several_runs_has_a_comparison(tmp_path):
    from jaxseed.report import build_report

    rng = np.random.default_rng(4)
    label = rng.integers(0, 2, 100)
    pa, pb = runs_with_accuracy(rng, 100, [[0.9] * 4, [0.6] * 4], label)
    a, b = write_run(tmp_path / "a", "rte", pa, label), write_run(tmp_path / "b", "rte", pb, label)
    md = build_report([a, b], tmp_path / "rep").read_text()
    assert "## A = a vs B = b: rte" in md and "A better" in md
