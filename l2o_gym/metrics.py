"""Metrics on optimization curves: pure functions, no plotting, no files.

Shapes: a curve is `values` [T + 1, B] — the value at x_0 .. x_T of B instances. The value is the
suboptimality f - f* where each instance's optimum f* [B] is known, else the objective f
(`curve_values`). A diverged instance keeps its last finite value (see `l2o_gym.unroll.Curves`);
divergence is reported on its own as a rate and makes an instance lose its win comparison.
f* is computed in the problem's dtype (float32 by default), so suboptimalities within a few float
resolutions of 0, negative ones included, mean "at the optimum".

Definitions (T = horizon, steps t = 1 .. T, means over the B instances):
- final: values[T]; `mean_final`, `median_final` summarise it.
- cost (Li & Malik's meta-loss): Σ_{t=1..T} values[t] per instance (x_0 is shared by every method,
  so it is left out); `mean_cost` averages it.
- margin of victory (Li & Malik): at step t, the best competitor's value on the same instance
  (the lowest among all *other* methods) minus ours, averaged over instances; positive = we win.
  `margin_mean` averages it over t = 1 .. T, `margin_final` is its value at t = T. Needs >= 2 methods.
- speed-up over the reference (tuned Adam, as in learned_optimization): per instance, the first
  step s such that the reference's value is <= the method's final value at every step from s up
  to T (past T: at step s itself). A reference that dips below the target and climbs back before
  T, as tuned Adam does after its first overshoot, has not reached it at the dip. speed-up = s / T;
  the reference against itself reads 1 wherever its value does not rise into step T. The
  reference may be run longer than T (a curve [T_ref + 1, B], T_ref >= T) so that speed-ups up to
  T_ref / T can be measured; if it never gets there within T_ref steps, s = inf (shown as ">T_ref";
  the speed-up is then > T_ref / T). `reference_steps_median` and `speedup_median` are medians over
  instances (inf when at least half the instances are never reached); `reference_never_rate` is
  the fraction never reached.
- win rate against the reference: fraction of instances where the method did not diverge and
  either the reference diverged or the method's final value is strictly lower.
- divergence rate: fraction of instances that diverged.
- evaluations: objective/gradient evaluations per instance up to each step (`Curves.evaluations`,
  line-search trials included); the value at a budget of E evaluations is the value at the last
  step whose count is <= E (NaN where even x_0's evaluation exceeds E, the last value where the run
  ends below E). The default budget is T + 1, what a one-evaluation-per-step rule uses in T steps.
- paired comparison of method A against B by cost on the same instances (`paired_comparison`): A
  wins an instance where it did not diverge and either B diverged or A's cost is strictly lower;
  ties (equal cost, or both diverged) count for neither. The win fraction is wins / instances with
  a 95 % Wilson interval; p-values are the two-sided exact sign test on wins against losses and
  Wilcoxon's signed-rank test on the cost differences (a diverged run's cost counts as +inf).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from l2o_gym.paired_statistics import sign_test_p, wilcoxon_signed_rank_p, wilson_interval
from l2o_gym.unroll import Curves


def curve_values(objectives: Tensor, f_star: Tensor | None) -> Tensor:
    """Suboptimality objectives - f_star [T + 1, B] where f_star [B] is known, else the objectives."""
    _check_values("objectives", objectives)
    if f_star is None:
        return objectives
    if f_star.shape != objectives.shape[1:]:
        raise ValueError(f"f_star must have shape {tuple(objectives.shape[1:])}, got {tuple(f_star.shape)}")
    return objectives - f_star.to(objectives.dtype).unsqueeze(0)


def _check_values(name: str, values: Tensor) -> None:
    if not isinstance(values, Tensor) or values.dim() != 2 or values.shape[0] < 2:
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"{name} must be a tensor [T + 1, B] with T >= 1, got {shape}")


def median(values: Tensor) -> float:
    """The median of a 1-d tensor (mean of the two middle values for an even count; inf-aware)."""
    ordered = values.flatten().double().sort().values
    n = ordered.numel()
    if n == 0:
        raise ValueError("median of an empty tensor")
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)


def cost(values: Tensor) -> Tensor:
    """Li & Malik's cost Σ_{t=1..T} values[t] of each instance: [T + 1, B] -> [B]."""
    _check_values("values", values)
    return values[1:].sum(dim=0)


def margin_of_victory(values: Mapping[str, Tensor], method: str) -> Tensor:
    """Per step t = 0 .. T: mean over instances of (best other method's value - `method`'s) -> [T + 1]."""
    if method not in values:
        raise ValueError(f"method {method!r} is not among the curves {sorted(values)}")
    if len(values) < 2:
        raise ValueError("the margin of victory needs at least two methods")
    ours = values[method]
    others = [v for name, v in values.items() if name != method]
    for name, v in values.items():
        _check_values(f"values[{name!r}]", v)
        if v.shape != ours.shape:
            raise ValueError(f"curves differ in shape: {name!r} has {tuple(v.shape)}, {method!r} {tuple(ours.shape)}")
    best_other = torch.stack(others).min(dim=0).values
    return (best_other - ours).mean(dim=1)


