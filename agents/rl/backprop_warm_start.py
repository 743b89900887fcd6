"""Backpropagation warm start: refine a coordinatewise SB3 policy's mean action by gradient descent
through unrolled optimization (the meta-training of Andrychowicz et al., applied to the PPO actor),
between the imitation warm start and PPO.

One iteration draws `batch_size` instances from a fixed pool of training instances (their optima
f* computed once), runs the policy's deterministic rule on them for a horizon drawn from the run's
horizon range, through `OptimizationState.advance(step, differentiable=True)`, and after every
`truncation` steps backpropagates the piece's loss

    L = mean_t mean_b log((f_b(x_t) - f*_b)_+ / |f_b(x_0) - f*_b| + eps)

(the log-suboptimality the RL reward telescopes to) into the actor's weights (Adam, gradient-norm
clipping), then cuts the graph. The observation rows are fed to the policy detached (first-order,
as L2L), so the meta-gradient flows through the steps into x and f. The weights with the lowest
mean final log-suboptimality on fixed validation instances (averaged over the validation
horizons; the starting weights included) are kept, so the warm start never hands PPO a worse
policy than it received.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from agents.meta.truncated_unroll import MetaGradientStep, truncated_unroll
from agents.rl.config import BackpropSettings, check_warm_start_policy
from agents.runtime.learned_optimizer import LearnedOptimizer
from l2o_gym.problem import Problem, TaskFamily
from l2o_gym.rewards import LogSuboptimalityReward
from l2o_gym.state import OptimizationState


@dataclass
class BackpropResult:
    """Validation mean final log-suboptimality before and after, and at which iteration the kept weights were."""

    start_score: float
    best_score: float
    best_iteration: int
    skipped_pieces: int


def policy_steps(rule: LearnedOptimizer, state: OptimizationState) -> Tensor:
    """The rule's deterministic steps [B, d] at `state`, differentiable in its policy's weights
    (the rows it observes are detached)."""
    outputs = rule.policy.get_distribution(rule.observe(state).detach()).distribution.mean
    steps = rule.observation_spec.action_scale * rule.step_form.env_action(outputs).reshape(state.x.shape)
    return steps.to(state.x.dtype).to(state.x.device)


@torch.no_grad()
def final_log_gap(rule: LearnedOptimizer, problem: Problem, horizon: int) -> float:
    """Mean over instances of log relative suboptimality after `horizon` steps of the rule."""
    state = OptimizationState.start(copy.deepcopy(problem), history=rule.observation_spec.history)
    for _ in range(horizon):
        state.advance(policy_steps(rule, state))
    return float(LogSuboptimalityReward().log_gap(state.f, state).mean())


def backprop_warm_start(
    policy: torch.nn.Module,
    family: TaskFamily,
    settings: BackpropSettings | dict[str, Any],
    meta: dict[str, Any],
    seed: int,
    validation_horizons: list[int] | None = None,
) -> BackpropResult:
    """Refine `policy` (SB3 actor-critic, coordinatewise; `meta` the run's metadata) in place.
    The validation score is averaged over `validation_horizons` (default: the longest horizon).

    settings: the `backprop` hyperparameters (`agents.rl.config.BackpropSettings`, or a mapping
    of them): iterations, batch_size, instances (training pool), truncation, lr, grad_clip,
    validation_instances.
    """
    if not isinstance(settings, BackpropSettings):
        settings = BackpropSettings.parse(settings)
    rule = LearnedOptimizer(policy, meta)
    check_warm_start_policy("backprop", meta["algo"], rule.coordinatewise, "the policy's metadata")
    iterations, batch_size, pool_size = settings.iterations, settings.batch_size, settings.instances
    truncation, lr, grad_clip = settings.truncation, settings.lr, settings.grad_clip
    low, high = meta["horizon"]
    generator = torch.Generator().manual_seed(seed + 7919)
    pool = family.sample(pool_size, generator, "train")
    pool.optimum()
    validation = family.sample(settings.validation_instances, generator, "validation")
    validation.optimum()
    reward = LogSuboptimalityReward()
    params = [p for p in policy.parameters() if p.requires_grad]
    meta_step = MetaGradientStep(params, torch.optim.Adam(params, lr=lr), grad_clip)
    policy.set_training_mode(False)

    horizons = list(validation_horizons or [high])

    def score() -> float:
        return sum(final_log_gap(rule, validation, h) for h in horizons) / len(horizons)

    best_score = start_score = score()
    best_weights, best_iteration, skipped = copy.deepcopy(policy.state_dict()), 0, 0
    for iteration in range(1, iterations + 1):
        index = torch.randint(pool_size, (batch_size,), generator=generator)
        horizon = int(torch.randint(low, high + 1, (1,), generator=generator))
        state = OptimizationState.start(pool.select_rows(index), history=rule.observation_spec.history)
        pieces = truncated_unroll(
            state,
            lambda s: policy_steps(rule, s),
            lambda s: reward.log_gap(s.f, s).mean(),
            meta_step,
            horizon=horizon,
            truncation=truncation,
        )
        skipped += pieces.skipped
        if iteration % max(1, iterations // 10) == 0 or iteration == iterations:
            current = score()
            if current < best_score:
                best_score, best_iteration = current, iteration
                best_weights = copy.deepcopy(policy.state_dict())
    policy.load_state_dict(best_weights)
    return BackpropResult(start_score, best_score, best_iteration, skipped)
