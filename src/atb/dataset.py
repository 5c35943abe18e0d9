"""From a feature matrix to model-ready windows: split, select, scale, window, target.

Order of operations (each fitted piece sees only the training origins):
1. forecast origins = bars with a full lookback of features and every horizon's
   future close known; split chronologically (train/val/test);
2. top-K feature selection by |correlation| on training rows only;
3. RobustScaler fitted on training rows only;
4. windows `(n, lookback, K)` ending at each origin (a WindowArray over the one scaled
   matrix: built per batch, never all at once), targets `(n, H)`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import RobustScaler

from atb.config import DatasetSpec
from atb.io import atomic_write_json
from atb.windows import WindowArray, Windows, concatenate_windows

SCALED_CLIP = 10.0  # fixed bound on scaled features (not fitted): tames heavy tails


@dataclass(frozen=True)
class TargetSpec:
    """What a model predicts for each horizon, and how to map it back to price."""

    horizons: tuple[int, ...]
    # "log_return": log(close[t+h] / close[t]); "price": close[t+h]; "direction": 1.0 when
    # close[t+h] > close[t], else 0.0 (models then forecast the probability of "up")
    kind: str = "log_return"

    @property
    def is_direction(self) -> bool:
        return self.kind == "direction"

    @property
    def task(self) -> str:
        """The model task that forecasts this target (atb.models.base.TASKS)."""
        return "direction" if self.is_direction else "regression"

    def from_prices(self, origin_close: np.ndarray, future_close: np.ndarray) -> np.ndarray:
        """Targets `(n, H)` from origin closes `(n,)` and future closes `(n, H)`."""
        if self.kind == "log_return":
            return np.log(future_close / origin_close[:, None])
        if self.is_direction:
            return (np.asarray(future_close, dtype=float) > np.asarray(origin_close, dtype=float)[:, None]).astype(float)
        return np.asarray(future_close, dtype=float)

    def to_prices(self, predictions: np.ndarray, origin_close: np.ndarray) -> np.ndarray:
        """Map predictions `(n, H)` (or `(..., n, H)`) back to prices; direction probabilities have none."""
        if self.is_direction:
            raise ValueError("a direction forecast is a probability of 'up', not a price")
        predictions = np.asarray(predictions, dtype=float)
        if self.kind == "log_return":
            return np.asarray(origin_close, dtype=float)[:, None] * np.exp(predictions)
        return predictions

    def to_dict(self) -> dict:
        return {"horizons": list(self.horizons), "kind": self.kind}

    @classmethod
    def from_dict(cls, values: dict) -> TargetSpec:
        return cls(horizons=tuple(int(h) for h in values["horizons"]), kind=values["kind"])


@dataclass
class Split(Windows):
    """One chronological part of the forecast origins: the windows a model sees and
    where they come from.

    X: windows `(n, lookback, n_features)` float32, scaled.
    y: targets `(n, H)` float32 in target space (see TargetSpec).
    origin_time: timestamp of each origin bar t `(n,)`.
    origin_close: close at t `(n,)`; future_close: close at t+h `(n, H)`.
    """

    origin_time: np.ndarray
    origin_close: np.ndarray
    future_close: np.ndarray

    @classmethod
    def concatenate(cls, *parts: Split) -> Split:
        """The parts' origins one after another (e.g. training then validation)."""
        return cls(
            X=concatenate_windows([p.X for p in parts]),
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in ("y", "origin_time", "origin_close", "future_close")},
        )

    def subset(self, index: np.ndarray | slice) -> Split:
        return Split(
            X=self.X.take(index) if isinstance(self.X, WindowArray) else self.X[index],
            y=self.y[index],
            origin_time=self.origin_time[index],
            origin_close=self.origin_close[index],
            future_close=self.future_close[index],
        )


