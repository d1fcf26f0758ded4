"""GRPO's pieces against small hand examples: group advantages, the clipped ratio loss,
the k3 KL, the answer mask, and decoding within an alphabet."""

from __future__ import annotations

import math

import pytest
import torch

from core.training.grpo import (
    GRPOObjective,
    GRPOSettings,
    PromptSampler,
    answer_log_probs,
    answer_mask,
    clipped_policy_loss,
    generate_answers,
    group_advantages,
    k3_kl,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_advantages_are_normalised_within_each_group_only() -> None:
    rewards = torch.tensor([[0.0, 2.0, 4.0], [10.0, 10.0, 10.0]])
    advantages = group_advantages(rewards, eps=0.0)
    # Group 1: mean 2, unbiased std 2 → (−1, 0, 1); group 2: all equal → 0 (no signal).
    assert torch.allclose(advantages[0], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(group_advantages(rewards)[1], torch.zeros(3))


def test_at_ratio_one_the_loss_is_minus_the_mean_advantage_over_answers() -> None:
    log_probs = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.25]]))
    mask = torch.tensor([[True, True], [True, False]])
    loss = clipped_policy_loss(log_probs, log_probs, torch.tensor([1.0, -1.0]), mask, clip=0.2)
    assert loss.item() == pytest.approx(0.0)
    loss = clipped_policy_loss(log_probs, log_probs, torch.tensor([2.0, 1.0]), mask, clip=0.2)
    assert loss.item() == pytest.approx(-1.5)


def test_the_ratio_is_clipped_where_it_would_overshoot_in_the_advantages_direction() -> None:
    old = torch.zeros(1, 1)
    up = torch.full((1, 1), math.log(1.5))  # ratio 1.5
    mask = torch.ones(1, 1, dtype=torch.bool)
    # Positive advantage: min(1.5·A, 1.2·A) = 1.2·A.
    assert clipped_policy_loss(up, old, torch.tensor([2.0]), mask, 0.2).item() == pytest.approx(
        -2.4
    )
    # Negative advantage: min(1.5·A, 1.2·A) = 1.5·A (the pessimistic side is kept).
    assert clipped_policy_loss(up, old, torch.tensor([-2.0]), mask, 0.2).item() == pytest.approx(
        3.0
    )
    down = torch.full((1, 1), math.log(0.5))  # ratio 0.5
    assert clipped_policy_loss(down, old, torch.tensor([-2.0]), mask, 0.2).item() == (
        pytest.approx(1.6)
    )


def test_the_clipped_side_gives_no_gradient() -> None:
    old = torch.zeros(1, 1)
    up = torch.full((1, 1), math.log(1.5), requires_grad=True)
    clipped_policy_loss(
        up, old, torch.tensor([2.0]), torch.ones(1, 1, dtype=torch.bool), 0.2
    ).backward()
    assert up.grad is not None and up.grad.item() == 0.0


def test_the_k3_kl_is_zero_at_the_reference_and_matches_its_formula_elsewhere() -> None:
    assert k3_kl(torch.tensor([-1.0]), torch.tensor([-1.0])).item() == 0.0
    value = k3_kl(torch.tensor([-1.0]), torch.tensor([-2.0])).item()
    assert value == pytest.approx(math.exp(-1) + 1 - 1)


def test_the_kl_term_adds_beta_times_the_masked_mean_kl() -> None:
    log_probs = torch.tensor([[-1.0, -1.0]])
    ref = torch.tensor([[-2.0, -5.0]])
    mask = torch.tensor([[True, False]])
    loss = clipped_policy_loss(log_probs, log_probs, torch.tensor([0.0]), mask, 0.2, ref, 0.5)
    assert loss.item() == pytest.approx(0.5 * (math.exp(-1) + 1 - 1))


def test_an_answer_counts_up_to_and_including_its_first_end_token() -> None:
    answers = torch.tensor([[5, 9, 7, 9], [5, 5, 5, 5]])
    assert answer_mask(answers, end_id=9).tolist() == [
        [True, True, False, False],
        [True, True, True, True],
    ]


