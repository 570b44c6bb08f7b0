import pytest

from jaxseed.tasks import TASKS, get_task


def test_all_of_glue():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert get_task("mnli").dev_splits == ("validation_matched", "validation_mismatched")
    assert get_task("STS-B").is_regression and get_task("stsb").num_labels == 1
    assert get_task("mnli").num_labels == 3
    assert get_task("cola").primary_metric == "mcc"
    assert get_task("mrpc").metrics == ("f1", "accuracy") and get_task("qqp").metrics == ("accuracy", "f1")
    assert get_task("stsb").metrics == ("pearson", "spearman")


def test_metrics_exist():
    from jaxseed import metrics

    for t in TASKS.values():
        for m in t.metrics:
            assert m in metrics.METRICS


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'glue-x'"):
        get_task("glue-x")