@dataclass
class FeatureTransform:
    """The fitted preprocessing a model needs at inference: selected features,
    robust-scaling parameters (fitted on training rows only), lookback and target."""

    feature_names: list[str]
    center: np.ndarray
    scale: np.ndarray
    lookback: int
    target: TargetSpec
    clip: float = SCALED_CLIP

    def scale_frame(self, features: pd.DataFrame) -> np.ndarray:
        """Selected columns of `features`, scaled and clipped, as float32 `(rows, K)`."""
        missing = [name for name in self.feature_names if name not in features.columns]
        if missing:
            raise ValueError(f"feature matrix lacks {len(missing)} selected feature(s): {missing[:5]}")
        values = features[self.feature_names].to_numpy(dtype=float)
        scaled = (values - self.center) / self.scale
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def latest_window(self, features: pd.DataFrame) -> np.ndarray:
        """The window `(1, lookback, K)` ending at the last row, for a live forecast."""
        return self.windows_at(features, np.array([len(features) - 1]))

    def windows_at(self, features: pd.DataFrame, ends: np.ndarray) -> np.ndarray:
        """The windows `(n, lookback, K)` ending at row positions `ends` (forecast origins)."""
        ends = np.asarray(ends, dtype=int)
        if len(features) < self.lookback or (ends < self.lookback - 1).any() or (ends >= len(features)).any():
            raise ValueError(f"need {self.lookback} rows of features up to each origin, got {len(features)} rows")
        first = int(ends.min()) - self.lookback + 1
        scaled = self.scale_frame(features.iloc[first : int(ends.max()) + 1])
        windows = np.lib.stride_tricks.sliding_window_view(scaled, self.lookback, axis=0)[ends - self.lookback + 1 - first].transpose(0, 2, 1)
        bad = ~np.isfinite(windows)
        if bad.any():
            origin, row, _ = map(int, np.argwhere(bad)[0])
            names = [self.feature_names[k] for k in np.flatnonzero(bad[origin].any(axis=0))]
            raise ValueError(
                f"the window ending at {features.index[ends[origin]]} holds non-finite features {names[:5]} "
                f"(first at {features.index[ends[origin] - self.lookback + 1 + row]}): "
                "not enough history after the warm-up, or the candles hold a flat or filled stretch there"
            )
        return np.ascontiguousarray(windows)

    def split_at(self, features: pd.DataFrame, close: pd.Series, origins: np.ndarray | None = None) -> Split:
        """Windows and targets at origin positions (default: every origin with a full
        window of finite features and every horizon's close known)."""
        close_values = close.to_numpy(dtype=float)
        scaled = self.scale_frame(features)
        if origins is None:
            finite = np.isfinite(scaled).all(axis=1)
            origins = np.arange(self.lookback - 1, len(features) - max(self.target.horizons))
            complete = np.convolve(finite, np.ones(self.lookback), mode="full")[: len(finite)] == self.lookback
            origins = origins[complete[origins]]
        future = np.stack([close_values[origins + h] for h in self.target.horizons], axis=1)
        return Split(
            X=WindowArray(scaled, origins, self.lookback),
            y=self.target.from_prices(close_values[origins], future).astype(np.float32),
            origin_time=features.index[origins].to_numpy(),
            origin_close=close_values[origins],
            future_close=future,
        )

    def to_dict(self) -> dict:
        return {
            "feature_names": list(self.feature_names),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "lookback": self.lookback,
            "target": self.target.to_dict(),
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, values: dict) -> FeatureTransform:
        return cls(
            feature_names=list(values["feature_names"]),
            center=np.asarray(values["center"], dtype=float),
            scale=np.asarray(values["scale"], dtype=float),
            lookback=int(values["lookback"]),
            target=TargetSpec.from_dict(values["target"]),
            clip=float(values["clip"]),
        )

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> FeatureTransform:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: the model version is incomplete") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is corrupt: {exc}") from exc


@dataclass
class Dataset:
    """Train/validation/test splits of windows plus the fitted transform."""

    train: Split
    val: Split
    test: Split
    transform: FeatureTransform
    feature_scores: pd.Series  # |correlation| of every candidate feature on training rows
    train_close: pd.Series  # closes up to the last training origin (the in-sample history)
    notes: tuple[str, ...] = ()  # what the user should know: origins left out, parts too small to trust

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.transform.target.horizons

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.transform.lookback, len(self.transform.feature_names))

    def boundaries(self) -> dict[str, list[str]]:
        """First and last origin time of each split (ISO strings)."""
        return {
            name: [str(pd.Timestamp(s.origin_time[0])), str(pd.Timestamp(s.origin_time[-1]))]
            for name, s in (("train", self.train), ("val", self.val), ("test", self.test))
        }


