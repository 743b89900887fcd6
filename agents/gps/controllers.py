"""Initial local controllers: tuned heavy-ball momentum.

Either one setting for the family (`agents.hand_designed.tuning.tune` on the validation split, the
default: the global policy can represent it exactly, so GPS starts from tuned momentum itself) or,
as Li & Malik did, a setting per training instance: every point of momentum's tuning grid
(`Momentum.default_grid()`) is run on the training instances and each keeps the point with its
lowest Li & Malik cost (`li_malik_cost`). Each controller is exactly that momentum in the
per-coordinate state: u_t = −lr g_t + μ Δx_{t−1}, i.e. K_t = [0, −lr, μ], k_t = 0, with exploration
noise of standard deviation `init_std` times the root-mean-square step of the instance's noise-free
run at that step (floored at 1 % of its largest such step).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import Tensor

from agents.gps.coordinate_state import ACTION_WIDTH, GRADIENT, LAST_STEP, STATE_WIDTH
from agents.gps.linear_gaussian import LinearGaussian
from agents.gps.sampling import sample_trajectories
from agents.hand_designed import Momentum
from agents.hand_designed.tuning import li_malik_cost
from l2o_gym.features import CoordinatewiseObservation
from l2o_gym.problem import Problem
from l2o_gym.unroll import unroll


def tune_momentum_per_instance(problem: Problem, horizon: int) -> tuple[Tensor, Tensor]:
    """Per-instance best (lr [B], momentum [B]) over momentum's default grid."""
    grid = Momentum.default_grid()
    points = list(itertools.product(grid["lr"], grid["momentum"]))
    costs = torch.stack(
        [li_malik_cost(unroll(Momentum(lr=lr, momentum=mu), copy.deepcopy(problem), horizon)) for lr, mu in points]
    )  # [P, B]
    best = costs.argmin(0)
    table = torch.tensor(points, dtype=torch.float64)
    return table[best, 0], table[best, 1]


def momentum_controllers(
    lr: Tensor, momentum: Tensor, dim: int, horizon: int, covariance: Tensor | None = None
) -> LinearGaussian:
    """Momentum as linear-Gaussian controllers for B instances × dim coordinates (covariance [C, T, 1, 1])."""
    conditions = lr.shape[0] * dim
    gains = torch.zeros(conditions, horizon, ACTION_WIDTH, STATE_WIDTH, dtype=torch.float64)
    gains[:, :, 0, GRADIENT] = -lr.repeat_interleave(dim)[:, None]
    gains[:, :, 0, LAST_STEP] = momentum.repeat_interleave(dim)[:, None]
    if covariance is None:
        covariance = torch.ones(conditions, horizon, ACTION_WIDTH, ACTION_WIDTH, dtype=torch.float64)
    return LinearGaussian(gains, torch.zeros(conditions, horizon, ACTION_WIDTH, dtype=torch.float64), covariance)


def initial_controllers(
    problem: Problem,
    horizon: int,
    init_std: float,
    observation: CoordinatewiseObservation,
    setting: tuple[float, float] | None = None,
) -> tuple[LinearGaussian, float]:
    """Momentum controllers with exploration noise — `setting` = (lr, momentum) for every instance, or
    None to tune per instance — and the largest step of their noise-free run."""
    batch, dim = problem.batch_size, problem.dim
    if setting is None:
        lr, momentum = tune_momentum_per_instance(problem, horizon)
    else:
        lr = torch.full((batch,), float(setting[0]), dtype=torch.float64)
        momentum = torch.full((batch,), float(setting[1]), dtype=torch.float64)
    nominal = momentum_controllers(lr, momentum, dim, horizon)
    run = sample_trajectories(problem, nominal, observation, 1, explore=False)
    steps = run.actions[0, :, :, 0].view(batch, dim, horizon)  # [B, d, T]
    rms = steps.double().square().mean(1).sqrt()  # [B, T]
    rms = torch.maximum(rms, 0.01 * rms.amax(1, keepdim=True)).clamp_min(1e-12)
    std = (init_std * rms).repeat_interleave(dim, 0)  # [C, T]
    covariance = std.square()[:, :, None, None]
    return momentum_controllers(lr, momentum, dim, horizon, covariance), float(steps.abs().max())
