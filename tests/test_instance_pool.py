"""EpisodeBatch's instance pool: fresh instances for ended episodes, sampled many at a time."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

import l2o_gym
from l2o_gym.episode_batch import EpisodeBatch


def _rollout(pool: int, seed: int = 0, steps: int = 30):
    env = l2o_gym.make_sb3_vec_env(
        "l2o/LogisticRegression-v0", 4, seed=seed, coordinatewise=True, horizon=(3, 7), instance_pool=pool
    )
    obs = [env.reset()]
    subopt = []
    actions = np.full((env.num_envs, 1), -0.05, np.float32)
    for _ in range(steps):
        o, _, _, infos = env.step(actions)
        obs.append(o)
        subopt.append([info["suboptimality"] for info in infos])
    return np.stack(obs), np.array(subopt)


def test_pooled_episodes_are_reproducible_and_use_solved_instances():
    obs_a, subopt_a = _rollout(pool=5)
    obs_b, subopt_b = _rollout(pool=5)
    assert np.array_equal(obs_a, obs_b) and np.array_equal(subopt_a, subopt_b)
    assert np.isfinite(obs_a).all()
    assert (subopt_a > -1e-5).all()  # every instance carries its own optimum: f - f* >= 0


def test_pool_hands_out_each_instance_once_and_refills():
    family = l2o_gym.make_family("l2o/LogisticRegression-v0")
    batch = EpisodeBatch(family, 3, instance_pool=4)
    generator = torch.Generator().manual_seed(0)
    batch.reset(generator)
    assert batch._pool.batch_size == 1
    first = batch.state.problem.x0.clone()
    batch.reset_rows(torch.tensor([True, True, False]), generator)  # 1 left in the pool, refilled
    assert batch._pool.batch_size == 3
    x0 = batch.state.problem.x0
    assert torch.equal(x0[2], first[2]) and not torch.equal(x0[0], first[0])
    assert not torch.equal(x0[0], x0[1])
    problem = batch.state.problem
    recomputed = copy.copy(problem)
    recomputed.f_star = None
    assert torch.allclose(problem.f_star, recomputed.optimum(), atol=1e-5)  # each row keeps its own f*


def test_pool_draws_the_same_instances_as_direct_sampling_in_order():
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    direct = family.sample(6, torch.Generator().manual_seed(1), "train")
    batch = EpisodeBatch(family, 2, instance_pool=6)
    batch.reset(torch.Generator().manual_seed(1))
    assert torch.equal(batch.state.problem.x0, direct.x0[:2])
    batch.reset_rows(torch.tensor([True, True]), torch.Generator().manual_seed(99))
    assert torch.equal(batch.state.problem.x0, direct.x0[2:4])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "8"])
def test_bad_instance_pool(bad):
    with pytest.raises(ValueError, match="instance_pool"):
        EpisodeBatch(l2o_gym.make_family("l2o/Quadratic-v0"), 2, instance_pool=bad)


def test_by_default_every_form_solves_each_instance_once_in_batches(monkeypatch):
    """Where the reward needs f*, the env forms draw fresh instances from a pool by default: one
    batched solve per DEFAULT_INSTANCE_POOL instances, not one per reset."""
    from l2o_gym.episode_batch import DEFAULT_INSTANCE_POOL
    from tasks.logistic_regression import LogisticRegressionProblem

    solved: list[int] = []
    solve = LogisticRegressionProblem.compute_optimum
    monkeypatch.setattr(
        LogisticRegressionProblem, "compute_optimum", lambda self: solved.append(self.batch_size) or solve(self)
    )
    env = gym.make("l2o/LogisticRegression-v0", horizon=2)
    env.reset(seed=0)
    for _ in range(5):  # unseeded resets go on with the pool
        env.reset()
    assert solved == [DEFAULT_INSTANCE_POOL]
    first = env.reset(seed=0)[0]
    assert solved == [DEFAULT_INSTANCE_POOL] * 2 and np.array_equal(first["location"], env.reset(seed=0)[0]["location"])
    solved.clear()
    venv = l2o_gym.make_sb3_vec_env("l2o/LogisticRegression-v0", 4, seed=0, coordinatewise=True, horizon=2)
    venv.reset()
    for _ in range(10):
        venv.step(np.zeros((venv.num_envs, 1), np.float32))
    assert solved == [DEFAULT_INSTANCE_POOL]  # 4 + 5 · 4 instances, one solve
    assert EpisodeBatch(l2o_gym.make_family("l2o/LogisticRegression-v0"), 2, reward="cost").instance_pool == 0
