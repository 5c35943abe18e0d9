"""atb: multi-horizon price forecasting for crypto markets."""

__version__ = "0.1.0"
