"""Fitting the policy beyond the training horizon (`fit_beyond_horizon`).

The controllers only cover steps 0..T−1, so the S-step never sees the states the policy reaches
after step T, where the benchmark runs it (T = 100). With `fit_beyond_horizon: T'` the policy is
rolled out without noise on the training instances to step T' once per iteration, and the S-step
also fits its steps at T..T'−1 to each condition's last controller step, K_{T−1} s + k_{T−1} with
precision Σ_{T−1}⁻¹, weighted as N samples (per step as much as the sampled steps weigh).

Shapes: C conditions, E = T' − T extension steps, F row features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from agents.gps.linear_gaussian import LinearGaussian
from agents.gps.policy import CoordinatewisePolicyNet
from agents.gps.policy_fit import GRADIENT_AND_LAST_STEP, controller_targets
from agents.gps.sampling import sample_trajectories
from l2o_gym.features import CoordinatewiseObservation
from l2o_gym.problem import Problem


@dataclass
class Extension:
    """The policy's own states beyond T: rows [1, C, E, F], states [1, C, E + 1, 3], weights [1, C]
    (0 where the rollout diverged), and the weight of each row (the sample count N)."""

    rows: Tensor
    states: Tensor
    weights: Tensor
    row_weight: float


def held_last_step(controllers: LinearGaussian, steps: int) -> LinearGaussian:
    """The controllers' last step repeated `steps` times: gains [C, steps, A, S], ..."""
    pick = lambda x: x[:, -1:].expand(x.shape[0], steps, *x.shape[2:]).contiguous()  # noqa: E731
    return LinearGaussian(pick(controllers.gains), pick(controllers.offsets), pick(controllers.covariances))


@torch.no_grad()
def rollout_beyond(
    net: CoordinatewisePolicyNet,
    problem: Problem,
    controllers: LinearGaussian,
    observation: CoordinatewiseObservation,
    until: int,
    samples: int,
) -> Extension:
    """The policy's noise-free rollout on `problem` to step `until`, kept from step T (the controllers'
    horizon) on."""
    horizon = controllers.horizon
    noise_free = held_last_step(controllers, until)  # only its horizon is read: the policy acts
    scale = net.action_scale

    def policy(rows: Tensor, raw: Tensor) -> Tensor:
        return net(rows.float(), raw.float()).clamp(-scale, scale)

    run = sample_trajectories(problem, noise_free, observation, 1, explore=False, policy=policy)
    return Extension(run.rows[:, :, horizon:], run.states[:, :, horizon:], run.weights, float(samples))


def extension_rows(extension: Extension, controllers: LinearGaussian) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The S-step's extra rows, flattened and kept where the weight is positive: rows [M, F], raw
    (g, Δx_prev) [M, 2], targets (the last controller step's mean) [M], weights (its precision × the
    row weight) [M]."""
    steps = extension.rows.shape[2]
    targets, precisions = controller_targets(held_last_step(controllers, steps), extension.states)
    w = (precisions.unsqueeze(0) * extension.weights[:, :, None].double() * extension.row_weight).reshape(-1)
    keep = w > 0
    rows = extension.rows.reshape(-1, extension.rows.shape[-1])[keep].float()
    raw = extension.states[:, :, :-1, GRADIENT_AND_LAST_STEP].reshape(-1, 2)[keep].float()
    return rows, raw, targets.reshape(-1)[keep].float(), w[keep]
