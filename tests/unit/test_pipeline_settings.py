"""Config values reach the trainer; production symbol names."""

from pathlib import Path

from atb.config import TrainingConfig
from atb.pipeline import fit_settings
from atb.production import symbol_name


def test_fit_settings_follow_the_config():
    cfg = TrainingConfig(epochs=7, batch_size=32, patience=3, seed=5, learning_rate=0.002, device="cpu")
    settings = fit_settings(cfg, Path("ck"))
    assert (settings.epochs, settings.batch_size, settings.patience, settings.seed) == (7, 32, 3, 5)
    assert settings.learning_rate == 0.002 and settings.device == "cpu" and settings.checkpoint_dir == Path("ck")
    assert fit_settings(TrainingConfig()).learning_rate is None


def test_symbol_names():
    assert symbol_name("btc") == "BTCUSDT"
    assert symbol_name("ETHUSDT") == "ETHUSDT"
    assert symbol_name("sol/usdc") == "SOLUSDC"