def auxiliary_training_windows(
    candles: pd.DataFrame, features: pd.DataFrame, transform: FeatureTransform, last_origin: pd.Timestamp
) -> Split:
    """Training windows of another series for a global model: the target's selected features,
    scaled by this series' own RobustScaler fitted on its rows up to `last_origin` (the target's
    last training origin), at origins up to `last_origin` only, so no window or target reaches
    the target's validation or test dates."""
    if not features.index.equals(candles.index):
        raise ValueError("features and candles must share the same index")
    origins = forecast_origins(features, transform.lookback, max(transform.target.horizons))
    origins = origins[features.index[origins] <= last_origin]
    if len(origins) < 2:
        raise ValueError(f"the series has {len(origins)} forecast origins up to {last_origin}, the target's last training origin")
    rows = features[transform.feature_names].iloc[origins[0] - transform.lookback + 1 : origins[-1] + 1]
    scaler = RobustScaler().fit(rows.to_numpy(dtype=float))
    own = FeatureTransform(
        feature_names=transform.feature_names,
        center=scaler.center_,
        scale=np.where(scaler.scale_ > 0, scaler.scale_, 1.0),
        lookback=transform.lookback,
        target=transform.target,
        clip=transform.clip,
    )
    return own.split_at(features, candles["close"], origins)


def split_origins(n_origins: int, fractions: tuple[float, float, float], purge: int) -> tuple[slice, slice, slice]:
    """Chronological train/val/test slices over origin positions.

    The last `purge` origins of train and of validation are left out: their
    targets (up to `purge` bars ahead) would reach into the next part.
    """
    n_train = int(round(n_origins * fractions[0]))
    n_val = int(round(n_origins * fractions[1]))
    train = slice(0, n_train - purge)
    val = slice(n_train, n_train + n_val - purge)
    test = slice(n_train + n_val, n_origins)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if part.stop - part.start < 1:
            raise ValueError(
                f"not enough data: {n_origins} forecast origins leave no {name} origins "
                f"(split {list(fractions)}, purge {purge} bars); use more history"
            )
    return train, val, test


def early_stopping_split(train: Split, share: float, purge: int) -> tuple[Split, Split]:
    """The training origins to fit on, and the latest `share` of them to stop early on.

    Cut by origin date, so the windows of a global model's series are cut at the same
    dates; the `purge` origin dates before the held-out tail are left out, as their
    targets reach into it. The validation part stays unseen by the fit, for the skill gate.
    """
    dates = np.unique(train.origin_time)
    n_stop = int(round(len(dates) * share))
    n_fit = len(dates) - n_stop - purge
    if n_stop < 1 or n_fit < 1:
        raise ValueError(
            f"not enough training origins to stop early on a held-out tail: {len(dates)} origin dates, "
            f"stop_share {share} and a purge of {purge}; use more history or a larger training share"
        )
    fit_on = np.flatnonzero(train.origin_time <= dates[n_fit - 1])
    stop_on = np.flatnonzero(train.origin_time >= dates[-n_stop])
    return train.subset(fit_on), train.subset(stop_on)


def select_features(
    features: pd.DataFrame, target: pd.DataFrame | pd.Series, k: int
) -> tuple[list[str], pd.Series]:
    """Top-k columns by mean |Pearson correlation| with the target column(s).

    Call with training rows only. Constant columns score 0. Ties keep column order.
    """
    targets = target.to_frame() if isinstance(target, pd.Series) else target
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant column's correlation is NaN, scored 0
        scores = pd.concat([features.corrwith(targets[c]).abs() for c in targets.columns], axis=1).mean(axis=1)
    scores = scores.fillna(0.0)
    order = np.argsort(-scores.to_numpy(), kind="stable")[:k]
    return [features.columns[i] for i in order], scores


