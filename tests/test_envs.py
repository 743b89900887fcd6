"""Every registered id through Gymnasium's and SB3's checkers, seeding and the three env forms."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import l2o_gym
from l2o_gym.envs import OptimizationVectorEnv

ENV_IDS = l2o_gym.l2o_env_ids()

# Warnings the checkers raise that are expected for an optimization env, and why.
WARNING_WHITELIST = (
    # location is x as it is: an unbounded Box by design
    "observation space minimum value is -infinity",
    "observation space maximum value is infinity",
    # the gradient history is [H, d] as Li & Malik lay it out; SB3's extractors flatten it
    "has an unconventional shape",
)


def _assert_no_unexpected(caught: list[warnings.WarningMessage]) -> None:
    unexpected = [str(w.message) for w in caught if not any(s in str(w.message).lower() for s in WARNING_WHITELIST)]
    assert not unexpected, unexpected


def test_builtin_ids_registered():
    assert {"l2o/Quadratic-v0", "l2o/Rosenbrock-v0"} <= set(ENV_IDS)


CHECKERS = {
    "gymnasium": lambda env: gym_check_env(env, skip_render_check=True),
    "sb3": lambda env: sb3_check_env(env, warn=True),
}


@pytest.mark.parametrize("checker", sorted(CHECKERS))
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("coordinatewise", [False, True])
def test_env_checkers_pass(checker, env_id, coordinatewise):
    """Gymnasium's and SB3's env checkers pass on every id, in both forms, without unexpected warnings."""
    env = gym.make(env_id, coordinatewise=coordinatewise, disable_env_checker=True).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CHECKERS[checker](env)
    _assert_no_unexpected(caught)


def _rollout_single(env_id, seed, steps=5):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    out = [obs["gradients"].copy()]
    for _ in range(steps):
        obs, reward, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        out.append(obs["gradients"].copy())
        out.append(np.array([reward]))
    return np.concatenate([o.ravel() for o in out])


@pytest.mark.parametrize("env_id", ["l2o/Quadratic-v0", "l2o/Rosenbrock-v0"])
def test_same_seed_same_rollout_single(env_id):
    a, b, c = _rollout_single(env_id, 3), _rollout_single(env_id, 3), _rollout_single(env_id, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _rollout_vector(seed, steps=45):
    env = gym.make_vec("l2o/Quadratic-v0", num_envs=3, horizon=10)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    trace = [obs["location"].copy()]
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        trace += [obs["location"].copy(), reward[:, None], info["objective"][:, None]]
    return np.concatenate([t.ravel() for t in trace])


def test_same_seed_same_rollout_vector_across_autoresets():
    np.testing.assert_array_equal(_rollout_vector(7), _rollout_vector(7))
    assert not np.array_equal(_rollout_vector(7), _rollout_vector(8))


def _rollout_sb3(seed, coordinatewise, steps=25):
    env = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=seed, coordinatewise=coordinatewise, horizon=8)
    obs = env.reset()
    rng = np.random.default_rng(0)
    trace = []
    for _ in range(steps):
        obs, reward, done, infos = env.step(rng.uniform(-1, 1, (env.num_envs,) + env.action_space.shape))
        first = obs["location"] if isinstance(obs, dict) else obs
        trace += [first.ravel().copy(), reward.copy(), np.array([i["objective"] for i in infos])]
    return np.concatenate(trace)


@pytest.mark.parametrize("coordinatewise", [False, True])
def test_same_seed_same_rollout_sb3(coordinatewise):
    np.testing.assert_array_equal(_rollout_sb3(5, coordinatewise), _rollout_sb3(5, coordinatewise))
    assert not np.array_equal(_rollout_sb3(5, coordinatewise), _rollout_sb3(6, coordinatewise))


def test_make_vec_returns_native_vector_env():
    env = gym.make_vec("l2o/Quadratic-v0", num_envs=4)
    assert isinstance(env, OptimizationVectorEnv)
    obs, info = env.reset(seed=0)
    assert obs["gradients"].shape == (4, 25, 10)
    assert info["objective"].shape == (4,)


def test_vector_env_autoresets_next_step_with_fresh_instances():
    env = gym.make_vec("l2o/Quadratic-v0", num_envs=2, horizon=3)
    env.reset(seed=0)
    zeros = np.zeros(env.action_space.shape, np.float32)
    for _ in range(2):
        _, _, term, trunc, _ = env.step(zeros)
        assert not (term | trunc).any()
    _, _, _, trunc, info = env.step(zeros)
    assert trunc.all()
    f_end = info["objective"].copy()
    _, reward, term, trunc, info = env.step(zeros)
    np.testing.assert_array_equal(reward, 0.0)
    assert not (term | trunc).any()
    np.testing.assert_array_equal(info["step"], 0)
    assert not np.allclose(info["objective"], f_end)


def test_sb3_vec_env_terminal_observation_and_time_limit():
    env = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=0, horizon=2)
    env.reset()
    zeros = np.zeros((2, 10), np.float32)
    _, _, done, infos = env.step(zeros)
    assert not done.any()
    obs, _, done, infos = env.step(zeros)
    assert done.all()
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert set(info["terminal_observation"]) == {"location", "gradients", "improvements"}
        assert "objective" in info
    assert (np.abs(obs["improvements"]).sum(axis=1) == 0).all()  # fresh episodes


def test_coordinatewise_sb3_layout():
    env = l2o_gym.make_sb3_vec_env("l2o/Rosenbrock-v0", 3, seed=0, coordinatewise=True, dim=4, history=5)
    obs = env.reset()
    assert env.num_envs == 12 and obs.shape == (12, 19)
    assert env.action_space.shape == (1,)
    _, reward, done, infos = env.step(np.zeros((12, 1), np.float32))
    assert reward.shape == (12,) and len(infos) == 12
    # the coordinates of one instance share its reward
    assert np.all(reward.reshape(3, 4) == reward.reshape(3, 4)[:, :1])


def test_train_and_test_instances_never_coincide():
    family = l2o_gym.make_family("l2o/Quadratic-v0")
    import torch

    train = family.sample(200, torch.Generator().manual_seed(0), "train")
    test = family.sample(200, torch.Generator().manual_seed(0), "test")
    same_seed_train = family.sample(200, torch.Generator().manual_seed(0), "train")
    assert torch.equal(train.W, same_seed_train.W)
    flat_train, flat_test = train.W.flatten(1), test.W.flatten(1)
    assert torch.cdist(flat_test, flat_train).min() > 0


def test_split_envs_draw_from_their_split():
    a = gym.make("l2o/Quadratic-v0", split="train").unwrapped
    b = gym.make("l2o/Quadratic-v0", split="test").unwrapped
    a.reset(seed=0)
    b.reset(seed=0)
    assert not np.allclose(a.episodes.state.problem.W.numpy(), b.episodes.state.problem.W.numpy())


@pytest.mark.parametrize("coordinatewise", [False, True])
def test_envs_pickle(coordinatewise):
    env = gym.make("l2o/Quadratic-v0", coordinatewise=coordinatewise)
    env.reset(seed=1)
    clone = pickle.loads(pickle.dumps(env))
    action = np.full(env.action_space.shape, 0.3, np.float32)
    o1, r1, *_ = env.step(action)
    o2, r2, *_ = clone.step(action)
    assert r1 == r2
    vec = gym.make_vec("l2o/Rosenbrock-v0", num_envs=2)
    vec.reset(seed=0)
    pickle.loads(pickle.dumps(vec)).step(np.zeros(vec.action_space.shape, np.float32))


def test_info_reports_raw_objective_in_every_form():
    env = gym.make("l2o/Quadratic-v0")
    _, info = env.reset(seed=0)
    problem = env.unwrapped.episodes.state.problem
    f0 = problem.loss(problem.init())
    assert info["objective"] == pytest.approx(float(f0[0]), rel=1e-6)
