"""Choosing the torch device a run asked for, with an error a user can act on."""

from __future__ import annotations

import torch

from core.specs import Device


class DeviceUnavailableError(RuntimeError):
    """The spec asked for a device this machine does not have."""


def resolve_device(requested: Device) -> torch.device:
    """`auto` takes CUDA when present; `cuda` without a GPU is an error, not a silent CPU run."""
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise DeviceUnavailableError(
            "the spec asks for train.device='cuda' but this worker has no CUDA device; "
            "submit with device 'auto' or 'cpu', or run a worker on a GPU machine"
        )
    return torch.device("cpu")