MIN_EVALUATION_ORIGINS = 30  # validation or test origins below which a run is refused
TRUSTED_BLOCKS = 10  # non-overlapping longest-horizon targets below which a part's figures are flagged


def minimum_bars(spec: DatasetSpec, warmup: int) -> int:
    """The fewest bars a run with `spec` can use: the features' warm-up, one window, the
    longest horizon, and origins enough for MIN_EVALUATION_ORIGINS in validation and test."""
    _, f_val, f_test = spec.split
    origins = max((MIN_EVALUATION_ORIGINS + spec.max_horizon) / f_val, MIN_EVALUATION_ORIGINS / f_test)
    return warmup + spec.lookback - 1 + spec.max_horizon + math.ceil(origins) + 1


def forecast_origins(features: pd.DataFrame, lookback: int, max_horizon: int, idle: np.ndarray | None = None) -> np.ndarray:
    """Row positions usable as forecast origins: a full window of finite features
    ending there (after the warm-up), the close `max_horizon` bars later known, and
    neither window nor targets touching an `idle` row (a long stretch without trades)."""
    values = features.to_numpy(dtype=float)
    finite = np.isfinite(values).all(axis=1)
    if not finite.any():
        raise ValueError("every feature row holds NaN: not enough history for the warm-up")
    first = int(np.argmax(finite))
    holes = np.flatnonzero(~finite[first:])
    if len(holes):
        row = first + holes[0]
        names = list(features.columns[~np.isfinite(values[row])][:5])
        raise ValueError(
            f"feature row {features.index[row]} holds NaN after the warm-up in {names}: an input is missing there "
            "(a funding file that does not cover the candles?); cut the candles with --days N or a file starting later"
        )
    origins = np.arange(first + lookback - 1, len(features) - max_horizon)
    if idle is not None and idle.any():
        touched = np.convolve(idle.astype(float), np.ones(lookback + max_horizon), mode="full")[max_horizon : max_horizon + len(idle)] > 0
        origins = origins[~touched[origins]]
    if len(origins) < 3:
        raise ValueError(
            f"not enough data: {len(features)} bars leave {max(len(origins), 0)} forecast origins "
            f"after {first} warm-up bars, lookback {lookback} and horizon {max_horizon}"
            + (f", and {int(idle.sum())} bars in idle stretches" if idle is not None and idle.any() else "")
        )
    return origins


def idle_stretches(candles: pd.DataFrame, longer_than: int) -> np.ndarray:
    """Rows inside runs of more than `longer_than` bars without a trade: volume 0 and
    open = high = low = close = the previous close (a filled gap, or an exchange outage)."""
    close = candles["close"].to_numpy(dtype=float)
    previous = np.concatenate([[np.nan], close[:-1]])
    flat = (candles[["open", "high", "low"]].to_numpy(dtype=float) == close[:, None]).all(axis=1) & (close == previous)
    idle = flat & (candles["volume"].to_numpy(dtype=float) == 0)
    out = np.zeros(len(idle), dtype=bool)
    starts = np.flatnonzero(idle & ~np.concatenate([[False], idle[:-1]]))
    for start in starts:
        end = start + int(np.argmin(np.append(idle[start:], False)))
        if end - start > longer_than:
            out[start:end] = True
    return out


def window_rows(origins: np.ndarray, lookback: int) -> np.ndarray:
    """Row positions covered by the windows ending at `origins`, ascending and unique."""
    return np.unique((np.asarray(origins)[:, None] + np.arange(1 - lookback, 1)).ravel())


