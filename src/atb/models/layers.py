"""Building blocks and hyperparameter checks shared by several networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def positive_int(name: str, value: object) -> int:
    """`value` as an int >= 1, or a ValueError that names the hyperparameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def positive_ints(name: str, value: object) -> tuple[int, ...]:
    """`value` as a non-empty tuple of positive ints (layer sizes, one per layer)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty list of positive ints, got {value!r}")
    return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def dropout_rate(name: str, value: object) -> float:
    """`value` as a float in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
    return float(value)


def divisible(name: str, value: int, by_name: str, by: int) -> None:
    """Raise unless `value` is a multiple of `by` (e.g. model width vs. attention heads)."""
    if value % by:
        raise ValueError(f"{name} ({value}) must be divisible by {by_name} ({by})")


def causal_mask(size: int) -> torch.Tensor:
    """Boolean `[size, size]` attention mask: True where query i may NOT see key j > i."""
    return torch.ones(size, size, dtype=torch.bool).triu(diagonal=1)


class CausalConv1d(nn.Conv1d):
    """Conv1d over `[batch, channels, time]` padded on the left only.

    Output step t depends on input steps t - dilation*(kernel_size-1) .. t, never
    on a later step, and the output keeps the input's length.

    A batch of one on the CPU is computed as one matrix product over the stacked
    kernel taps: for it PyTorch skips oneDNN and runs a dilated convolution as
    tens of thousands of tiny tensor ops (over a third of the single-forecast latency
    of a TCN). Larger batches, and every backward pass in training, use the
    convolution kernel; both give the same numbers up to float rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_padding = dilation * (kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (self.left_padding, 0))
        if x.shape[0] == 1 and x.device.type == "cpu":
            return self._taps_product(padded, x.shape[-1])
        return super().forward(padded)

    def _taps_product(self, padded: torch.Tensor, length: int) -> torch.Tensor:
        """`[1, in, length + left_padding]` -> `[1, out, length]` as weight @ stacked taps."""
        step = self.dilation[0]
        taps = torch.stack([padded[0, :, i * step: i * step + length] for i in range(self.kernel_size[0])], dim=1)
        # weight [out, in, k] and taps [in, k, length] flatten (in, k) alike: no copy of the weight
        return torch.addmm(self.bias[:, None], self.weight.flatten(1), taps.flatten(0, 1))[None]


class LSTMStack(nn.Module):
    """LSTM layers of (possibly) different widths, each followed by dropout.

    `[batch, time, input_size]` -> `[batch, time, units[-1]]` (the whole sequence).
    """

    def __init__(self, input_size: int, units: Sequence[int], dropout: float):
        super().__init__()
        sizes = [input_size, *units]
        self.lstms = nn.ModuleList(
            nn.LSTM(n_in, n_out, batch_first=True) for n_in, n_out in zip(sizes, sizes[1:])
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lstm in self.lstms:
            x = self.dropout(lstm(x)[0])
        return x
