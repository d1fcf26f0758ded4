"""Every sequence mixer equals its step-by-step reference, is causal, and keeps the shape,
in each block layout it has; the recurrent mixers in the gated block differ only in their
state-space core, and keep the same state per channel for the same state size."""

from collections.abc import Callable

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from core.models.mixers import BlockLayout, MixerSpec, build_mixer
from core.models.mixers.causal_conv import causal_depthwise_conv
from core.models.mixers.gated_block import GatedBlock
from core.models.mixers.scan import (
    chunked_scalar_decay_scan,
    diagonal_selective_scan,
    linear_recurrence,
    linear_recurrence_reference,
)

MIXERS = ["attention", "linear_attention", "s4d", "s6", "mamba2"]
RECURRENT = ["s4d", "s6", "mamba2"]
# Every mixer in its default block, and the recurrent ones whose own layout differs from
# the gated block (S6's is the gated block) in that layout.
LAYOUTS = [(kind, "gated") for kind in MIXERS] + [("s4d", "per_mixer"), ("mamba2", "per_mixer")]
parse_mixer = TypeAdapter(MixerSpec).validate_python


def make(
    kind: str, width: int = 16, block: BlockLayout = "gated", **fields: object
) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mixer(parse_mixer({"type": kind, **fields}), width, block=block).double()


@pytest.mark.parametrize(("kind", "block"), LAYOUTS)
def test_the_parallel_form_equals_the_recurrent_reference(kind: str, block: BlockLayout) -> None:
    mixer = make(kind, block=block)
    x = torch.randn(2, 37, 16, dtype=torch.float64)  # 37: not a power of two
    fast, slow = mixer(x), mixer.reference(x)
    assert fast.shape == (2, 37, 16)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)


def _outputs_and_gradients(
    mixer: torch.nn.Module, x: torch.Tensor, forward: str
) -> list[torch.Tensor]:
    """The mixer's output on x, then d(loss)/d(x) and d(loss)/d(every parameter); a
    parameter the loss does not reach (A when T = 1) counts as gradient zero."""
    x = x.detach().clone().requires_grad_()
    mixer.zero_grad(set_to_none=True)
    y = getattr(mixer, forward)(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in mixer.parameters()]
    return [y.detach(), x.grad, *grads]


@pytest.mark.parametrize("form", ["fast", "doubling"])
@pytest.mark.parametrize(
    ("kind", "block", "fields", "seq"),
    [
        ("s6", "gated", {}, 37),
        ("s6", "gated", {"state_size": 5, "expand": 1}, 1),
        ("mamba2", "gated", {}, 37),  # one chunk of 64, padded
        ("mamba2", "gated", {"n_head": 4, "state_size": 8}, 37),
        ("mamba2", "per_mixer", {"n_head": 4, "state_size": 8}, 37),
    ],
)
def test_selective_scans_equal_the_reference_in_outputs_and_gradients(
    kind: str, block: BlockLayout, fields: dict, seq: int, form: str
) -> None:
    mixer = make(kind, block=block, **fields)
    mixer.scan = form
    x = torch.randn(3, seq, 16, dtype=torch.float64)
    fast = _outputs_and_gradients(mixer, x, "forward")
    slow = _outputs_and_gradients(mixer, x, "reference")
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("block", ["gated", "per_mixer"])
@pytest.mark.parametrize(("seq", "chunk"), [(37, 8), (40, 8), (8, 8), (5, 16), (37, 1)])
def test_mamba2_chunks_equal_the_reference_whatever_the_chunk_size(
    seq: int, chunk: int, block: BlockLayout
) -> None:
    mixer = make("mamba2", block=block, n_head=2, state_size=6)
    mixer.chunk_size = chunk
    x = torch.randn(2, seq, 16, dtype=torch.float64)
    fast = _outputs_and_gradients(mixer, x, "forward")
    slow = _outputs_and_gradients(mixer, x, "reference")
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_the_fast_scans_are_stable_under_strong_decay() -> None:
    """Decays down to exp(−500) per step: no inf or NaN, in values or gradients."""
    gen = torch.Generator().manual_seed(3)
    batch, seq, heads, width, state = 2, 50, 3, 4, 5
    dt = torch.rand(batch, seq, heads, generator=gen, dtype=torch.float64) * 100
    a = -torch.rand(heads, state, generator=gen, dtype=torch.float64) * 5
    x = torch.randn(batch, seq, heads, generator=gen, dtype=torch.float64)
    b, c = torch.randn(2, batch, seq, state, generator=gen, dtype=torch.float64)
    for tensor in (dt, a, x, b, c):
        tensor.requires_grad_()
    s6 = diagonal_selective_scan(dt, a, x, b, c)
    drives = (dt[..., None] * x[..., None]).expand(-1, -1, -1, width)  # (B, T, H, P)
    ssd = chunked_scalar_decay_scan(drives, dt * a[:, 0], b, c, chunk=16)
    (s6.sum() + ssd.sum()).backward()
    for tensor in (s6, ssd, dt.grad, a.grad, x.grad, b.grad, c.grad):
        assert torch.isfinite(tensor).all()
    states = linear_recurrence_reference(
        torch.exp(dt * a[:, 0])[..., None, None], drives[..., None] * b[:, :, None, None, :]
    )
    torch.testing.assert_close(ssd, torch.einsum("bthpn,btn->bthp", states, c))


@pytest.mark.parametrize(("kind", "block"), LAYOUTS)
def test_no_output_depends_on_a_later_input(kind: str, block: BlockLayout) -> None:
    mixer = make(kind, block=block)
    x = torch.randn(1, 20, 16, dtype=torch.float64)
    changed = x.clone()
    changed[0, 12] += 1.0
    before, after = mixer(x), mixer(changed)
    torch.testing.assert_close(before[0, :12], after[0, :12])
    assert not torch.allclose(before[0, 12:], after[0, 12:])


