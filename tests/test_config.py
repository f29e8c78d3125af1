import pytest

from noisy_labels.config import ConfigError, config_from_dict, config_to_dict, load_config, parse_overrides


def test_defaults_make_a_complete_config():
    cfg = load_config()
    assert cfg.dataset == "digits" and cfg.method == "ce" and cfg.meta.size == 0


def test_overrides_parse_yaml_values_into_nested_sections():
    tree = parse_overrides(
        ["noise.rate=0.8", "model.params={hidden: [32]}", "out=x", "optim.betas=[0.5, 0.9]"]
    )
    assert tree == {
        "noise": {"rate": 0.8},
        "model": {"params": {"hidden": [32]}},
        "out": "x",
        "optim": {"betas": [0.5, 0.9]},
    }
    cfg = load_config(None, ["noise.rate=0.8", "optim.betas=[0.5, 0.9]", "bootstrap_soft.beta=0.8"])
    assert cfg.noise.rate == 0.8 and cfg.optim.betas == (0.5, 0.9)
    assert cfg.method_params == {"bootstrap_soft": {"beta": 0.8}}


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: mnist\nnoise:\n  protocol: uniform\n  rate: 0.6\nepochs: 3\n")
    cfg = load_config(path, ["epochs=5"])
    assert (cfg.dataset, cfg.noise.protocol, cfg.noise.rate, cfg.epochs) == ("mnist", "uniform", 0.6, 5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epoch=3", "unknown config key"),
        ("noise.rat=0.3", r"noise\.rat"),
        ("method=nonsense", "unknown method 'nonsense'"),
        ("epochs=many", "epochs: expected int"),
        ("epochs=0", "epochs must be >= 1"),
        ("noise.rate=1.5", r"noise\.rate must lie in \[0, 1\]"),
        ("optim.name=rmsprop", "optim.name must be one of"),
        ("bootstrap_soft.bta=0.5", r"bootstrap_soft\.bta"),
        ("gce.q=high", r"gce\.q: expected float"),
        ("noise=3", "noise must be a mapping"),
    ],
)
def test_bad_configs_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["noequals"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_a_plain_dict():
    cfg = load_config(None, ["noise.rate=0.2", "gce.q=0.5", "optim.betas=[0.5, 0.99]"])
    assert config_from_dict(config_to_dict(cfg)) == cfg
