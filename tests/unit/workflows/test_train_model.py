"""The train-model workflow's steps: a seed ensemble is the mean of the single-seed fits."""

from pathlib import Path

import numpy as np

from atb.config import TrainingConfig
from atb.models.seeds import SeedAverage
from atb.workflows.steps import ignore_events, prepare_data
from atb.workflows.train_model import fit_model

CONFIG = TrainingConfig.build(model_type="lstm", variant="lightweight", epochs=1, seed=5, n_features=8, device="cpu", mlflow=False)


def test_seeds_two_forecasts_the_mean_of_seed_s_and_seed_s_plus_one(tmp_path):
    dataset = prepare_data(CONFIG).dataset

    def fit(config: TrainingConfig):
        return fit_model(config, dataset, Path(tmp_path) / "checkpoint", lambda row: None, ignore_events)

    average = fit(CONFIG.replace(seeds=2))
    assert isinstance(average, SeedAverage) and average.seeds == [5, 6]
    singles = [fit(CONFIG.replace(seed=seed)).predict(dataset.test.X) for seed in (5, 6)]
    np.testing.assert_allclose(average.predict(dataset.test.X), (singles[0] + singles[1]) / 2, rtol=0, atol=1e-12)
