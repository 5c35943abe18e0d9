"""Bidirectional + residual LSTM stack with additive attention and a normalised dense head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from atb.models.layers import dropout_rate, positive_int, positive_ints
from atb.models.search import dropout_choice, layer_sizes


class ResidualLSTM(nn.Module):
    """LayerNorm(LSTM(x) + linear skip(x)): `[batch, time, in]` -> `[batch, time, units]`."""

    def __init__(self, input_size: int, units: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, units, batch_first=True)
        self.skip = nn.Linear(input_size, units)
        self.norm = nn.LayerNorm(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.lstm(x)[0] + self.skip(x))


class AdditiveAttention(nn.Module):
    """Bahdanau-style attention pooling: score_t = v . tanh(W h_t), weights = softmax over t."""

    def __init__(self, input_size: int, attention_units: int):
        super().__init__()
        self.project = nn.Linear(input_size, attention_units)
        self.score = nn.Linear(attention_units, 1, bias=False)

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """`[batch, time, features]` -> `[batch, time]`, rows summing to 1."""
        return torch.softmax(self.score(torch.tanh(self.project(h))).squeeze(-1), dim=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Weighted sum over time: `[batch, time, features]` -> `[batch, features]`."""
        return torch.einsum("bt,btf->bf", self.weights(h), h)


class EnhancedLSTMNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> LayerNorm -> BiLSTM(lstm_units[0])
    -> [dropout -> residual LSTM(u)] for each later u -> additive attention
    -> [Dense(u) -> ReLU -> LayerNorm -> dropout] for each dense u -> one output per horizon.

    Between-step (recurrent) dropout is not used: cuDNN LSTMs do not support it.
    """

    description = (
        "LayerNorm, bidirectional LSTM, residual LSTMs with LayerNorm, additive attention "
        "over all timesteps, normalised dense head; Huber loss weighted 1/sqrt(h)."
    )
    variants: dict[str, dict] = {
        "lightweight": {"lstm_units": (64, 32, 16), "dense_units": (32, 16), "attention_units": 32, "dropout": 0.3},
        "default": {"lstm_units": (128, 64, 32), "dense_units": (64, 32), "attention_units": 64, "dropout": 0.4},
        "deep": {"lstm_units": (256, 128, 64, 32), "dense_units": (128, 64), "attention_units": 128, "dropout": 0.4},
    }
    ensemble_family = "recurrent"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "lstm_units": layer_sizes(trial, "lstm_units", ["32-16", "64-32", "64-32-16", "128-64-32"]),
            "dense_units": layer_sizes(trial, "dense_units", ["16", "32-16", "64-32"]),
            "attention_units": trial.suggest_categorical("attention_units", [16, 32, 64]),
            "dropout": dropout_choice(trial),
        }

    training_defaults = {
        "loss": "huber",
        "horizon_weighting": "inv_sqrt",
        "optimizer": "adam",
        "learning_rate": 5e-4,
        "grad_clip": 1.0,
        "batch_size": 64,
    }

    def __init__(
        self,
        n_features: int,
        lookback: int,
        n_horizons: int,
        *,
        lstm_units: Sequence[int] = (128, 64, 32),
        dense_units: Sequence[int] = (64, 32),
        attention_units: int = 64,
        dropout: float = 0.4,
    ):
        super().__init__()
        units = positive_ints("lstm_units", lstm_units)
        dense = positive_ints("dense_units", dense_units)
        dropout = dropout_rate("dropout", dropout)
        self.input_norm = nn.LayerNorm(n_features)
        self.bilstm = nn.LSTM(n_features, units[0], batch_first=True, bidirectional=True)
        widths = [2 * units[0], *units[1:]]
        self.residual_lstms = nn.ModuleList(ResidualLSTM(n_in, n_out) for n_in, n_out in zip(widths, widths[1:]))
        self.dropout = nn.Dropout(dropout)
        self.attention = AdditiveAttention(widths[-1], positive_int("attention_units", attention_units))
        widths = [widths[-1], *dense]
        self.dense = nn.Sequential(*(
            layer
            for n_in, n_out in zip(widths, widths[1:])
            for layer in (nn.Linear(n_in, n_out), nn.ReLU(), nn.LayerNorm(n_out), nn.Dropout(dropout))
        ))
        self.head = nn.Linear(dense[-1], n_horizons)  # row h of the weight is horizon h's own head

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bilstm(self.input_norm(x))[0]
        for lstm in self.residual_lstms:
            h = lstm(self.dropout(h))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dense(self.attention(self._sequence(x))))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Additive-attention weights over the window `[batch, lookback]`; rows sum to 1."""
        return self.attention.weights(self._sequence(x))
