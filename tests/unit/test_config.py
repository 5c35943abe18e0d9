"""TrainingConfig: sub-specs with one set of defaults, built from flat names, sections or YAML,
refusing bad values; each sub-spec reaches its consumer whole."""

import dataclasses
import re
from pathlib import Path

import pytest

from atb.config import SECTION_OF, ConfigError, DatasetSpec, DataSpec, FitSpec, TrainingConfig
from atb.models.trainer import FitSettings


def test_defaults_follow_the_protocol():
    cfg = TrainingConfig()
    assert cfg.dataset == DatasetSpec(horizons=(1, 7, 30), lookback=60, split=(0.70, 0.15, 0.15), n_features=20)
    assert cfg.dataset.target_kind == "log_return"
    assert cfg.data.source == "sample"
    assert TrainingConfig.build() == cfg


def test_flat_names_are_routed_to_their_sub_spec():
    cfg = TrainingConfig.build(symbol="ETHUSDT", lookback=30, model_type="tcn", epochs=3, mc_samples=7, tune_trials=4, mlflow=False)
    assert (cfg.data.symbol, cfg.dataset.lookback, cfg.model.model_type, cfg.fit.epochs) == ("ETHUSDT", 30, "tcn", 3)
    assert (cfg.production.mc_samples, cfg.tuning.tune_trials, cfg.output.mlflow) == (7, 4, False)
    assert cfg.replace(epochs=5).fit == FitSpec(epochs=5) and cfg.replace(epochs=5).data == cfg.data


def test_every_flat_name_is_unique_across_sub_specs():
    names = [f.name for section in dataclasses.fields(TrainingConfig) for f in dataclasses.fields(section.default_factory)]
    assert len(names) == len(set(names)) == len(SECTION_OF)


def test_source_follows_inputs():
    assert DataSpec(data_path="x.csv").source == "file"
    assert DataSpec(exchange="binance").source == "exchange"
    assert isinstance(DataSpec(data_path="x.csv").data_path, Path)


def test_yaml_flat_or_by_section_with_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model_type: tcn\nhorizons: [1, 3]\nepochs: 5\nsplit: [0.6, 0.2, 0.2]\n")
    cfg = TrainingConfig.from_yaml(path, epochs=7)
    assert (cfg.model.model_type, cfg.dataset.horizons, cfg.fit.epochs, cfg.dataset.split) == ("tcn", (1, 3), 7, (0.6, 0.2, 0.2))
    nested = tmp_path / "nested.yaml"
    nested.write_text("model: {model_type: tcn}\ndataset: {horizons: [1, 3], split: [0.6, 0.2, 0.2]}\nfit: {epochs: 5}\n")
    assert TrainingConfig.from_yaml(nested, epochs=7) == cfg


def test_absolute_paths_for_workers_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainingConfig.build(data_path="a.csv", registry_dir="models", output_dir="out", backend="ray", ray_cpus=2).with_absolute_paths()
    assert (cfg.data.data_path, cfg.output.registry_dir, cfg.output.output_dir) == (tmp_path / "a.csv", tmp_path / "models", tmp_path / "out")
    assert cfg.data.funding_path is None and cfg.compute.ray_cpus == 2 and cfg.to_dict()["backend"] == "ray"


def test_round_trip_through_the_flat_dict():
    cfg = TrainingConfig.build(horizons="1,7", data_path="a.csv")
    assert cfg.dataset.horizons == (1, 7)
    flat = cfg.to_dict()
    assert list(flat)[:3] == ["symbol", "data_path", "exchange"] and flat["horizons"] == [1, 7]
    assert TrainingConfig.from_dict(flat) == cfg


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
        ({"base_models": ""}, r"base_models: at least one base model is needed"),
    ],
)
def test_invalid_values_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig.build(**changes)


def test_unknown_fields_are_refused(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['epoch'\]"):
        TrainingConfig.from_yaml(path)
    with pytest.raises(ConfigError, match=r"fit: unknown field\(s\) \['symbol'\]"):
        TrainingConfig.from_dict({"fit": {"symbol": "ETHUSDT"}})


def test_missing_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainingConfig.from_yaml(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        TrainingConfig.from_yaml(bad)


def test_every_fit_spec_field_reaches_the_trainer():
    spec = FitSpec(epochs=7, batch_size=32, patience=3, learning_rate=0.002, seed=5, device="cpu", mixed_precision=True, cuda_graphs=True)
    settings = FitSettings.from_spec(spec, Path("ck"))
    for field in dataclasses.fields(FitSpec):
        assert getattr(settings, field.name) == getattr(spec, field.name), field.name
    assert settings.checkpoint_dir == Path("ck")
    assert FitSettings.from_spec(FitSpec()).learning_rate is None


@pytest.mark.parametrize(
    ("values", "message"),
    [({"epochs": "many"}, "epochs: 'many' must be int"), ({"learning_rate": "fast"}, "learning_rate: 'fast' must be float or null"),
     ({"mlflow": "yes"}, "mlflow: 'yes' must be bool"), ({"epochs": True}, "epochs: True must be int")],
)
def test_a_value_of_the_wrong_kind_names_the_field(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainingConfig.build(**values)
