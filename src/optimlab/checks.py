"""Hyperparameter checks: each raises ValueError naming the argument and its value."""

from __future__ import annotations

import math
from typing import Any

import torch


def _number(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def non_negative(name: str, value: Any) -> None:
    if _number(name, value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def positive(name: str, value: Any) -> None:
    if _number(name, value) <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def unit_interval(name: str, value: Any) -> None:
    """0 <= value <= 1."""
    if not 0 <= _number(name, value) <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def decay_rate(name: str, value: Any) -> None:
    """0 <= value < 1: an EMA decay that forgets."""
    if not 0 <= _number(name, value) < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def betas(name: str, value: Any) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}")
    for i, beta in enumerate(value):
        decay_rate(f"{name}[{i}]", beta)


def boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def positive_integer(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def learning_rate(name: str, value: Any) -> None:
    """A number >= 0, or a schedule: a callable from step to learning rate."""
    if callable(value) and not isinstance(value, torch.Tensor):
        return
    non_negative(name, value)


def optional_positive(name: str, value: Any) -> None:
    if value is not None:
        positive(name, value)
