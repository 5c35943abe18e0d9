"""A seed ensemble: one model type fitted with several seeds, its forecasts averaged.

On disk it is a model directory whose `params.json` names the member type and
the seeds, with one saved member per seed in `seed_{seed}/`. Forecasts, MC
samples, attention and importance are averaged (samples are drawn from each
member in turn); the exported network is the mean of the member networks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from atb.io import atomic_write_json
from atb.models.base import FORMAT_VERSION, PARAMS_FILE, ForecastModel


class MeanNetwork(nn.Module):
    """The mean output of several networks of one shape (for ONNX export)."""

    def __init__(self, networks: list[nn.Module]):
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([network(x) for network in self.networks]).mean(dim=0)


class SeedAverage:
    """Fitted members of one model type, one per seed; every other attribute is the first member's."""

    def __init__(self, members: list[ForecastModel], seeds: list[int]):
        if len(members) != len(seeds) or len(members) < 2:
            raise ValueError(f"a seed ensemble needs two or more members, one per seed; got {len(members)} for seeds {seeds}")
        if len({member.model_type for member in members}) != 1:
            raise ValueError(f"seed ensemble members must share one model type, got {[m.model_type for m in members]}")
        self.members = members
        self.seeds = list(seeds)

    @classmethod
    def fit(
        cls,
        build: Callable[[], ForecastModel],
        seeds: list[int],
        fit_one: Callable[[ForecastModel, int], Any],
    ) -> SeedAverage:
        """`build()` an unfitted model per seed and `fit_one(model, seed)` it."""
        members = []
        for seed in seeds:
            member = build()
            fit_one(member, seed)
            members.append(member)
        return cls(members, seeds)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.mean([member.predict(X) for member in self.members], axis=0)

    def predict_samples(self, X: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
        """`n_samples` draws, taken from the members in turn (an equal mixture of their predictive distributions)."""
        per_member = -(-n_samples // len(self.members))
        draws = [member.predict_samples(X, per_member, seed=seed + i) for i, member in enumerate(self.members)]
        return np.stack(draws, axis=1).reshape(-1, *draws[0].shape[1:])[:n_samples]

    def attention_weights(self, X: np.ndarray) -> np.ndarray:
        return np.mean([member.attention_weights(X) for member in self.members], axis=0)

    def feature_importance_by_feature(self, feature_names: list[str]) -> pd.Series:
        importance = pd.concat([m.feature_importance_by_feature(feature_names) for m in self.members], axis=1).mean(axis=1)
        return importance.sort_values(ascending=False, kind="stable")

    def n_parameters(self) -> int:
        return sum(member.n_parameters() for member in self.members)

    @property
    def network_(self) -> nn.Module:
        return MeanNetwork([member.network_ for member in self.members]).eval()

    def save(self, directory: str | Path) -> Path:
        """Each member in `seed_{seed}/`, then `params.json` naming them (written last)."""
        directory = Path(directory)
        for seed, member in zip(self.seeds, self.members):
            member.save(directory / member_dir(seed))
        first = self.members[0]
        atomic_write_json(directory / PARAMS_FILE, {
            "format_version": FORMAT_VERSION,
            **first.get_params(),
            "seeds": self.seeds,
            "members": [member_dir(seed) for seed in self.seeds],
        })
        return directory

    @classmethod
    def load(cls, directory: Path, params: dict[str, Any], load_member: Callable[[Path], ForecastModel]) -> SeedAverage:
        return cls([load_member(directory / name) for name in params["members"]], params["seeds"])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.members[0], name)


def member_dir(seed: int) -> str:
    return f"seed_{seed}"
