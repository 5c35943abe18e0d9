"""AutoARIMA and AutoETS on log close: fitted by statsforecast on the training return path, and
run over each window without refitting to the same forecast statsforecast gives from the full history."""

import numpy as np
import pytest

from atb.models import create_model
from atb.models.statistical import _return_path
from atb.windows import Windows

LOOKBACK, HORIZONS = 60, (1, 7, 30)


def windows_of(returns: np.ndarray) -> Windows:
    n = len(returns) - LOOKBACK - max(HORIZONS) + 1
    X = np.lib.stride_tricks.sliding_window_view(returns, LOOKBACK)[:n, :, None].astype(np.float32)
    cumulative = np.concatenate([[0.0], np.cumsum(returns)])
    y = np.stack([cumulative[LOOKBACK + h + np.arange(n)] - cumulative[LOOKBACK + np.arange(n)] for h in HORIZONS], axis=1)
    return Windows(X, y.astype(np.float32))


def ar1_returns(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    returns = np.empty(n)
    previous = 0.002
    for t in range(n):
        previous = 0.002 + 0.5 * (previous - 0.002) + rng.normal(0.0, 0.02)
        returns[t] = previous
    return returns


def fitted_on_an_ar1(model_type: str):
    returns = ar1_returns(900, seed=0).astype(np.float32).astype(np.float64)  # the windows hold float32
    train = windows_of(returns[:700])
    model = create_model(model_type, (LOOKBACK, 1), HORIZONS)
    model.fit(train, windows_of(returns[600:]))
    return model, train, np.concatenate([[0.0], np.cumsum(_return_path(train.X))])


def test_arima_over_a_window_matches_statsforecast_from_the_full_history():
    from statsforecast.models import AutoARIMA

    model, train, log_close = fitted_on_an_ar1("arima")
    reference = AutoARIMA(d=1, season_length=1, seasonal=False).fit(log_close)
    expected = reference.predict(h=max(HORIZONS))["mean"][[h - 1 for h in HORIZONS]] - log_close[-1]
    np.testing.assert_allclose(model.predict(train.X[-1][None])[0], expected, rtol=0, atol=2e-4)


def test_ets_over_a_window_reaches_statsforecasts_state_and_forecasts_the_damped_trend():
    """The state run over the last window matches the level and trend statsforecast reaches over
    the whole history; h steps ahead is level + (phi + ... + phi^h) * trend (statsforecast 2.1.1
    itself adds phi once more from the second step on)."""
    from statsforecast.models import AutoETS

    model, train, log_close = fitted_on_an_ar1("ets")
    level, trend = AutoETS(season_length=1, model="AZN").fit(log_close).model_["states"][-1]
    damping = np.cumsum(model.phi_ ** np.arange(1, max(HORIZONS) + 1))[[h - 1 for h in HORIZONS]]
    expected = level + damping * trend - log_close[-1]
    assert model.components_ == "AAdN"
    np.testing.assert_allclose(model.predict(train.X[-1][None])[0], expected, rtol=0, atol=2e-4)


def test_arima_finds_the_autoregression():
    model = create_model("arima", (LOOKBACK, 1), HORIZONS)
    model.fit(windows_of(ar1_returns(1500, seed=1)), windows_of(ar1_returns(300, seed=2)))
    assert model.order_[1] == 1 and len(model.ar_) >= 1 and abs(model.ar_[0] - 0.5) < 0.1


def test_the_training_path_is_the_first_run_of_consecutive_windows():
    target, other = windows_of(ar1_returns(300, seed=3)), windows_of(ar1_returns(200, seed=4))
    joined = np.concatenate([target.X, other.X])
    path = _return_path(joined)
    np.testing.assert_array_equal(path, np.concatenate([target.X[0, :, 0], target.X[1:, -1, 0]]))


def test_a_statistical_model_refuses_windows_of_several_features():
    model = create_model("ets", (LOOKBACK, 3), HORIZONS)
    windows = Windows(np.zeros((80, LOOKBACK, 3), dtype=np.float32), np.zeros((80, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"ets reads the column\(s\) \['price_logret_1'\]"):
        model.fit(windows, windows)
