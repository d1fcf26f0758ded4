"""Group Relative Policy Optimization (GRPO) as a Trainer `Objective`: G sampled answers
per prompt, rewards normalised within each group, a clipped policy-ratio loss and an
optional KL penalty to a frozen reference policy.

For answer token t of sample i with advantage A_i and ratio r = exp(logp − logp_old):
    loss_it = −min(r·A_i, clip(r, 1 − ε, 1 + ε)·A_i) + β·KL_it,
    KL_it   = exp(ref − logp) − (ref − logp) − 1      (the k3 estimator, ≥ 0, as TRL),
A_i = (R_i − mean of its group) / (std of its group + eps), the std unbiased as torch's
default (as TRL). The per-token losses are averaged over each answer's tokens (up to and
including its end token), then over answers: the GRPO paper's 1/G Σ_i 1/|o_i| Σ_t, and
memlab's choice. TRL's GRPOTrainer has changed this over time (releases around
0.16–0.17, spring 2025, averaged over all answer tokens of the batch instead, which
weighs long answers more); which form the commit Schema-R1 pinned used was not checked.
With one gradient step per sampled batch (memlab's default, as TRL's num_iterations =
1) logp_old is logp detached, so r = 1 and the clip is inactive; the loss function still
implements it, and tests check it on ratios ≠ 1. Answers are sampled with the model in
eval mode (no dropout), so the sampling policy is the one the log-probs describe up to
dropout in the gradient pass.

Prompts and answers are token ids; answers are decoded in lockstep after left-padded
prompts (`core.data.schema_prompts`), within an alphabet of allowed tokens.

Dimensions: B prompts, G samples per prompt, N = B·G answers, P prompt length, L answer
length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

# A logit that takes a token out of the alphabet: finite, so log-softmax stays finite.
EXCLUDED_LOGIT = -1e9


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """(B, G) rewards → (B, G) advantages, normalised within each row (group).

    >>> group_advantages(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
    tensor([[-0.7071,  0.7071],
            [ 0.0000,  0.0000]])
    """
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(mean)
    return (rewards - mean) / (std + eps)


def k3_kl(log_probs: torch.Tensor, ref_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π‖π_ref) estimate exp(ref − logp) − (ref − logp) − 1 (≥ 0)."""
    delta = ref_log_probs - log_probs
    return torch.exp(delta) - delta - 1


def clipped_policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    ref_log_probs: torch.Tensor | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """The GRPO loss (a scalar) from per-token log-probs (N, L) of the sampled tokens under
    the current, sampling and reference policies, advantages (N,) and a mask (N, L) of the
    tokens that count.

    Positions outside the mask (padding after an answer's end) are zeroed before any
    exponential: their tokens lie outside the alphabet, so their log-probs sit near
    EXCLUDED_LOGIT, where float32's spacing (64) can make ref − logp ±64 or ±128 and its
    exponential overflow; a masked NaN or infinity would still poison the gradient."""
    log_probs = log_probs.masked_fill(~mask, 0.0)
    old_log_probs = old_log_probs.masked_fill(~mask, 0.0)
    if ref_log_probs is not None:
        ref_log_probs = ref_log_probs.masked_fill(~mask, 0.0)
    ratio = torch.exp(log_probs - old_log_probs)
    adv = advantages[:, None]
    per_token = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    if ref_log_probs is not None and beta > 0:
        per_token = per_token + beta * k3_kl(log_probs, ref_log_probs)
    weights = mask.to(per_token.dtype)
    per_answer = (per_token * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    return per_answer.mean()


def answer_mask(answers: torch.Tensor, end_id: int) -> torch.Tensor:
    """(N, L) True for each answer's tokens up to and including its first end token."""
    is_end = (answers == end_id).long()
    return (is_end.cumsum(dim=1) - is_end) == 0


def masked_log_probs(
    logits: torch.Tensor, alphabet: torch.Tensor, temperature: float
) -> torch.Tensor:
    """(..., V) logits → (..., V) log-probabilities at `temperature` over the tokens
    `alphabet` (V,) bool allows: what answers are sampled from and scored under."""
    scaled = (logits / temperature).masked_fill(~alphabet, EXCLUDED_LOGIT)
    return torch.log_softmax(scaled, dim=-1)


def answer_log_probs(
    model: nn.Module,
    prompts: torch.Tensor,
    answers: torch.Tensor,
    alphabet: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """(N, L) log-probability of each answer token under `model`, within `alphabet` (V,)
    bool, at `temperature`: the distribution the answers were sampled from, read in one
    pass (the logits at position P − 1 + t predict answer token t)."""
    sequences = torch.cat([prompts, answers], dim=1)[:, :-1]
    logits = model(sequences)[:, prompts.shape[1] - 1 :]  # (N, L, V)
    log_probs = masked_log_probs(logits, alphabet, temperature)
    return log_probs.gather(2, answers.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def generate_answers(
    model: nn.Module,
    prompts: torch.Tensor,
    length: int,
    alphabet: torch.Tensor,
    end_id: int,
    pad_id: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(N, L) answers after prompts (N, P), one token a step within `alphabet`: greedy at
    temperature 0, sampled from `generator` otherwise (from `masked_log_probs`, as
    `answer_log_probs` scores them); padding after an end token."""
    sequences = prompts
    finished = torch.zeros(prompts.shape[0], dtype=torch.bool, device=prompts.device)
    for _ in range(length):
        logits = model(sequences)[:, -1]  # (N, V)
        if temperature == 0:
            token = logits.masked_fill(~alphabet, EXCLUDED_LOGIT).argmax(dim=-1)
        else:
            probs = masked_log_probs(logits, alphabet, temperature).exp()
            token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        finished |= token == end_id
        sequences = torch.cat([sequences, token[:, None]], dim=1)
        if bool(finished.all()):
            break
    answers = sequences[:, prompts.shape[1] :]
    padding = torch.full((prompts.shape[0], length - answers.shape[1]), pad_id, dtype=answers.dtype)
    return torch.cat([answers, padding.to(answers.device)], dim=1)


# Rewards (N,) of answers (N, L) to the prompts of rows (N,).
RewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GRPOSettings:
    group_size: int
    clip: float
    beta: float
    temperature: float
    answer_length: int
    advantage_eps: float = 1e-4


@dataclass
class GRPOObjective:
    """The Trainer objective of one GRPO step on a batch (prompt rows (B,), seed (1,)).

    Samples G answers per prompt from the model being trained (no gradient), with a
    generator seeded from the batch (so a resumed run samples the same answers), scores
    them with `reward`, and returns the clipped loss with the KL to `reference`.
    """

    prompts: torch.Tensor  # (N_prompts, P) every prompt a batch can draw
    reward: RewardFn
    settings: GRPOSettings
    alphabet: torch.Tensor  # (V,) bool
    end_id: int
    pad_id: int
    reference: nn.Module | None = None

    def __call__(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        rows, seed = batch
        settings = self.settings
        device = next(model.parameters()).device
        rows = rows.repeat_interleave(settings.group_size)  # (N,)
        prompts = self.prompts[rows.cpu()].to(device)
        generator = torch.Generator(device=device).manual_seed(int(seed.item()))
        alphabet = self.alphabet.to(device)
        was_training = model.training
        model.eval()  # sample from the policy itself, without dropout
        answers = generate_answers(
            model,
            prompts,
            settings.answer_length,
            alphabet,
            self.end_id,
            self.pad_id,
            temperature=settings.temperature,
            generator=generator,
        )
        model.train(was_training)
        rewards = self.reward(rows.cpu(), answers.cpu()).to(device)
        advantages = group_advantages(
            rewards.view(-1, settings.group_size), settings.advantage_eps
        ).view(-1)
        log_probs = answer_log_probs(model, prompts, answers, alphabet, settings.temperature)
        reference = None
        if self.reference is not None and settings.beta > 0:
            with torch.no_grad():
                reference = answer_log_probs(
                    self.reference, prompts, answers, alphabet, settings.temperature
                )
        return clipped_policy_loss(
            log_probs,
            log_probs.detach(),
            advantages,
            answer_mask(answers, self.end_id),
            settings.clip,
            reference,
            settings.beta,
        )


@dataclass(frozen=True)
class PromptSampler:
    """A GRPO batch: `batch_size` prompt rows drawn with replacement from `n_prompts`, and
    a seed for sampling their answers, both from the trainer's checkpointed generator."""

    n_prompts: int
    batch_size: int

    def __call__(self, rng: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
        rows = torch.randint(0, self.n_prompts, (self.batch_size,), generator=rng)
        seed = torch.randint(0, 2**62, (1,), generator=rng)
        return rows, seed
