"""Antithetic evolution strategies (ES) on a few parameters θ, the best-validated θ kept.

`antithetic_gradient` estimates ∇F(θ) from pairs θ ± σε_i (Salimans et al., 2017); `es_search`
is the meta-training loop the few-parameter learners share (`agents.meta.schedule_es`,
`agents.meta.window_blend_es`): each iteration draws its training instances, takes the estimate
with Adam on θ, and every `validate_every` iterations scores θ on fixed validation instances,
keeping the θ with the lowest figure (θ's start included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from agents.meta.step_schedule_training import ScheduleTraining
from l2o_gym.problem import check_positive_int

Objective = Callable[[Tensor], Tensor]  # a population [2·pairs, n] -> F [2·pairs]


def antithetic_gradient(
    objective: Objective, theta: Tensor, sigma: float, pairs: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """ES estimate of ∇F(θ) [n] from `pairs` antithetic pairs, and the 2·pairs values F.

    `objective` maps a population [2·pairs, n] to F [2·pairs]; members i and pairs + i are θ ± σε_i
    (an objective that runs each pair on one instance gets paired differences)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    check_positive_int("pairs", pairs)
    noise = torch.randn(pairs, theta.shape[0], generator=generator, dtype=theta.dtype)
    values = objective(torch.cat([theta + sigma * noise, theta - sigma * noise]))
    difference = values[:pairs] - values[pairs:]
    return (difference.unsqueeze(1) * noise).sum(dim=0) / (2 * sigma * pairs), values


@dataclass(frozen=True)
class ESSettings:
    """`iterations` of `pairs` antithetic pairs (one training instance each), noise scale `sigma`,
    Adam's step `meta_lr` on θ, the generator's `seed`, a validation every `validate_every` iterations."""

    iterations: int
    pairs: int
    sigma: float
    meta_lr: float
    seed: int
    validate_every: int = 10

    def __post_init__(self) -> None:
        for name in ("iterations", "pairs", "validate_every"):
            check_positive_int(name, getattr(self, name))
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma!r}")


def es_search(
    theta: Tensor,
    draw: Callable[[torch.Generator], Objective],
    validate: Callable[[Tensor], float],
    settings: ESSettings,
    steps_per_member: int,
    log: Callable[[str], None] | None = None,
) -> tuple[Tensor, ScheduleTraining]:
    """ES from `theta` [n]: each iteration `draw(generator)` gives the objective of that iteration's
    `settings.pairs` training instances; `validate(θ)` the validation figure (lower is better).
    Returns the best-validated θ and the run's record (`meta_losses`: each iteration's mean F over
    its population; inner steps: 2·pairs·`steps_per_member` per iteration); `log` gets a line at
    every validation."""
    theta = theta.detach().clone().requires_grad_(True)
    meta_optimizer = torch.optim.Adam([theta], lr=settings.meta_lr)
    generator = torch.Generator().manual_seed(settings.seed)
    record = ScheduleTraining()
    best_value, best_theta = validate(theta.detach()), theta.detach().clone()
    record.validations.append((0, best_value))
    if log is not None:
        log(f"iteration 0: validation {best_value:.5f}")
    began = time.perf_counter()
    for iteration in range(1, settings.iterations + 1):
        objective = draw(generator)
        gradient, values = antithetic_gradient(objective, theta.detach(), settings.sigma, settings.pairs, generator)
        meta_optimizer.zero_grad(set_to_none=True)
        theta.grad = gradient.to(theta.dtype)
        meta_optimizer.step()
        record.meta_losses.append(float(values.mean()))
        record.inner_steps += 2 * settings.pairs * steps_per_member
        if iteration % settings.validate_every == 0 or iteration == settings.iterations:
            value = validate(theta.detach())
            record.validations.append((iteration, value))
            if value < best_value:
                best_value, best_theta = value, theta.detach().clone()
                record.best_iteration = iteration
            if log is not None:
                log(f"iteration {iteration}: validation {value:.5f} (best {best_value:.5f}), theta {theta.tolist()}")
    record.wall_s = time.perf_counter() - began
    record.theta = [float(v) for v in best_theta]
    return best_theta, record
