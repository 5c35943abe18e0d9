from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from atb.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HORIZONS = (1, 7, 30)


def _history(epochs: int = 12) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "epoch": e,
            "loss": 1.0 / e + 0.01 * rng.random(),
            "val_loss": 1.0 / e + 0.02 * (e - 8) ** 2 / 10,
            "lr": 1e-3 * 0.8**e,
            **{f"val_mae_h{h}": 0.01 * h**0.5 / e**0.3 for h in HORIZONS},
        }
        for e in range(1, epochs + 1)
    ]


def _forecasts(n: int = 120) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    times = pd.date_range("2024-01-01", periods=n, freq="D")
    actual = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, len(HORIZONS))), axis=0))
    return times, actual, actual * (1 + rng.normal(0, 0.01, actual.shape))


def _metrics(scale: float) -> dict[int, dict]:
    return {
        h: {
            "rmse": scale * h**0.5,
            "mae": 0.8 * scale * h**0.5,
            "rmse_ratio": scale / 1000,
            "mase": 1.02,
            "directional_accuracy": 0.53,
            "majority_accuracy": 0.55,
            "dm_pvalue": 0.21,
        }
        for h in HORIZONS
    }


def _assert_png(path: Path, written: Path) -> None:
    assert written == path
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 15_000
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05  # something is drawn
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_loss_curves(tmp_path):
    _assert_png(tmp_path / "loss.png", plots.plot_loss_curves(_history(), tmp_path / "loss.png"))


def test_metrics_progression(tmp_path):
    _assert_png(tmp_path / "mae.png", plots.plot_metrics_progression(_history(), tmp_path / "mae.png"))


def test_learning_rates(tmp_path):
    _assert_png(tmp_path / "lr.png", plots.plot_learning_rates(_history(), tmp_path / "lr.png"))


def test_attention_heatmap(tmp_path):
    weights = np.random.default_rng(2).dirichlet(np.linspace(0.5, 3, 60), size=200)
    times = pd.date_range("2024-01-01", periods=200, freq="D")
    _assert_png(tmp_path / "att.png", plots.plot_attention_heatmap(weights, times, tmp_path / "att.png"))


def test_feature_importance(tmp_path):
    importance = pd.Series(np.random.default_rng(3).gamma(2.0, size=80), index=[f"feature_{i}" for i in range(80)])
    _assert_png(tmp_path / "imp.png", plots.plot_feature_importance(importance, tmp_path / "imp.png"))


def test_model_comparison(tmp_path):
    metrics = {"lstm": _metrics(900.0), "naive": _metrics(1000.0), "drift": _metrics(1010.0)}
    _assert_png(tmp_path / "cmp.png", plots.plot_model_comparison(metrics, tmp_path / "cmp.png"))


def test_predictions_vs_actual(tmp_path):
    times, actual, predicted = _forecasts()
    written = plots.plot_predictions_vs_actual(times, actual, predicted, HORIZONS, tmp_path / "pred.png")
    _assert_png(tmp_path / "pred.png", written)


def test_residual_analysis(tmp_path):
    _, actual, predicted = _forecasts()
    _assert_png(tmp_path / "res.png", plots.plot_residual_analysis(actual, predicted, HORIZONS, tmp_path / "res.png"))


@pytest.mark.parametrize("signed", [False, True])
def test_ensemble_weights(tmp_path, signed):
    times = pd.date_range("2024-01-01", periods=150, freq="D")
    raw = np.random.default_rng(4).dirichlet([2, 2, 2], size=150)
    weights = pd.DataFrame(raw - 0.2 * signed, index=times, columns=["lstm", "tcn", "lightgbm"])
    regimes = pd.Series(np.repeat(["bull", "sideways", "bear", "bull"], [40, 30, 50, 30]), index=times)
    _assert_png(tmp_path / "ens.png", plots.plot_ensemble_weights(weights, tmp_path / "ens.png", regimes=regimes))


