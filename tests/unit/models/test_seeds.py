"""Seed ensembles: N fits with seeds s, s+1, ... whose forecasts are averaged, saved and served as one model."""

import numpy as np
import pytest

from atb.models import create_model, load_model
from atb.models.onnx import OnnxForecaster, onnx_bytes
from atb.models.seeds import SeedAverage
from atb.models.trainer import FitSettings
from atb.windows import Windows

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 8, 3)).astype(np.float32)
Y = (0.01 * X[:, -1, :2] + 0.001 * RNG.normal(size=(96, 2))).astype(np.float32)
TRAIN, VAL = Windows(X[:64], Y[:64]), Windows(X[64:], Y[64:])
SETTINGS = FitSettings(epochs=2, batch_size=16, device="cpu", n_jobs=1)


def fitted(model_type: str, seed: int, variant: str = "lightweight"):
    model = create_model(model_type, (8, 3), horizons=(1, 7), variant=variant)
    model.fit(TRAIN, VAL, FitSettings(**{**SETTINGS.__dict__, "seed": seed}))
    return model


def seed_average(model_type: str, seeds: list[int]) -> SeedAverage:
    return SeedAverage.fit(
        lambda: create_model(model_type, (8, 3), horizons=(1, 7), variant="lightweight"),
        seeds,
        lambda member, seed: member.fit(TRAIN, VAL, FitSettings(**{**SETTINGS.__dict__, "seed": seed})),
    )


@pytest.mark.parametrize("model_type", ["lstm", "lightgbm"])
def test_two_seeds_forecast_the_mean_of_the_two_single_seed_fits(model_type):
    average = seed_average(model_type, [7, 8])
    singles = [fitted(model_type, 7), fitted(model_type, 8)]
    np.testing.assert_allclose(average.predict(X), (singles[0].predict(X) + singles[1].predict(X)) / 2, rtol=0, atol=1e-12)
    assert not np.allclose(singles[0].predict(X), singles[1].predict(X))  # the seeds really differ


def test_saved_and_loaded_as_one_model_and_exported_as_one_network(tmp_path):
    average = seed_average("lstm", [3, 4, 5])
    average.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["params.json", "seed_3", "seed_4", "seed_5"]
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, SeedAverage) and loaded.seeds == [3, 4, 5] and loaded.model_type == "lstm"
    np.testing.assert_array_equal(loaded.predict(X), average.predict(X))
    np.testing.assert_allclose(OnnxForecaster(onnx_bytes(loaded)).predict(X), average.predict(X), atol=1e-6)


def test_mc_samples_come_from_every_member():
    average = seed_average("lstm", [1, 2])
    samples = average.predict_samples(X[:5], 7, seed=0)
    assert samples.shape == (7, 5, 2)
    np.testing.assert_allclose(samples[0], average.members[0].predict_samples(X[:5], 4, seed=0)[0])
    np.testing.assert_allclose(samples[1], average.members[1].predict_samples(X[:5], 4, seed=1)[0])


def test_members_must_be_two_or_more_of_one_type():
    with pytest.raises(ValueError, match="two or more members"):
        SeedAverage([fitted("lstm", 1)], [1])
    with pytest.raises(ValueError, match="share one model type"):
        SeedAverage([fitted("lstm", 1), fitted("drift", 2, "default")], [1, 2])
