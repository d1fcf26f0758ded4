"""Training throughput of memlab's decoder vs Hugging Face GPT-2 vs a plain PyTorch GPT.

All three train the same shape (width 128, depth 4, 4 heads, context 64, batch 64,
vocabulary 256 by default) on the same token batches with the same AdamW settings, in
one process, one after the other, so their ratios are comparable on a noisy machine.
The machine's matmul peak is measured in the same run, and each model's achieved
FLOP/s (6 · parameters · tokens, plus attention) is reported as a fraction of it.

    pip install -e '.[bench]'          # transformers, for the GPT-2 arm
    python bench/engine_throughput.py
    python bench/engine_throughput.py --steps 100 --device cuda
    python bench/engine_throughput.py --optimizer fused --profile

`--optimizer fused` gives every arm torch's fused AdamW (what transformers' Trainer uses
by default on torch ≥ 2.8) instead of the for-loop one; `--compile` adds a fourth arm,
memlab's model under torch.compile, and reports its compile time separately.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from core.models.sequence_model import SequenceModel, SequenceModelSpec


class PlainBlock(nn.Module):
    """A textbook pre-norm GPT block, written as anyone would without a framework."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, seq, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        mask = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()
        attn = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, seq, width))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, context: int, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(PlainBlock(width, heads) for _ in range(depth)))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok.weight
        for module in self.modules():  # GPT-2's initialisation, as a careful user would
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        return self.head(self.ln(self.blocks(x)))


def hf_gpt2(
    vocab: int, context: int, width: int, depth: int, heads: int
) -> Callable[..., torch.Tensor]:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab,
        n_positions=context,
        n_embd=width,
        n_layer=depth,
        n_head=heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        use_cache=False,
    )
    model = GPT2LMHeadModel(config)

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=idx).logits

    return Wrapped()


def matmul_peak(device: torch.device, size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of a square float32 matmul, the best this machine does on dense math."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Arm:
    """One model with its optimizer; `step` trains on one batch and returns its seconds."""

    def __init__(self, model: nn.Module, device: torch.device, fused: bool = False) -> None:
        self.model = model
        self.forward: Callable[[torch.Tensor], torch.Tensor] = model
        self.device = device
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=fused or None
        )
        self.seconds = 0.0
        self.losses: list[float] = []

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, timed: bool) -> None:
        _sync(self.device)
        started = time.perf_counter()
        logits = self.forward(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        _sync(self.device)
        if timed:
            self.seconds += time.perf_counter() - started
        self.losses.append(loss.item())


def model_flops_per_token(params: int, depth: int, context: int, width: int) -> float:
    """Training FLOPs per token: 6 · N for the weights plus 6 · L · T · C for attention."""
    return 6 * params + 6 * depth * context * width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "fused"])
    parser.add_argument("--compile", action="store_true", help="Add memlab under torch.compile.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    parser.add_argument("--profile", action="store_true", help="Profile 5 steps of each arm.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    # Learnable data, so "equal loss curves" means something: the capacity_tradeoff
    # arithmetic corpus as a character stream (ids < 256).
    from core.data.arithmetic import arithmetic_problems
    from core.data.text import CharVocab
    from core.training.samplers import TokenStreamSampler

    lines = [p.line for p in arithmetic_problems()]
    vocab = CharVocab.from_texts(lines)
    sampler = TokenStreamSampler.from_lines(
        lines, vocab.encode, args.context, args.batch_size, passes=50, seed=0
    )
    data_rng = torch.Generator().manual_seed(0)
    batches = [sampler(data_rng, device) for _ in range(args.steps)]

    spec = SequenceModelSpec(
        n_layer=args.depth,
        width=args.width,
        mixer={"type": "attention", "n_head": args.heads},
        ffn_ratio=4.0,
        activation="gelu",
        positions="learned",
        tie_embeddings=True,
    )
    shape = (args.vocab, args.context, args.width, args.depth, args.heads)
    arms: dict[str, Callable[[], nn.Module]] = {
        "memlab SequenceModel": lambda: SequenceModel(spec, args.vocab, args.context),
        "plain PyTorch GPT": lambda: PlainGPT(*shape),
    }
    if args.compile:
        arms["memlab, torch.compile"] = arms["memlab SequenceModel"]
    try:
        import transformers  # noqa: F401

        arms["transformers GPT-2"] = lambda: hf_gpt2(*shape)
    except ImportError:
        print("(transformers not installed: pip install -e '.[bench]' for the GPT-2 arm)")

    peak = matmul_peak(device)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}; matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    print(
        f"shape: width {args.width}, depth {args.depth}, heads {args.heads}, context "
        f"{args.context}, batch {args.batch_size}, vocab {args.vocab}; {args.steps} steps; "
        f"optimizer {args.optimizer} AdamW"
    )
    built = {}
    for name, build in arms.items():
        torch.manual_seed(0)
        built[name] = Arm(build().to(device), device, fused=args.optimizer == "fused")
    if args.compile:
        compiled = built["memlab, torch.compile"]
        initial = {k: v.clone() for k, v in compiled.model.state_dict().items()}
        compiled.forward = torch.compile(compiled.model)
        started = time.perf_counter()
        compiled.step(*batches[0], timed=False)  # compiles forward and backward
        print(f"torch.compile: first step (compiling) took {time.perf_counter() - started:.1f} s")
        # Undo that step so the compiled arm trains on the same batches from the same start.
        compiled.model.load_state_dict(initial)
        compiled.optimizer.state.clear()
        compiled.losses.clear()
    # Round-robin: every arm takes its step k before any takes step k + 1, so machine
    # noise falls on all arms alike.
    for index, (inputs, targets) in enumerate(batches):
        for arm in built.values():
            arm.step(inputs, targets, timed=index >= args.warmup)
    tokens = args.batch_size * args.context * (args.steps - args.warmup)
    speeds = {}
    print("| model | parameters | tokens/s | of matmul peak | loss at 10% / 50% / end |")
    print("|---|---|---|---|---|")
    for name, arm in built.items():
        params = sum(p.numel() for p in arm.model.parameters())
        speed = tokens / arm.seconds
        flops = speed * model_flops_per_token(params, args.depth, args.context, args.width)
        speeds[name] = speed
        marks = [
            arm.losses[len(arm.losses) // 10],
            arm.losses[len(arm.losses) // 2],
            arm.losses[-1],
        ]
        curve = " / ".join(f"{value:.3f}" for value in marks)
        print(f"| {name} | {params:,} | {speed:,.0f} | {flops / peak:.1%} | {curve} |")
    base = speeds["memlab SequenceModel"]
    for name, speed in speeds.items():
        if name != "memlab SequenceModel":
            print(f"memlab / {name}: {base / speed:.2f}×")
    if args.profile:
        for name, arm in built.items():
            print(f"\n## {name}: 5 training steps by operator")
            profile_steps(arm, batches[:5])


def profile_steps(arm: Arm, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Where one arm's training step spends its time, by operator (self time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    sort_by = "self_cpu_time_total"
    if arm.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
        sort_by = "self_cuda_time_total"
    with profile(activities=activities) as profiler:
        for inputs, targets in batches:
            arm.step(inputs, targets, timed=False)
    print(profiler.key_averages().table(sort_by=sort_by, row_limit=12))


if __name__ == "__main__":
    main()
