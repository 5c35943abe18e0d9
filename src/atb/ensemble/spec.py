"""What an ensemble version stores besides its base versions: `ensemble.json`.

It holds references to the base versions, the stacking meta-learner (per
horizon: intercept and one coefficient per base), the skill gate in front of
the stacked forecast, split-conformal half-widths per level and horizon
(calibrated on cross-fitted, gated validation predictions), the fixed weights
and the per-horizon residual std of bases without MC dropout; for the other combiners a
service may use instead (`atb serve --combiner regime|online`), the regime detector fitted on
the training part with each base's family, and the online weights' state after validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atb.io import atomic_write_json
from atb.models.gate import SkillGate

LEVELS = (0.8, 0.95)


@dataclass
class EnsembleSpec:
    """Everything a served ensemble needs besides its base versions."""

    bases: dict[str, str]  # base name -> registry ref "SYMBOL/model_type/vNNNN"
    horizons: tuple[int, ...]
    intercept: np.ndarray  # (H,)
    coefficients: np.ndarray  # (H, M) in the order of `bases`
    fixed_weights: dict[str, float]
    conformal: dict[str, list[float]]  # str(level) -> half-width per horizon (log-return space)
    residual_std: dict[str, list[float]]  # base without MC dropout -> per-horizon validation residual std
    mc_samples: int
    gate: SkillGate | None = None  # in front of the stacked forecast (None: versions written before the gate)
    regime: dict | None = None  # {"detector": RegimeDetector.to_dict(), "families": base -> family, "tilt"}
    online: dict | None = None  # OnlineWeights.state_dict() after the validation part

    def save(self, path: str | Path) -> None:
        atomic_write_json(
            path,
            {
                "bases": self.bases,
                "horizons": list(self.horizons),
                "intercept": self.intercept.tolist(),
                "coefficients": self.coefficients.tolist(),
                "fixed_weights": self.fixed_weights,
                "conformal": self.conformal,
                "residual_std": self.residual_std,
                "mc_samples": self.mc_samples,
                **({"gate": self.gate.to_dict()} if self.gate else {}),
                **({"regime": self.regime} if self.regime else {}),
                **({"online": self.online} if self.online else {}),
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> EnsembleSpec:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            return cls(
                bases=dict(raw["bases"]),
                horizons=tuple(raw["horizons"]),
                intercept=np.asarray(raw["intercept"], dtype=float),
                coefficients=np.asarray(raw["coefficients"], dtype=float),
                fixed_weights=dict(raw["fixed_weights"]),
                conformal=dict(raw["conformal"]),
                residual_std=dict(raw["residual_std"]),
                mc_samples=int(raw["mc_samples"]),
                gate=SkillGate.from_dict(raw["gate"]) if raw.get("gate") else None,
                regime=raw.get("regime"),
                online=raw.get("online"),
            )
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: the ensemble version is incomplete") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is corrupt: {exc}") from exc

    def stack(self, base_predictions: dict[str, np.ndarray]) -> np.ndarray:
        """The served forecast `(n, H)` from base predictions `{name: (n, H)}`: the meta-learner's
        output behind the skill gate."""
        stacked = np.stack([base_predictions[name] for name in self.bases], axis=1)  # (n, M, H)
        combined = self.intercept + np.einsum("nmh,hm->nh", stacked, self.coefficients)
        return self.gate.apply(combined) if self.gate else combined