class _Constant(torch.nn.Module):
    """Logits that prefer token 3, then 2, whatever the input: (B, T) → (B, T, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([0.0, 0.0, 1.0, 2.0, 0.0]))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.weight.expand(*idx.shape, 5)


def test_greedy_decoding_keeps_to_the_alphabet_and_pads_after_the_end() -> None:
    prompts = torch.zeros(2, 3, dtype=torch.long)
    no_three = torch.tensor([True, True, True, False, True])
    answers = generate_answers(_Constant(), prompts, 4, no_three, end_id=2, pad_id=0)
    assert answers.tolist() == [[2, 0, 0, 0], [2, 0, 0, 0]]


def test_sampling_is_fixed_by_its_generator() -> None:
    prompts = torch.zeros(4, 2, dtype=torch.long)
    alphabet = torch.ones(5, dtype=torch.bool)

    def sample(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return generate_answers(
            _Constant(), prompts, 6, alphabet, 4, 0, temperature=1.0, generator=generator
        )

    assert torch.equal(sample(1), sample(1))
    assert not torch.equal(sample(1), sample(2))


def test_a_prompt_batch_draws_rows_and_a_seed_from_the_trainers_generator() -> None:
    sampler = PromptSampler(n_prompts=10, batch_size=3)
    rows, seed = sampler(torch.Generator().manual_seed(0), torch.device("cpu"))
    again = sampler(torch.Generator().manual_seed(0), torch.device("cpu"))
    assert rows.shape == (3,) and int(rows.max()) < 10
    assert torch.equal(rows, again[0]) and torch.equal(seed, again[1])


def test_padding_far_outside_the_alphabet_leaves_the_loss_and_gradient_finite() -> None:
    # After an answer's end, padding's log-probs sit near EXCLUDED_LOGIT; float32 rounds
    # −1e9 − logsumexp to multiples of 64, so the policy and the reference can differ
    # there by 128, whose exponential overflows. Masked tokens must not reach exp().
    log_probs = torch.tensor([[-0.5, -1e9]], requires_grad=True)
    ref = torch.tensor([[-0.7, -1e9 + 128]])
    mask = torch.tensor([[True, False]])
    loss = clipped_policy_loss(
        log_probs, log_probs.detach(), torch.tensor([1.0]), mask, 0.2, ref, 0.04
    )
    loss.backward()
    assert torch.isfinite(loss)
    assert log_probs.grad is not None and torch.isfinite(log_probs.grad).all()
    assert log_probs.grad[0, 1].item() == 0.0


def test_grpo_steps_raise_the_probability_of_the_rewarded_answer() -> None:
    # A bandit: the first answer token is rewarded when it is 2. If the loss's sign, the
    # advantages or the log-probs' positions were wrong, p(2) would not climb.
    model = _Constant()
    with torch.no_grad():
        model.weight.zero_()  # uniform over 5 tokens: p(2) = 0.2

    def reward(rows: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        return (answers[:, 0] == 2).float()

    objective = GRPOObjective(
        prompts=torch.zeros(4, 3, dtype=torch.long),
        reward=reward,
        settings=GRPOSettings(group_size=8, clip=0.2, beta=0.0, temperature=1.0, answer_length=2),
        alphabet=torch.ones(5, dtype=torch.bool),
        end_id=4,
        pad_id=0,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    sampler, rng = PromptSampler(n_prompts=4, batch_size=4), torch.Generator().manual_seed(0)
    for _ in range(40):
        loss = objective(model, sampler(rng, torch.device("cpu")))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.softmax(model.weight, dim=0)[2].item() > 0.6


class _Successor(torch.nn.Module):
    """Logits that depend on the input at each position: token v scores −sharpness times
    its circular distance to next = (token at t) + 1 (mod V), so the model predicts "the
    last token plus one" but gives every token some probability."""

    def __init__(self, vocab: int = 7, sharpness: float = 1.0) -> None:
        super().__init__()
        self.vocab, self.sharpness = vocab, sharpness
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        tokens = torch.arange(self.vocab, dtype=torch.float32)
        following = ((idx + 1) % self.vocab).float().unsqueeze(-1)  # (B, T, 1)
        distance = (tokens - following).abs()
        distance = torch.minimum(distance, self.vocab - distance)
        return -self.sharpness * distance + self.anchor  # (B, T, V)