def build_dataset(
    candles: pd.DataFrame,
    features: pd.DataFrame,
    spec: DatasetSpec | None = None,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    inputs: tuple[str, ...] | None = None,
) -> Dataset:
    """Windows and multi-horizon targets from candles and their feature matrix, as `spec`
    (default: DatasetSpec()) describes them.

    Rows with any NaN feature (the warm-up) are dropped first. An origin is a bar
    with `lookback` rows of features ending at it and every horizon's close known.
    `parts` gives explicit (train, val, test) positions into the origin list (a
    walk-forward fold); by default the spec's split fractions with a purge of
    max(horizons). Selection and scaling see only the training windows' rows.
    `inputs` (a model type's fixed input columns) replaces selection and scaling:
    those columns, unscaled, on the same origins and split.
    """
    spec = spec or DatasetSpec()
    if not features.index.equals(candles.index):
        raise ValueError("features and candles must share the same index")
    horizons, lookback = spec.horizons, spec.lookback
    target = TargetSpec(tuple(horizons), spec.target_kind)
    max_h = spec.max_horizon

    idle = idle_stretches(candles, spec.max_idle_bars)
    origins = forecast_origins(features, lookback, max_h, idle)
    if parts is None:
        parts = split_origins(len(origins), spec.split, purge=max_h)
    train_part, val_part, test_part = parts
    train_origins = origins[train_part]

    train_rows = window_rows(train_origins, lookback)  # the rows the training windows hold, nothing between (purged k-fold)
    check_not_constant(candles["close"].iloc[train_rows])
    if inputs is not None:
        missing = [name for name in inputs if name not in features.columns]
        if missing:
            raise ValueError(f"the feature matrix lacks the input column(s) {missing}")
        selected, scores = list(inputs), pd.Series(np.nan, index=list(inputs))
    elif spec.selection_target in ("return", "next_return"):
        close = candles["close"].to_numpy(dtype=float)
        selection_horizons = horizons if spec.selection_target == "return" else (1,)
        future = np.stack([close[train_origins + h] for h in selection_horizons], axis=1)
        targets = np.log(future / close[train_origins, None])  # for selection only; split_at rebuilds the targets
        selection_y = pd.DataFrame(targets, index=features.index[train_origins])
        selected, scores = select_features(features.iloc[train_origins], selection_y, spec.n_features)
    else:
        selected, scores = select_features(features.iloc[train_rows], candles["close"].iloc[train_rows], spec.n_features)

    if inputs is None:
        scaler = RobustScaler().fit(features[selected].iloc[train_rows].to_numpy(dtype=float))
        center, scale = scaler.center_, np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    else:
        center, scale = np.zeros(len(selected)), np.ones(len(selected))
    transform = FeatureTransform(feature_names=selected, center=center, scale=scale, lookback=lookback, target=target)
    every = transform.split_at(features, candles["close"], origins)
    return Dataset(
        train=every.subset(train_part),
        val=every.subset(val_part),
        test=every.subset(test_part),
        transform=transform,
        feature_scores=scores.sort_values(ascending=False),
        train_close=candles["close"].iloc[train_rows],
        notes=(*idle_note(idle, features.index, spec), *small_part_notes({"validation": len(origins[val_part]), "test": len(origins[test_part])}, max_h)),
    )


def check_not_constant(train_close: pd.Series) -> None:
    if train_close.nunique() == 1:
        raise ValueError(
            f"the close is {train_close.iloc[0]} on every bar of the training part ({train_close.index[0]} .. {train_close.index[-1]}): "
            "there is nothing to learn; check the file, or start it where the market trades"
        )


def idle_note(idle: np.ndarray, index: pd.DatetimeIndex, spec: DatasetSpec) -> tuple[str, ...]:
    if not idle.any():
        return ()
    first = index[int(np.argmax(idle))]
    return (
        f"{int(idle.sum())} bar(s) in stretches of more than {spec.max_idle_bars} bars without trades (first at {first}): "
        "forecast origins whose window or targets touch them are left out",
    )


def small_part_notes(sizes: dict[str, int], max_horizon: int) -> tuple[str, ...]:
    """A warning for each evaluated part too small to trust; an error below the minimum."""
    notes = []
    for name, n in sizes.items():
        if n < MIN_EVALUATION_ORIGINS:
            raise ValueError(
                f"the {name} part has {n} forecast origin(s), fewer than {MIN_EVALUATION_ORIGINS}: its figures would mean nothing; "
                "give more history or a larger split fraction"
            )
        if n < TRUSTED_BLOCKS * max_horizon:
            notes.append(
                f"the {name} part has {n} forecast origins, only {n // max_horizon} non-overlapping {max_horizon}-bar targets: "
                f"its figures at long horizons are noisy (fewer than {TRUSTED_BLOCKS})"
            )
    return tuple(notes)
