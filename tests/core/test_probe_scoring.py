"""The probes' formulas on small hand-computed cases, the sign convention included:
a higher score always means "more likely a member", and members are the positives."""

import doctest
import math

import pytest
import torch

import core.probes.membership
import core.probes.scoring
from core.catalog import get_probe, parse_probe_spec
from core.probes.exposure import exposure_from_rank, fit_skew_normal, ranks, skew_normal_cdf
from core.probes.membership import matched_pairs
from core.probes.min_k_pp_mia import standardised_log_probs
from core.probes.registry import ProbeInputs
from core.probes.scoring import (
    MIN_NON_MEMBERS,
    bootstrap_auc_interval,
    membership_metrics,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)
from core.probes.sequences import TokenStatistics, lowest_fraction_mean, token_statistics
from core.probes.target import IGNORE_INDEX, ProbeTarget, SequenceSet
from core.reporter import InMemoryReporter


def test_the_scoring_module_examples_hold() -> None:
    assert doctest.testmod(core.probes.scoring).failed == 0


def test_auc_counts_pairs_where_the_member_scores_higher_and_half_the_ties() -> None:
    # Pairs (m, n): (3,1) (3,2) (2,1) win, (2,2) ties → (3 + 0.5) / 4.
    assert roc_auc(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 2.0])) == 0.875


def test_auc_is_one_when_members_score_higher_and_zero_when_lower() -> None:
    high, low = torch.tensor([5.0, 6.0, 7.0]), torch.tensor([1.0, 2.0])
    assert roc_auc(high, low) == 1.0
    assert roc_auc(low, high) == 0.0  # the sign matters: a reversed score is a useless attack


def test_auc_from_ranks_equals_the_pairwise_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    members = torch.randint(0, 20, (300,), generator=generator).double()  # many ties
    non_members = torch.randint(0, 20, (200,), generator=generator).double() - 2
    pairwise = (members[:, None] > non_members).double().mean() + 0.5 * (
        members[:, None] == non_members
    ).double().mean()
    assert roc_auc(members, non_members) == pytest.approx(float(pairwise), abs=1e-12)


def test_roc_curve_moves_tied_scores_together() -> None:
    fpr, tpr = roc_curve(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 2.0]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_tpr_at_low_fpr_is_labelled_zero_percent_when_negatives_are_too_few() -> None:
    members = torch.tensor([10.0, 9.0, 1.0, 0.5])
    non_members = torch.tensor([2.0, 0.0, -1.0, -2.0])  # 4 negatives cannot resolve 1%
    result = tpr_at_fpr(members, non_members, 0.01)
    assert result == {"fpr": 0.01, "label": "TPR@0%FPR", "tpr": 0.5, "resolved": False}


def test_tpr_at_one_percent_fpr_with_enough_negatives() -> None:
    non_members = torch.arange(100).double()  # scores 0 … 99
    members = torch.tensor([99.5, 98.5, 50.0, 10.0])
    result = tpr_at_fpr(members, non_members, 0.01)
    # Threshold just above 98.5 admits 1 of 100 negatives (score 99): 1% FPR, TPR 2/4.
    assert result["resolved"] and result["label"] == "TPR@1%FPR"
    assert result["tpr"] == 0.5


def test_bootstrap_interval_brackets_the_auc_and_is_reproducible() -> None:
    generator = torch.Generator().manual_seed(1)
    members = torch.randn(200, generator=generator) + 1.0
    non_members = torch.randn(200, generator=generator)
    low, high = bootstrap_auc_interval(members, non_members, rounds=300, seed=3)
    assert low < roc_auc(members, non_members) < high
    assert (low, high) == bootstrap_auc_interval(members, non_members, rounds=300, seed=3)


def test_the_bootstrap_interval_follows_the_number_of_rounds() -> None:
    generator = torch.Generator().manual_seed(1)
    members = torch.randn(200, generator=generator) + 0.3
    non_members = torch.randn(200, generator=generator)
    few = membership_metrics(members, non_members, seed=3, bootstrap_rounds=20)
    many = membership_metrics(members, non_members, seed=3, bootstrap_rounds=2000)
    assert (few["bootstrap_rounds"], many["bootstrap_rounds"]) == (20, 2000)
    assert few["auc_ci95"] == list(bootstrap_auc_interval(members, non_members, 20, seed=3))
    assert many["auc_ci95"] == list(bootstrap_auc_interval(members, non_members, 2000, seed=3))
    assert few["auc_ci95"] != many["auc_ci95"]


