"""LiRA and counterfactual memorization: the inclusion matrix, the formulas against hand
computations, a planted case where LiRA must beat LOSS, controls at chance, and planted
duplicates found by the counterfactual score on real shadow models."""

from __future__ import annotations

import doctest
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch

from core import shadows
from core.built import Built, MembershipSplit
from core.catalog import all_kinds
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.probes import counterfactual, lira, sequences
from core.probes.counterfactual import CounterfactualSpec, counterfactual_scores
from core.probes.counterfactual import run as run_counterfactual
from core.probes.lira import LiraSpec, fit_in_out, offline_scores, online_scores
from core.probes.lira import run as run_lira
from core.probes.registry import ProbeInputs
from core.probes.scoring import bootstrap_auc_interval, roc_auc, tpr_at_fpr
from core.probes.sequences import token_statistics
from core.probes.target import IGNORE_INDEX, SequenceSet
from core.reporter import InMemoryReporter
from core.shadows import PoolSubset, inclusion_matrix, train_on_pool_subset
from core.training.fit import train_built


def test_every_item_is_in_for_exactly_half_of_the_shadows_and_the_draw_is_seeded() -> None:
    keep = inclusion_matrix(seed=5, count=8, pool_size=300)
    assert keep.shape == (8, 300)
    assert keep.sum(0).eq(4).all()
    assert torch.equal(keep, inclusion_matrix(seed=5, count=8, pool_size=300))
    assert not torch.equal(keep, inclusion_matrix(seed=6, count=8, pool_size=300))
    # Rows are random halves, not a fixed pattern: every shadow trains on about half.
    assert keep.sum(1).double().sub(150).abs().max() < 40


def test_a_pool_subset_index_must_be_below_its_count() -> None:
    with pytest.raises(ValueError, match="index"):
        PoolSubset(seed=0, count=4, index=4)


def test_the_in_out_fit_and_both_scores_match_a_hand_computation() -> None:
    # One item, four shadows: IN values 1 and 3 (μ 2, sample σ √2), OUT −1 and 1 (μ 0, √2).
    values = torch.tensor([[1.0], [3.0], [-1.0], [1.0]])
    keep = torch.tensor([[True], [True], [False], [False]])
    fit = fit_in_out(values, keep)
    assert fit.std_in.item() == pytest.approx(math.sqrt(2))
    target = torch.tensor([2.5])
    # log N(2.5; 2, 2) − log N(2.5; 0, 2) = −0.25/4 + 6.25/4 = 1.5 (the σ terms cancel)
    assert online_scores(target, fit).item() == pytest.approx(1.5)
    # log Φ((2.5 − 0) / √2)
    phi = 0.5 * (1 + math.erf(2.5 / math.sqrt(2) / math.sqrt(2)))
    assert offline_scores(target, fit).item() == pytest.approx(math.log(phi))


def test_fixed_variance_pools_each_sides_within_item_spread_over_items() -> None:
    # Item 0: IN {0, 2}, OUT {0, 0}; item 1: IN {1, 1}, OUT {−3, 3}.
    values = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, -3.0], [0.0, 3.0]])
    keep = torch.tensor([[True, True], [True, True], [False, False], [False, False]])
    fixed = fit_in_out(values, keep).with_fixed_variance()
    # IN: (2 + 0) / (1 + 1) = 1 → σ_in 1; OUT: (0 + 18) / (1 + 1) = 9 → σ_out 3.
    assert fixed.std_in.tolist() == pytest.approx([1.0, 1.0])
    assert fixed.std_out.tolist() == pytest.approx([3.0, 3.0])
    target = torch.tensor([1.5, 0.0])  # μ_in = 1 and μ_out = 0 for both items

    def expected(phi: float) -> float:
        return -0.5 * (phi - 1) ** 2 + 0.5 * (phi / 3) ** 2 + math.log(3)

    assert online_scores(target, fixed).tolist() == pytest.approx([expected(1.5), expected(0.0)])


