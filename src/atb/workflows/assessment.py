"""How `atb train model` judges a fitted model, for each kind of target: price forecasts
(log returns or prices, behind the skill gate, against the naive and drift forecasts) or
direction probabilities (against the majority direction and the training base rate).

Each returns an `Assessment`: the model as served, its forecasts, the report's tables, the
saved per-origin predictions and the monitoring reference."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from atb.dataset import Dataset
from atb.evaluation.breakdown import by_regime, memorisation, rmse_ratios, rolling_skill
from atb.evaluation.direction import direction_report, probability_report
from atb.evaluation.monitoring import monitoring_reference
from atb.evaluation.predictions import prediction_frame, probability_frame
from atb.evaluation.protocol import backtest, evaluate_models, score, skill_warnings
from atb.evaluation.skill import fit_skill_gate
from atb.models import ForecastModel, model_class
from atb.models.base import BASELINE_FAMILY
from atb.models.gate import GatedModel, SkillGate
from atb.models.seeds import SeedAverage, member_dir
from atb.workflows.steps import PreparedData


@dataclass
class Assessment:
    """What the evaluation of one fitted model gives the report, the plots and the registry."""

    served: ForecastModel | SeedAverage | GatedModel
    gate: SkillGate | None
    test_prediction: np.ndarray  # served forecasts of the test part (target space)
    metrics: dict  # test part: model (and baselines) -> horizon -> metrics
    validation: dict  # the same on the validation part
    warnings: list[str]
    report_fields: dict  # further TrainingReport fields (backtest, regimes, direction, ...)
    predictions: pd.DataFrame  # per-origin validation and test forecasts (predictions.parquet)
    reference: dict | None = field(default=None)  # monitor.json; None: not monitored


def assess_forecasts(model: ForecastModel | SeedAverage, dataset: Dataset, prepared: PreparedData, model_type: str, gated: bool) -> Assessment:
    """Price forecasts: the skill gate fitted on validation (when `gated`), protocol metrics
    beside naive and drift, backtest, regimes, stability, overfitting, direction calls."""
    raw_val, raw_test = model.predict(dataset.val.X), model.predict(dataset.test.X)
    gate = fit_gate(raw_val, dataset) if gated and is_gated(model_type) else None
    served = GatedModel(model, gate) if gate else model
    test_predictions = served_and_raw(model_type, gate, raw_test)
    test_prediction = test_predictions[model_type]
    metrics = score(test_predictions, dataset.test, dataset)
    validation = score(served_and_raw(model_type, gate, raw_val), dataset.val, dataset)
    warnings = skill_warnings(validation, [raw_name(model_type) if gate else model_type]) if is_gated(model_type) else []
    overfitting = {"train": rmse_ratios(model.predict(dataset.train.X), dataset.train, dataset), "validation": rmse_ratios(raw_val, dataset.val, dataset)}
    overfitting["warnings"] = memorisation(overfitting["train"], overfitting["validation"]) if is_gated(model_type) else []
    served_val = gate.apply(raw_val) if gate else raw_val
    test = dataset.test
    return Assessment(
        served=served,
        gate=gate,
        test_prediction=test_prediction,
        metrics=metrics,
        validation=validation,
        warnings=warnings + overfitting["warnings"],
        report_fields={
            "backtest": backtest(test, dataset, test_prediction),
            "seeds": seed_metrics(model, dataset) if isinstance(model, SeedAverage) else None,
            "regimes": by_regime(test_prediction, test, dataset, prepared.candles.frame["close"]),
            "stability": rolling_skill(test_prediction, test, dataset),
            "overfitting": overfitting,
            "direction": direction_report(
                test.origin_close, test.future_close, dataset.transform.target.to_prices(test_prediction, test.origin_close), dataset.horizons
            ),
        },
        predictions=prediction_frame(dataset, {"validation": served_val, "test": test_prediction}, {"validation": raw_val, "test": raw_test}),
        reference=monitoring_reference(dataset, prepared.features, served_val, model_type, metrics, validation),
    )


def assess_direction(model: ForecastModel | SeedAverage, dataset: Dataset, model_type: str) -> Assessment:
    """Probabilities of "up": classification metrics per horizon beside the majority direction
    and the training base rate, and the long/flat backtest trading on P(up at h=1) > 0.5.
    No skill gate (it shrinks price forecasts) and no monitoring reference yet."""
    base_rate = dataset.train.y.mean(axis=0)
    val_prediction, test_prediction = model.predict(dataset.val.X), model.predict(dataset.test.X)

    def table(split, prediction: np.ndarray) -> dict:
        return {model_type: probability_report(split.origin_close, split.future_close, prediction, base_rate, dataset.horizons)}

    metrics, validation = table(dataset.test, test_prediction), table(dataset.val, val_prediction)
    return Assessment(
        served=model,
        gate=None,
        test_prediction=test_prediction,
        metrics=metrics,
        validation=validation,
        warnings=probability_warnings(validation[model_type], model_type),
        report_fields={"backtest": backtest(dataset.test, dataset, test_prediction)},
        predictions=probability_frame(dataset, {"validation": val_prediction, "test": test_prediction}, base_rate),
    )


def probability_warnings(validation: dict[int, dict], name: str) -> list[str]:
    """A line per horizon whose validation probabilities score no better than the base rate."""
    return [
        f"{name} h={h}: no validated skill (validation Brier {row['brier']:.4f} vs base rate {row['base_rate']['brier']:.4f}, "
        f"accuracy {row['accuracy']:.3f} vs majority {row['majority']['accuracy']:.3f})"
        for h, row in validation.items()
        if not row["brier_skill"] > 0
    ]


def seed_metrics(model: SeedAverage, dataset: Dataset) -> dict:
    """Each seed's raw test and validation RMSE/naive per horizon, and their spread (std) over seeds."""
    out: dict = {"seeds": model.seeds}
    for part in ("validation", "test"):
        split = dataset.val if part == "validation" else dataset.test
        members = evaluate_models(
            {member_dir(seed): member.predict(split.X) for seed, member in zip(model.seeds, model.members)}, split, dataset
        )
        ratios = {name: {h: row["rmse_ratio"] for h, row in per_h.items()} for name, per_h in members.items()}
        spread = {h: float(np.std([r[h] for r in ratios.values()], ddof=1)) for h in dataset.horizons}
        out[part] = {"rmse_ratio": ratios, "rmse_ratio_std": spread}
    return out


def is_gated(model_type: str) -> bool:
    """Whether a type's forecasts pass the skill gate: every type but the reference forecasts themselves."""
    return model_class(model_type).ensemble_family != BASELINE_FAMILY


def fit_gate(val_prediction: np.ndarray, dataset: Dataset) -> SkillGate | None:
    """The skill gate fitted on the validation part (log-return targets; price targets are served ungated)."""
    if dataset.transform.target.kind != "log_return":
        return None
    return fit_skill_gate(val_prediction, dataset.val.y, dataset.train.y.mean(axis=0), dataset.horizons)


def raw_name(model_type: str) -> str:
    """The report's name of a model's ungated forecasts."""
    return f"{model_type}_raw"


def served_and_raw(name: str, gate: SkillGate | None, raw_prediction: np.ndarray) -> dict[str, np.ndarray]:
    """The served forecasts under the model's name and, when a gate is in front, the raw ones beside them."""
    if gate is None:
        return {name: raw_prediction}
    return {name: gate.apply(raw_prediction), raw_name(name): raw_prediction}
