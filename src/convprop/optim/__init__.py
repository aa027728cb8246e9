"""Update rules: SGD, Adam, AdamW and learning-rate schedules (PyTorch's equations)."""

from convprop.optim.adam import Adam, AdamW
from convprop.optim.optimizer import Optimizer
from convprop.optim.schedules import CosineAnnealingLR, LRScheduler, StepLR
from convprop.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "Optimizer", "StepLR"]