@pytest.mark.parametrize(("kind", "block"), LAYOUTS)
def test_gradients_reach_every_parameter(kind: str, block: BlockLayout) -> None:
    mixer = make(kind, block=block)
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


@pytest.mark.parametrize("kernel", [1, 4, 7])
def test_the_causal_depthwise_conv_equals_torch_conv1d(kernel: int) -> None:
    conv = torch.nn.Conv1d(6, 6, kernel, groups=6, padding=kernel - 1).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    expected = conv(x.transpose(1, 2))[..., :9].transpose(1, 2)
    torch.testing.assert_close(causal_depthwise_conv(x, conv.weight, conv.bias), expected)


@pytest.mark.parametrize(
    ("kind", "block", "bias"),
    [
        ("s6", "gated", lambda m: m.dt_proj.bias),
        ("mamba2", "gated", lambda m: m.dt_bias),
        ("mamba2", "per_mixer", lambda m: m.dt_bias),
    ],
)
def test_the_selective_mixers_start_with_mamba_steps(
    kind: str, block: BlockLayout, bias: Callable[[torch.nn.Module], torch.Tensor]
) -> None:
    """Δ's bias is softplus⁻¹ of a step in [dt_min, dt_max], spread over that range, so the
    per-step decays start near 1 (Mamba's initialisation), not at softplus(0) ≈ 0.7."""
    mixer = make(kind, width=64, block=block, **({"n_head": 32} if kind == "mamba2" else {}))
    steps = torch.nn.functional.softplus(bias(mixer).detach())
    assert steps.min() >= 1e-3 * (1 - 1e-9) and steps.max() <= 1e-1 * (1 + 1e-9)
    assert steps.max() / steps.min() > 10  # log-uniform draws, not one constant
    narrow = make(kind, width=64, block=block, dt_min=0.01, dt_max=0.02)
    narrow_steps = torch.nn.functional.softplus(bias(narrow).detach())
    assert narrow_steps.min() >= 0.01 * (1 - 1e-9) and narrow_steps.max() <= 0.02 * (1 + 1e-9)
    with pytest.raises(ValidationError, match="exceeds"):
        parse_mixer({"type": kind, "dt_min": 0.2, "dt_max": 0.1})


def test_s6_starts_with_decays_near_one_on_real_inputs() -> None:
    """With the input-dependent part of Δ included, most initial decays exp(Δ·A_1) of the
    slowest state are close to 1, so a token can reach the end of a 32-step sequence."""
    mixer = make("s6", width=32)
    with torch.no_grad():
        p = mixer._inputs(mixer._open(torch.randn(4, 32, 32, dtype=torch.float64))[0])
    slowest = torch.exp(p.dt * p.a[:, 0])  # (B, T, E)
    assert slowest.median() > 0.9


def _shared_parameters(mixer: torch.nn.Module) -> dict[str, torch.Size]:
    """Shapes of the block around the core: projections (in_proj also makes the gate) and
    the convolution."""
    shared = ("in_proj.", "conv.", "out_proj.")
    return {n: p.shape for n, p in mixer.named_parameters() if n.startswith(shared)}


@pytest.mark.parametrize("shape", [{}, {"expand": 3, "conv_width": 2}])
def test_the_recurrent_mixers_share_one_gated_block_and_differ_only_in_their_core(
    shape: dict,
) -> None:
    """Same projections, gate and convolution shapes for S4D, S6 and Mamba-2; given the
    same weights there, with the core replaced by the identity, the same outputs."""
    fields = {"state_size": 8, **shape}
    mixers = {kind: make(kind, **fields) for kind in RECURRENT}
    inner = shape.get("expand", 2) * 16
    expected = {
        "in_proj.weight": (2 * inner, 16),  # u and the gate z, E each
        "in_proj.bias": (2 * inner,),
        "conv.weight": (inner, 1, shape.get("conv_width", 4)),
        "conv.bias": (inner,),
        "out_proj.weight": (16, inner),
        "out_proj.bias": (16,),
    }
    for mixer in mixers.values():
        assert isinstance(mixer, GatedBlock)
        assert _shared_parameters(mixer) == expected

    s6 = mixers["s6"]
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    outputs = []
    for mixer in mixers.values():
        shared = {n: p for n, p in s6.state_dict().items() if n in _shared_parameters(s6)}
        mixer.load_state_dict(shared, strict=False)
        mixer._core = lambda u: u  # type: ignore[method-assign]
        outputs.append(mixer(x))
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0])


def _state_per_channel(states: torch.Tensor, channels: int) -> int:
    """Real numbers of recurrent state per channel at one step of one sequence."""
    one_step = states[0, 0]
    return one_step.numel() * (2 if one_step.is_complex() else 1) // channels


@pytest.mark.parametrize("state_size", [4, 16])
@pytest.mark.parametrize("block", ["gated", "per_mixer"])
def test_the_same_state_size_means_the_same_state_per_channel_for_every_recurrent_mixer(
    state_size: int, block: BlockLayout
) -> None:
    """Counted in the states the reference recurrence keeps: S4D's N/2 complex modes, S6's
    N per channel and Mamba-2's P×N per head are each N real numbers per channel."""
    x = torch.randn(1, 3, 16, dtype=torch.float64)
    for kind in RECURRENT:
        mixer = make(kind, block=block, state_size=state_size)
        # The SSM runs on the E = 2·C inner channels, but on the C model channels in the
        # per-mixer S4D, which has no expansion.
        channels = 16 if (kind, block) == ("s4d", "per_mixer") else 32
        states = mixer.reference_states(x)
        assert _state_per_channel(states, channels) == state_size, kind
