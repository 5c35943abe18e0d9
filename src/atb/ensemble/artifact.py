"""The served ensemble: what is stored in its registry version and how it forecasts.

An ensemble version holds `ensemble.json`: references to its base versions, the
stacking meta-learner (per horizon: intercept and one coefficient per base),
split-conformal half-widths per level and horizon (calibrated on cross-fitted
validation predictions), and the per-horizon residual std of bases without
MC dropout. Forecasts come from the bases' own stored transforms and weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atb.data import Candles
from atb.ensemble.uncertainty import combine_uncertainty, gaussian_interval, mc_moments
from atb.inference import Predictor, forecast_row
from atb.io import atomic_write_json

ENSEMBLE_FILE = "ensemble.json"
LEVELS = (0.8, 0.95)


@dataclass
class EnsembleSpec:
    """Everything a served ensemble needs besides its base versions."""

    bases: dict[str, str]  # base name -> registry ref "SYMBOL/model_type/vNNNN"
    horizons: tuple[int, ...]
    intercept: np.ndarray  # (H,)
    coefficients: np.ndarray  # (H, M) in the order of `bases`
    fixed_weights: dict[str, float]
    conformal: dict[str, list[float]]  # str(level) -> half-width per horizon (log-return space)
    residual_std: dict[str, list[float]]  # base without MC dropout -> per-horizon validation residual std
    mc_samples: int

    def save(self, directory: Path) -> None:
        atomic_write_json(
            directory / ENSEMBLE_FILE,
            {
                "bases": self.bases,
                "horizons": list(self.horizons),
                "intercept": self.intercept.tolist(),
                "coefficients": self.coefficients.tolist(),
                "fixed_weights": self.fixed_weights,
                "conformal": self.conformal,
                "residual_std": self.residual_std,
                "mc_samples": self.mc_samples,
            },
        )

    @classmethod
    def load(cls, directory: Path) -> EnsembleSpec:
        path = Path(directory) / ENSEMBLE_FILE
        try:
            raw = json.loads(path.read_text())
            return cls(
                bases=dict(raw["bases"]),
                horizons=tuple(raw["horizons"]),
                intercept=np.asarray(raw["intercept"], dtype=float),
                coefficients=np.asarray(raw["coefficients"], dtype=float),
                fixed_weights=dict(raw["fixed_weights"]),
                conformal=dict(raw["conformal"]),
                residual_std=dict(raw["residual_std"]),
                mc_samples=int(raw["mc_samples"]),
            )
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: the ensemble version is incomplete") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is corrupt: {exc}") from exc

    def stack(self, base_predictions: dict[str, np.ndarray]) -> np.ndarray:
        """Meta-learner output `(n, H)` from base predictions `{name: (n, H)}`."""
        stacked = np.stack([base_predictions[name] for name in self.bases], axis=1)  # (n, M, H)
        return self.intercept + np.einsum("nmh,hm->nh", stacked, self.coefficients)


@dataclass
class EnsemblePredictor:
    """A loaded ensemble version: its spec and its base predictors."""

    name: str
    spec: EnsembleSpec
    bases: dict[str, Predictor]

    @classmethod
    def from_directory(cls, directory: str | Path, name: str | None = None) -> EnsemblePredictor:
        directory = Path(directory)
        spec = EnsembleSpec.load(directory)
        registry_root = directory.parents[2]  # {root}/{SYMBOL}/ensemble/{version}
        bases = {base: Predictor.from_directory(registry_root / ref, name=ref) for base, ref in spec.bases.items()}
        return cls(name=name or Path(directory).name, spec=spec, bases=bases)

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.spec.horizons

    def forecast(self, candles: Candles) -> dict:
        """Stacked point forecast per horizon with MC-mixture and conformal intervals (prices)."""
        close = float(candles.frame["close"].iloc[-1])
        origin = candles.frame.index[-1]
        means, stds, points = {}, {}, {}
        for name, window in self.latest_windows(candles).items():
            model = self.bases[name].model
            points[name] = model.predict(window)
            means[name], stds[name] = mc_moments(
                model, window, self.spec.mc_samples, enabled=self.spec.mc_samples > 1, point=points[name]
            )
            if name in self.spec.residual_std:  # no MC dropout: its validation residual spread
                stds[name] = np.asarray(self.spec.residual_std[name], dtype=float)[None, :]
        point = self.spec.stack(points)[0]
        weights = {name: self.spec.fixed_weights[name] for name in self.bases}
        mix_mean, mix_std = combine_uncertainty(means, stds, weights)
        rows = []
        for j, h in enumerate(self.horizons):
            row = forecast_row(origin, candles.bar_duration, h, close, close * float(np.exp(point[j])))
            for level in LEVELS:
                pct = int(round(level * 100))
                lower, upper = gaussian_interval(mix_mean[0, j], mix_std[0, j], level)
                row[f"lower_{pct}"] = close * float(np.exp(lower))
                row[f"upper_{pct}"] = close * float(np.exp(upper))
                half = self.spec.conformal[str(level)][j]
                row[f"conformal_lower_{pct}"] = close * float(np.exp(point[j] - half))
                row[f"conformal_upper_{pct}"] = close * float(np.exp(point[j] + half))
            rows.append(row)
        return {
            "model": self.name,
            "symbol": candles.symbol,
            "origin_time": origin.isoformat(),
            "origin_close": close,
            "horizons": rows,
            "bases": {name: [float(v) for v in p[0]] for name, p in points.items()},
        }

    def latest_windows(self, candles: Candles) -> dict[str, np.ndarray]:
        """Each base's newest window; the feature matrix is built once per feature source."""
        matrices: dict = {}
        windows = {}
        for name, predictor in self.bases.items():
            source = predictor.feature_spec.get("funding_path")
            if source not in matrices:
                matrices[source] = predictor.features(candles)
            windows[name] = predictor.transform.latest_window(matrices[source])
        return windows
