"""Resumable checkpoints: model and optimizer tensors in safetensors, the rest in JSON.

A checkpoint is a folder `step_00001234/` holding
    model.safetensors    the model's parameters (tied weights stored once)
    trainer.safetensors  AdamW moments and step counters, the data sampler's RNG state and
                         torch's global RNG state (dropout draws from it)
    state.json           step, the run's spec and its hash, and the evaluations so far
It is written to a temporary folder and renamed into place, so a folder that exists is
complete. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

_PREFIX = "step_"
MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.safetensors"
STATE_FILE = "state.json"
_RNG_KEY = "rng.batch_sampler"
_TORCH_RNG_KEY = "rng.torch_cpu"  # dropout and any other draw from the global generator
_CUDA_RNG_KEY = "rng.torch_cuda"


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk."""

    step: int
    path: Path

    def files(self) -> list[Path]:
        return [self.path / MODEL_FILE, self.path / TRAINER_FILE, self.path / STATE_FILE]

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.path / STATE_FILE).read_text()))


def save_checkpoint(
    directory: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler_rng: torch.Generator,
    state: dict[str, Any],
    keep_last: int = 2,
) -> Checkpoint:
    """Write the checkpoint for `step` atomically and prune all but the newest `keep_last`."""
    final = directory / f"{_PREFIX}{step:09d}"
    staging = directory / f".tmp-{_PREFIX}{step:09d}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_model(model, str(staging / MODEL_FILE))
    save_file(_trainer_tensors(optimizer, sampler_rng), str(staging / TRAINER_FILE))
    (staging / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    for stale in list_checkpoints(directory)[:-keep_last]:
        shutil.rmtree(stale.path, ignore_errors=True)
    return Checkpoint(step, final)


def list_checkpoints(directory: Path) -> list[Checkpoint]:
    """Complete checkpoints in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = [
        Checkpoint(int(p.name[len(_PREFIX) :]), p)
        for p in directory.iterdir()
        if p.is_dir() and p.name.startswith(_PREFIX) and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda c: c.step)


def shared_checkpoint_step(directories: Sequence[Path]) -> int:
    """The newest checkpoint step present in every folder, 0 when there is none: where a
    batched group, whose members checkpoint together, resumes."""
    steps = [{checkpoint.step for checkpoint in list_checkpoints(d)} for d in directories]
    common = set.intersection(*steps) if steps else set()
    return max(common, default=0)


def latest_checkpoint(directory: Path) -> Checkpoint | None:
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def load_checkpoint(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler_rng: torch.Generator,
) -> dict[str, Any]:
    """Restore model, optimizer and sampler RNG in place; returns the JSON state."""
    device = next(model.parameters()).device
    load_model(model, str(checkpoint.path / MODEL_FILE), device=str(device))
    tensors = load_file(str(checkpoint.path / TRAINER_FILE), device=str(device))
    sampler_rng.set_state(tensors.pop(_RNG_KEY).cpu())
    torch.set_rng_state(tensors.pop(_TORCH_RNG_KEY).cpu())
    cuda_state = tensors.pop(_CUDA_RNG_KEY, None)
    if cuda_state is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_state.cpu())
    optimizer.load_state_dict(_optimizer_state_dict(optimizer, tensors))
    return checkpoint.state()


def _trainer_tensors(
    optimizer: torch.optim.Optimizer, sampler_rng: torch.Generator
) -> dict[str, torch.Tensor]:
    # Optimizer state keyed "optim.<param index>.<name>", e.g. "optim.3.exp_avg".
    tensors = {
        f"optim.{index}.{name}": value.detach().contiguous()
        for index, per_param in optimizer.state_dict()["state"].items()
        for name, value in per_param.items()
        if isinstance(value, torch.Tensor)
    }
    tensors[_RNG_KEY] = sampler_rng.get_state()
    tensors[_TORCH_RNG_KEY] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors[_CUDA_RNG_KEY] = torch.cuda.get_rng_state()
    return tensors


def _optimizer_state_dict(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        per_param.setdefault(int(index), {})[name] = value
    # param_groups (lr, betas, ...) are rebuilt from the spec, so the live ones are kept.
    return {"state": per_param, "param_groups": optimizer.state_dict()["param_groups"]}
