import pytest

from noisy_labels.config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    params_from_dict,
    parse_overrides,
)
from noisy_labels.engine import load_config
from noisy_labels.methods import get_method_class


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
        # a method's Params check their values when built, so a bad value fails before any data loads
        ("dividemix.view=blurry", r"dividemix\.view must be one of"),
        ("rmnwnet.warmup_max_share=2", r"rmnwnet\.warmup_max_share must be in \(0, 1\]"),
        ("dmlp.then=dmlp", r"dmlp\.then cannot be 'dmlp'"),
        ("dmlp.momentum=1.5", r"dmlp\.momentum \(eta_E\) must lie in \[0, 1\]"),
        ("mwnet2.lr=1", "unknown method section 'mwnet2'"),
    ],
)
def test_bad_configs_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["noequals"])
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_a_plain_dict():
    cfg = load_config(None, ["noise.rate=0.2", "gce.q=0.5", "optim.betas=[0.5, 0.99]"])
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_exponent_floats_without_a_dot_are_floats(tmp_path):
    # YAML 1.1 reads "3e-4" as a string; a learning rate written that way must still be a float.
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 3e-4\n")
    cfg = load_config(path, ["emlc.teacher_lr=1E-3"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    emlc = params_from_dict(get_method_class("emlc").Params, cfg.method_params["emlc"])
    assert emlc.teacher_lr == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(None, ["optim.lr=3e-4x"])
    # also where no type hint would convert it (free-form model parameters)
    assert load_config(None, ["model.params={dropout: 5e-1}"]).model.params == {"dropout": 0.5}


def test_learning_rate_defaults_to_the_effective_step_of_the_optimiser():
    """optim.lr left unset: 0.1 effective SGD step (lr 0.01 at momentum 0.9), 1e-3 for Adam; set: kept."""
    assert load_config(None, []).optim.lr == pytest.approx(0.01)
    assert load_config(None, ["optim.momentum=0"]).optim.lr == pytest.approx(0.1)
    assert load_config(None, ["optim.name=adam"]).optim.lr == pytest.approx(1e-3)
    assert load_config(None, ["optim.lr=0.1"]).optim.lr == 0.1
