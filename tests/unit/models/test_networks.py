"""Common checks for every network: shapes, determinism, attention, causality, overrides."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from atb.models import tcn
from atb.models.factory import MODEL_CLASSES

BATCH, LOOKBACK, N_FEATURES, N_HORIZONS = 4, 16, 5, 3

# Every registered network, read from the registry (a new one is checked the moment it is registered).
NETWORKS = {name: cls.network_class for name, cls in MODEL_CLASSES.items() if cls.is_neural}
ATTENTION = [name for name, network in NETWORKS.items() if hasattr(network, "attention_weights")]
CAUSAL = [name for name, network in NETWORKS.items() if hasattr(network, "encode")]  # per-step representations
VARIANT_NAMES = ["lightweight", "default", "deep"]
TRAINING_KEYS = {
    "learning_rate", "optimizer", "weight_decay", "loss", "horizon_weighting",
    "grad_clip", "warmup_steps", "batch_size",
}


def build(name: str, variant: str = "default", lookback: int = LOOKBACK, **overrides) -> nn.Module:
    network = NETWORKS[name]
    torch.manual_seed(0)
    return network(N_FEATURES, lookback, N_HORIZONS, **{**network.variants[variant], **overrides})


def inputs(lookback: int = LOOKBACK, seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, lookback, N_FEATURES, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NETWORKS)
def test_network_declares_variants_and_description(name):
    network = NETWORKS[name]
    variants = network.variants
    assert set(variants) == set(VARIANT_NAMES)
    assert isinstance(network.description, str) and network.description
    defaults = {
        p.name: p.default for p in inspect.signature(network).parameters.values() if p.kind is p.KEYWORD_ONLY
    }
    assert defaults == variants["default"], "constructor defaults must be the default variant"


@pytest.mark.parametrize("name", NETWORKS)
def test_training_defaults_use_known_keys(name):
    training_defaults = getattr(NETWORKS[name], "training_defaults", {})
    assert set(training_defaults) <= TRAINING_KEYS
    assert training_defaults.get("optimizer", "adam") in ("adam", "adamw")
    assert training_defaults.get("loss", "huber") in ("huber", "mse")
    assert training_defaults.get("horizon_weighting", "equal") in ("equal", "inv_sqrt")


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("name", NETWORKS)
def test_forward_shape_and_eval_determinism(name, variant):
    model = build(name, variant).eval()
    x = inputs()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.shape == (BATCH, N_HORIZONS)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("name", NETWORKS)
def test_single_window_forward_matches_its_row_in_a_batch(name):
    """A batch of one may take another kernel (CausalConv1d) but gives the same numbers."""
    model = build(name).eval()
    x = inputs()
    with torch.inference_mode():
        singles = torch.cat([model(x[i:i + 1]) for i in range(BATCH)])
        torch.testing.assert_close(singles, model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NETWORKS)
def test_dropout_is_active_in_train_mode_for_mc_sampling(name):
    model = build(name).train()
    assert any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    x = inputs()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("name", ATTENTION)
def test_attention_weights_are_a_distribution_over_timesteps(name, variant):
    model = build(name, variant).eval()
    with torch.no_grad():
        weights = model.attention_weights(inputs())
    assert weights.shape == (BATCH, LOOKBACK)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(BATCH))


@pytest.mark.parametrize("name", sorted(set(ATTENTION) & set(CAUSAL)))
def test_attention_maps_respect_the_causal_mask(name):
    model = build(name).eval()
    with torch.no_grad():
        maps = model.attention_maps(inputs())
    assert maps.shape == (BATCH, LOOKBACK, LOOKBACK)
    assert maps.triu(diagonal=1).abs().max() == 0
    assert (maps.diagonal(dim1=1, dim2=2) > 0).all()


def test_tcn_attention_forward_reads_the_last_step_of_encode():
    model = build("tcn_attention").eval()
    x = inputs()
    with torch.inference_mode():
        torch.testing.assert_close(model(x), model.head(model.encode(x)[:, -1]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [BATCH, 1], ids=["batch", "single"])
@pytest.mark.parametrize("grad_enabled", [False, True], ids=["inference", "autograd"])
@pytest.mark.parametrize("t", [0, 7, LOOKBACK - 2])
@pytest.mark.parametrize("name", CAUSAL)
def test_encode_never_looks_ahead(name, t, grad_enabled, batch):
    model = build(name).eval()
    x = inputs()[:batch]
    future_changed, present_changed = x.clone(), x.clone()
    future_changed[:, t + 1 :] = inputs(seed=2)[:batch, t + 1 :]
    present_changed[:, t] += 1.0
    with torch.set_grad_enabled(grad_enabled):
        base = model.encode(x)
        after_future_change = model.encode(future_changed)
        after_present_change = model.encode(present_changed)
    assert base.shape[:2] == (batch, LOOKBACK)
    torch.testing.assert_close(after_future_change[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
    assert (after_present_change[:, t] - base[:, t]).abs().max() > 1e-4


@pytest.mark.parametrize(("kernel_size", "num_layers"), [(2, 1), (3, 3), (5, 4), (5, 5)])
def test_receptive_field_matches_gradient_probe(kernel_size, num_layers):
    expected = tcn.receptive_field(kernel_size, num_layers)
    lookback = expected + 12
    torch.manual_seed(0)
    model = tcn.TCNNetwork(N_FEATURES, lookback, N_HORIZONS, num_filters=8, kernel_size=kernel_size,
                           num_layers=num_layers).eval()
    x = inputs(lookback).requires_grad_()
    model.encode(x)[:, -1].sum().backward()
    seen = (x.grad.abs().sum(dim=(0, 2)) > 0).nonzero().flatten()
    assert seen.tolist() == list(range(lookback - expected, lookback))


def test_receptive_field_formula():
    assert tcn.receptive_field(5, 5) == 1 + 2 * 4 * 31
    assert tcn.receptive_field(1, 4) == 1


def _lstms(model: nn.Module) -> list[nn.LSTM]:
    return [m for m in model.modules() if isinstance(m, nn.LSTM)]


@pytest.mark.parametrize("name", ["lstm", "cnn_lstm", "attention_lstm"])
def test_lstm_units_override_sets_the_lstm_stack(name):
    assert [m.hidden_size for m in _lstms(build(name, lstm_units=[16]))] == [16]
    assert [m.hidden_size for m in _lstms(build(name, lstm_units=[256, 128]))] == [256, 128]


def test_enhanced_lstm_units_override():
    model = build("enhanced_lstm", lstm_units=[16, 8])
    assert [(m.hidden_size, m.bidirectional) for m in _lstms(model)] == [(16, True), (8, False)]
    assert model(inputs()).shape == (BATCH, N_HORIZONS)


@pytest.mark.parametrize("name", NETWORKS)
def test_dropout_override_reaches_every_dropout(name):
    model = build(name, dropout=0.3)
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    rates |= {m.dropout for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    assert rates == {0.3}


def test_attention_lstm_heads_and_key_dim_override():
    attention = build("attention_lstm", num_attention_heads=8, key_dim=4).attention
    assert (attention.num_heads, attention.embed_dim) == (8, 32)


@pytest.mark.parametrize("name", ["tcn", "tcn_attention"])
def test_tcn_overrides_set_filters_kernel_and_layers(name):
    model = build(name, num_filters=128, kernel_size=7, num_layers=6, lookback=32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d) and m.kernel_size == (7,)]
    assert len(convs) == tcn.CONVS_PER_BLOCK * 6
    assert {c.out_channels for c in convs} == {128}
    assert [c.dilation[0] for c in convs[:: tcn.CONVS_PER_BLOCK]] == [1, 2, 4, 8, 16, 32]


def test_cnn_lstm_overrides_set_filters_and_kernel():
    convs = [m for m in build("cnn_lstm", num_filters=128, kernel_size=7).modules() if isinstance(m, nn.Conv1d)]
    assert {(c.out_channels, c.kernel_size) for c in convs} == {(128, (7,))}


def test_transformer_overrides_set_width_depth_and_heads():
    model = build("transformer", d_model=32, ff_dim=64, num_layers=2, num_attention_heads=8)
    layers = model.encoder.layers
    assert len(layers) == 2
    shapes = {(layer.self_attn.embed_dim, layer.self_attn.num_heads, layer.linear1.out_features) for layer in layers}
    assert shapes == {(32, 8, 64)}
    assert model(inputs()).shape == (BATCH, N_HORIZONS)


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        ("lstm", {"lstm_units": []}, "lstm_units"),
        ("cnn_lstm", {"kernel_size": 0}, "kernel_size"),
        ("attention_lstm", {"key_dim": 2.5}, "key_dim"),
        ("enhanced_lstm", {"dropout": 1.0}, "dropout"),
        ("tcn", {"num_layers": -1}, "num_layers"),
        ("tcn_attention", {"num_filters": 30, "num_attention_heads": 4}, "num_filters"),
        ("transformer", {"d_model": 30, "num_attention_heads": 4}, "d_model"),
    ],
)
def test_invalid_hyperparameters_are_refused_by_name(name, overrides, field):
    with pytest.raises(ValueError, match=field):
        build(name, **overrides)


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(TypeError, match="lstm_unit"):
        build("lstm", lstm_unit=[16])


@pytest.mark.parametrize("name", NETWORKS)
def test_forward_traces_as_one_graph(name):
    """No data-dependent Python control flow: the whole forward compiles without graph breaks."""
    model = build(name).eval()
    x = inputs()
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True), torch.no_grad():
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), model(x))
