"""Causal 1-D convolutions for local patterns, then an LSTM stack for the sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from atb.models.layers import CausalConv1d, LSTMStack, dropout_rate, positive_int, positive_ints
from atb.models.search import dropout_choice, layer_sizes


class CNNLSTMNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> (causal conv, ReLU, dropout) x num_conv_layers
    -> LSTM stack -> last step -> `[batch, n_horizons]`."""

    description = "Causal 1-D convolutions extract local patterns, an LSTM stack reads them in order."
    variants: dict[str, dict] = {
        "lightweight": {
            "num_filters": 32, "kernel_size": 3, "num_conv_layers": 1,
            "lstm_units": (32,), "dropout": 0.2,
        },
        "default": {
            "num_filters": 64, "kernel_size": 3, "num_conv_layers": 2,
            "lstm_units": (64, 32), "dropout": 0.2,
        },
        "deep": {
            "num_filters": 128, "kernel_size": 5, "num_conv_layers": 3,
            "lstm_units": (128, 64), "dropout": 0.3,
        },
    }
    ensemble_family = "recurrent"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "num_filters": trial.suggest_categorical("num_filters", [16, 32, 64, 128]),
            "kernel_size": trial.suggest_categorical("kernel_size", [2, 3, 5]),
            "num_conv_layers": trial.suggest_int("num_conv_layers", 1, 3),
            "lstm_units": layer_sizes(trial, "lstm_units", ["32", "64", "64-32", "128-64"]),
            "dropout": dropout_choice(trial),
        }

    def __init__(
        self,
        n_features: int,
        lookback: int,
        n_horizons: int,
        *,
        num_filters: int = 64,
        kernel_size: int = 3,
        num_conv_layers: int = 2,
        lstm_units: Sequence[int] = (64, 32),
        dropout: float = 0.2,
    ):
        super().__init__()
        num_filters = positive_int("num_filters", num_filters)
        kernel_size = positive_int("kernel_size", kernel_size)
        units = positive_ints("lstm_units", lstm_units)
        dropout = dropout_rate("dropout", dropout)
        channels = [n_features] + [num_filters] * positive_int("num_conv_layers", num_conv_layers)
        self.convs = nn.Sequential(*(
            layer
            for n_in, n_out in zip(channels, channels[1:])
            for layer in (CausalConv1d(n_in, n_out, kernel_size), nn.ReLU(), nn.Dropout(dropout))
        ))
        self.lstm = LSTMStack(num_filters, units, dropout)
        self.head = nn.Linear(units[-1], n_horizons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local_patterns = self.convs(x.transpose(1, 2)).transpose(1, 2)
        return self.head(self.lstm(local_patterns)[:, -1])