@pytest.mark.parametrize(
    ("n_non_members", "underpowered"),
    [(MIN_NON_MEMBERS - 1, True), (MIN_NON_MEMBERS, False), (4, True)],
)
def test_a_split_with_fewer_than_200_non_members_is_scored_but_flagged_underpowered(
    n_non_members: int, underpowered: bool
) -> None:
    generator = torch.Generator().manual_seed(2)
    members = torch.randn(n_non_members, generator=generator) + 1.0
    non_members = torch.randn(n_non_members, generator=generator)
    metrics = membership_metrics(members, non_members, seed=0, bootstrap_rounds=100)
    assert metrics["underpowered"] is underpowered
    assert metrics["n_non_members"] == n_non_members
    low, high = metrics["auc_ci95"]
    assert low <= metrics["auc"] <= high  # the interval is there to read it by


def test_membership_metrics_store_the_roc_as_data() -> None:
    metrics = membership_metrics(
        torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]), seed=0, bootstrap_rounds=50
    )
    assert metrics["auc"] == 1.0
    assert metrics["roc"]["fpr"][0] == 0.0 and metrics["roc"]["tpr"][-1] == 1.0
    assert [t["label"] for t in metrics["tpr_at_low_fpr"]] == ["TPR@0%FPR", "TPR@0%FPR"]


