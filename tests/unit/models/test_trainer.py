"""The training loop on a tiny stand-in network: stopping, checkpoints, interrupts, schedules, seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from atb.config import TrainingConfig
from atb.models.trainer import (
    CHECKPOINT_FILE,
    FitSettings,
    HorizonLoss,
    TrainingPlan,
    horizon_weights,
    noam_factor,
    resolve_device,
    train_network,
)
from atb.windows import Windows

LOOKBACK, N_FEATURES, HORIZONS = 8, 3, (1, 7)


class TinyNetwork(nn.Module):
    """Flatten -> Linear -> ReLU -> Dropout -> Linear: a fast stand-in for a real architecture."""

    def __init__(self, n_features: int = N_FEATURES, lookback: int = LOOKBACK, n_horizons: int = len(HORIZONS)):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(n_features * lookback, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, n_horizons)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class WarmupNetwork(TinyNetwork):
    training_defaults = {"warmup_steps": 40, "optimizer": "adamw", "weight_decay": 0.01}
    d_model = 16


def make_split(n: int, seed: int, sign: float = 1.0) -> Windows:
    """Targets a linear function of the last step of feature 0 (negated when sign = -1)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, LOOKBACK, N_FEATURES)).astype(np.float32)
    y = sign * np.stack([X[:, -1, 0] * h**0.5 for h in HORIZONS], axis=1)
    y = (y + rng.normal(scale=0.1, size=y.shape)).astype(np.float32)
    return Windows(X, y)


def fit(network=None, train=None, val=None, **settings):
    torch.manual_seed(0)
    network = network or TinyNetwork()
    settings = FitSettings(**{"epochs": 5, "batch_size": 32, "device": "cpu", **settings})
    result = train_network(
        network, train or make_split(256, 0), val or make_split(64, 1), settings,
        horizons=HORIZONS, training_defaults=getattr(network, "training_defaults", None),
        d_model=getattr(network, "d_model", None),
    )
    return network, result


def val_loss_of(network: nn.Module, val: Windows) -> float:
    loss = HorizonLoss("huber", horizon_weights(HORIZONS, "equal"))
    with torch.inference_mode():
        return loss(network(torch.from_numpy(val.X)), torch.from_numpy(val.y)).item()


def test_history_rows_have_the_documented_keys():
    _, result = fit(epochs=3)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert set(result.history[0]) == {"epoch", "loss", "val_loss", "lr", "seconds", "val_mae_h1", "val_mae_h7"}
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]  # it learns


def test_early_stopping_restores_the_best_weights():
    # validation targets have the opposite sign: the more it learns, the worse val gets
    val = make_split(64, 1, sign=-1.0)
    network, result = fit(val=val, epochs=50, patience=3)
    val_losses = [row["val_loss"] for row in result.history]
    assert len(result.history) == result.best_epoch + 3 < 50
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    network.eval()
    assert val_loss_of(network, val) == pytest.approx(min(val_losses), rel=1e-5)
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, result.best_state[name])


def test_the_checkpoint_holds_the_whole_state_after_each_epoch(tmp_path):
    network, result = fit(epochs=4, checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_FILE
    saved = safetensors.torch.load_file(path)
    assert all(torch.equal(saved[f"best.{k}"], v) for k, v in result.best_state.items())
    assert all(torch.equal(saved[f"weights.{k}"], v) for k, v in network.state_dict().items())
    assert any(k.startswith("optimizer.") for k in saved) and {"rng.torch", "rng.batches"} <= saved.keys()
    with safetensors.safe_open(path, framework="pt") as handle:
        state = json.loads(handle.metadata()["state"])
    assert state["epoch"] == 4 and state["best_epoch"] == result.best_epoch and state["history"] == result.history
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("network_class", [TinyNetwork, WarmupNetwork])
def test_a_resumed_fit_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, network_class):
    def stop_at_epoch_3(row):
        if row["epoch"] == 3:
            raise RuntimeError("killed")

    def run(directory, resume=False, on_epoch=None, fresh=True):
        torch.manual_seed(0)
        network = network_class()
        settings = FitSettings(epochs=6, batch_size=32, patience=50, device="cpu", checkpoint_dir=directory, resume=resume)
        result = train_network(
            network, make_split(256, 0), make_split(64, 1), settings, horizons=HORIZONS,
            training_defaults=getattr(network, "training_defaults", None), d_model=getattr(network, "d_model", None), on_epoch=on_epoch,
        )
        return network, result

    whole, whole_result = run(tmp_path / "whole")
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "killed", on_epoch=stop_at_epoch_3)
    torch.manual_seed(123)  # whatever the new process's generators hold
    resumed, resumed_result = run(tmp_path / "killed", resume=True)
    assert [row["val_loss"] for row in resumed_result.history] == [row["val_loss"] for row in whole_result.history]
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    fit(epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint .* does not fit this run .* delete it or train without --resume"):
        fit(network=nn.Sequential(nn.Flatten(), nn.Linear(LOOKBACK * N_FEATURES, len(HORIZONS))), epochs=2, checkpoint_dir=tmp_path, resume=True)


def test_keyboard_interrupt_keeps_the_best_checkpoint_and_history(tmp_path):
    def interrupt_at_epoch_3(row):
        if row["epoch"] == 3:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    network = TinyNetwork()
    result = train_network(
        network, make_split(256, 0), make_split(64, 1),
        FitSettings(epochs=20, batch_size=32, device="cpu", checkpoint_dir=tmp_path),
        horizons=HORIZONS, on_epoch=interrupt_at_epoch_3,
    )
    assert len(result.history) == 3
    assert (tmp_path / CHECKPOINT_FILE).is_file()
    saved = safetensors.torch.load_file(tmp_path / CHECKPOINT_FILE)
    assert all(torch.equal(v, saved[f"best.{k}"]) for k, v in network.state_dict().items())
    assert not network.training


def test_same_seed_same_weights_other_seed_other_weights():
    first, _ = fit(epochs=2, seed=7)
    second, _ = fit(epochs=2, seed=7)
    third, _ = fit(epochs=2, seed=8)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), third.state_dict().values()))


