"""What keeps the C-step's controllers trustworthy: the KL step adapted to how well the last step's
predicted improvement came true, and bounds on the controllers' gains.

**Step adaptation** (Levine & Abbeel, 2014, kept in mirror-descent GPS). Per training instance, the
C-steps of iteration i predict an improvement of the cost under the dynamics and cost fitted to
iteration i's samples: predicted = Σ over the instance's coordinates of (surrogate of the controllers
that were sampled − surrogate of the new ones). Iteration i + 1's samples, drawn from the new
controllers, measure the actual improvement: mean sampled Σ_t f before − after (Monte Carlo; a
diverged sample makes it −∞). Modelling the actual improvement as the predicted one minus a
quadratic in the step, the best multiple of the step is predicted / (2 (predicted − actual)); the
instance's multiplier of `kl_step` is multiplied by that factor, clipped to `FACTOR_RANGE` (so a
step that made things worse halves it), and kept within `MULTIPLIER_RANGE`.

**Gain bounds.** A controller may not have a gain on the gradient above `gain_bound` times the
initial momentum's learning rate, nor a gain on the last step above `MOMENTUM_LIMIT` (a step that
grows by itself), nor a gain on the location above `gain_bound` × learning rate × the condition's
largest local curvature (the location's gain acts as −lr·h on x through g ≈ h (x − x*)). They enter
the C-step's bisection on η (`agents.gps.lqr.kl_constrained_update`), which then raises η (a smaller
step towards the reference) until the bounds hold.
"""

from __future__ import annotations

import torch
from torch import Tensor

from agents.gps.coordinate_state import GRADIENT, LAST_STEP, LOCATION, STATE_WIDTH
from agents.gps.lqr import QuadraticCost

FACTOR_RANGE = (0.5, 3.0)  # change of an instance's step multiplier in one iteration
MULTIPLIER_RANGE = (0.01, 3.0)  # the multiplier of kl_step itself
MOMENTUM_LIMIT = 1.0


def step_factor(predicted: Tensor, actual: Tensor) -> Tensor:
    """The change of each step multiplier from predicted [B] and actual [B] improvements: [B].

    predicted / (2 (predicted − actual)) clipped to FACTOR_RANGE; 1 where no improvement was
    predicted (nothing to learn about the model), FACTOR_RANGE[0] where the actual one is −∞ or NaN."""
    low, high = FACTOR_RANGE
    gap = (predicted - actual).clamp_min(1e-4 * predicted.abs().clamp_min(1e-30))
    factor = (predicted / (2.0 * gap)).clamp(low, high)
    factor = torch.where(torch.isfinite(actual), factor, torch.full_like(factor, low))
    return torch.where(predicted > 0, factor, torch.ones_like(factor))


def adjusted_multipliers(multipliers: Tensor, predicted: Tensor, actual: Tensor) -> Tensor:
    """New step multipliers [B] (see the module docstring); unchanged where predicted is NaN (the first
    iteration: no step taken yet)."""
    low, high = MULTIPLIER_RANGE
    updated = (multipliers * step_factor(predicted, actual)).clamp(low, high)
    return torch.where(torch.isnan(predicted), multipliers, updated)


def sampled_instance_cost(objectives: Tensor) -> Tensor:
    """Mean over samples of Σ_{t=1..T} f per instance, from objectives [N, B, T + 1]: [B] (+∞ where a
    sample's cost is not finite)."""
    totals = objectives.double()[..., 1:].sum(-1)
    totals = torch.where(torch.isfinite(totals), totals, torch.full_like(totals, torch.inf))
    return totals.mean(0)


def per_instance(values: Tensor, instances: int) -> Tensor:
    """Sum of per-condition values [C] over each instance's coordinates (conditions b·d .. b·d + d − 1): [B]."""
    return values.reshape(instances, -1).sum(1)


def gain_limits(learning_rates: Tensor, cost: QuadraticCost, gain_bound: float) -> Tensor:
    """Per-condition bounds [C, 3] on |K| (location, gradient, last step) from the initial momentum's
    learning rates [C] and the cost's curvature on the location."""
    curvature = cost.hessians[:, 1:, LOCATION, LOCATION].amax(1)  # [C]
    limits = torch.empty(learning_rates.shape[0], STATE_WIDTH, dtype=torch.float64)
    limits[:, GRADIENT] = gain_bound * learning_rates.abs()
    limits[:, LOCATION] = gain_bound * learning_rates.abs() * curvature
    limits[:, LAST_STEP] = MOMENTUM_LIMIT
    return limits
