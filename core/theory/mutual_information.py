"""Estimates of a learner's memorization I(A; X | θ) from its outputs at one fixed θ, for
learners with no closed form, and for checking those that have one.

Every estimator reads a learner run on M fresh datasets X drawn from P_θ (the inner
resamples) and R times on each dataset (reruns of its internal noise on the same X):
outputs of shape (M, R, d), streamed chunk by chunk of datasets into an accumulator that
keeps only the statistics the estimate needs (d×d scatter matrices, or per-coordinate
counts), never the outputs. Then

    I(A; X | θ) = H(A | θ) − H(A | X, θ),

the first entropy from the spread over datasets, the second from the spread over reruns.
The caller conditions on θ by drawing every dataset from the same θ; averaging the
estimate over θ draws (replicates) gives mem_n = E_θ I(A; X | θ=θ).

**Gaussian fit** (continuous outputs; shared/research/seed-details.md §6, method 1):
I ≈ ½ log det Σ_A − ½ log det Σ_{A|X}. Σ_A is the sample covariance over the M datasets
of one rerun each (M − 1 degrees of freedom; its log det averaged over the R choices of
rerun); Σ_{A|X} the within-dataset covariance pooled over all reruns (M(R − 1) degrees of
freedom), i.e. the conditional covariance taken as the same for every X. Each
log-determinant is corrected for its Wishart bias,
E log det S = log det Σ + Σ_{i=1..d} ψ((ν − i + 1)/2) + d·log(2/ν), so that the estimate
is unbiased when A is Gaussian given θ with a conditional covariance that does not depend
on X (the Gaussian mechanism). Otherwise it is an estimate, neither an upper nor a lower
bound: a Gaussian has the most entropy for its covariance, which overstates H(A | θ) and
H(A | X) alike. It needs M > d (and M ≫ d to be precise: the standard error of ½ log det
is about ½·√(2·ln(ν/(ν − d))) nats).

**Linear-decoder lower bound** (Barber–Agakov with a Gaussian decoder): X̄ is a function
of X, so I(A; X | θ) ≥ I(A; X̄ | θ) = h(X̄ | θ) − h(X̄ | A, θ), and decoding X̄ from A by
the best linear predictor, with a Gaussian of its residual covariance, bounds the second
entropy from above: h(X̄ | A) ≤ ½ log det(2πe·Σ_{X̄|A}). With X̄ Gaussian given θ,
h(X̄ | θ) = ½ log det(2πe·Σ_X̄), so

    I(A; X | θ) ≥ ½ log det Σ_X̄ − ½ log det Σ_{X̄|A},

for any learner, with equality when (X̄, A) are jointly Gaussian and A depends on X only
through X̄ (the Gaussian mechanism, and noisy gradient descent unclipped). It is computed
jointly over the d coordinates (the full d×d predictor and the log det of the d×d
residual), per rerun index r over the M (dataset, rerun r) pairs and averaged over r:
Σ_X̄ from the M sample means (M − 1 degrees of freedom), Σ_{X̄|A} from the residual
scatter S_X̄X̄ − S_X̄A·S_AA⁻¹·S_AX̄ (M − 1 − d degrees of freedom), each Wishart-corrected
as above. The bound holds for the population quantities; the estimate is unbiased for the
bound when (X̄, A) are jointly Gaussian and carries its own sampling error (the
replicates' interval). It needs M > 2d + 1.

>>> g = torch.Generator().manual_seed(0)
>>> means = torch.randn(4000, 1, 2, generator=g, dtype=torch.float64)   # Var E[A|X] = 1
>>> outputs = means + torch.randn(4000, 3, 2, generator=g, dtype=torch.float64)  # + noise 1
>>> round(gaussian_fit_bits(outputs), 1)  # exact: (2/2)·log₂(1 + 1/1) = 1 bit
1.0
>>> fit = GaussianFitAccumulator(d=2, reruns=3)
>>> fit.add(outputs[:1500], sample_means=means[:1500, 0])  # here A = X̄ + noise, X̄ = means
>>> fit.add(outputs[1500:], sample_means=means[1500:, 0])
>>> round(fit.fit_bits(), 1), round(fit.lower_bound_bits(), 1)  # tight: jointly Gaussian
(1.0, 1.0)

**Plug-in with Miller–Madow** (discrete outputs, per coordinate; method 2): for each
coordinate j, Ĥ(A_j | θ) over the M datasets (one rerun each, averaged over the R choices
of rerun) and Ĥ(A_j | X) over the R reruns of each dataset, averaged over datasets; each
plug-in entropy corrected by (m̂ − 1)/(2N) nats (m̂ values seen in N draws). Summing
over coordinates is exact only for a learner acting coordinate by coordinate on
coordinates independent given θ (majority vote with randomized response), since then
I(A; X | θ) = Σ_j I(A_j; X_{·j} | θ). The plug-in is biased when a coordinate takes
many values or N is small: use it only for outputs with a few values and R ≫ that number.

>>> g = torch.Generator().manual_seed(0)
>>> copy = torch.randint(0, 2, (2000, 1, 1), generator=g).expand(2000, 16, 1)  # A = X
>>> round(plug_in_bits(copy), 2)  # a fair bit, copied: 1 bit
1.0
>>> coin = torch.randint(0, 2, (2000, 16, 1), generator=g)  # A a fresh coin, A ⊥ X
>>> round(plug_in_bits(coin), 2)
0.0
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def wishart_corrected_log_det(scatter: torch.Tensor, dof: int) -> float:
    """An unbiased estimate of log det Σ from a scatter matrix Σᵢ(aᵢ − ā)(aᵢ − ā)ᵀ with
    `dof` degrees of freedom (Wishart with scale Σ), in nats.

    scatter: (d, d), float64, positive definite.
    """
    d = scatter.shape[0]
    if dof <= d:
        raise ValueError(f"{dof} degrees of freedom cannot estimate a {d}×{d} covariance")
    sign, log_det = torch.linalg.slogdet(scatter / dof)
    if sign.item() <= 0:
        raise ValueError("the sample covariance is singular: add noise to the learner's output")
    halves = (dof - torch.arange(d, dtype=torch.float64)) / 2  # (ν − i + 1)/2, i = 1..d
    bias = float(torch.special.digamma(halves).sum()) + d * math.log(2.0 / dof)
    return float(log_det) - bias


class GaussianFitAccumulator:
    """Running sums for the Gaussian fit and the linear-decoder lower bound, fed outputs
    (C, R, d) chunk by chunk; keeps (2R + 2) d×d matrices, never the outputs.

    Sums are taken around `shift` (d,), e.g. θ, near which the outputs lie, so that the
    raw second moments do not cancel catastrophically when centred at the end.
    """

    def __init__(self, d: int, reruns: int, shift: torch.Tensor | None = None) -> None:
        if reruns < 2:
            raise ValueError("the conditional covariance needs at least two reruns per dataset")
        self.d, self.reruns = d, reruns
        self.shift = torch.zeros(d, dtype=torch.float64) if shift is None else shift
        self.datasets = 0
        self.output_sum = torch.zeros(reruns, d, dtype=torch.float64)  # Σ_m a_mr
        self.output_scatter = torch.zeros(reruns, d, d, dtype=torch.float64)  # Σ_m a_mr a_mrᵀ
        self.within_scatter = torch.zeros(d, d, dtype=torch.float64)  # around each X's mean
        self.mean_sum = torch.zeros(d, dtype=torch.float64)  # Σ_m x̄_m
        self.mean_scatter = torch.zeros(d, d, dtype=torch.float64)  # Σ_m x̄_m x̄_mᵀ
        self.cross_scatter = torch.zeros(reruns, d, d, dtype=torch.float64)  # Σ_m x̄_m a_mrᵀ
        self.has_sample_means = True

    def add(self, outputs: torch.Tensor, sample_means: torch.Tensor | None = None) -> None:
        """One chunk: outputs (C, R, d), and the datasets' means X̄ (C, d) for the bound."""
        outputs = outputs.to(torch.float64) - self.shift
        by_rerun = outputs.transpose(0, 1)  # (R, C, d)
        self.datasets += outputs.shape[0]
        self.output_sum += by_rerun.sum(dim=1)
        scatter = by_rerun.transpose(1, 2) @ by_rerun  # (R, d, d)
        self.output_scatter += scatter
        # Around each dataset's own mean ā: Σ_r a_r a_rᵀ − R·ā āᵀ, from the scatters just
        # taken (a dataset's outputs spread by the learner's noise, which is not much
        # smaller than their spread across datasets, so the difference loses little).
        dataset_means = outputs.mean(dim=1)  # (C, d)
        self.within_scatter += scatter.sum(dim=0) - self.reruns * (dataset_means.T @ dataset_means)
        if sample_means is None:
            self.has_sample_means = False
            return
        means = sample_means.to(torch.float64) - self.shift  # (C, d)
        self.mean_sum += means.sum(dim=0)
        self.mean_scatter += means.T @ means
        self.cross_scatter += means.T @ by_rerun  # (R, d, d)

    def fit_bits(self) -> float:
        """½ log det Σ_A − ½ log det Σ_{A|X} in bits."""
        marginal = math.fsum(
            wishart_corrected_log_det(self._output_scatter(r), self.datasets - 1)
            for r in range(self.reruns)
        )
        conditional = wishart_corrected_log_det(
            self.within_scatter, self.datasets * (self.reruns - 1)
        )
        return 0.5 * (marginal / self.reruns - conditional) / LN2

    def lower_bound_bits(self) -> float:
        """½ log det Σ_X̄ − ½ log det Σ_{X̄|A} in bits: the linear decoder's lower bound."""
        if not self.has_sample_means:
            raise ValueError("the lower bound needs every chunk's sample means")
        count = self.datasets
        mean = self.mean_sum / count
        mean_scatter = self.mean_scatter - count * torch.outer(mean, mean)
        marginal = wishart_corrected_log_det(mean_scatter, count - 1)
        residual = 0.0
        for r in range(self.reruns):
            output_mean = self.output_sum[r] / count
            cross = self.cross_scatter[r] - count * torch.outer(mean, output_mean)  # (d, d)
            # S_X̄X̄ − S_X̄A·S_AA⁻¹·S_AX̄, with solve (never an inverse).
            explained = cross @ torch.linalg.solve(self._output_scatter(r), cross.T)
            scatter = mean_scatter - explained
            residual += wishart_corrected_log_det(0.5 * (scatter + scatter.T), count - 1 - self.d)
        return 0.5 * (marginal - residual / self.reruns) / LN2

    def _output_scatter(self, rerun: int) -> torch.Tensor:
        """Σ_m (a_mr − ā_r)(a_mr − ā_r)ᵀ for rerun index r: (d, d)."""
        mean = self.output_sum[rerun] / self.datasets
        return self.output_scatter[rerun] - self.datasets * torch.outer(mean, mean)


