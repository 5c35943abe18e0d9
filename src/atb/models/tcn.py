"""Temporal convolutional networks: dilated causal convolutions with residual blocks.

Block i holds TWO causal convolutions of dilation 2**i (Bai, Kolter & Koltun, 2018),
so the representation at step t sees `receptive_field(kernel_size, num_layers)`
steps ending at t and nothing after t.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from atb.models.layers import (
    CausalConv1d,
    causal_mask,
    divisible,
    dropout_rate,
    positive_int,
)
from atb.models.search import dropout_choice

CONVS_PER_BLOCK = 2


def receptive_field(kernel_size: int, num_layers: int) -> int:
    """Timesteps that one output step of the built TCN sees (itself included).

    Each of the `num_layers` blocks stacks CONVS_PER_BLOCK convolutions of dilation
    2**i, each widening the view by (kernel_size - 1) * 2**i steps:
    1 + CONVS_PER_BLOCK * (kernel_size - 1) * (2**num_layers - 1).
    """
    return 1 + CONVS_PER_BLOCK * (kernel_size - 1) * (2**num_layers - 1)


class TemporalBlock(nn.Module):
    """(causal conv -> ReLU -> dropout) x 2, plus a residual (1x1 conv when widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for n_in in [in_channels] + [out_channels] * (CONVS_PER_BLOCK - 1):
            layers += [CausalConv1d(n_in, out_channels, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout)]
        self.convs = nn.Sequential(*layers)
        self.residual = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.convs(x) + self.residual(x))


class TemporalConvStack(nn.Module):
    """`[batch, time, n_features]` -> `[batch, time, num_filters]`, causal at every step."""

    def __init__(self, n_features: int, num_filters: int, kernel_size: int, num_layers: int, dropout: float):
        super().__init__()
        num_filters = positive_int("num_filters", num_filters)
        kernel_size = positive_int("kernel_size", kernel_size)
        dropout = dropout_rate("dropout", dropout)
        channels = [n_features] + [num_filters] * positive_int("num_layers", num_layers)
        self.blocks = nn.Sequential(*(
            TemporalBlock(n_in, n_out, kernel_size, 2**i, dropout)
            for i, (n_in, n_out) in enumerate(zip(channels, channels[1:]))
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)


class TCNNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> TCN -> last step -> `[batch, n_horizons]`."""

    description = "Dilated causal convolutions in residual blocks, read out at the last timestep."
    variants: dict[str, dict] = {
        "lightweight": {"num_filters": 32, "num_layers": 4, "kernel_size": 5, "dropout": 0.1},
        "default": {"num_filters": 64, "num_layers": 5, "kernel_size": 5, "dropout": 0.2},
        "deep": {"num_filters": 128, "num_layers": 6, "kernel_size": 5, "dropout": 0.2},
    }
    ensemble_family = "convolutional"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "num_filters": trial.suggest_categorical("num_filters", [16, 32, 64, 128]),
            "num_layers": trial.suggest_int("num_layers", 2, 6),
            "kernel_size": trial.suggest_categorical("kernel_size", [2, 3, 5]),
            "dropout": dropout_choice(trial),
        }

    def __init__(
        self,
        n_features: int,
        lookback: int,
        n_horizons: int,
        *,
        num_filters: int = 64,
        num_layers: int = 5,
        kernel_size: int = 5,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.tcn = TemporalConvStack(n_features, num_filters, kernel_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_filters, n_horizons)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-timestep representation `[batch, lookback, num_filters]`."""
        return self.tcn(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encode(x)[:, -1]))


class TCNAttentionNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> TCN -> causal self-attention + residual +
    LayerNorm -> last step -> `[batch, n_horizons]`."""

    description = "TCN followed by causal multi-head self-attention over time."
    variants: dict[str, dict] = {
        "lightweight": {**TCNNetwork.variants["lightweight"], "num_attention_heads": 4},
        "default": {**TCNNetwork.variants["default"], "num_attention_heads": 4},
        "deep": {**TCNNetwork.variants["deep"], "num_attention_heads": 8},
    }
    ensemble_family = "convolutional"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        # every num_filters choice (>= 16, powers of two) is divisible by every head count
        return {**TCNNetwork.search_space(trial), "num_attention_heads": trial.suggest_categorical("num_attention_heads", [1, 2, 4])}

    def __init__(
        self,
        n_features: int,
        lookback: int,
        n_horizons: int,
        *,
        num_filters: int = 64,
        num_layers: int = 5,
        kernel_size: int = 5,
        num_attention_heads: int = 4,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.tcn = TemporalConvStack(n_features, num_filters, kernel_size, num_layers, dropout)
        heads = positive_int("num_attention_heads", num_attention_heads)
        divisible("num_filters", num_filters, "num_attention_heads", heads)
        self.attention = nn.MultiheadAttention(num_filters, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(num_filters)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_filters, n_horizons)
        self.register_buffer("causal_mask", causal_mask(positive_int("lookback", lookback)), persistent=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-timestep representation `[batch, lookback, num_filters]`; step t sees steps <= t only."""
        h = self.tcn(x)
        return self._attend(h, h, causal=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reads out the last step only; as it sees every step, it alone attends (no
        mask), which gives `encode(x)[:, -1]` without computing the other queries."""
        h = self.tcn(x)
        return self.head(self.dropout(self._attend(h[:, -1:], h, causal=False)[:, 0]))

    def _attend(self, query: torch.Tensor, h: torch.Tensor, causal: bool) -> torch.Tensor:
        """`query` attends over `h`, then residual + LayerNorm: `[batch, len(query), num_filters]`."""
        mask = self.causal_mask if causal else None
        attended = self.attention(query, h, h, attn_mask=mask, is_causal=causal, need_weights=False)[0]
        return self.norm(query + self.dropout(attended))

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Head-averaged attention `[batch, lookback (query), lookback (key)]`, zero above the diagonal."""
        h = self.tcn(x)
        return self.attention(h, h, h, attn_mask=self.causal_mask, need_weights=True, average_attn_weights=True)[1]

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention of the last step, the one the output reads, over the window `[batch, lookback]`."""
        return self.attention_maps(x)[:, -1]
