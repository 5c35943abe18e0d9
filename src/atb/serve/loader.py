"""One loader for every kind of registry version: a single model or an ensemble."""

from __future__ import annotations

from pathlib import Path

from atb.registry import ModelRegistry, ModelVersion, RegistryError
from atb.serve.ensemble import EnsemblePredictor
from atb.serve.predictor import Predictor

ENSEMBLE_KIND = "ensemble"


def load_version(
    registry: ModelRegistry | str | Path,
    symbol: str,
    model_type: str | None = None,
    ref: str | None = None,
    engine: str = "torch",
) -> Predictor | EnsemblePredictor:
    """The given version, else the type's production/latest, else the symbol's
    production/latest, checked against its manifest and loaded; an ensemble version
    gives an EnsemblePredictor (torch engine only)."""
    registry = registry if isinstance(registry, ModelRegistry) else ModelRegistry(Path(registry))
    version = resolve_version(registry, symbol, model_type, ref)
    if version.metadata.get("kind") == ENSEMBLE_KIND:
        if engine != "torch":
            raise ValueError(f"{version.ref} is an ensemble; engine {engine!r} serves single neural models only")
        return EnsemblePredictor.from_version(version, registry)
    return Predictor.from_directory(version.path, name=version.ref, engine=engine)


def resolve_version(registry: ModelRegistry, symbol: str, model_type: str | None, ref: str | None) -> ModelVersion:
    """`ref` of `model_type`; without a ref, the type's production version, else its latest;
    without a type, the symbol's production version, else its latest."""
    if ref is not None:
        return registry.get(symbol, model_type, ref)
    if model_type is None:
        return registry.resolve_for_serving(symbol)
    try:
        return registry.get(symbol, model_type, "production")
    except RegistryError:  # no production version of this type: its latest
        return registry.get(symbol, model_type, "latest")
