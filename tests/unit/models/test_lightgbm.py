"""LightGBM: importance by feature and lag, early stopping, history, save/load of boosters."""

from __future__ import annotations

import numpy as np
import pytest

from atb.models import ModelFileError, create_model, importance_by_feature, load_model
from atb.models.lightgbm import flatten
from atb.models.trainer import FitSettings
from atb.windows import Windows

LOOKBACK, FEATURES, HORIZONS = 6, ["close_ret", "rsi", "volume"], (1, 3)
SETTINGS = FitSettings(n_jobs=1, seed=0)


def make_split(n: int, seed: int, signal: bool = True) -> Windows:
    """Targets driven by `rsi` one bar before the origin (lag 1) when `signal`, else pure noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, LOOKBACK, len(FEATURES))).astype(np.float32)
    driver = X[:, LOOKBACK - 2, 1] if signal else 0.0
    y = np.stack([driver * h + rng.normal(scale=0.1, size=n) for h in HORIZONS], axis=1)
    return Windows(X, y.astype(np.float32))


@pytest.fixture(scope="module")
def fitted():
    model = create_model("lightgbm", (LOOKBACK, len(FEATURES)), HORIZONS, "lightweight")
    model.fit(make_split(400, 0), make_split(100, 1), SETTINGS)
    return model


def test_flatten_puts_lag_k_of_feature_f_at_column_t_times_features_plus_f():
    X = np.arange(2 * LOOKBACK * 3, dtype=np.float32).reshape(2, LOOKBACK, 3)
    rows = flatten(X)
    assert rows.shape == (2, LOOKBACK * 3)
    assert rows[1, (LOOKBACK - 1) * 3 + 2] == X[1, -1, 2]


def test_importance_names_each_feature_and_lag_and_finds_the_driver(fitted):
    importance = fitted.feature_importance(FEATURES)
    assert len(importance) == LOOKBACK * len(FEATURES)
    assert set(importance.index) == {f"{f}@t-{k}" for f in FEATURES for k in range(LOOKBACK)}
    assert importance.index[0] == "rsi@t-1"
    assert list(importance) == sorted(importance, reverse=True)
    by_feature = fitted.feature_importance_by_feature(FEATURES)
    assert by_feature.equals(importance_by_feature(importance))
    assert list(by_feature.index)[0] == "rsi" and set(by_feature.index) == set(FEATURES)
    assert by_feature.sum() == pytest.approx(importance.sum())
    with pytest.raises(ValueError, match="feature_names has 2 names; the model was fitted on 3 features"):
        fitted.feature_importance(FEATURES[:2])


def test_early_stopping_on_noise_stops_well_before_n_estimators():
    model = create_model("lightgbm", (LOOKBACK, len(FEATURES)), HORIZONS, "lightweight", early_stopping_rounds=10)
    history = model.fit(make_split(300, 2, signal=False), make_split(100, 3, signal=False), SETTINGS)
    assert all(best < 300 for best in model.best_iterations_)
    assert len(history) < 300
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))


def test_learns_the_signal_and_reports_mae_per_horizon(fitted):
    val = make_split(100, 1)
    mae = np.abs(fitted.predict(val.X) - val.y).mean(axis=0)
    assert mae[0] < 0.5 * np.abs(val.y[:, 0]).mean()
    best = fitted.history_[fitted.best_iterations_[0] - 1]
    assert best["val_mae_h1"] == pytest.approx(mae[0], rel=1e-4)


def test_save_keeps_only_the_best_trees_and_reloads_identically(fitted, tmp_path):
    fitted.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_h1.txt", "model_h3.txt", "params.json"]
    reloaded = load_model(tmp_path)
    X = make_split(50, 5).X
    np.testing.assert_array_equal(reloaded.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(reloaded.predict(X[:1]), fitted.predict(X[:1]))
    assert reloaded.best_iterations_ == fitted.best_iterations_
    assert reloaded.feature_importance(FEATURES).equals(fitted.feature_importance(FEATURES))
    (tmp_path / "model_h3.txt").write_text("garbage")
    with pytest.raises(ModelFileError, match=r"model_h3\.txt is not a readable LightGBM model"):
        load_model(tmp_path)


def test_same_seed_same_model():
    train, val = make_split(200, 6), make_split(60, 7)
    predictions = []
    for _ in range(2):
        model = create_model("lightgbm", (LOOKBACK, len(FEATURES)), HORIZONS, "lightweight")
        model.fit(train, val, SETTINGS)
        predictions.append(model.predict(val.X))
    np.testing.assert_array_equal(*predictions)


def test_shap_values_sum_to_the_prediction_and_find_the_driver(fitted, tmp_path):
    from atb.evaluation.importance import attribution_explanation
    from atb.evaluation.plots import plot_shap_summary
    from atb.models.seeds import SeedAverage

    X = make_split(50, 7).X
    values = fitted.attributions(X)
    assert values.shape == (50, len(HORIZONS), len(FEATURES) + 1)
    np.testing.assert_allclose(values.sum(axis=2), fitted.predict(X), rtol=1e-6, atol=1e-9)  # contributions + expected = prediction
    assert np.all(values[:, :, -1] == values[0, :, -1])  # the expected value is one number per horizon
    assert np.abs(values[:, :, 1]).mean() > 5 * np.abs(values[:, :, [0, 2]]).mean()  # rsi drives the target
    other = create_model("lightgbm", (LOOKBACK, len(FEATURES)), HORIZONS, "lightweight")
    other.fit(make_split(400, 2), make_split(100, 3), FitSettings(n_jobs=1, seed=1))
    pair = SeedAverage([fitted, other], [0, 1])
    averaged, method = attribution_explanation(pair, X)
    assert method == "TreeSHAP"
    np.testing.assert_allclose(averaged.sum(axis=2), pair.predict(X), rtol=1e-6, atol=1e-9)
    assert attribution_explanation(create_model("drift", (LOOKBACK, len(FEATURES)), HORIZONS), X) is None
    path = plot_shap_summary(values, method, X[:, -1, :], FEATURES, HORIZONS, tmp_path / "shap.png")
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize("variable, threads", [("3", 3), (None, 2), ("", 2), ("auto", 2), ("0", 2)])
def test_threads_follow_the_settings_then_omp_num_threads_then_two(monkeypatch, variable, threads):
    if variable is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", variable)
    train, val = make_split(200, 6), make_split(60, 7)
    model = create_model("lightgbm", (LOOKBACK, len(FEATURES)), HORIZONS, "lightweight")
    model.fit(train, val, FitSettings(seed=0))
    assert model.n_jobs_ == threads
    model.fit(train, val, FitSettings(seed=0, n_jobs=1))
    assert model.n_jobs_ == 1
