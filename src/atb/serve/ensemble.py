"""A loaded ensemble version: its spec and its base predictors, forecasting with one of three
combiners: `stacking` (the meta-learner behind its skill gate, what the version was chosen
for, with MC-mixture and conformal intervals), `regime` (the fixed weights tilted towards the
families suited to the origin's regime, by the detector fitted on the training part) or
`online` (weights that follow each base's realised errors: the state after the validation
part, updated with the errors of the forecasts the service logged whose targets are known by
the origin). The last two are served as the production report scores them: without the
stacking forecast's gate and conformal intervals (calibrated for stacking only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from atb.data import Candles
from atb.ensemble.combiners import OnlineWeights, RegimeWeights
from atb.ensemble.regime import RegimeDetector
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
    combiner: str = "stacking"
    logged: Callable[[], list[dict]] = field(default=lambda: [], repr=False)  # this version's logged forecasts (online)

    @classmethod
    def from_version(
        cls, version: ModelVersion, registry: ModelRegistry, combiner: str = "stacking", logged: Callable[[], list[dict]] | None = None
    ) -> EnsemblePredictor:
        """The ensemble stored as `version`; each base version is looked up in `registry`
        and checked against its manifest before it is loaded."""
        if combiner not in COMBINERS:
            raise ValueError(f"combiner {combiner!r} is not one of {list(COMBINERS)}")
        spec = EnsembleSpec.load(version.path / ENSEMBLE_FILE)
        if combiner != "stacking" and getattr(spec, combiner) is None:
            raise ValueError(f"{version.ref} was stored before the {combiner} combiner was kept with it; retrain it, or serve it with stacking")
        bases = {}
        for base, ref in spec.bases.items():
            stored = registry.get_ref(ref)
            bases[base] = Predictor.from_directory(stored.path, name=stored.ref)
        coverage = measured_coverage(version.path / REPORT_FILE) if combiner == "stacking" else {}
        return cls(name=version.ref, spec=spec, bases=bases, interval_coverage=coverage, combiner=combiner, logged=logged or (lambda: []))

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
        combined, details = self.combine(points, candles, ends)
        weights = {name: self.spec.fixed_weights[name] for name in self.bases}
        mix_mean, mix_std = combine_uncertainty(means, stds, weights)
        out = []
        for i, (end, close) in enumerate(zip(ends, closes)):
            origin = candles.frame.index[end]
            rows = []
            for j, h in enumerate(self.horizons):
                row = forecast_row(origin, candles.bar_duration, h, close, close * float(np.exp(combined[i, j])))
                for level in LEVELS:
                    pct = int(round(level * 100))
                    lower, upper = gaussian_interval(mix_mean[i, j], mix_std[i, j], level)
                    row[f"lower_{pct}"] = close * float(np.exp(lower))
                    row[f"upper_{pct}"] = close * float(np.exp(upper))
                    if self.combiner == "stacking":
                        half = self.spec.conformal[str(level)][j]
                        row[f"conformal_lower_{pct}"] = close * float(np.exp(combined[i, j] - half))
                        row[f"conformal_upper_{pct}"] = close * float(np.exp(combined[i, j] + half))
                rows.append(row)
            out.append(checked_forecast({
                "model": self.name,
                "symbol": candles.symbol,
                "origin_time": origin.isoformat(),
                "origin_close": float(close),
                "horizons": rows,
                "interval_coverage": self.interval_coverage,
                "bases": {name: [float(v) for v in p[i]] for name, p in points.items()},
                "combiner": self.combiner,
                **details[i],
            }))
        return out

    def combine(self, points: dict[str, np.ndarray], candles: Candles, ends: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        """The combined log-return forecasts `(n, H)` of the base forecasts `points` at origins
        `ends`, and per origin what the combiner used (regime, weights per base and horizon)."""
        names = list(self.bases)
        stacked = np.stack([points[name] for name in names], axis=1)  # (n, M, H)
        if self.combiner == "stacking":
            return self.spec.stack(points), [{} for _ in ends]
        if self.combiner == "regime":
            regime = self.spec.regime
            labels = RegimeDetector.from_dict(regime["detector"]).transform(candles.frame["close"]).to_numpy()[ends]
            tilted = RegimeWeights(regime["families"], self.spec.fixed_weights, regime["tilt"]).weights_over_time(labels, names).to_numpy()
            weights = np.repeat(tilted[:, :, None], len(self.horizons), axis=2)
            details = [{"regime": str(label)} for label in labels]
        else:
            online = OnlineWeights.from_state_dict(self.spec.online)
            if online.names_ != names:
                raise ValueError(f"{self.name}: the online state names bases {online.names_}, the ensemble has {names}")
            close, rows = candles.frame["close"], self.logged()
            weights = np.stack([
                online.weights_after(realised_base_errors(rows, close, names, self.horizons, candles.bar_duration, candles.frame.index[end]))
                for end in ends
            ])
            details = [{} for _ in ends]
        for i, detail in enumerate(details):
            detail["weights"] = {name: [float(w) for w in weights[i, m]] for m, name in enumerate(names)}
        return np.einsum("nmh,nmh->nh", stacked, weights), details

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


COMBINERS = ("stacking", "regime", "online")


def realised_base_errors(
    rows: list[dict], close: pd.Series, names: list[str], horizons: tuple[int, ...], bar: pd.Timedelta, until: pd.Timestamp
) -> list[np.ndarray]:
    """Per horizon, the squared log-return errors `(k, M)` of each base in the logged forecasts
    `rows` whose target bar is in `close` and closed by `until` (no later), in the order the
    targets became known; each origin counts once (its first log entry)."""
    seen: set[str] = set()
    realised: list[list[tuple[pd.Timestamp, list[float]]]] = [[] for _ in horizons]
    for row in rows:
        if row.get("bases") is None or row["origin_time"] in seen:
            continue
        seen.add(row["origin_time"])
        origin = pd.Timestamp(row["origin_time"])
        for j, h in enumerate(horizons):
            target = origin + h * bar
            if target <= until and target in close.index:
                actual = float(np.log(close[target] / row["origin_close"]))
                realised[j].append((target, [(row["bases"][name][j] - actual) ** 2 for name in names]))
    return [np.array([errors for _, errors in sorted(items, key=lambda item: item[0])]).reshape(-1, len(names)) for items in realised]


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
