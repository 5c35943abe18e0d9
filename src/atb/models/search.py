"""Helpers for the Optuna search spaces that model types declare (`search_space(trial)`).

A search space is a function of an Optuna trial returning create_model overrides.
Choices stay primitive for Optuna (layer sizes as "64-32" strings), so nothing
here imports Optuna.
"""

from __future__ import annotations

from typing import Any


def layer_sizes(trial: Any, name: str, choices: list[str]) -> tuple[int, ...]:
    """Layer sizes from a categorical key such as "64-32"."""
    return tuple(int(units) for units in trial.suggest_categorical(name, choices).split("-"))


def dropout_choice(trial: Any) -> float:
    return trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
