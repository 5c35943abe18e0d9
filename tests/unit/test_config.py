"""TrainingConfig: one set of defaults, built from Python, dicts or YAML, refusing bad values."""

from pathlib import Path

import pytest

from atb.config import ConfigError, TrainingConfig


def test_defaults_follow_the_protocol():
    cfg = TrainingConfig()
    assert cfg.horizons == (1, 7, 30)
    assert cfg.lookback == 60
    assert cfg.split == (0.70, 0.15, 0.15)
    assert cfg.n_features == 60
    assert cfg.target_kind == "log_return"
    assert cfg.source == "sample"


def test_source_follows_inputs():
    assert TrainingConfig(data_path="x.csv").source == "file"
    assert TrainingConfig(exchange="binance").source == "exchange"
    assert isinstance(TrainingConfig(data_path="x.csv").data_path, Path)


def test_yaml_with_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model_type: tcn\nhorizons: [1, 3]\nepochs: 5\nsplit: [0.6, 0.2, 0.2]\n")
    cfg = TrainingConfig.from_yaml(path, epochs=7)
    assert (cfg.model_type, cfg.horizons, cfg.epochs, cfg.split) == ("tcn", (1, 3), 7, (0.6, 0.2, 0.2))


def test_round_trip_through_dict():
    cfg = TrainingConfig(horizons="1,7", data_path="a.csv")
    assert cfg.horizons == (1, 7)
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"horizons": (7, 1)}, r"horizons: \[7, 1\] must be increasing"),
        ({"horizons": (0, 1)}, r"must all be >= 1"),
        ({"horizons": ("a",)}, r"horizons: 'a' is not an integer"),
        ({"split": (0.5, 0.2, 0.2)}, r"split: .* must sum to 1"),
        ({"timeframe": "7m"}, r"timeframe: '7m' is not one of"),
        ({"gap_policy": "drop"}, r"gap_policy: 'drop' is not one of \['error', 'ffill', 'keep'\]"),
        ({"epochs": 0}, r"epochs: 0 must be >= 1"),
        ({"device": "tpu"}, r"device: 'tpu'"),
        ({"lookback": 1}, r"lookback: 1 must be >= 2"),
    ],
)
def test_invalid_values_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(**changes)


def test_unknown_yaml_field_is_refused(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['epoch'\]"):
        TrainingConfig.from_yaml(path)


def test_missing_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainingConfig.from_yaml(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        TrainingConfig.from_yaml(bad)
