"""Every sequence mixer equals its step-by-step reference, is causal, and keeps the shape."""

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from core.models.mixers import MixerSpec, build_mixer
from core.models.mixers.scan import linear_recurrence, linear_recurrence_reference

MIXERS = ["attention", "linear_attention", "s4d", "s6", "mamba2"]
parse_mixer = TypeAdapter(MixerSpec).validate_python


def make(kind: str, width: int = 16, **fields: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mixer(parse_mixer({"type": kind, **fields}), width).double()


@pytest.mark.parametrize("kind", MIXERS)
def test_the_parallel_form_equals_the_recurrent_reference(kind: str) -> None:
    mixer = make(kind)
    x = torch.randn(2, 37, 16, dtype=torch.float64)  # 37: not a power of two
    fast, slow = mixer(x), mixer.reference(x)
    assert fast.shape == (2, 37, 16)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", MIXERS)
def test_no_output_depends_on_a_later_input(kind: str) -> None:
    mixer = make(kind)
    x = torch.randn(1, 20, 16, dtype=torch.float64)
    changed = x.clone()
    changed[0, 12] += 1.0
    before, after = mixer(x), mixer(changed)
    torch.testing.assert_close(before[0, :12], after[0, :12])
    assert not torch.allclose(before[0, 12:], after[0, 12:])


@pytest.mark.parametrize("kind", MIXERS)
def test_gradients_reach_every_parameter(kind: str) -> None:
    mixer = make(kind)
    mixer(torch.randn(2, 9, 16, dtype=torch.float64)).square().mean().backward()
    missing = [name for name, p in mixer.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_the_scan_is_stable_under_strong_decay() -> None:
    decay = torch.full((1, 200, 3), 1e-30, dtype=torch.float64)
    inputs = torch.ones(1, 200, 3, dtype=torch.float64)
    states = linear_recurrence(decay, inputs)
    assert torch.isfinite(states).all()
    torch.testing.assert_close(states, linear_recurrence_reference(decay, inputs))


def test_mixer_specs_are_validated() -> None:
    with pytest.raises(ValidationError, match="even"):
        parse_mixer({"type": "s4d", "state_size": 7})
    with pytest.raises(ValidationError):
        parse_mixer({"type": "rnn"})
    with pytest.raises(ValueError, match="divisible"):
        make("attention", width=10, n_head=3)


def test_explicit_attention_equals_the_fused_kernel() -> None:
    mixer = make("attention", n_head=2)
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    fused = mixer(x)
    mixer.fused = False
    torch.testing.assert_close(mixer(x), fused)