def test_lira_needs_four_shadows_and_headlines_the_global_variance_below_64() -> None:
    with pytest.raises(ValueError, match="4 shadows"):
        LiraSpec(shadows=3)
    assert LiraSpec(shadows=16).headline == "online_fixed_variance"
    assert LiraSpec(shadows=64).headline == "online"
    assert LiraSpec(shadows=16, fixed_variance=False).headline == "online"


def test_the_log_odds_of_a_confident_token_stay_exact() -> None:
    # Margin 40 over two other tokens: log(p / (1 − p)) = 40 − log 2, though 1 − p < 1e-17.
    logits = torch.tensor([[[40.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    model = _FixedLogits(logits)
    items = SequenceSet(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 1]]), ("x",))
    log_odds = token_statistics(model, items).log_odds
    assert log_odds[0].tolist() == pytest.approx([40 - math.log(2), -math.log(2)])


class _FixedLogits(torch.nn.Module):
    """A model that answers the same logits (1, T, V) whatever it is given."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.logits = logits

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(inputs.shape[0], -1, -1)


@pytest.mark.parametrize("module", [shadows, lira, counterfactual, sequences])
def test_the_doctests_of_the_shadow_modules_hold(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0


def _planted_population(
    generator: torch.Generator, shadows: int, members: int, non_members: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-item φ as many models would give it: a difficulty d(x) of the item itself, plus
    `lift` where the model trained on it, plus noise. A fifth of the items are easy (high
    d: low loss without being members), so a global threshold admits easy non-members
    first. (shadow φ (M, N), keep (M, N), target φ (N,), target membership (N,))."""
    count = members + non_members
    easy = torch.rand(count, generator=generator) < 0.2
    difficulty = torch.where(
        easy, torch.full((count,), 3.0), torch.randn(count, generator=generator)
    )
    lift, noise = 1.5, 0.3
    keep = inclusion_matrix(seed=1, count=shadows, pool_size=count)
    shadow_phi = difficulty + lift * keep + noise * torch.randn(shadows, count, generator=generator)
    is_member = torch.arange(count) < members
    target_phi = difficulty + lift * is_member + noise * torch.randn(count, generator=generator)
    return shadow_phi, keep, target_phi, is_member


def test_lira_beats_loss_at_low_fpr_where_some_non_members_are_easy() -> None:
    generator = torch.Generator().manual_seed(0)
    shadow_phi, keep, target_phi, is_member = _planted_population(generator, 16, 1000, 1200)
    lira = online_scores(target_phi, fit_in_out(shadow_phi, keep))
    lira_tpr = tpr_at_fpr(lira[is_member], lira[~is_member], 0.01)
    loss_tpr = tpr_at_fpr(target_phi[is_member], target_phi[~is_member], 0.01)
    assert lira_tpr["resolved"] and loss_tpr["resolved"]
    assert lira_tpr["tpr"] - loss_tpr["tpr"] >= 0.2, (lira_tpr, loss_tpr)
    offline = offline_scores(target_phi, fit_in_out(shadow_phi, keep))
    offline_tpr = tpr_at_fpr(offline[is_member], offline[~is_member], 0.01)
    assert offline_tpr["tpr"] - loss_tpr["tpr"] >= 0.2, (offline_tpr, loss_tpr)


def test_lira_sits_at_chance_on_a_target_that_trained_on_nothing() -> None:
    generator = torch.Generator().manual_seed(1)
    shadow_phi, keep, target_phi, is_member = _planted_population(generator, 16, 1000, 1200)
    untrained = target_phi - 1.5 * is_member  # the same items, the lift of training removed
    scores = online_scores(untrained, fit_in_out(shadow_phi, keep))
    low, high = bootstrap_auc_interval(scores[is_member], scores[~is_member], rounds=300)
    assert low < 0.5 < high
    assert abs(roc_auc(scores[is_member], scores[~is_member]) - 0.5) < 0.04


def test_counterfactual_scores_match_a_hand_computation() -> None:
    # Item 0: IN accuracies 1, 0.5 (mean 0.75), OUT 0, 0.5 (mean 0.25) → 0.5.
    values = torch.tensor([[1.0], [0.5], [0.0], [0.5]])
    keep = torch.tensor([[True], [True], [False], [False]])
    assert counterfactual_scores(values, keep).tolist() == pytest.approx([0.5])


# A pool of random token strings: nothing about one predicts another, so what a model
# gets right on an item it saw is memorization. Planted items occur PLANTED_REPEATS
# times in any training set that holds them.
POOL_ITEMS, PLANTED, PLANTED_REPEATS, VOCAB, LENGTH = 96, 6, 12, 24, 10


def _random_strings(generator: torch.Generator, count: int) -> SequenceSet:
    tokens = torch.randint(1, VOCAB, (count, LENGTH + 1), generator=generator)
    targets = tokens[:, 1:].clone()
    targets[:, :3] = IGNORE_INDEX  # the first tokens name the item; the rest is recalled
    texts = tuple(" ".join(map(str, row)) for row in tokens.tolist())
    return SequenceSet(tokens[:, :-1], targets, texts)


def _planted_built(spec_model: SequenceModelSpec) -> Built:
    generator = torch.Generator().manual_seed(7)
    members = _random_strings(generator, POOL_ITEMS // 2)
    repeats = torch.ones(len(members), dtype=torch.long)
    repeats[:PLANTED] = PLANTED_REPEATS
    members = SequenceSet(members.inputs, members.targets, members.texts, repeats)
    non_members = _random_strings(generator, POOL_ITEMS // 2)

    def make_model() -> SequenceModel:
        torch.manual_seed(0)
        return SequenceModel(spec_model, VOCAB, LENGTH)

    return Built(
        make_model=make_model,
        training_items=members,
        sample_batch=lambda rng, device: (members.inputs, members.targets),
        evaluate=None,
        membership=MembershipSplit(members, non_members, rule="planted test pool"),
        vocab_size=VOCAB,
        vocabulary="ids",
        max_length=LENGTH,
    )


def test_counterfactual_memorization_is_highest_for_the_planted_duplicates(
    tmp_path: Path,
) -> None:
    spec = all_kinds()["associative_recall"].spec_class.model_validate(
        {
            "kind": "associative_recall",
            "model": {"n_layer": 1, "width": 16},
            "train": {"steps": 150, "batch_size": 16, "lr": 3e-3, "eval_every": 150},
        }
    )
    base = _planted_built(spec.model)  # type: ignore[attr-defined]
    shadow_targets = []
    for index in range(8):
        subset = PoolSubset(seed=2, count=8, index=index)
        built = train_on_pool_subset(base, subset, spec.train.batch_size)  # type: ignore[attr-defined]
        reporter = InMemoryReporter(directory=tmp_path / str(index))
        trained = train_built(spec, built, reporter)  # type: ignore[arg-type]
        shadow_targets.append(built.probe_target(trained.model.eval()))
    target = base.probe_target(base.make_model().eval())
    result = run_counterfactual(
        CounterfactualSpec(shadows=8, pool_seed=2, top_k=PLANTED),
        ProbeInputs(target, {}, shadow_targets),
        InMemoryReporter(directory=tmp_path / "probe"),
    )
    planted = set(base.membership.members.texts[:PLANTED])
    top = [item["text"] for item in result["top"]]
    assert set(top) == planted, result["top"]
    assert min(item["score"] for item in result["top"]) > result["distribution"]["quantiles"]["0.9"]
    # The same shadows read an untrained target: LiRA sits at chance on it.
    attack = run_lira(
        LiraSpec(shadows=8, pool_seed=2, bootstrap_rounds=300),
        ProbeInputs(target, {}, shadow_targets),
        InMemoryReporter(directory=tmp_path / "lira"),
    )["attack"]
    low, high = attack["auc_ci95"]
    assert low < 0.5 < high, attack["auc"]
