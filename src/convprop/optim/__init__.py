"""Update rules: SGD, Adam, AdamW and learning-rate schedules (PyTorch's equations)."""

from convprop.optim.adam import Adam, AdamW
from convprop.optim.one_cycle import OneCycleLR
from convprop.optim.optimizer import Optimizer
from convprop.optim.plateau import ReduceLROnPlateau
from convprop.optim.schedules import CosineAnnealingLR, LinearLR, LRScheduler, StepLR
from convprop.optim.sequential import SequentialLR
from convprop.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "LinearLR",
    "OneCycleLR",
    "Optimizer",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]
