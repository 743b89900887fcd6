"""Cost shaping by log(f − f*): the per-step weights and the shaped quadratic (a shaped training run:
test_gps_training)."""

from __future__ import annotations

import math

import torch

from agents.gps.coordinate_state import LOCATION
from agents.gps.cost import local_quadratic_cost
from agents.gps.cost_shaping import GAP_FLOOR, inverse_gap_weights, log_gap_objectives


def test_inverse_gap_weights_follow_the_gap_and_skip_diverged_samples() -> None:
    objectives = torch.tensor([[[5.0, 3.0, 1.0]], [[5.0, math.inf, math.nan]]])  # [N=2, B=1, T+1=3]
    f_star = torch.tensor([1.0])
    weights = inverse_gap_weights(objectives, f_star, dim=2)
    assert weights.shape == (2, 2, 3)
    delta = GAP_FLOOR * 4.0  # of the initial gap f0 − f* = 4
    expected = torch.tensor([1 / (4 + delta), 1 / (2 + delta), 1 / delta], dtype=torch.float64)
    assert torch.allclose(weights[0, 0], expected) and torch.equal(weights[0, 0], weights[0, 1])
    assert weights[1, 0, 1] == 0 and weights[1, 0, 2] == 0  # not finite: no weight
    logs = log_gap_objectives(objectives, f_star)
    assert torch.allclose(logs[0, 0], expected.reciprocal().log())


def test_shaped_cost_scales_each_steps_gradient_and_curvature() -> None:
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(4, 3, 5, 3, generator=generator, dtype=torch.float64)
    curvature = torch.rand(4, 3, 5, generator=generator, dtype=torch.float64) + 0.1
    weights = torch.ones(4, 3)
    plain = local_quadratic_cost(states, curvature, weights)
    step_scale = torch.linspace(1.0, 3.0, 5, dtype=torch.float64)
    shaped = local_quadratic_cost(states, curvature, weights, step_weights=step_scale.expand(4, 3, 5))
    assert torch.allclose(
        shaped.hessians[:, 1:, LOCATION, LOCATION], plain.hessians[:, 1:, LOCATION, LOCATION] * step_scale[1:]
    )
    assert torch.allclose(shaped.gradients[:, 1:, LOCATION], plain.gradients[:, 1:, LOCATION] * step_scale[1:])
