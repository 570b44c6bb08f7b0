import pytest

from jaxseed.tasks import GLUE_TASKS, SUPERGLUE_TASKS, TASKS, get_task


def test_all_of_glue():
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert get_task("mnli").dev_splits == ("validation_matched", "validation_mismatched")
    assert get_task("STS-B").is_regression and get_task("stsb").num_labels == 1
    assert get_task("mnli").num_labels == 3
    assert get_task("cola").primary_metric == "mcc"
    assert get_task("mrpc").metrics == ("f1", "accuracy") and get_task("qqp").metrics == ("accuracy", "f1")
    assert get_task("stsb").metrics == ("pearson", "spearman")


def test_metrics_exist():
    from jaxseed import metrics, units

    for t in TASKS.values():
        for m in t.metrics:
            assert m in metrics.METRICS or (t.benchmark == "superglue" and m in units.UNIT_METRICS)


def test_all_of_superglue():
    assert set(TASKS) == set(GLUE_TASKS) | set(SUPERGLUE_TASKS)
    assert set(SUPERGLUE_TASKS) == {"boolq", "cb", "copa", "multirc", "record", "rte_sg", "wic", "wsc", "axb", "axg"}
    assert get_task("rte").benchmark == "glue" and get_task("rte_sg").hub_config == "rte"
    assert get_task("cb").label_names == ("entailment", "contradiction", "neutral")  # Hugging Face's order
    assert get_task("cb").metrics == ("accuracy", "macro_f1") and get_task("axb").metrics == ("mcc",)
    assert get_task("multirc").metrics == ("multirc_f1a", "multirc_em") and get_task("multirc").unit == "question"
    assert get_task("record").unit == "query" and get_task("copa").formulation == "choice"
    assert get_task("axg").metrics == ("accuracy", "gender_parity") and not get_task("AX-g").has_train


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'glue-x'"):
        get_task("glue-x")
