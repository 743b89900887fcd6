"""Step forms: how a coordinatewise policy's outputs become the env's action."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.rl.sb3_training import train_sb3
from agents.runtime.saved_rules import META_FILE, load_rule
from agents.runtime.step_forms import StepForm, StepFormVecEnv
from l2o_gym.unroll import unroll
from tests.tiny_training import train_tiny


def test_log_magnitude_maps_outputs_to_scaled_env_actions():
    form = StepForm("log_magnitude", log_range=10.0)
    outputs = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [0.5, -1.0], [1.0, 0.0], [3.0, 5.0]])
    actions = form.env_action(outputs)
    expected = torch.tensor([1.0, -1.0, 0.5 * math.exp(-10.0), math.exp(-5.0), 1.0])
    assert torch.allclose(actions, expected)


def test_policy_outputs_invert_env_actions():
    form = StepForm("log_magnitude", log_range=10.0)
    actions = torch.tensor([0.7, -0.3, 1e-3, -2e-4, 0.0, 1.0])
    back = form.env_action(form.policy_outputs(actions))
    assert torch.allclose(back, actions, atol=1e-6)
    linear = StepForm("linear")
    assert torch.equal(linear.env_action(linear.policy_outputs(actions)), actions)


def test_noise_on_the_direction_is_relative_to_the_magnitude():
    form = StepForm("log_magnitude", log_range=10.0)
    small, large = torch.tensor([[0.5, -0.6]]), torch.tensor([[0.5, 0.6]])
    noise = torch.tensor([[0.1, 0.0]])
    small_change = (form.env_action(small + noise) - form.env_action(small)).abs()
    large_change = (form.env_action(large + noise) - form.env_action(large)).abs()
    assert torch.allclose(small_change / large_change, torch.tensor(math.exp(-12.0 * 0.5)), rtol=1e-4)


def test_bad_step_forms_are_refused():
    with pytest.raises(ValueError, match="step form must be one of"):
        StepForm("exp")
    with pytest.raises(ValueError, match="log_range"):
        StepForm("log_magnitude", log_range=0.0)
    dict_env = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=0, dim=3)
    with pytest.raises(ValueError, match="coordinatewise"):
        StepFormVecEnv(dict_env, StepForm("log_magnitude"))


def test_wrapper_steps_the_env_with_the_mapped_action():
    kwargs = {"dim": 3, "action_scale": 0.1}
    plain = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=0, coordinatewise=True, **kwargs)
    form = StepForm("log_magnitude", log_range=8.0)
    wrapped = StepFormVecEnv(
        l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=0, coordinatewise=True, **kwargs), form
    )
    assert wrapped.action_space.shape == (2,)
    plain.reset()
    wrapped.reset()
    outputs = np.random.default_rng(0).uniform(-1, 1, (6, 2)).astype(np.float32)
    obs_a, rew_a, _, _ = plain.step(form.env_action(torch.as_tensor(outputs)).numpy()[:, None])
    obs_b, rew_b, _, _ = wrapped.step(outputs)
    assert np.allclose(obs_a, obs_b) and np.allclose(rew_a, rew_b)


def test_training_with_a_step_form_saves_it_and_acts_through_it(tmp_path):
    result = train_tiny(
        tmp_path,
        "eval_freq: 400\nalgo: {n_steps: 8, batch_size: 48, n_epochs: 1}\nstep: {form: log_magnitude, log_range: 6}\n",
        reference=make_optimizer("gd", lr=0.01),
    )
    meta = json.loads((result.final / META_FILE).read_text())
    assert meta["step_form"] == {"name": "log_magnitude", "log_range": 6.0}
    rule = load_rule(result.final)
    assert rule.step_form.width == 2
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=7).sample(3, torch.Generator().manual_seed(0), "test")
    curves = unroll(rule, problem, 5)
    assert torch.isfinite(curves.objectives).all()
    bad = tmp_path / "bad.yaml"
    bad.write_text("step: {form: log_magnitude, range: 6}\n")
    with pytest.raises(ValueError, match="unknown step setting"):
        train_sb3("l2o/Quadratic-v0", "ppo", out_dir=tmp_path / "r", timesteps=10, config=bad, progress_bar=False)
