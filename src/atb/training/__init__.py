"""Training: the neural training loop (trainer) and walk-forward fold indices (walk_forward)."""

from atb.training.trainer import FitSettings, TrainingResult, resolve_device, seed_everything, train_network

__all__ = ["FitSettings", "TrainingResult", "resolve_device", "seed_everything", "train_network"]
