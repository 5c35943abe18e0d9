"""One harness over the model registry: every type x variant is built, fitted,
saved and reloaded the same way, so a newly registered architecture is tested
the moment it is added. Then learning, determinism, MC dropout and attention
checks for every neural type."""

from __future__ import annotations

import importlib
import json
import pkgutil

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

import atb.models
from atb.models import (
    AVAILABLE_MODELS,
    CapabilityError,
    ModelFileError,
    build_network,
    create_model,
    load_model,
    model_class,
    model_variants,
    validation,
)
from atb.models.base import PARAMS_FILE
from atb.models.factory import MODEL_CLASSES
from atb.models.neural import WEIGHTS_FILE
from atb.models.trainer import FitSettings
from atb.models.validation import gpu_check
from atb.windows import Windows

LOOKBACK, N_FEATURES, HORIZONS = 16, 5, (1, 7, 30)
ALL_CASES = [(t, v) for t in AVAILABLE_MODELS for v in model_variants(t)]
NEURAL = [t for t in AVAILABLE_MODELS if model_class(t).is_neural]
HISTORY_KEYS = {"epoch", "loss", "val_loss", "lr", "seconds", *(f"val_mae_h{h}" for h in HORIZONS)}
N_MC = 200  # MC dropout draws compared in distribution
ONE_EPOCH = FitSettings(epochs=1, batch_size=64, device="cpu", n_jobs=1)


