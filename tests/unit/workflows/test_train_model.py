"""The train-model workflow's steps: a seed ensemble is the mean of the single-seed fits, and
seeds fitted elsewhere and saved (Ray member tasks) assemble into the same ensemble."""

from pathlib import Path

import numpy as np
import pytest

from atb.config import TrainingConfig
from atb.models.seeds import SeedAverage
from atb.workflows.steps import ignore_events, prepare_data
from atb.workflows.train_model import Member, assemble, fit_model

CONFIG = TrainingConfig.build(model_type="lstm", variant="lightweight", epochs=1, seed=5, n_features=8, device="cpu", mlflow=False)


def test_seeds_two_forecasts_the_mean_of_seed_s_and_seed_s_plus_one(tmp_path):
    dataset = prepare_data(CONFIG).dataset

    def fit(config: TrainingConfig):
        return fit_model(config, dataset, Path(tmp_path) / "checkpoint", lambda row: None, ignore_events)

    average = fit(CONFIG.replace(seeds=2))
    assert isinstance(average, SeedAverage) and average.seeds == [5, 6]
    singles = [fit(CONFIG.replace(seed=seed)).predict(dataset.test.X) for seed in (5, 6)]
    np.testing.assert_allclose(average.predict(dataset.test.X), (singles[0] + singles[1]) / 2, rtol=0, atol=1e-12)


def test_saved_seeds_assemble_into_the_seed_ensemble_and_wrong_seeds_are_refused(tmp_path):
    dataset = prepare_data(CONFIG).dataset
    members = []
    for seed in (5, 6):
        model = fit_model(CONFIG.replace(seed=seed), dataset, None, lambda row: None, ignore_events)
        members.append(Member(seed, model.save(tmp_path / f"seed_{seed}"), fit_s=0.0))
    fitted = fit_model(CONFIG.replace(seeds=2), dataset, None, lambda row: None, ignore_events)
    assembled = assemble(CONFIG.replace(seeds=2), tuple(members))
    np.testing.assert_array_equal(assembled.predict(dataset.test.X), fitted.predict(dataset.test.X))
    with pytest.raises(ValueError, match=r"fitted members have seeds \[6, 5\], the config asks for \[5, 6\]"):
        assemble(CONFIG.replace(seeds=2), tuple(reversed(members)))
