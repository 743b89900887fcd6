"""Plug-in objectives: a plain function and a TaskFamily subclass, end to end."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import l2o_gym
from tests.plugin_objectives import ShiftedSphereFamily, not_scalar, sphere


def test_plain_function_end_to_end():
    l2o_gym.register_objective("test/Sphere-v0", sphere, dim=4, horizon=5)
    env = gym.make("test/Sphere-v0")
    obs, info = env.reset(seed=0)
    x0 = obs["location"]
    assert info["objective"] == pytest.approx(float(((x0 - 1.0) ** 2).sum()), rel=1e-5)
    # a step towards the minimum lowers the objective
    action = np.clip((1.0 - x0) / 0.1, -1, 1).astype(np.float32)
    _, _, _, _, info2 = env.step(action)
    assert info2["objective"] < info["objective"]
    vec = gym.make_vec("test/Sphere-v0", num_envs=6)
    obs, info = vec.reset(seed=0)
    assert obs["location"].shape == (6, 4)
    expected = ((obs["location"] - 1.0) ** 2).sum(axis=1)
    np.testing.assert_allclose(info["objective"], expected, rtol=1e-5)
    pickle.loads(pickle.dumps(env))
    assert "test/Sphere-v0" in l2o_gym.l2o_env_ids()


def test_plain_function_fixed_start_and_reward():
    l2o_gym.register_objective("test/SphereFixed-v0", sphere, dim=2, init=torch.zeros(2))
    env = gym.make("test/SphereFixed-v0")
    obs, info = env.reset(seed=3)
    np.testing.assert_array_equal(obs["location"], 0.0)
    assert info["objective"] == pytest.approx(2.0)
    # no optimum known: the default reward is Li & Malik's cost -f/|f0|
    _, reward, *_ = env.step(np.zeros(2, np.float32))
    assert reward == pytest.approx(-1.0)


def test_family_subclass_end_to_end():
    l2o_gym.register_family("test/ShiftedSphere-v0", ShiftedSphereFamily, dim=5)
    env = gym.make_vec("test/ShiftedSphere-v0", num_envs=3, coordinatewise=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 5, 59)
    centers = env.unwrapped.episodes.state.problem.center
    np.testing.assert_allclose(info["objective"], (centers**2).sum(dim=1).numpy(), rtol=1e-5)
    sb3 = l2o_gym.make_sb3_vec_env("test/ShiftedSphere-v0", 2, seed=0, coordinatewise=True)
    assert sb3.num_envs == 10
    sb3.reset()
    sb3.step(np.zeros((10, 1), np.float32))


def test_non_scalar_function_is_rejected_at_registration():
    with pytest.raises(ValueError, match="scalar"):
        l2o_gym.register_objective("test/Bad-v0", not_scalar, dim=3)


def test_numpy_function_is_rejected_clearly():
    with pytest.raises(ValueError, match="fn"):
        l2o_gym.register_objective("test/Numpy-v0", lambda x: np.sum(np.asarray(x) ** 2), dim=3)
