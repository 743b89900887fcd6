"""Observation features and rewards."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from l2o_gym import make_family
from l2o_gym.features import MOMENTUM_BETAS, RMS_BETA, CoordinatewiseObservation, DictObservation, signed_log
from l2o_gym.rewards import LogSuboptimalityReward
from l2o_gym.state import OptimizationState


def test_signed_log_values_and_symmetry():
    v = torch.tensor([0.0, 1e-8, 1e-3, 1.0, 1e4, -1.0, 3.4e38])
    out = signed_log(v)
    assert out[0] == 0 and out[3] == pytest.approx(1.0) and out[5] == pytest.approx(-1.0)
    assert out[1] == pytest.approx(math.log(2) / math.log1p(1e8), rel=1e-5)
    assert torch.all(out[1:5].diff() > 0)  # monotone: keeps the absolute scale
    assert out[-1] < 6.0


def test_coordinatewise_rows_hold_each_coordinates_history():
    problem = make_family("l2o/Quadratic-v0", dim=4).sample(2, torch.Generator().manual_seed(0))
    state = OptimizationState.start(problem, history=3)
    state.advance(torch.full((2, 4), 0.01))
    rows = CoordinatewiseObservation(4, 3, action_scale=0.02)(state)
    assert rows.shape == (2, 4, 15)
    assert torch.allclose(rows[1, 2, :3], signed_log(state.grad_history[1, :, 2]))
    assert torch.allclose(rows[1, 2, 3:6], state.change_history[1])
    assert torch.allclose(rows[:, :, 6], signed_log(state.last_step))
    assert torch.allclose(rows[:, :, 7], state.grad / (1 + state.grad.abs()))
    assert torch.allclose(rows[:, :, 8], torch.full((2, 4), 0.5))  # previous action 0.01 / 0.02
    g0, g1 = state.grad_history[:, -2], state.grad_history[:, -1]  # two gradients seen so far
    for k, beta in enumerate(MOMENTUM_BETAS):
        average = (beta * g0 + g1) / (beta + 1)
        assert torch.allclose(rows[:, :, 9 + k], signed_log(average), atol=1e-6)
        rms = ((RMS_BETA * g0**2 + g1**2) / (RMS_BETA + 1)).sqrt()
        assert torch.allclose(rows[:, :, 12 + k], (average / rms).clamp(-1, 1), atol=1e-6)
    flat = DictObservation(4, 3)(state)
    assert CoordinatewiseObservation(4, 3).space().contains(rows[0].numpy())
    assert DictObservation(4, 3).space().contains({k: v[0].numpy() for k, v in flat.items()})


def test_log_suboptimality_reward_telescopes():
    env = gym.make("l2o/Quadratic-v0", horizon=20, reward="log_suboptimality")
    _, info = env.reset(seed=0)
    f0 = info["objective"]
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(20):
        _, r, term, trunc, info = env.step(rng.uniform(-0.2, 0.2, 10).astype(np.float32))
        total += r
    eps = LogSuboptimalityReward().eps
    expected = math.log(1.0 + eps) - math.log(info["suboptimality"] / f0 + eps)
    assert total == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert trunc


def test_cost_reward_is_minus_normalised_objective():
    env = gym.make("l2o/Quadratic-v0", reward="cost")
    _, info = env.reset(seed=0)
    _, r, *_, info2 = env.step(np.full(10, 0.1, np.float32))
    assert r == pytest.approx(-info2["objective"] / info["objective"], rel=1e-5)


def test_varied_horizon_range():
    vec = gym.make_vec("l2o/Quadratic-v0", num_envs=64, horizon=(5, 9))
    vec.reset(seed=0)
    horizons = vec.unwrapped.episodes.horizon
    assert horizons.min() >= 5 and horizons.max() <= 9 and len(set(horizons.tolist())) > 1