def synthetic_split(n: int, seed: int, noise: float = 0.002) -> Windows:
    """Log-return targets: a weighted sum of the last 3 steps of feature 0, grown with sqrt(h), plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, LOOKBACK, N_FEATURES)).astype(np.float32)
    signal = 0.01 * (X[:, -1, 0] + 0.5 * X[:, -2, 0] + 0.25 * X[:, -3, 0])
    y = np.stack([signal * np.sqrt(h) for h in HORIZONS], axis=1) + rng.normal(scale=noise, size=(n, len(HORIZONS)))
    return Windows(X, y.astype(np.float32))


def return_path_windows(n: int, seed: int) -> Windows:
    """Windows of one column, a random walk's one-bar log returns, at consecutive origins, with the
    cumulative returns 1, 7 and 30 bars on as targets (what a type with fixed return inputs reads)."""
    returns = np.random.default_rng(seed).normal(0.001, 0.02, size=n + LOOKBACK + max(HORIZONS))
    X = np.lib.stride_tricks.sliding_window_view(returns, LOOKBACK)[:n, :, None].astype(np.float32)
    cumulative = np.concatenate([[0.0], np.cumsum(returns)])
    y = np.stack([cumulative[LOOKBACK + h + np.arange(n)] - cumulative[LOOKBACK + np.arange(n)] for h in HORIZONS], axis=1)
    return Windows(X, y.astype(np.float32))


TRAIN, VAL = synthetic_split(64, 0), synthetic_split(32, 1)  # mechanics only: one mini-batch per epoch
RETURN_TRAIN, RETURN_VAL = return_path_windows(80, 0), return_path_windows(32, 1)


def data_for(model_type: str) -> tuple[tuple[int, int], Windows, Windows]:
    """Input shape, training and validation windows for a type: the synthetic features, or for a
    type with fixed input columns (the statistical baselines) return-path windows."""
    inputs = model_class(model_type).input_features
    if inputs is None:
        return (LOOKBACK, N_FEATURES), TRAIN, VAL
    return (LOOKBACK, len(inputs)), RETURN_TRAIN, RETURN_VAL
TUNABLE = [t for t in AVAILABLE_MODELS if model_variants(t)["default"]]


@pytest.fixture(scope="module")
def fitted_lightweight() -> dict:
    """One fitted lightweight model per type, shared by the capability tests."""
    models = {}
    for model_type in AVAILABLE_MODELS:
        shape, train, val = data_for(model_type)
        model = create_model(model_type, shape, HORIZONS, "lightweight" if model_type in NEURAL else "default")
        model.fit(train, val, ONE_EPOCH)
        models[model_type] = model
    return models


# ------------------------------------------------------------------ the harness
@pytest.mark.parametrize("model_type,variant", ALL_CASES, ids=[f"{t}-{v}" for t, v in ALL_CASES])
def test_every_type_and_variant_fits_predicts_saves_and_reloads(model_type, variant, tmp_path):
    shape, train, val = data_for(model_type)
    model = create_model(model_type, shape, HORIZONS, variant)
    history = model.fit(train, val, ONE_EPOCH)
    assert history and set(history[0]) == HISTORY_KEYS and model.history_ is history
    assert all(np.isfinite(row["val_loss"]) for row in history)
    prediction = model.predict(val.X)
    assert prediction.shape == (len(val), len(HORIZONS)) and prediction.dtype == np.float64
    assert model.predict(val.X[:1]).shape == (1, len(HORIZONS))

    model.save(tmp_path)
    params = json.loads((tmp_path / PARAMS_FILE).read_text())
    assert params["model_type"] == model_type and params["variant"] == variant
    assert params["input_shape"] == list(shape) and params["horizons"] == list(HORIZONS)
    assert params["hyperparameters"].keys() == model_variants(model_type)[variant].keys()
    assert "training_defaults" in params and params["overrides"] == {}
    assert (tmp_path / WEIGHTS_FILE).is_file() == model.is_neural
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob(".*.tmp"))

    reloaded = load_model(tmp_path)
    assert type(reloaded) is type(model) and reloaded.get_params() == model.get_params()
    np.testing.assert_array_equal(reloaded.predict(val.X), prediction)
    assert reloaded.history_ == json.loads(json.dumps(history))


@pytest.mark.parametrize("model_type", TUNABLE)
def test_overrides_change_one_hyperparameter(model_type):
    name, value = next(iter(model_variants(model_type)["default"].items()))
    model = create_model(model_type, (LOOKBACK, N_FEATURES), HORIZONS, "lightweight", **{name: value})
    assert model.hyperparameters() == {**model_variants(model_type)["lightweight"], name: value}
    assert model.get_params()["overrides"] == {name: value}
    assert model.clone().get_params() == model.get_params()


@pytest.mark.parametrize("model_type", sorted(set(AVAILABLE_MODELS) - set(TUNABLE)))
def test_models_without_hyperparameters_refuse_overrides(model_type):
    with pytest.raises(ValueError, match=r"valid names: \[\]"):
        create_model(model_type, (LOOKBACK, N_FEATURES), HORIZONS, window=3)


def test_every_network_in_the_package_is_registered_once_with_its_declarations():
    """The harness reads its types from the registry; this checks the registry holds every
    network the package defines (a network class declaring variants without its registry
    line fails here)."""
    networks = {
        cls
        for info in pkgutil.iter_modules(atb.models.__path__)
        for cls in vars(importlib.import_module(f"atb.models.{info.name}")).values()
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and "variants" in vars(cls)
    }
    registered = [cls.network_class for cls in MODEL_CLASSES.values() if cls.is_neural]
    assert sorted(registered, key=str) == sorted(networks, key=str)
    for model_type, cls in MODEL_CLASSES.items():
        assert isinstance(cls.description, str) and cls.description, model_type
        assert "default" in cls.variants and cls.ensemble_family, model_type
    for model_type in NEURAL + ["lightgbm"]:
        assert set(model_variants(model_type)) == {"lightweight", "default", "deep"}


def test_factory_refuses_unknown_names_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model type 'gru'; valid: \[.*'lstm'.*'transformer'"):
        create_model("gru", (LOOKBACK, N_FEATURES))
    with pytest.raises(ValueError, match=r"unknown lstm variant 'huge'; valid: \['deep', 'default', 'lightweight'\]"):
        create_model("lstm", (LOOKBACK, N_FEATURES), variant="huge")
    with pytest.raises(ValueError, match=r"unknown lstm override\(s\) \['units'\]; valid names: \['dropout', 'lstm_units'\]"):
        create_model("lstm", (LOOKBACK, N_FEATURES), units=3)
    with pytest.raises(ValueError, match=r"unknown lightgbm override\(s\) \['leaves'\].*'num_leaves'"):
        create_model("lightgbm", (LOOKBACK, N_FEATURES), leaves=3)
    with pytest.raises(ValueError, match="input_shape must be"):
        create_model("lstm", (LOOKBACK,))
    with pytest.raises(ValueError, match="not a neural model type"):
        build_network("lightgbm", (LOOKBACK, N_FEATURES), 3)


def test_build_network_returns_the_bare_network():
    network = build_network("tcn", (LOOKBACK, N_FEATURES), 2, "lightweight", num_filters=8)
    assert network(torch.zeros(4, LOOKBACK, N_FEATURES)).shape == (4, 2)


def test_load_refuses_missing_and_corrupt_files_naming_them(tmp_path, fitted_lightweight):
    with pytest.raises(ModelFileError, match=r"params\.json does not exist"):
        load_model(tmp_path)
    fitted_lightweight["lstm"].save(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match=r"weights\.safetensors cannot be loaded"):
        load_model(tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFileError, match=r"weights\.safetensors does not exist"):
        load_model(tmp_path)
    (tmp_path / PARAMS_FILE).write_text("{broken")
    with pytest.raises(ModelFileError, match=r"params\.json is not valid JSON"):
        load_model(tmp_path)


def test_weights_of_another_shape_are_refused(tmp_path, fitted_lightweight):
    fitted_lightweight["lstm"].save(tmp_path)
    params = json.loads((tmp_path / PARAMS_FILE).read_text())
    params["variant"] = "deep"
    (tmp_path / PARAMS_FILE).write_text(json.dumps(params))
    with pytest.raises(ModelFileError, match="cannot be loaded into a lstm network"):
        load_model(tmp_path)


def test_predict_and_fit_refuse_wrong_shapes_and_unfitted_models():
    model = create_model("lstm", (LOOKBACK, N_FEATURES), HORIZONS, "lightweight")
    with pytest.raises(Exception, match="not fitted"):
        model.predict(VAL.X)
    with pytest.raises(ValueError, match=r"windows must have shape \(n, 16, 5\), got \(32, 16, 4\)"):
        model.fit(TRAIN, Windows(VAL.X[..., :4], VAL.y), ONE_EPOCH)
    bad = synthetic_split(64, 2)
    bad.X[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="train holds NaN"):
        model.fit(bad, VAL, ONE_EPOCH)


# --------------------------------------------------------------- neural checks
def level_split(n: int, seed: int) -> Windows:
    """Feature 0 carries a per-window level plus noise; the target grows with the
    window mean of feature 0: visible at every step, so every architecture
    (last-step readout, pooling, attention) can learn it in a few epochs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12, 4)).astype(np.float32)
    X[:, :, 0] = rng.normal(size=(n, 1)) + 0.3 * X[:, :, 0]
    signal = 0.01 * X[:, :, 0].mean(axis=1)
    y = np.stack([signal * np.sqrt(h) for h in HORIZONS], axis=1) + rng.normal(scale=0.002, size=(n, len(HORIZONS)))
    return Windows(X, y.astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("model_type", NEURAL)
def test_neural_types_learn_a_learnable_signal(model_type):
    """With their own training defaults, validation MSE ends well below the naive
    (zero-change) forecast's within a few epochs."""
    train, val = level_split(256, 10), level_split(128, 11)
    model = create_model(model_type, (12, 4), HORIZONS, "lightweight")
    model.fit(train, val, FitSettings(epochs=10, batch_size=32, device="cpu", patience=10))
    model_mse = np.mean((model.predict(val.X) - val.y) ** 2)
    naive_mse = np.mean(val.y.astype(float) ** 2)
    assert model_mse / naive_mse < 0.5


@pytest.mark.parametrize("model_type", NEURAL)
def test_same_seed_gives_identical_weights(model_type):
    weights = []
    for _ in range(2):
        model = create_model(model_type, (LOOKBACK, N_FEATURES), HORIZONS, "lightweight")
        model.fit(TRAIN, VAL, FitSettings(epochs=1, device="cpu", seed=3))
        weights.append(model.network_.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("model_type", NEURAL)
def test_mc_dropout_samples_match_single_passes_in_distribution(model_type, fitted_lightweight):
    """The batched draw (N copies in one forward) has the same distribution as N
    separate single passes: two-sample KS test, matching mean and spread."""
    model = fitted_lightweight[model_type]
    x = VAL.X[:1]
    batched = model.predict_samples(x, n_samples=N_MC, seed=0)[:, 0]
    single = np.concatenate([model.predict_samples(x, n_samples=1, seed=1000 + i)[:, 0] for i in range(N_MC)])
    assert batched.std(axis=0).min() > 0
    for j in range(len(HORIZONS)):
        assert scipy.stats.ks_2samp(batched[:, j], single[:, j]).pvalue > 1e-3
        standard_error = single[:, j].std() / np.sqrt(N_MC)
        assert abs(batched[:, j].mean() - single[:, j].mean()) < 5 * standard_error
        assert 0.7 < batched[:, j].std() / single[:, j].std() < 1.4


@pytest.mark.parametrize("model_type", NEURAL)
def test_mc_dropout_is_one_seeded_forward_that_leaves_the_model_alone(model_type, fitted_lightweight):
    model = fitted_lightweight[model_type]
    calls, modes = [], []

    def record(module, args, out):
        calls.append(args[0].shape[0])
        modes.append((module.training, [m.training for m in module.modules() if isinstance(m, torch.nn.Dropout)]))

    hook = model.network_.network.register_forward_hook(record)
    rng_before = torch.get_rng_state()
    try:
        samples = model.predict_samples(VAL.X[:3], n_samples=20, seed=5)
    finally:
        hook.remove()
    assert calls == [60]  # 20 samples x 3 origins in a single forward pass
    network_training, dropouts_training = modes[0]
    assert not network_training and dropouts_training and all(dropouts_training)
    assert samples.shape == (20, 3, len(HORIZONS))
    assert torch.equal(torch.get_rng_state(), rng_before)
    np.testing.assert_array_equal(samples, model.predict_samples(VAL.X[:3], n_samples=20, seed=5))
    assert not np.array_equal(samples, model.predict_samples(VAL.X[:3], n_samples=20, seed=6))
    assert not any(m.training for m in model.network_.modules())
    np.testing.assert_array_equal(model.predict(VAL.X[:3]), model.predict(VAL.X[:3]))


@pytest.mark.parametrize("model_type", AVAILABLE_MODELS)
def test_capabilities_are_honoured_or_refused_clearly(model_type, fitted_lightweight):
    model = fitted_lightweight[model_type]
    (lookback, n_features), _, val = data_for(model_type)
    if model.supports_mc_dropout:
        assert model.predict_samples(val.X[:2], 3).shape == (3, 2, len(HORIZONS))
    else:
        with pytest.raises(CapabilityError, match=f"'{model_type}' does not have capability 'supports_mc_dropout'"):
            model.predict_samples(val.X[:2], 3)
    if model.has_attention:
        weights = model.attention_weights(val.X[:4])
        assert weights.shape == (4, lookback)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    else:
        with pytest.raises(CapabilityError, match="has_attention"):
            model.attention_weights(val.X[:4])
    if model.has_feature_importance:
        assert isinstance(model.feature_importance([f"f{i}" for i in range(n_features)]), pd.Series)
    else:
        with pytest.raises(CapabilityError, match="has_feature_importance"):
            model.feature_importance([f"f{i}" for i in range(n_features)])


def test_attention_flags_follow_the_networks():
    assert {t for t in AVAILABLE_MODELS if model_class(t).has_attention} == {
        "attention_lstm", "enhanced_lstm", "tcn_attention", "transformer"
    }


# ------------------------------------------------------------------ baselines
def test_naive_predicts_no_change_and_drift_the_mean_return_per_bar():
    naive = create_model("naive", (LOOKBACK, N_FEATURES), HORIZONS)
    naive.fit(TRAIN, VAL)
    np.testing.assert_array_equal(naive.predict(VAL.X), np.zeros((len(VAL), 3)))
    drift = create_model("drift", (LOOKBACK, N_FEATURES), HORIZONS)
    history = drift.fit(TRAIN, VAL)
    per_bar = TRAIN.y[:, 0].astype(float).mean()
    np.testing.assert_allclose(drift.predict(VAL.X[:2]), [[per_bar, 7 * per_bar, 30 * per_bar]] * 2, rtol=1e-12)
    assert history[0]["val_mae_h7"] == pytest.approx(np.abs(VAL.y[:, 1] - 7 * per_bar).mean(), rel=1e-6)


# ------------------------------------------------------------------ self-checks
def test_validate_all_models_reports_each_variant_and_failures(monkeypatch):
    class BrokenModel(MODEL_CLASSES["naive"]):
        model_type = "broken"

        def predict(self, X):
            return np.zeros((len(X), 1))

    subset = {"lstm": MODEL_CLASSES["lstm"], "naive": MODEL_CLASSES["naive"], "broken": BrokenModel}
    monkeypatch.setattr(validation, "MODEL_CLASSES", subset)
    monkeypatch.setattr("atb.models.factory.MODEL_CLASSES", subset)
    rows = validation.validate_all_models(device="cpu")
    assert [(r["type"], r["variant"]) for r in rows] == [
        ("lstm", "lightweight"), ("lstm", "default"), ("lstm", "deep"), ("naive", "default"), ("broken", "default")
    ]
    assert [r["status"] for r in rows[:4]] == ["ok"] * 4
    assert rows[0]["parameters"] > 0 and rows[0]["output_shape"] == [validation.N_VAL, 3]
    assert rows[4]["status"].startswith("AssertionError: predict returned (32, 1)")


def test_gpu_check_reports_versions_and_a_timed_matmul():
    report = gpu_check("cpu")
    assert report["torch_version"] == torch.__version__ and report["device"] == "cpu"
    assert report["cuda_available"] == torch.cuda.is_available()
    assert report["matmul_seconds"] > 0


@pytest.mark.parametrize("variant", ["lightweight", "default"])
def test_transformer_trains_on_the_noam_schedule_of_its_own_width(variant):
    model = create_model("transformer", (LOOKBACK, N_FEATURES), HORIZONS, variant)
    history = model.fit(TRAIN, VAL, ONE_EPOCH)  # one step; the row holds the rate set for step 2
    d_model, warmup = model.hyperparameters()["d_model"], 500
    assert history[0]["lr"] == pytest.approx((d_model * warmup) ** -0.5 * 2 / warmup, rel=1e-6)
