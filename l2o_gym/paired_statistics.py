"""Statistics for paired comparisons on the same instances: a Wilson interval for a win fraction,
the exact two-sided sign test and Wilcoxon's signed-rank test. Pure functions on counts or on a
1-d tensor of paired differences; no scipy needed (its results are matched in the tests).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor

EXACT_WILCOXON_MAX = 50  # up to this many non-zero differences without ties, the exact null distribution


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval (low, high) for the success probability after `successes` of `trials`."""
    _check_count("successes", successes)
    _check_count("trials", trials)
    if successes > trials:
        raise ValueError(f"successes ({successes}) must be <= trials ({trials})")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, n = successes / trials, trials
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, center - half)
    return low, 1.0 if successes == trials else min(1.0, center + half)


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of `wins` against `losses` (ties left out) under p = 1/2."""
    _check_count("wins", wins)
    _check_count("losses", losses)
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2**n)


def average_ranks(values: Tensor) -> Tensor:
    """Ranks 1 .. n of a 1-d tensor, ties sharing their average rank (float64 [n])."""
    order = values.argsort(stable=True)
    _, counts = torch.unique_consecutive(values[order], return_counts=True)
    ends = counts.cumsum(0).double()
    tied_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty(values.numel(), dtype=torch.float64, device=values.device)
    ranks[order] = tied_rank.repeat_interleave(counts)
    return ranks


def _exact_signed_rank_cdf(n: int, statistic: float) -> tuple[float, float]:
    """P(W+ <= w) and P(W+ >= w) under the null for n untied non-zero differences."""
    counts = torch.zeros(n * (n + 1) // 2 + 1, dtype=torch.float64)
    counts[0] = 1.0
    for rank in range(1, n + 1):  # subsets of {1..n} by their sum: n small (<= EXACT_WILCOXON_MAX)
        shifted = torch.zeros_like(counts)
        shifted[rank:] = counts[:-rank]
        counts = counts + shifted
    pmf = counts / counts.sum()
    w = int(round(statistic))
    return float(pmf[: w + 1].sum()), float(pmf[w:].sum())


def wilcoxon_signed_rank_p(differences: Tensor) -> float:
    """Two-sided p-value of Wilcoxon's signed-rank test that paired differences [n] are centred on 0.

    Zero (and NaN) differences are dropped; ±inf ranks highest. Exact null distribution for up to
    `EXACT_WILCOXON_MAX` differences without ties, else the normal approximation with the tie
    correction of the variance (no continuity correction) — scipy.stats.wilcoxon's defaults."""
    if not isinstance(differences, Tensor) or differences.dim() != 1:
        raise ValueError("differences must be a 1-d tensor")
    d = differences.double()
    d = d[(d != 0) & ~torch.isnan(d)]
    n = d.numel()
    if n == 0:
        return 1.0
    magnitudes = d.abs()
    ranks = average_ranks(magnitudes)
    w_plus = float(ranks[d > 0].sum())
    _, tie_counts = torch.unique(magnitudes, return_counts=True)
    if n <= EXACT_WILCOXON_MAX and bool((tie_counts == 1).all()):
        low, high = _exact_signed_rank_cdf(n, w_plus)
        return min(1.0, 2 * min(low, high))
    mean = n * (n + 1) / 4
    ties = float((tie_counts.double().pow(3) - tie_counts.double()).sum())
    variance = n * (n + 1) * (2 * n + 1) / 24 - ties / 48
    if variance <= 0:
        return 1.0
    z = (w_plus - mean) / math.sqrt(variance)
    return min(1.0, math.erfc(abs(z) / math.sqrt(2)))  # 2·Φ(−|z|) without 1 + erf's cancellation
