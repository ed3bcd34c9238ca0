"""Device names as users write them: ``auto``, ``cpu``, ``cuda``, ``cuda:1``."""

from __future__ import annotations

import torch

from tensorrnn.errors import ConfigError


def resolve_device(name: str | torch.device | None) -> torch.device:
    """A torch device; ``auto`` (or ``None``) means CUDA when torch sees a GPU, else CPU.

    Asking for CUDA without a GPU is a :class:`ConfigError` that says what to use instead.
    """
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(name)!r} was asked for but torch sees no CUDA GPU; use cpu")
    return device