def gaussian_fit_bits(outputs: torch.Tensor) -> float:
    """½ log det Σ_A − ½ log det Σ_{A|X} in bits, from outputs (M datasets, R reruns, d)."""
    fit = GaussianFitAccumulator(outputs.shape[-1], outputs.shape[1], outputs.mean(dim=(0, 1)))
    fit.add(outputs)
    return fit.fit_bits()


class PlugInAccumulator:
    """Running counts for the per-coordinate plug-in, fed discrete outputs (C, R, d) chunk
    by chunk: for each rerun index and coordinate, how often each value occurred over the
    datasets (for Ĥ(A_j | θ)), and the running sum over datasets of each coordinate's
    Miller–Madow entropy over its R reruns (for Ĥ(A_j | X)); never the outputs.

    values: every value the outputs take (e.g. (−1, 1)); another value is an error.
    """

    def __init__(self, values: tuple[float, ...], reruns: int, d: int) -> None:
        self.values = torch.tensor(values, dtype=torch.float64)
        self.reruns = reruns
        self.datasets = 0
        self.value_counts = torch.zeros(len(values), reruns, d, dtype=torch.float64)
        self.conditional_sum = torch.zeros(d, dtype=torch.float64)  # Σ_m Ĥ(A_j | X_m), nats

    def add(self, outputs: torch.Tensor) -> None:
        """One chunk of outputs (C, R, d)."""
        outputs = outputs.to(torch.float64)
        matches = outputs[None] == self.values[:, None, None, None]  # (V, C, R, d)
        if not bool(matches.any(dim=0).all()):
            raise ValueError(f"an output takes a value outside {self.values.tolist()}")
        counts = matches.to(torch.float64)
        self.datasets += outputs.shape[0]
        self.value_counts += counts.sum(dim=1)  # (V, R, d): over datasets
        per_dataset = _miller_madow_entropy_nats(counts.sum(dim=2), self.reruns)  # (C, d)
        self.conditional_sum += per_dataset.sum(dim=0)

    def bits(self) -> float:
        """Σ_j [Ĥ(A_j | θ) − Ĥ(A_j | X)] in bits, Miller–Madow corrected."""
        # Ĥ(A_j | θ) over the M datasets for each rerun index, averaged over the R indices
        # (as the Gaussian fit does); Ĥ(A_j | X) averaged over datasets.
        marginal = _miller_madow_entropy_nats(self.value_counts, self.datasets)  # (R, d)
        conditional = self.conditional_sum / self.datasets  # (d,)
        return float((marginal.mean(dim=0) - conditional).sum()) / LN2


def plug_in_bits(outputs: torch.Tensor) -> float:
    """Σ_j [Ĥ(A_j | θ) − Ĥ(A_j | X)] in bits, Miller–Madow corrected, from discrete
    outputs (M datasets, R reruns, d coordinates)."""
    values = tuple(float(v) for v in torch.unique(outputs))
    plug_in = PlugInAccumulator(values, outputs.shape[1], outputs.shape[-1])
    plug_in.add(outputs)
    return plug_in.bits()


def _miller_madow_entropy_nats(counts: torch.Tensor, draws: int) -> torch.Tensor:
    """Plug-in entropy of the frequencies counts/draws over dim 0 (V values, ...), plus
    (m̂ − 1)/(2N) for m̂ values seen in N = `draws` draws, in nats: (...)."""
    frequency = counts / draws
    present = counts > 0
    terms = torch.where(present, frequency * torch.log(frequency.clamp_min(1e-300)), 0.0)
    seen = present.to(torch.float64).sum(dim=0)
    return -terms.sum(dim=0) + (seen - 1.0) / (2.0 * draws)