def test_answer_token_t_is_scored_by_the_logits_at_the_position_before_it() -> None:
    model, alphabet = _Successor(sharpness=50.0), torch.ones(7, dtype=torch.bool)
    prompts = torch.tensor([[0, 1, 2]])
    following = answer_log_probs(model, prompts, torch.tensor([[3, 4, 5]]), alphabet)
    assert torch.allclose(following, torch.zeros(1, 3), atol=1e-6)  # each is "last + 1"
    # Each token is judged against the token just before it: 3 follows the prompt's 2,
    # but 5 does not follow 3, nor 0 follow 5. (Read one position late, the scorer would
    # judge 3 against itself and find it wrong.)
    mixed = answer_log_probs(model, prompts, torch.tensor([[3, 5, 0]]), alphabet)
    assert mixed[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert (mixed[0, 1:] < -10).all()


def test_sampling_draws_from_the_probabilities_answer_log_probs_reports() -> None:
    # Step by step: the distribution after each sampled prefix, read position by position
    # at temperature 0.7 within an alphabet without tokens 0 and 5, equals exp of the
    # one-pass answer_log_probs of the sampled answer.
    model, temperature = _Successor(), 0.7
    alphabet = torch.tensor([False, True, True, True, True, False, True])
    prompts = torch.tensor([[2, 4], [6, 1], [3, 3]])
    generator = torch.Generator().manual_seed(0)
    answers = generate_answers(
        model, prompts, 4, alphabet, end_id=99, pad_id=0, temperature=temperature,
        generator=generator,
    )  # fmt: skip
    assert set(answers.flatten().tolist()) <= {1, 2, 3, 4, 6}
    one_pass = answer_log_probs(model, prompts, answers, alphabet, temperature).exp()
    for t in range(answers.shape[1]):
        prefix = torch.cat([prompts, answers[:, :t]], dim=1)
        logits = model(prefix)[:, -1] / temperature
        logits[:, ~alphabet] = -float("inf")
        expected = torch.softmax(logits, dim=-1).gather(1, answers[:, t : t + 1]).squeeze(1)
        assert torch.allclose(one_pass[:, t], expected, atol=1e-6)
    # And the sampler's frequencies follow those probabilities (first token, 4000 draws).
    many = generate_answers(
        model, torch.tensor([[2]]).expand(4000, 1), 1, alphabet, 99, 0, temperature,
        torch.Generator().manual_seed(1),
    )[:, 0]  # fmt: skip
    probs = answer_log_probs(
        model, torch.tensor([[2]] * 7), torch.arange(7)[:, None], alphabet, temperature
    ).exp()[:, 0]
    frequencies = torch.bincount(many, minlength=7).float() / 4000
    assert torch.allclose(frequencies, probs, atol=0.03)
    assert frequencies[0] == 0 and frequencies[5] == 0


def test_with_a_constant_reward_the_kl_term_alone_pulls_the_policy_to_the_reference() -> None:
    # Equal rewards give zero advantages: only β·KL(π‖π_ref) is left to follow. With β > 0
    # the policy moves toward the reference; with β = 0 it does not move at all.
    reference = _Constant().eval().requires_grad_(False)

    def train(beta: float) -> torch.Tensor:
        model = _Constant()
        with torch.no_grad():
            model.weight.copy_(torch.tensor([2.0, 0.0, -1.0, 0.0, 1.0]))
        objective = GRPOObjective(
            prompts=torch.zeros(2, 1, dtype=torch.long),
            reward=lambda rows, answers: torch.ones(len(rows)),
            settings=GRPOSettings(
                group_size=4, clip=0.2, beta=beta, temperature=1.0, answer_length=3
            ),
            alphabet=torch.ones(5, dtype=torch.bool),
            end_id=4,
            pad_id=0,
            reference=reference,
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        rng = torch.Generator().manual_seed(0)
        for _ in range(60):
            loss = objective(model, PromptSampler(2, 2)(rng, torch.device("cpu")))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return torch.softmax(model.weight.detach(), dim=0)

    target = torch.softmax(reference.weight, dim=0)
    start = torch.softmax(torch.tensor([2.0, 0.0, -1.0, 0.0, 1.0]), dim=0)
    distance_before = (start - target).abs().sum()
    assert (train(0.5) - target).abs().sum() < distance_before / 3
    assert torch.allclose(train(0.0), start)
