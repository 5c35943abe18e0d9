"""Skill per regime, over rolling windows, and the memorisation check."""

import numpy as np
import pandas as pd
import pytest

from atb.dataset import Dataset, FeatureTransform, Split, TargetSpec
from atb.evaluation.breakdown import by_regime, memorisation, rmse_ratios, rolling_skill

HORIZONS = (1, 5)


def make_dataset(n_train: int = 400, n_test: int = 300) -> tuple[Dataset, pd.Series]:
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=n_train + n_test + 10, freq="D", tz="UTC")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, len(times)))), index=times)

    def split(rows: slice) -> Split:
        idx = np.arange(len(times))[rows]
        origin_close = close.to_numpy()[idx]
        future = np.column_stack([close.to_numpy()[np.minimum(idx + h, len(times) - 1)] for h in HORIZONS])
        y = np.log(future / origin_close[:, None]).astype(np.float32)
        return Split(X=np.zeros((len(idx), 2, 1), np.float32), y=y, origin_time=times[rows].to_numpy(), origin_close=origin_close, future_close=future)

    transform = FeatureTransform(feature_names=["f"], center=np.zeros(1), scale=np.ones(1), lookback=2, target=TargetSpec(HORIZONS))
    train, test = split(slice(0, n_train)), split(slice(n_train, n_train + n_test))
    return Dataset(train=train, val=test, test=test, transform=transform, feature_scores=pd.Series([1.0], index=["f"]),
                   train_close=close.iloc[:n_train]), close


def test_regimes_partition_the_origins_and_naive_scores_one_everywhere():
    dataset, close = make_dataset()
    naive = np.zeros_like(dataset.test.y)
    regimes = by_regime(naive, dataset.test, dataset, close)
    assert sum(r["n"] for r in regimes.values()) == len(dataset.test.y) and len(regimes) >= 2
    for row in regimes.values():
        assert row[1] == pytest.approx(1.0) and row[5] == pytest.approx(1.0)


def test_rolling_windows_find_the_worst_stretch():
    dataset, _ = make_dataset()
    perfect = dataset.test.y.astype(float).copy()
    perfect[200:260] += 0.05  # one bad stretch
    stability = rolling_skill(perfect, dataset.test, dataset, window=60)
    assert stability["window"] == 60 and stability[1]["min"] < 1e-6 and stability[1]["max"] > 1.0  # float32 targets
    worst = pd.Timestamp(stability[1]["worst_window"][0])
    assert pd.Timestamp(dataset.test.origin_time[140]) <= worst <= pd.Timestamp(dataset.test.origin_time[200])
    assert 0.0 < stability[1]["share_beating_naive"] < 1.0


def test_memorisation_is_flagged_only_where_training_skill_did_not_carry_over():
    assert memorisation({1: 0.9, 7: 0.9, 30: 0.99}, {1: 1.02, 7: 0.97, 30: 1.1}) == [
        "h=1: the raw model beats naive on its training windows (RMSE/naive 0.900) but not on validation (1.020): "
        "it fits the training part without generalising"
    ]
    dataset, _ = make_dataset()
    assert rmse_ratios(np.zeros_like(dataset.test.y), dataset.test, dataset) == pytest.approx({1: 1.0, 5: 1.0})


def test_learning_curve_refits_on_the_newest_windows_and_reuses_the_full_fit():
    from atb.evaluation.learning_curve import learning_curve
    from atb.models import create_model
    from atb.models.trainer import FitSettings

    dataset, _ = make_dataset()
    build = lambda: create_model("drift", dataset.input_shape, dataset.horizons)  # noqa: E731
    full = build()
    full.fit(dataset.train, dataset.val)
    curve = learning_curve(build, full, dataset, FitSettings(device="cpu"), lambda train, val: (train, val))
    assert [row["n_train"] for row in curve["sizes"]] == [100, 200, 300, 400]
    assert curve["sizes"][-1]["validation"] == rmse_ratios(full.predict(dataset.val.X), dataset.val, dataset)
    newest_quarter = dataset.train.subset(slice(300, None))
    quarter = build()
    quarter.fit(newest_quarter, dataset.val)
    assert curve["sizes"][0]["validation"] == rmse_ratios(quarter.predict(dataset.val.X), dataset.val, dataset)
    assert set(curve["still_improving"]) == set(HORIZONS)
