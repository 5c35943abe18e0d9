"""A loaded ensemble version: its spec and its base predictors, forecasting the stacked
point forecast with MC-mixture and conformal intervals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atb.data import Candles
from atb.ensemble.spec import LEVELS, EnsembleSpec
from atb.ensemble.uncertainty import combine_uncertainty, gaussian_interval, mc_moments
from atb.layout import ENSEMBLE_FILE, REPORT_FILE
from atb.registry import ModelRegistry, ModelVersion
from atb.serve.predictor import Predictor, checked_forecast, forecast_row, origin_positions


@dataclass
class EnsemblePredictor:
    """A loaded ensemble version: its spec and its base predictors."""

    name: str
    spec: EnsembleSpec
    bases: dict[str, Predictor]
    interval_coverage: dict[str, list[float]] = field(default_factory=dict)  # measured on the test part, per horizon

    @classmethod
    def from_version(cls, version: ModelVersion, registry: ModelRegistry) -> EnsemblePredictor:
        """The ensemble stored as `version`; each base version is looked up in `registry`
        and checked against its manifest before it is loaded."""
        spec = EnsembleSpec.load(version.path / ENSEMBLE_FILE)
        bases = {}
        for base, ref in spec.bases.items():
            stored = registry.get_ref(ref)
            bases[base] = Predictor.from_directory(stored.path, name=stored.ref)
        return cls(name=version.ref, spec=spec, bases=bases, interval_coverage=measured_coverage(version.path / REPORT_FILE))

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.spec.horizons

    def forecast(self, candles: Candles) -> dict:
        """Stacked point forecast per horizon from the newest bar, with MC-mixture and conformal intervals (prices)."""
        return self.forecast_at(candles)[0]

    def forecast_at(self, candles: Candles, origin_times: list | None = None) -> list[dict]:
        """Forecasts from several origins of `candles` (default: the newest bar), each base called once."""
        ends = origin_positions(candles, origin_times)
        closes = candles.frame["close"].to_numpy(dtype=float)[ends]
        means, stds, points = {}, {}, {}
        for name, windows in self.windows_at(candles, ends).items():
            model = self.bases[name].model
            points[name] = model.predict(windows)
            means[name], stds[name] = mc_moments(
                model, windows, self.spec.mc_samples, enabled=self.spec.mc_samples > 1, point=points[name]
            )
            if name in self.spec.residual_std:  # no MC dropout: its validation residual spread
                stds[name] = np.broadcast_to(np.asarray(self.spec.residual_std[name], dtype=float), points[name].shape)
        stacked = self.spec.stack(points)
        weights = {name: self.spec.fixed_weights[name] for name in self.bases}
        mix_mean, mix_std = combine_uncertainty(means, stds, weights)
        out = []
        for i, (end, close) in enumerate(zip(ends, closes)):
            origin = candles.frame.index[end]
            rows = []
            for j, h in enumerate(self.horizons):
                row = forecast_row(origin, candles.bar_duration, h, close, close * float(np.exp(stacked[i, j])))
                for level in LEVELS:
                    pct = int(round(level * 100))
                    lower, upper = gaussian_interval(mix_mean[i, j], mix_std[i, j], level)
                    row[f"lower_{pct}"] = close * float(np.exp(lower))
                    row[f"upper_{pct}"] = close * float(np.exp(upper))
                    half = self.spec.conformal[str(level)][j]
                    row[f"conformal_lower_{pct}"] = close * float(np.exp(stacked[i, j] - half))
                    row[f"conformal_upper_{pct}"] = close * float(np.exp(stacked[i, j] + half))
                rows.append(row)
            out.append(checked_forecast({
                "model": self.name,
                "symbol": candles.symbol,
                "origin_time": origin.isoformat(),
                "origin_close": float(close),
                "horizons": rows,
                "interval_coverage": self.interval_coverage,
                "bases": {name: [float(v) for v in p[i]] for name, p in points.items()},
            }))
        return out

    def windows_at(self, candles: Candles, ends: np.ndarray) -> dict[str, np.ndarray]:
        """Each base's windows ending at `ends`; the feature matrix is built once per feature source."""
        matrices: dict = {}
        windows = {}
        for name, predictor in self.bases.items():
            source = predictor.feature_spec.get("funding_path")
            if source not in matrices:
                matrices[source] = predictor.features(candles)
            windows[name] = predictor.transform.windows_at(matrices[source], ends)
        return windows


def measured_coverage(report_path: Path) -> dict[str, list[float]]:
    """Test-part coverage per horizon of each served interval, from the version's report:
    `conformal_80`, `conformal_95` (calibrated on validation) and `mixture_80`, `mixture_95`
    (the MC-dropout mixture, not calibrated). Empty when the report does not hold them."""
    try:
        uncertainty = json.loads(report_path.read_text()).get("uncertainty") or {}
    except (OSError, ValueError):
        return {}
    out = {}
    for method, key in (("conformal", "conformal"), ("mixture", "ensemble_mixture")):
        for level, stats in (uncertainty.get(key) or {}).items():
            if isinstance(stats, dict) and "coverage" in stats:
                out[f"{method}_{int(round(float(level) * 100))}"] = [float(c) for c in stats["coverage"]]
    return out
