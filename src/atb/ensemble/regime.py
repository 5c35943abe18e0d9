"""Market regime of each bar, from causal rolling statistics of the close.

Three features per bar, each computed from the bars up to and including it:

- efficiency ratio: ``|log c[t] - log c[t-window]| / sum |log-returns|`` over
  the last ``window`` returns (1 = a straight line, 0 = no net move);
- lag-1 autocorrelation of the last ``window`` log-returns;
- realised volatility: standard deviation of the last ``vol_window`` log-returns.

The thresholds are quantiles of these features over the training bars only
(``fit``), then held fixed. A bar's label follows this priority:

1. ``volatile`` if its volatility is above ``volatility_threshold_`` (the
   ``volatility_quantile`` of training volatility: a high volatility percentile
   against the training history);
2. ``trending`` if its efficiency ratio is above ``efficiency_threshold_``;
3. ``mean_reverting`` if its autocorrelation is below ``autocorr_threshold_``
   (the ``reversion_quantile`` of training autocorrelation, capped at 0 so the
   label always means negatively autocorrelated returns);
4. ``ranging`` otherwise.

The first ``max(window, vol_window)`` bars, where the rolling windows are not
yet full, are labelled ``ranging``; so is any bar whose features are undefined
(e.g. perfectly flat prices), since no condition can be met there.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

REGIMES = ("trending", "mean_reverting", "volatile", "ranging")
FEATURES = ("efficiency_ratio", "autocorr", "volatility")


class RegimeDetector:
    """Label each bar with one of ``REGIMES``; thresholds fitted on training bars."""

    def __init__(
        self,
        window: int = 30,
        vol_window: int = 30,
        trend_quantile: float = 0.75,
        reversion_quantile: float = 0.25,
        volatility_quantile: float = 0.80,
    ) -> None:
        self.window = window
        self.vol_window = vol_window
        self.trend_quantile = trend_quantile
        self.reversion_quantile = reversion_quantile
        self.volatility_quantile = volatility_quantile

    def features(self, close: pd.Series) -> pd.DataFrame:
        """Rolling features (columns ``FEATURES``) per bar, each from past bars only."""
        self._check_parameters()
        log_close = np.log(_checked_close(close))
        returns = log_close.diff()
        net_move = (log_close - log_close.shift(self.window)).abs()
        path_length = returns.abs().rolling(self.window, min_periods=self.window).sum()
        efficiency = (net_move / path_length.where(path_length > 0)).astype(float)
        autocorr = returns.rolling(self.window, min_periods=self.window).corr(returns.shift(1))
        volatility = returns.rolling(self.vol_window, min_periods=self.vol_window).std()
        return pd.DataFrame(
            {"efficiency_ratio": efficiency, "autocorr": autocorr, "volatility": volatility},
            index=close.index,
        )

    def fit(self, close: pd.Series, train_end) -> RegimeDetector:
        """Fit the thresholds on the bars with index ``<= train_end``."""
        train_close = _checked_close(close)[close.index <= train_end]
        features = self.features(train_close).dropna()
        if len(features) < 2:
            raise ValueError(
                f"RegimeDetector.fit needs at least {self._warm_up() + 2} bars up to "
                f"train_end={train_end!r} (window={self.window}, vol_window={self.vol_window}); "
                f"got {len(train_close)} bars"
            )
        self.efficiency_threshold_ = float(features["efficiency_ratio"].quantile(self.trend_quantile))
        self.autocorr_threshold_ = min(float(features["autocorr"].quantile(self.reversion_quantile)), 0.0)
        self.volatility_threshold_ = float(features["volatility"].quantile(self.volatility_quantile))
        self.train_end_ = train_end
        return self

    def transform(self, close: pd.Series) -> pd.Series:
        """Regime label per bar (index of ``close``), using fitted thresholds."""
        if not hasattr(self, "volatility_threshold_"):
            raise RuntimeError("RegimeDetector is not fitted: call fit(close, train_end) first")
        features = self.features(close)
        conditions = [
            features["volatility"].to_numpy() > self.volatility_threshold_,
            features["efficiency_ratio"].to_numpy() > self.efficiency_threshold_,
            features["autocorr"].to_numpy() < self.autocorr_threshold_,
        ]
        labels = np.select(conditions, ["volatile", "trending", "mean_reverting"], default="ranging")
        labels[: self._warm_up()] = "ranging"
        return pd.Series(labels, index=close.index, name="regime", dtype=object)

    def to_dict(self) -> dict:
        """Settings and fitted thresholds as JSON-ready values (`from_dict` restores them)."""
        if not hasattr(self, "volatility_threshold_"):
            raise RuntimeError("RegimeDetector is not fitted: call fit(close, train_end) first")
        return {
            "window": self.window, "vol_window": self.vol_window, "trend_quantile": self.trend_quantile,
            "reversion_quantile": self.reversion_quantile, "volatility_quantile": self.volatility_quantile,
            "efficiency_threshold": self.efficiency_threshold_, "autocorr_threshold": self.autocorr_threshold_,
            "volatility_threshold": self.volatility_threshold_, "train_end": str(self.train_end_),
        }

    @classmethod
    def from_dict(cls, values: dict) -> RegimeDetector:
        detector = cls(
            window=int(values["window"]), vol_window=int(values["vol_window"]), trend_quantile=float(values["trend_quantile"]),
            reversion_quantile=float(values["reversion_quantile"]), volatility_quantile=float(values["volatility_quantile"]),
        )
        detector.efficiency_threshold_ = float(values["efficiency_threshold"])
        detector.autocorr_threshold_ = float(values["autocorr_threshold"])
        detector.volatility_threshold_ = float(values["volatility_threshold"])
        detector.train_end_ = pd.Timestamp(values["train_end"])
        return detector

    def fit_transform(self, close: pd.Series, train_end) -> pd.Series:
        return self.fit(close, train_end).transform(close)

    def _warm_up(self) -> int:
        return max(self.window, self.vol_window)

    def _check_parameters(self) -> None:
        for name in ("window", "vol_window"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 3:
                raise ValueError(f"RegimeDetector.{name} must be an integer >= 3, got {value!r}")
        for name in ("trend_quantile", "reversion_quantile", "volatility_quantile"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"RegimeDetector.{name} must be in (0, 1), got {value!r}")


def regime_shares(labels: Iterable[str]) -> dict[str, float]:
    """Share of bars in each regime (every regime listed, 0.0 when absent)."""
    labels = pd.Series(list(labels), dtype=object)
    unknown = sorted(set(labels) - set(REGIMES))
    if unknown:
        raise ValueError(f"unknown regime labels {unknown}; valid labels: {REGIMES}")
    if labels.empty:
        return {regime: 0.0 for regime in REGIMES}
    counts = labels.value_counts(normalize=True)
    return {regime: float(counts.get(regime, 0.0)) for regime in REGIMES}


def _checked_close(close: pd.Series) -> pd.Series:
    if not isinstance(close, pd.Series):
        raise TypeError(f"close must be a pandas Series indexed by time, got {type(close).__name__}")
    if not close.index.is_monotonic_increasing:
        raise ValueError("close must be indexed in increasing time order")
    values = close.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("close must hold finite, positive prices")
    return close.astype(float)
