"""Production workflow helpers."""

from atb.workflows.production import symbol_name


def test_symbol_names():
    assert symbol_name("btc") == "BTCUSDT"
    assert symbol_name("ETHUSDT") == "ETHUSDT"
    assert symbol_name("sol/usdc") == "SOLUSDC"