def test_training_summary(tmp_path):
    summary = {
        "title": "lstm / default on BTCUSDT 1d",
        "config": {
            "model_type": "lstm",
            "variant": "default",
            "epochs": 12,
            "best_epoch": 10,
            "fit_seconds": 41.7,
            "data_span": "2018-01-01 .. 2024-12-31",
        },
        "metrics": _metrics(1000.0),
        "history": _history(),
    }
    _assert_png(tmp_path / "summary.png", plots.plot_training_summary(summary, tmp_path / "summary.png"))


def test_existing_file_is_replaced(tmp_path):
    path = tmp_path / "loss.png"
    path.write_bytes(b"old")
    plots.plot_loss_curves(_history(), path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(
    "draw",
    [plots.plot_loss_curves, plots.plot_metrics_progression, plots.plot_learning_rates],
)
def test_empty_history_is_rejected(tmp_path, draw):
    with pytest.raises(ValueError, match="history is empty"):
        draw([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_clear_errors_for_bad_inputs(tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match="'val_loss'"):
        plots.plot_loss_curves([{"epoch": 1, "loss": 1.0}], out)
    with pytest.raises(ValueError, match="val_mae_h1"):
        plots.plot_metrics_progression([{"epoch": 1, "loss": 1.0}], out)
    with pytest.raises(ValueError, match="lookback"):
        plots.plot_attention_heatmap(np.ones(5), range(5), out)
    with pytest.raises(ValueError, match="origin_times"):
        plots.plot_attention_heatmap(np.ones((5, 3)), range(4), out)
    with pytest.raises(ValueError, match="non-empty pandas Series"):
        plots.plot_feature_importance(pd.Series(dtype=float), out)
    with pytest.raises(ValueError, match="at least one model"):
        plots.plot_model_comparison({}, out)
    with pytest.raises(ValueError, match="'mae'"):
        plots.plot_model_comparison({"m": {1: {"rmse": 1.0}}}, out)
    with pytest.raises(ValueError, match="horizons"):
        plots.plot_predictions_vs_actual(range(4), np.ones((4, 2)), np.ones((4, 2)), HORIZONS, out)
    with pytest.raises(ValueError, match="horizons"):
        plots.plot_residual_analysis(np.ones((4, 3)), np.ones((3, 3)), HORIZONS, out)
    with pytest.raises(ValueError, match="non-empty DataFrame"):
        plots.plot_ensemble_weights(pd.DataFrame(), out)
    with pytest.raises(ValueError, match="regimes is empty"):
        plots.plot_ensemble_weights(pd.DataFrame({"a": [1.0]}), out, regimes=pd.Series(dtype=str))
    with pytest.raises(ValueError, match="'history'"):
        plots.plot_training_summary({"config": {}, "metrics": _metrics(1.0)}, out)
    with pytest.raises(ValueError, match="history is empty"):
        plots.plot_training_summary({"config": {}, "metrics": _metrics(1.0), "history": []}, out)
    assert not out.exists()


def test_base_training_and_base_forecasts(tmp_path):
    warm_up = [{**row, "lr": 1e-4 * min(row["epoch"], 4)} for row in _history()]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    path = plots.plot_base_training({"transformer": warm_up, "enhanced_lstm": _history(), "lightgbm": []}, tmp_path / "a" / "train.png")
    _assert_png(tmp_path / "a" / "train.png", path)
    times, actual, predicted = _forecasts()
    forecasts = {"lstm": predicted, "lightgbm": predicted * 1.01, "ensemble_stacking": (predicted + actual) / 2}
    _assert_png(tmp_path / "b" / "fc.png", plots.plot_base_forecasts(times, actual, forecasts, HORIZONS, tmp_path / "b" / "fc.png"))
    with pytest.raises(ValueError, match="no base model has a per-epoch history"):
        plots.plot_base_training({"lightgbm": []}, tmp_path / "none.png")