def settled_values(values: Tensor) -> Tensor:
    """The highest value from each step on: settled[s, i] = max_{s' >= s} values[s', i], [T + 1, B]."""
    return values.flip(0).cummax(dim=0).values.flip(0)


def steps_to_reach(reference: Tensor, targets: Tensor, horizon: int | None = None) -> Tensor:
    """First step s (0 .. T_ref) with reference[s', i] <= targets[i] for every s' in s .. max(s,
    horizon), as a float [B]; inf where never. `horizon` (default T_ref) is the compared method's T."""
    _check_values("reference", reference)
    if targets.shape != reference.shape[1:]:
        raise ValueError(f"targets must have shape {tuple(reference.shape[1:])}, got {tuple(targets.shape)}")
    last = reference.shape[0] - 1 if horizon is None else horizon
    if not 0 <= last < reference.shape[0]:
        raise ValueError(f"horizon must be in 0 .. {reference.shape[0] - 1}, got {horizon!r}")
    settled = torch.cat([settled_values(reference[: last + 1]), reference[last + 1 :]])
    reached = settled <= targets.unsqueeze(0)
    first = reached.to(torch.uint8).argmax(dim=0).to(torch.float64)
    return torch.where(reached.any(dim=0), first, torch.full_like(first, math.inf))


def speedup(reference: Tensor, values: Tensor) -> Tensor:
    """Per instance: steps the reference [T_ref + 1, B] needs to reach the final value of `values`
    [T + 1, B], over T -> [B] (inf: never within T_ref)."""
    _check_values("values", values)
    _check_values("reference", reference)
    if reference.shape[1] != values.shape[1] or reference.shape[0] < values.shape[0]:
        raise ValueError(
            f"reference {tuple(reference.shape)} must cover the instances and at least the horizon of values "
            f"{tuple(values.shape)}"
        )
    horizon = values.shape[0] - 1
    return steps_to_reach(reference, values[-1], horizon) / horizon


def win_rate(values: Tensor, reference: Tensor, diverged: Tensor, reference_diverged: Tensor) -> float:
    """Fraction of instances where the method beats the reference (see the module docstring)."""
    if values.shape != reference.shape:
        raise ValueError(f"values {tuple(values.shape)} and reference {tuple(reference.shape)} differ in shape")
    strictly_lower = values[-1] < reference[-1]
    wins = ~diverged & (reference_diverged | strictly_lower)
    return float(wins.double().mean())


def divergence_rate(diverged: Tensor) -> float:
    """Fraction of instances that diverged (diverged [B] bool)."""
    return float(diverged.double().mean())


def curve_quantiles(values: Tensor, quantiles: tuple[float, ...] = (0.25, 0.5, 0.75)) -> Tensor:
    """Quantiles over instances at each step: [T + 1, B] -> [len(quantiles), T + 1]."""
    _check_values("values", values)
    q = torch.tensor(quantiles, dtype=torch.float64)
    return torch.quantile(values.double(), q, dim=1)


def values_at_evaluations(values: Tensor, evaluations: Tensor, budgets: Tensor) -> Tensor:
    """Each instance's value after at most budgets[e] evaluations: values and evaluations [T + 1, B]
    (evaluations non-decreasing along steps), budgets [E] -> [E, B] (NaN where budget < evaluations[0])."""
    _check_values("values", values)
    if evaluations.shape != values.shape:
        raise ValueError(f"evaluations {tuple(evaluations.shape)} must match values {tuple(values.shape)}")
    counts = evaluations.T.contiguous().to(torch.float64)  # [B, T + 1]
    wanted = budgets.to(torch.float64).reshape(1, -1).expand(counts.shape[0], -1).contiguous()  # [B, E]
    last = torch.searchsorted(counts, wanted, right=True) - 1  # last step within budget, -1: none
    picked = values.T.gather(1, last.clamp_min(0)).to(torch.float64)
    return torch.where(last >= 0, picked, torch.full_like(picked, math.nan)).T


def one_evaluation_per_step(evaluations: Tensor) -> bool:
    """Whether every instance used exactly t + 1 evaluations up to step t ([T + 1, B])."""
    steps = torch.arange(1, evaluations.shape[0] + 1, device=evaluations.device).unsqueeze(1)
    return bool((evaluations == steps).all())


