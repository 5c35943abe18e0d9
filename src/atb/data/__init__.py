"""Candle sources and validation."""

from atb.data.sources import Candles, DataSourceError, load_candles, read_ohlcv_file, sample_path
from atb.data.validate import DataValidationError, ValidationReport, validate_ohlcv

__all__ = [
    "Candles",
    "DataSourceError",
    "DataValidationError",
    "ValidationReport",
    "load_candles",
    "read_ohlcv_file",
    "sample_path",
    "validate_ohlcv",
]
