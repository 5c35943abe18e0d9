"""High-level Python API: one object to train, evaluate, save, load and forecast.

    from atb import Forecaster
    forecaster = Forecaster(model_type="lstm", variant="lightweight", epochs=3, mlflow=False)
    forecaster.train()                      # bundled BTCUSDT sample
    forecaster.evaluate()                   # test-part mse/mae/rmse/direction_accuracy
    forecaster.predict()                    # forecast from the newest bar
    same = Forecaster.load_model(forecaster.version_path)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atb.config import TrainingConfig
from atb.data import Candles, load_candles
from atb.data.validate import validate_ohlcv
from atb.dataset import Split
from atb.evaluation.metrics import directional_accuracy
from atb.evaluation.report import TrainingReport
from atb.layout import REPORT_FILE
from atb.serve import Predictor, load_version
from atb.workflows.train_model import train_model


class Forecaster:
    """Train a model through the full pipeline, or load a stored version, then forecast."""

    def __init__(self, config: TrainingConfig | None = None, **fields: Any) -> None:
        """`fields` are flat TrainingConfig field names (`model_type`, `epochs`, ...)."""
        self.config = (config or TrainingConfig()).replace(**fields)
        self.predictor: Predictor | None = None
        self.version_path: Path | None = None
        self.report: TrainingReport | None = None
        self._test: Split | None = None

    def train(self, data: pd.DataFrame | str | Path | None = None) -> dict:
        """Run the training pipeline (registry version, report, plots, MLflow) and
        return the test metrics `{model name: {horizon: metrics}}`."""
        config = self._config_for(data)
        result = train_model(config, candles=self._candles_for(data))
        self.version_path = result.version.path
        self.report = result.report
        self.predictor = Predictor.from_directory(result.version.path, name=result.version.ref)
        self._test = result.dataset.test
        return result.metrics

    def predict(self, data: pd.DataFrame | str | Path | None = None) -> dict:
        """Forecast every horizon from the newest bar of `data` (default: the configured source)."""
        return self._loaded().forecast(self._market_data(data))

    def evaluate(self, data: pd.DataFrame | str | Path | None = None) -> dict[int, dict[str, float]]:
        """mse, mae, rmse (price space) and direction_accuracy per horizon.

        Without `data`: on the test origins of the last `train`. Otherwise on the
        origins of `data` (default: the configured source) that have a full window
        and known targets and that the version never saw: from its test part's
        first origin on, as its report records (every origin when the version has
        no report). The stored transform is used, not refitted.
        """
        predictor = self._loaded()
        if data is None and self._test is not None:
            split = self._test
        else:
            candles = self._market_data(data)
            split = predictor.transform.split_at(predictor.features(candles), candles.frame["close"])
            if self.report is not None:
                unseen = pd.DatetimeIndex(split.origin_time) >= pd.Timestamp(self.report.data.splits["test"]["first"])
                if not unseen.any():
                    raise ValueError(f"no origin of the data comes after the version's training and validation (test part from {self.report.data.splits['test']['first']})")
                split = split.subset(np.flatnonzero(unseen))
        predicted = predictor.transform.target.to_prices(predictor.model.predict(split.X), split.origin_close)
        out = {}
        for j, h in enumerate(predictor.horizons):
            error = predicted[:, j] - split.future_close[:, j]
            mse = float(np.mean(error**2))
            out[h] = {
                "mse": mse,
                "mae": float(np.mean(np.abs(error))),
                "rmse": float(np.sqrt(mse)),
                "direction_accuracy": directional_accuracy(split.origin_close, split.future_close[:, j], predicted[:, j]),
                "n": int(len(error)),
            }
        return out

    def save_model(self, directory: str | Path) -> Path:
        """Copy the trained version (weights, transform, report, plots) to `directory`."""
        import shutil

        if self.version_path is None:
            raise RuntimeError("nothing to save: call train() or load_model() first")
        directory = Path(directory)
        if directory.exists():
            raise FileExistsError(f"{directory} already exists; choose a new directory")
        shutil.copytree(self.version_path, directory)
        return directory

    @classmethod
    def load_model(cls, directory: str | Path, **fields: Any) -> Forecaster:
        """A Forecaster around a stored version directory (registry or save_model copy)."""
        directory = Path(directory)
        forecaster = cls(**fields)
        forecaster.predictor = Predictor.from_directory(directory)
        forecaster.version_path = directory
        report_path = directory / REPORT_FILE
        if report_path.is_file():
            forecaster.report = TrainingReport.from_dict(json.loads(report_path.read_text()))
        return forecaster

    @classmethod
    def load(cls, symbol: str = "BTCUSDT", registry_dir: str | Path = "models", model_type: str | None = None, **fields: Any) -> Forecaster:
        """The production (else latest) registry version for `symbol`."""
        forecaster = cls(symbol=symbol, registry_dir=Path(registry_dir), **fields)
        forecaster.predictor = load_version(registry_dir, symbol, model_type=model_type)
        return forecaster

    def plot_training_history(self, path: str | Path) -> Path:
        """Loss curves of the training run as a PNG."""
        from atb.evaluation.plots import plot_loss_curves

        if not self.report or not self.report.history:
            raise RuntimeError("no training history: train() first, or load a version that has its report")
        return plot_loss_curves(self.report.history, path)

    def _loaded(self) -> Predictor:
        if self.predictor is None:
            raise RuntimeError("no model: call train(), load() or load_model() first")
        return self.predictor

    def _config_for(self, data: pd.DataFrame | str | Path | None) -> TrainingConfig:
        if isinstance(data, (str, Path)):
            return self.config.replace(data_path=Path(data))
        return self.config

    def _market_data(self, data: pd.DataFrame | str | Path | None) -> Candles:
        """Candles from an in-memory frame, else loaded from `data` as a path or the configured source."""
        return self._candles_for(data) or load_candles(self._config_for(data).data)

    def _candles_for(self, data: pd.DataFrame | str | Path | None) -> Candles | None:
        """Candles from an in-memory frame (validated like a file); None for other inputs."""
        if not isinstance(data, pd.DataFrame):
            return None
        frame, report = validate_ohlcv(
            data.astype(float), "DataFrame", gap_policy=self.config.data.gap_policy, drop_partial_last_bar=False
        )
        return Candles(frame=frame, report=report, symbol=self.config.data.symbol, source="DataFrame")
