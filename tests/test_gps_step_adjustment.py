"""Guided policy search's safeguards (agents.gps.step_adjustment): the KL step's adaptation from
predicted versus actual improvement and the gain limits."""

from __future__ import annotations

import math

import pytest
import torch

from agents.gps.coordinate_state import GRADIENT, LAST_STEP, LOCATION
from agents.gps.lqr import QuadraticCost
from agents.gps.step_adjustment import (
    FACTOR_RANGE,
    MOMENTUM_LIMIT,
    MULTIPLIER_RANGE,
    adjusted_multipliers,
    gain_limits,
    per_instance,
    sampled_instance_cost,
    step_factor,
)

T = 6


def test_step_factor_follows_predicted_versus_actual_improvement() -> None:
    low, high = FACTOR_RANGE
    predicted = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    actual = torch.tensor([0.5, 0.75, -1.0, -math.inf, 1.0, 5.0, 5.0], dtype=torch.float64)
    factor = step_factor(predicted, actual)
    assert factor[0] == pytest.approx(1.0)  # half the predicted gain came true: keep the step
    assert factor[1] == pytest.approx(2.0)  # 1 / (2 · 0.25)
    assert factor[2] == low  # worse than before: 1 / (2 · 2) = 0.25, clipped
    assert factor[3] == low  # a diverged sample
    assert factor[4] == high  # all of it came true: grow, clipped
    assert factor[5] == 1.0 and factor[6] == 1.0  # nothing predicted: nothing learned


def test_multipliers_stay_in_range_and_wait_for_a_first_step() -> None:
    low, high = MULTIPLIER_RANGE
    multipliers = torch.tensor([1.0, high, low, 1.0], dtype=torch.float64)
    predicted = torch.tensor([1.0, 1.0, 1.0, math.nan], dtype=torch.float64)
    actual = torch.tensor([1.0, 1.0, -5.0, -5.0], dtype=torch.float64)
    new = adjusted_multipliers(multipliers, predicted, actual)
    assert new.tolist() == [FACTOR_RANGE[1], high, low, 1.0]


def test_instance_costs_and_sums() -> None:
    objectives = torch.tensor([[[9.0, 1.0, 2.0], [9.0, 1.0, math.inf]], [[9.0, 3.0, 4.0], [9.0, 0.0, 0.0]]])
    assert sampled_instance_cost(objectives).tolist() == [5.0, math.inf]  # f_0 left out; samples averaged
    assert per_instance(torch.arange(6.0), 2).tolist() == [3.0, 12.0]


def test_gain_limits_scale_with_learning_rate_and_curvature() -> None:
    hessians = torch.zeros(2, T + 1, 4, 4, dtype=torch.float64)
    hessians[0, 1:, LOCATION, LOCATION] = 2.0
    hessians[1, 3, LOCATION, LOCATION] = 5.0
    cost = QuadraticCost(hessians, torch.zeros(2, T + 1, 4, dtype=torch.float64))
    limits = gain_limits(torch.tensor([0.1, -1.0], dtype=torch.float64), cost, 10.0)
    assert limits[:, GRADIENT].tolist() == pytest.approx([1.0, 10.0])
    assert limits[:, LOCATION].tolist() == pytest.approx([2.0, 50.0])
    assert limits[:, LAST_STEP].tolist() == [MOMENTUM_LIMIT, MOMENTUM_LIMIT]
