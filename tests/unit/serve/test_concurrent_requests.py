"""Concurrent requests on the same held candles: pandas' lazy index caches are not safe for
concurrent first reads, so the service computes a symbol's forecasts one at a time."""

from concurrent.futures import ThreadPoolExecutor

from fixture_registry import copy_registry

from atb.data import load_candles
from atb.serve.service import ForecastService


def test_eight_threads_on_fresh_candles_all_get_the_forecast(tmp_path):
    service = ForecastService(copy_registry(tmp_path))
    answers = []
    for _ in range(6):
        candles = load_candles()  # a new frame each round: its index caches are cold
        with ThreadPoolExecutor(8) as pool:
            answers += list(pool.map(lambda i: service.forecast("BTCUSDT", candles if i == 0 else None, model_type=("lightgbm", None)[i % 2]), range(8)))
    assert len(answers) == 48
    by_model = {}
    for (forecast,) in answers:
        by_model.setdefault(forecast["model"], set()).add(tuple(row["forecast"] for row in forecast["horizons"]))
    assert set(by_model) == {"BTCUSDT/lightgbm/v0001", "BTCUSDT/ensemble/v0001"} and all(len(v) == 1 for v in by_model.values())
