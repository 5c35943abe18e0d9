"""LSTM stack followed by multi-head self-attention over the window's timesteps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from atb.models.layers import LSTMStack, dropout_rate, positive_int, positive_ints
from atb.models.search import dropout_choice, layer_sizes


class AttentionLSTMNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> LSTM stack -> projection to
    `num_attention_heads * key_dim` -> self-attention (every step sees the whole
    window, which lies entirely in the past) + residual + LayerNorm -> mean over
    time -> `[batch, n_horizons]`."""

    description = "LSTM stack, then multi-head self-attention over time, average-pooled."
    variants: dict[str, dict] = {
        "lightweight": {"lstm_units": (64, 32), "num_attention_heads": 2, "key_dim": 16, "dropout": 0.2},
        "default": {"lstm_units": (128, 64), "num_attention_heads": 4, "key_dim": 16, "dropout": 0.2},
        "deep": {"lstm_units": (256, 128, 64), "num_attention_heads": 8, "key_dim": 32, "dropout": 0.3},
    }
    ensemble_family = "recurrent"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "lstm_units": layer_sizes(trial, "lstm_units", ["32", "64", "64-32", "128-64"]),
            "num_attention_heads": trial.suggest_categorical("num_attention_heads", [1, 2, 4, 8]),
            "key_dim": trial.suggest_categorical("key_dim", [8, 16, 32]),
            "dropout": dropout_choice(trial),
        }

    def __init__(
        self,
        n_features: int,
        lookback: int,
        n_horizons: int,
        *,
        lstm_units: Sequence[int] = (128, 64),
        num_attention_heads: int = 4,
        key_dim: int = 16,
        dropout: float = 0.2,
    ):
        super().__init__()
        units = positive_ints("lstm_units", lstm_units)
        heads = positive_int("num_attention_heads", num_attention_heads)
        width = heads * positive_int("key_dim", key_dim)
        dropout = dropout_rate("dropout", dropout)
        self.lstm = LSTMStack(n_features, units, dropout)
        self.projection = nn.Linear(units[-1], width)
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_horizons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.projection(self.lstm(x))
        attended = self.attention(h, h, h, need_weights=False)[0]
        h = self.norm(h + self.dropout(attended))
        return self.head(self.dropout(h.mean(dim=1)))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention mass per timestep `[batch, lookback]`, averaged over heads and
        queries (the output pools every query equally); rows sum to 1."""
        h = self.projection(self.lstm(x))
        weights = self.attention(h, h, h, need_weights=True, average_attn_weights=True)[1]
        return weights.mean(dim=1)
