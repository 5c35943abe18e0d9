"""The skill gate: a model's forecast shrunk toward drift or naive as far as validation asks.

Per horizon h the served log-return forecast is

    g_h(f) = a_h * m_h + k_h * (f - m_h)

with `f` the model's forecast, `m_h` the training part's mean h-bar log return
(the drift forecast), and `a_h`, `k_h` in [0, 1] fitted by least squares on
validation predictions only. `k_h = 1, a_h = 1` serves the model unchanged;
`k_h = 0` serves `a_h * m_h`: drift (`a_h = 1`), the naive no-change forecast
(`a_h = 0`) or between, whichever validation supports. Whether a horizon keeps
its model weight, and its drift weight, is decided by significance tests on
validation (`atb.evaluation.skill`): without validated skill a weight is 0.

`GatedModel` puts a gate in front of a fitted model: its forecasts, MC-dropout
samples and exported network are gated, everything else is the model's own.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from atb.io import atomic_write_json


@dataclass(frozen=True)
class SkillGate:
    """Per-horizon drift `m`, drift weight `a` and model weight `k` (each `(H,)`); `evidence`
    says how the weights were chosen (kept in gate.json)."""

    drift: np.ndarray
    drift_weight: np.ndarray
    model_weight: np.ndarray
    evidence: dict | None = None

    @classmethod
    def fit(cls, val_prediction: np.ndarray, val_target: np.ndarray, drift: np.ndarray) -> SkillGate:
        """Least-squares `a_h, k_h` in [0, 1] per horizon from validation forecasts and targets."""
        f, y = np.asarray(val_prediction, dtype=float), np.asarray(val_target, dtype=float)
        drift = np.asarray(drift, dtype=float)
        if f.ndim != 2 or f.shape != y.shape or drift.shape != (f.shape[1],):
            raise ValueError(f"SkillGate.fit needs (n, H) forecasts and targets and (H,) drift, got {f.shape}, {y.shape}, {drift.shape}")
        if len(f) == 0 or not (np.isfinite(f).all() and np.isfinite(y).all() and np.isfinite(drift).all()):
            raise ValueError("SkillGate.fit needs at least one validation origin and finite values")
        weights = np.array([_box_least_squares(y[:, j], drift[j], f[:, j] - drift[j]) for j in range(f.shape[1])])
        return cls(drift=drift, drift_weight=weights[:, 0], model_weight=weights[:, 1])

    @classmethod
    def baseline_only(cls, val_target: np.ndarray, drift: np.ndarray) -> SkillGate:
        """`k_h = 0` and the least-squares `a_h` in [0, 1]: the best mix of naive and drift on validation."""
        y, drift = np.asarray(val_target, dtype=float), np.asarray(drift, dtype=float)
        norm = len(y) * drift**2
        weight = np.divide(drift * y.sum(axis=0), norm, out=np.zeros_like(drift), where=norm > 0)
        return cls(drift=drift, drift_weight=np.clip(weight, 0.0, 1.0), model_weight=np.zeros_like(drift))

    @classmethod
    def identity(cls, drift: np.ndarray) -> SkillGate:
        """The gate that serves the model unchanged."""
        drift = np.asarray(drift, dtype=float)
        return cls(drift=drift, drift_weight=np.ones_like(drift), model_weight=np.ones_like(drift))

    def apply(self, prediction: np.ndarray) -> np.ndarray:
        """Gated forecasts; `prediction` is `(..., H)` (forecasts or samples of them)."""
        return self.drift_weight * self.drift + self.model_weight * (np.asarray(prediction, dtype=float) - self.drift)

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": "a_h * m_h + k_h * (f - m_h)",
            "drift": self.drift.tolist(),
            "drift_weight": self.drift_weight.tolist(),
            "model_weight": self.model_weight.tolist(),
            **({"evidence": self.evidence} if self.evidence else {}),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SkillGate:
        weights = (np.asarray(values[key], dtype=float) for key in ("drift", "drift_weight", "model_weight"))
        return cls(*weights, evidence=values.get("evidence"))

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> SkillGate:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is corrupt: {exc}") from exc


def _box_least_squares(y: np.ndarray, drift: float, deviation: np.ndarray) -> tuple[float, float]:
    """`(a, k)` in [0, 1]^2 minimising sum (y - a * drift - k * deviation)^2.

    The objective is a convex quadratic, so its minimum over the box is the
    unconstrained minimum when that lies inside, else on an edge: the best of
    the clipped one-variable solutions along the four edges (corners included).
    Ties go to the smaller weights (toward naive, then toward drift)."""

    def sse(a: float, k: float) -> float:
        return float(np.sum((y - a * drift - k * deviation) ** 2))

    def best_along(fixed_value: float, vary_a: bool) -> tuple[float, float]:
        x = np.full_like(y, drift) if vary_a else deviation
        rest = y - (fixed_value * deviation if vary_a else fixed_value * drift)
        denominator = float(x @ x)
        free = float(np.clip(x @ rest / denominator, 0.0, 1.0)) if denominator > 0 else 0.0
        return (free, fixed_value) if vary_a else (fixed_value, free)

    candidates = [best_along(v, vary_a) for v, vary_a in itertools.product((0.0, 1.0), (True, False))]
    design = np.column_stack([np.full_like(y, drift), deviation])
    if np.linalg.matrix_rank(design) == 2:
        a, k = np.linalg.lstsq(design, y, rcond=None)[0]
        if 0.0 <= a <= 1.0 and 0.0 <= k <= 1.0:
            candidates.append((float(a), float(k)))
    return min(candidates, key=lambda ak: (round(sse(*ak), 12), ak[1], ak[0]))


class GatedNetwork(nn.Module):
    """`a * m + k * (network(x) - m)`: a network whose output passes the gate (for ONNX export)."""

    def __init__(self, network: nn.Module, gate: SkillGate):
        super().__init__()
        self.network = network
        for name, values in (("drift", gate.drift), ("drift_weight", gate.drift_weight), ("model_weight", gate.model_weight)):
            self.register_buffer(name, torch.as_tensor(values, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drift_weight * self.drift + self.model_weight * (self.network(x) - self.drift)


class GatedModel:
    """A fitted model behind a skill gate. `predict`, `predict_samples` and `network_`
    (what ONNX export traces) are gated; every other attribute is the model's own."""

    def __init__(self, model: Any, gate: SkillGate):
        if len(gate.drift) != len(model.horizons):
            raise ValueError(f"the gate has {len(gate.drift)} horizons, {model.model_type} forecasts {len(model.horizons)}")
        self.model = model
        self.gate = gate

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.gate.apply(self.model.predict(X))

    def predict_samples(self, X: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
        return self.gate.apply(self.model.predict_samples(X, n_samples, seed=seed))

    @property
    def network_(self) -> nn.Module:
        return GatedNetwork(self.model.network_, self.gate).eval()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