def test_plateau_halves_the_learning_rate():
    _, result = fit(val=make_split(64, 1, sign=-1.0), epochs=9, patience=20, learning_rate=0.01)
    rates = [row["lr"] for row in result.history]
    assert rates[0] == pytest.approx(0.01)
    assert rates[-1] == pytest.approx(0.005)


def test_warmup_networks_follow_the_noam_schedule():
    network, result = fit(network=WarmupNetwork(), epochs=3)  # 8 steps per epoch, warmup 40
    rates = [row["lr"] for row in result.history]
    peak = (16 * 40) ** -0.5
    # the lr of a row is the one set for the next step: after 8 s steps, step 8 s + 1 of Noam
    assert rates == pytest.approx([peak * (8 * s + 1) / 40 for s in (1, 2, 3)], rel=1e-6)
    assert isinstance(network, WarmupNetwork)


def test_noam_factor_peaks_at_one_after_warmup_then_decays_as_inverse_sqrt():
    factor = noam_factor(100)
    assert factor(0) == pytest.approx(1 / 100)
    assert factor(99) == pytest.approx(1.0)
    assert factor(399) == pytest.approx(0.5)


def test_training_plan_merges_settings_over_network_defaults():
    declared = {"learning_rate": 5e-4, "loss": "huber", "batch_size": 128, "horizon_weighting": "inv_sqrt"}
    plan = TrainingPlan.resolve(declared, FitSettings(batch_size=None, loss="mse"))
    assert (plan.learning_rate, plan.loss, plan.batch_size, plan.horizon_weighting) == (5e-4, "mse", 128, "inv_sqrt")
    assert TrainingPlan.resolve({}, FitSettings(learning_rate=0.02)).learning_rate == 0.02
    assert TrainingPlan.resolve({"warmup_steps": 100}, FitSettings(), d_model=64).learning_rate == pytest.approx(
        (64 * 100) ** -0.5
    )
    with pytest.raises(ValueError, match=r"unknown training default\(s\) \['momentum'\].*valid"):
        TrainingPlan.resolve({"momentum": 0.9}, FitSettings())
    with pytest.raises(ValueError, match=r"optimizer 'sgd'.*\['adam', 'adamw'\]"):
        TrainingPlan.resolve({"optimizer": "sgd"}, FitSettings())


def test_loss_weights_horizons_and_scales_errors():
    weights = horizon_weights((1, 4), "inv_sqrt")
    assert weights.tolist() == pytest.approx([2 / 3, 1 / 3])
    loss = HorizonLoss("mse", weights, scale=np.array([1.0, 2.0]))
    prediction, target = torch.tensor([[1.0, 4.0]]), torch.zeros(1, 2)
    assert loss(prediction, target).item() == pytest.approx(2 / 3 * 1.0 + 1 / 3 * 4.0)
    huber = HorizonLoss("huber", horizon_weights((1, 4), "equal"))
    assert huber(torch.tensor([[0.5, 3.0]]), target).item() == pytest.approx(0.5 * (0.125 + 2.5))


def test_devices_and_accelerator_options_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")
        for option in ("mixed_precision", "cuda_graphs"):
            with pytest.raises(ValueError, match=f"{option} needs a CUDA device"):
                fit(epochs=1, device="auto", **{option: True})


def test_nan_validation_everywhere_is_reported_not_hidden():
    val = make_split(64, 1)
    val.y[:] = np.nan
    with pytest.raises(FloatingPointError, match="no finite validation loss"):
        fit(val=val, epochs=2)


def test_settings_come_from_the_training_config(tmp_path):
    config = TrainingConfig.build(epochs=3, batch_size=16, patience=2, seed=5, device="cpu")
    settings = FitSettings.from_spec(config.fit, checkpoint_dir=tmp_path)
    assert (settings.epochs, settings.batch_size, settings.patience, settings.seed) == (3, 16, 2, 5)
    assert settings.checkpoint_dir == tmp_path and math.isclose(settings.min_delta, 0.0)
