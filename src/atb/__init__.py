"""atb: multi-horizon price forecasting for crypto markets."""

__version__ = "0.1.0"

from atb.config import TrainingConfig  # noqa: E402


def __getattr__(name: str):
    """Heavy pieces load on first use, so `import atb` stays fast."""
    if name == "Forecaster":
        from atb.forecaster import Forecaster

        return Forecaster
    if name in ("create_model", "load_model", "AVAILABLE_MODELS"):
        from atb import models

        return getattr(models, name)
    raise AttributeError(f"module 'atb' has no attribute {name!r}")


__all__ = ["AVAILABLE_MODELS", "Forecaster", "TrainingConfig", "create_model", "load_model", "__version__"]
