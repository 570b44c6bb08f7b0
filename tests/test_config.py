import pytest

from jaxseed.config import Config, ConfigError, load_config, parse_set, resolve_seeds, to_dict


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("task: rte\nmodel: some/model\nseeds: 3\nlearning_rate: 3e-5\n")
    cfg = load_config(p, parse_set(["batch_size=8", "seeds=[5, 7]", "data_dir=/x"]))
    assert (cfg.task, cfg.batch_size, cfg.learning_rate, cfg.data_dir) == ("rte", 8, 3e-5, "/x")
    assert resolve_seeds(cfg.seeds).init == (5, 7)


def test_seed_streams():
    s = resolve_seeds(3)
    assert s.init == s.order == s.dropout == (0, 1, 2)
    s = resolve_seeds({"init": [0, 1, 2], "order": [9], "dropout": 4})
    assert (s.init, s.order, s.dropout) == ((0, 1, 2), (9, 9, 9), (4, 4, 4))
    s = resolve_seeds({"init": [0, 1], "order": [5, 6, 7], "grid": True})
    assert len(s) == 6 and set(zip(s.init, s.order)) == {(i, o) for i in (0, 1) for o in (5, 6, 7)}
    assert s.dropout == (0,) * 6


def test_resolved_dict_round_trips():
    cfg = load_config(None, {"task": "rte", "model": "m", "seeds": {"init": [1, 2], "order": [3, 4]}})
    again = Config(**to_dict(cfg) | {"output_dir": None})
    assert resolve_seeds(again.seeds) == resolve_seeds(cfg.seeds)


@pytest.mark.parametrize("overrides, needle", [
    ({"lr": 1e-5}, "unknown config key 'lr'"),
    ({"batch_size": 0}, "'batch_size'"),
    ({"batch_size": "big"}, "'batch_size'"),
    ({"learning_rate": "fast"}, "'learning_rate'"),
    ({"train_mode": "prefix"}, "'train_mode'"),
    ({"seeds": -1}, "'seeds'"),
    ({"seeds": {"init": [1, 2], "order": [1, 2, 3]}}, "'seeds.init'"),
    ({"seeds": {"inits": [1]}}, "'seeds.inits'"),
    ({"warmup_ratio": 2}, "'warmup_ratio'"),
    ({"task": None}, "'task' is required"),
])
def test_bad_values_name_the_key(overrides, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")) as e:
        load_config(None, {"task": "rte", "model": "m"} | overrides)
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["novalue"])
