"""Causal transformer encoder over the window, average-pooled, one small head per horizon."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from atb.models.layers import causal_mask, divisible, dropout_rate, positive_int
from atb.models.search import dropout_choice


class TransformerNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> Linear to d_model + learned position embedding
    -> dropout -> num_layers post-norm encoder layers (GELU, causal mask) -> mean over
    time -> per horizon: Dense(head_units) -> GELU -> dropout -> 1 -> `[batch, n_horizons]`.

    Trained with the Noam schedule: lr = d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5).
    """

    description = "Causal post-norm transformer encoder with learned positions, average-pooled."
    variants: dict[str, dict] = {
        "lightweight": {"d_model": 64, "num_attention_heads": 4, "num_layers": 2, "ff_dim": 256,
                        "head_units": 64, "dropout": 0.2},
        "default": {"d_model": 128, "num_attention_heads": 4, "num_layers": 3, "ff_dim": 512,
                    "head_units": 128, "dropout": 0.25},
        "deep": {"d_model": 256, "num_attention_heads": 8, "num_layers": 4, "ff_dim": 1024,
                 "head_units": 128, "dropout": 0.25},
    }
    ensemble_family = "attention"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        # powers of two with d_model >= 32 > 8 heads: the head count always divides d_model
        return {
            "d_model": trial.suggest_categorical("d_model", [32, 64, 128]),
            "num_attention_heads": trial.suggest_categorical("num_attention_heads", [2, 4, 8]),
            "num_layers": trial.suggest_int("num_layers", 1, 4),
            "ff_dim": trial.suggest_categorical("ff_dim", [64, 128, 256, 512]),
            "head_units": trial.suggest_categorical("head_units", [32, 64, 128]),
            "dropout": dropout_choice(trial),
        }

    training_defaults = {"optimizer": "adamw", "weight_decay": 0.01, "warmup_steps": 500, "loss": "huber"}

    def __init__(
        self,
        n_features: int,
        lookback: int,
        n_horizons: int,
        *,
        d_model: int = 128,
        num_attention_heads: int = 4,
        num_layers: int = 3,
        ff_dim: int = 512,
        head_units: int = 128,
        dropout: float = 0.25,
    ):
        super().__init__()
        self.d_model = positive_int("d_model", d_model)
        heads = positive_int("num_attention_heads", num_attention_heads)
        divisible("d_model", d_model, "num_attention_heads", heads)
        dropout = dropout_rate("dropout", dropout)
        lookback = positive_int("lookback", lookback)
        head_units = positive_int("head_units", head_units)
        self.input_projection = nn.Linear(n_features, d_model)
        self.position_embedding = nn.Parameter(torch.randn(1, lookback, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, positive_int("ff_dim", ff_dim), dropout,
            activation="gelu", batch_first=True, norm_first=False,
        )
        num_layers = positive_int("num_layers", num_layers)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, head_units), nn.GELU(), nn.Dropout(dropout), nn.Linear(head_units, 1))
            for _ in range(n_horizons)
        )
        self.register_buffer("causal_mask", causal_mask(lookback), persistent=False)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.input_projection(x) + self.position_embedding)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-timestep representation `[batch, lookback, d_model]`; step t sees steps <= t only."""
        return self.encoder(self._embed(x), mask=self.causal_mask, is_causal=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.encode(x).mean(dim=1)
        return torch.cat([head(pooled) for head in self.heads], dim=1)

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Attention `[batch, lookback (query), lookback (key)]` averaged over heads and
        layers, computed with the same causal mask as `encode`: zero above the diagonal."""
        h = self._embed(x)
        maps = []
        for layer in self.encoder.layers:  # post-norm: self-attention reads the layer input as is
            maps.append(layer.self_attn(h, h, h, attn_mask=self.causal_mask, need_weights=True)[1])
            h = layer(h, src_mask=self.causal_mask, is_causal=True)
        return torch.stack(maps).mean(dim=0)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention mass per timestep `[batch, lookback]`, averaged over queries (the
        output pools every step equally); rows sum to 1. Under the causal mask early
        steps are visible to more queries, so they collect more mass."""
        return self.attention_maps(x).mean(dim=1)
