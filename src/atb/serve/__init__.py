"""Serving: load a registry version (a single model or an ensemble) and forecast from candles.

Imports the library rooms, never a workflow.
"""

from atb.serve.loader import load_version, resolve_version
from atb.serve.predictor import ENGINES, ForecastError, Predictor, forecast_row

__all__ = ["ENGINES", "ForecastError", "Predictor", "forecast_row", "load_version", "resolve_version"]