@dataclass(frozen=True)
class PairedComparison:
    """`method` against `against` by Li & Malik's cost on the same instances (module docstring)."""

    method: str
    against: str
    instances: int
    mean_cost: float
    against_mean_cost: float
    wins: int
    losses: int
    ties: int
    win_fraction: float
    win_low: float
    win_high: float
    sign_test_p: float
    wilcoxon_p: float

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def paired_comparison(
    method: str, values: Tensor, diverged: Tensor, against: str, against_values: Tensor, against_diverged: Tensor
) -> PairedComparison:
    """Compare two methods' values [T + 1, B] (and divergence [B]) on the same instances by cost."""
    if values.shape != against_values.shape:
        raise ValueError(f"values {tuple(values.shape)} and {against!r}'s {tuple(against_values.shape)} differ")
    ours, theirs = cost(values).double(), cost(against_values).double()
    ours = torch.where(diverged, torch.full_like(ours, math.inf), ours)
    theirs = torch.where(against_diverged, torch.full_like(theirs, math.inf), theirs)
    wins = int((~diverged & (against_diverged | (ours < theirs))).sum())
    losses = int((~against_diverged & (diverged | (theirs < ours))).sum())
    n = ours.numel()
    low, high = wilson_interval(wins, n)
    both_diverged = diverged & against_diverged
    differences = torch.where(both_diverged, torch.zeros_like(ours), theirs - ours)  # > 0: we win
    return PairedComparison(
        method=method,
        against=against,
        instances=n,
        mean_cost=float(cost(values).double().mean()),
        against_mean_cost=float(cost(against_values).double().mean()),
        wins=wins,
        losses=losses,
        ties=n - wins - losses,
        win_fraction=wins / n,
        win_low=low,
        win_high=high,
        sign_test_p=sign_test_p(wins, losses),
        wilcoxon_p=wilcoxon_signed_rank_p(differences),
    )


@dataclass(frozen=True)
class MethodMetrics:
    """One method's figures on a set of instances (definitions in the module docstring).

    The reference-relative fields are None when there is no reference; the margins are None with a
    single method; `win_rate` is None for the reference itself. `evaluations_mean` (evaluations
    used in T steps, mean over instances) and `budget_median` (median value after T + 1
    evaluations) are None where the curves carry no evaluation counts."""

    mean_final: float
    median_final: float
    mean_cost: float
    margin_mean: float | None
    margin_final: float | None
    reference_steps_median: float | None
    speedup_median: float | None
    reference_never_rate: float | None
    win_rate: float | None
    divergence_rate: float
    evaluations_mean: float | None = None
    budget_median: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        """JSON-safe: infinities become None (their meaning is given by `reference_never_rate`)."""
        return {k: (None if v is not None and math.isinf(v) else v) for k, v in asdict(self).items()}


def method_metrics(
    curves: Mapping[str, Curves], reference: str | None = None, reference_long: Curves | None = None
) -> dict[str, MethodMetrics]:
    """Every method's metrics from its curves on the same instances, against `reference` (a key or
    None). `reference_long`, the reference run longer on the same instances, measures the speed-up."""
    if not curves:
        raise ValueError("curves must hold at least one method")
    if reference is not None and reference not in curves:
        raise ValueError(f"reference {reference!r} is not among the methods {sorted(curves)}")
    if reference_long is not None and reference is None:
        raise ValueError("reference_long needs a reference")
    values = {name: curve_values(c.objectives, c.f_star) for name, c in curves.items()}
    shapes = {tuple(v.shape) for v in values.values()}
    if len(shapes) != 1:
        raise ValueError(f"all methods must run on the same instances and horizon; curve shapes differ: {shapes}")
    result = {}
    for name, c in curves.items():
        v = values[name]
        margin = margin_of_victory(values, name) if len(values) > 1 else None
        ref_fields: dict[str, float | None] = dict(
            reference_steps_median=None, speedup_median=None, reference_never_rate=None, win_rate=None
        )
        if reference is not None:
            ref = values[reference]
            long = ref if reference_long is None else curve_values(reference_long.objectives, reference_long.f_star)
            if long.shape[1] != v.shape[1] or long.shape[0] < v.shape[0]:
                raise ValueError(f"reference_long {tuple(long.shape)} must extend the curves {tuple(v.shape)}")
            steps = steps_to_reach(long, v[-1], v.shape[0] - 1)
            ref_fields = dict(
                reference_steps_median=median(steps),
                speedup_median=median(steps / (v.shape[0] - 1)),
                reference_never_rate=float(torch.isinf(steps).double().mean()),
                win_rate=None if name == reference else win_rate(v, ref, c.diverged, curves[reference].diverged),
            )
        result[name] = MethodMetrics(
            mean_final=float(v[-1].double().mean()),
            median_final=median(v[-1]),
            mean_cost=float(cost(v).double().mean()),
            margin_mean=None if margin is None else float(margin[1:].double().mean()),
            margin_final=None if margin is None else float(margin[-1]),
            divergence_rate=divergence_rate(c.diverged),
            **ref_fields,
            **_evaluation_fields(v, c.evaluations),
        )
    return result


def _evaluation_fields(values: Tensor, evaluations: Tensor | None) -> dict[str, float | None]:
    if evaluations is None:
        return dict(evaluations_mean=None, budget_median=None)
    budget = torch.tensor([values.shape[0]])  # T + 1: a one-evaluation-per-step rule's T steps
    return dict(
        evaluations_mean=float(evaluations[-1].double().mean()),
        budget_median=median(values_at_evaluations(values, evaluations, budget)[0]),
    )
