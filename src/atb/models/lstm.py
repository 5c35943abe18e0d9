"""Stacked LSTM: the simple recurrent baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from atb.models.layers import LSTMStack, dropout_rate, positive_ints
from atb.models.search import dropout_choice, layer_sizes


class LSTMNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> LSTM stack -> last step -> `[batch, n_horizons]`."""

    description = "Stacked LSTM read out at the last timestep; the simple recurrent baseline."
    variants: dict[str, dict] = {
        "lightweight": {"lstm_units": (32,), "dropout": 0.2},
        "default": {"lstm_units": (64, 32), "dropout": 0.2},
        "deep": {"lstm_units": (128, 64, 32), "dropout": 0.3},
    }
    ensemble_family = "recurrent"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "lstm_units": layer_sizes(trial, "lstm_units", ["32", "64", "128", "32-16", "64-32", "128-64", "128-64-32"]),
            "dropout": dropout_choice(trial),
        }

    def __init__(
        self,
        n_features: int,
        lookback: int,
        n_horizons: int,
        *,
        lstm_units: Sequence[int] = (64, 32),
        dropout: float = 0.2,
    ):
        super().__init__()
        units = positive_ints("lstm_units", lstm_units)
        self.lstm = LSTMStack(n_features, units, dropout_rate("dropout", dropout))
        self.head = nn.Linear(units[-1], n_horizons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[:, -1])