class FixedLogits(torch.nn.Module):
    """Returns the same next-token logits at every position: p = softmax(logits)."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*idx.shape, -1)


def test_token_statistics_match_a_hand_computed_distribution() -> None:
    # p = (1/2, 1/4, 1/4) over 3 tokens; the item is 0 → 1 → 0: targets (1, 0).
    model = FixedLogits([math.log(2), 0.0, 0.0])
    items = SequenceSet.from_token_lists([[0, 1, 0]], [0], ["x"])
    stats = token_statistics(model, items)
    assert stats.log_prob[0].tolist() == pytest.approx([math.log(0.25), math.log(0.5)])
    assert stats.mean_nll().tolist() == pytest.approx([-(math.log(0.25) + math.log(0.5)) / 2])
    assert stats.total_nll_bits().tolist() == pytest.approx([3.0])  # 2 bits + 1 bit
    mu = 0.5 * math.log(0.5) + 0.5 * math.log(0.25)
    second = 0.5 * math.log(0.5) ** 2 + 0.5 * math.log(0.25) ** 2
    assert stats.mean_log_prob[0, 0].item() == pytest.approx(mu)
    assert stats.std_log_prob[0, 0].item() == pytest.approx(math.sqrt(second - mu**2))
    assert stats.is_argmax[0].tolist() == [False, True]
    assert stats.exact().tolist() == [False]


def test_unscored_positions_do_not_count() -> None:
    items = SequenceSet.from_token_lists([[0, 1, 0], [0, 0]], [2, 0], ["a", "b"])
    assert items.targets.tolist() == [[IGNORE_INDEX, 0], [0, IGNORE_INDEX]]
    stats = token_statistics(FixedLogits([math.log(2), 0.0, 0.0]), items)
    assert stats.mean_nll().tolist() == pytest.approx([-math.log(0.5), -math.log(0.5)])
    assert stats.exact().tolist() == [True, True]


def test_min_k_averages_the_lowest_fraction_of_scored_tokens() -> None:
    values = torch.tensor([[-1.0, -4.0, -2.0, -3.0, 99.0]])
    scored = torch.tensor([[True, True, True, True, False]])
    assert lowest_fraction_mean(values, scored, 0.5).tolist() == [-3.5]  # mean(−4, −3)
    assert lowest_fraction_mean(values, scored, 0.1).tolist() == [-4.0]  # at least one token
    assert lowest_fraction_mean(values, scored, 1.0).tolist() == [-2.5]


def test_min_k_plus_plus_standardises_by_the_models_own_distribution() -> None:
    stats = TokenStatistics(
        log_prob=torch.tensor([[-1.0, -2.0]], dtype=torch.float64),
        is_argmax=torch.tensor([[True, False]]),
        mean_log_prob=torch.tensor([[-1.5, -1.0]], dtype=torch.float64),
        std_log_prob=torch.tensor([[0.5, 0.0]], dtype=torch.float64),
        scored=torch.tensor([[True, True]]),
        log_odds=torch.zeros(1, 2, dtype=torch.float64),
    )
    # (−1 − (−1.5)) / 0.5 = 1; a zero-spread position gives 0 rather than ±∞.
    assert standardised_log_probs(stats).tolist() == [[1.0, 0.0]]


def test_exposure_from_an_exact_rank() -> None:
    # Among 1024 candidates, a canary ranked first has log2(1024) = 10 bits of exposure.
    assert exposure_from_rank(torch.tensor([1.0, 2.0, 1024.0]), 1024).tolist() == [10, 9, 0]
    secret = torch.tensor([1.0, 5.0])
    candidates = torch.tensor([1.0, 2.0, 3.0, 5.0])
    assert ranks(secret, candidates, 4, exhaustive=True).tolist() == [1.0, 4.0]
    # Sampled: 2 of 4 samples below ℓ = 2.5 in a space of 100 → rank 1 + 100·½ = 51.
    assert ranks(torch.tensor([2.5]), candidates, 100, exhaustive=False).tolist() == [51.0]


def test_skew_normal_fit_recovers_a_normal_and_its_cdf() -> None:
    samples = torch.randn(20_000, generator=torch.Generator().manual_seed(0)) * 2 + 10
    xi, omega, alpha = fit_skew_normal(samples)
    cdf = skew_normal_cdf(torch.tensor([10.0 - 2 * 1.96, 10.0, 14.0]), xi, omega, alpha)
    assert cdf.tolist() == pytest.approx([0.025, 0.5, 0.977], abs=0.02)


# ------------------------------------------------ the membership probes, end to end


def random_items(count: int, seed: int) -> SequenceSet:
    rows = torch.randint(0, 3, (count, 8), generator=torch.Generator().manual_seed(seed))
    texts = ["".join(map(str, row)) for row in rows.tolist()]
    return SequenceSet.from_token_lists(rows.tolist(), [0] * count, texts)


def membership_target(n_members: int, n_non_members: int) -> ProbeTarget:
    """Random items under a model that prefers token 0: scores differ, members are random."""
    model = FixedLogits([1.0, 0.0, 0.0])
    members, non_members = random_items(n_members, 1), random_items(n_non_members, 2)
    return ProbeTarget(model, 3, 3, "ids<3>", members, non_members=non_members)


def test_a_membership_probe_resamples_as_often_as_its_spec_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds_used: list[int] = []

    def counting_interval(
        members: torch.Tensor, non_members: torch.Tensor, rounds: int, seed: int
    ) -> tuple[float, float]:
        rounds_used.append(rounds)
        return bootstrap_auc_interval(members, non_members, rounds, seed=seed)

    monkeypatch.setattr(core.probes.scoring, "bootstrap_auc_interval", counting_interval)
    target = membership_target(60, 60)
    reports = {}
    for rounds in (30, 300):
        spec = parse_probe_spec({"kind": "loss_mia", "bootstrap_rounds": rounds})
        reports[rounds] = get_probe("loss_mia").run(
            spec, ProbeInputs(target, {}), InMemoryReporter()
        )
    assert rounds_used == [30, 30, 300, 300]  # the attack and the blind baseline alike
    for rounds, report in reports.items():
        assert report["attack"]["bootstrap_rounds"] == rounds
        assert report["blind_baseline"]["bootstrap_rounds"] == rounds
    assert reports[30]["attack"]["auc"] == reports[300]["attack"]["auc"]
    assert reports[30]["attack"]["auc_ci95"] != reports[300]["attack"]["auc_ci95"]


def test_a_membership_probe_on_a_small_split_reports_it_underpowered_rather_than_refusing() -> None:
    spec = parse_probe_spec({"kind": "loss_mia", "bootstrap_rounds": 50})
    small = get_probe("loss_mia").run(
        spec, ProbeInputs(membership_target(300, 40), {}), InMemoryReporter()
    )
    for metrics in (small["attack"], small["blind_baseline"]):
        assert metrics["underpowered"] and metrics["n_non_members"] == 40
        assert len(metrics["auc_ci95"]) == 2
    large = get_probe("loss_mia").run(
        spec, ProbeInputs(membership_target(250, 250), {}), InMemoryReporter()
    )
    assert not large["attack"]["underpowered"] and large["attack"]["n_non_members"] == 250


def test_matched_pairs_take_the_smaller_side_of_each_stratum_in_any_prefix() -> None:
    assert doctest.testmod(core.probes.membership).failed == 0
    members, others = ["a"] * 5 + ["b"] * 2, ["b"] * 3 + ["a"] + ["c"]
    pairs = matched_pairs(members, others, seed=1)
    assert sorted(members[m] for m, _ in pairs) == ["a", "b", "b"]  # c has no member
    assert all(members[m] == others[n] for m, n in pairs)
    assert len({m for m, _ in pairs}) == len({n for _, n in pairs}) == 3  # no row twice
    assert matched_pairs(members, others, seed=1) == pairs  # seeded
