"""Retraining after a monitoring alert: a fresh version with the current version's stored
settings on newer candles, registered as a shadow challenger and in stage `staging`.
It never promotes the new version; where the symbol had no production version, the
current one is pinned as production first, so that the new latest version does not
start serving on its own."""

from __future__ import annotations

from dataclasses import asdict

from atb.config import SECTION_OF, DataSpec, TrainingConfig
from atb.registry import ModelRegistry, rollout_record
from atb.workflows.steps import EventHandler, ignore_events
from atb.workflows.train_model import train_model


def retrain_challenger(registry: ModelRegistry, current_ref: str, data: DataSpec, dry_run: bool = False, on_event: EventHandler = ignore_events) -> str:
    """Train the challenger (or, with `dry_run`, say what would be done); a line of what happened."""
    current = registry.get_ref(current_ref)
    stored = {k: v for k, v in current.metadata.get("training_params", {}).items() if k in SECTION_OF and SECTION_OF[k] != "data"}
    config = TrainingConfig.from_dict(stored).replace(**{**asdict(data), "symbol": current.symbol}, registry_dir=registry.root)
    pin = registry.resolve_for_serving(current.symbol).ref == current.ref and not registry.has_stage(current.symbol, "production")
    plan = (
        f"train {config.model.model_type} ({config.model.variant}) with {current.ref}'s settings on {data.data_path or data.exchange or 'the bundled sample'}, "
        f"register it as a shadow challenger in stage staging" + (f", after pinning {current.ref} as production" if pin else "")
    )
    if dry_run:
        return f"dry run: would {plan}"
    if pin:
        registry.promote(current.symbol, current.model_type, current.version, "production")
    result = train_model(config, on_event=on_event)
    new = result.version
    registry.promote(new.symbol, new.model_type, new.version, "staging")
    registry.write_rollout(new.symbol, rollout_record(new.ref, "shadow", 1.0))
    figures = ", ".join(
        f"h={h} {current.metadata['metrics'][current.model_type][str(h)]['rmse_ratio']:.3f} -> {result.metrics[new.model_type][h]['rmse_ratio']:.3f}"
        for h in result.dataset.horizons if str(h) in current.metadata.get("metrics", {}).get(current.model_type, {})
    )
    return f"{new.ref} trained and registered as a shadow challenger (stage staging); test RMSE/naive, current -> new (each on its own test part): {figures}"
