"""The SB3 VecEnv keeps SB3's contract on every step: the observation, rewards, dones and infos of
a twin episode batch stepped by hand; each ended env its own info dict with its own terminal
observation, which later steps leave as it ended; fresh observation arrays every step."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import l2o_gym
from l2o_gym.envs.numpy_boundary import to_numpy

STEPS = 14


def _venv(coordinatewise: bool, horizon):
    return l2o_gym.make_sb3_vec_env(
        "l2o/Rosenbrock-v0", 4, seed=3, coordinatewise=coordinatewise, dim=3, history=4, horizon=horizon
    )


def _actions(venv, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, (venv.num_envs, *venv.action_space.shape)).astype(np.float32)


def _per_env(venv, values: np.ndarray) -> np.ndarray:
    return np.repeat(values, venv.dim, axis=0) if venv.coordinatewise else values


def _rows(venv, obs):
    """An observation as one entry per env: rows [B·d, F] or a list of B dicts."""
    if venv.coordinatewise:
        return obs.reshape(venv.num_envs, -1)
    return [{key: value[b] for key, value in obs.items()} for b in range(venv.num_instances)]


def _assert_same(got, expected) -> None:
    if isinstance(expected, dict):
        assert set(got) == set(expected)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
    else:
        np.testing.assert_array_equal(got, expected)


def _twin_step(twin, actions: np.ndarray):
    """What one VecEnv step should return, from the twin's episode batch stepped by hand:
    (obs, rewards, dones, per-env info columns, per-env last observations, per-env time limits)."""
    action = torch.from_numpy(actions.copy()).reshape(twin.num_instances, twin.dim)
    reward, terminated, truncated = twin.episodes.step(action)
    last = _rows(twin, to_numpy(twin.episodes.observe()))
    columns = {key: _per_env(twin, value.numpy().copy()) for key, value in twin.episodes.info().items()}
    done = terminated | truncated
    if done.any():
        twin.episodes.reset_rows(done, twin._generator)
    obs = to_numpy(twin.episodes.observe())
    if twin.coordinatewise:
        obs = obs.reshape(twin.num_envs, -1)
    limit = _per_env(twin, (truncated & ~terminated).numpy())
    return obs, _per_env(twin, reward.numpy()), _per_env(twin, done.numpy()), columns, last, limit


@pytest.mark.parametrize("coordinatewise", [False, True])
@pytest.mark.parametrize("horizon", [3, (2, 5)])  # every episode ending at once, or some of them
def test_steps_match_a_twin_batch_stepped_by_hand(coordinatewise, horizon):
    venv, twin = _venv(coordinatewise, horizon), _venv(coordinatewise, horizon)
    _assert_same(venv.reset(), twin.reset())
    rng = np.random.default_rng(0)
    ended_somewhere = False
    for _ in range(STEPS):
        actions = _actions(venv, rng)
        venv.step_async(actions)
        obs, rewards, dones, infos = venv.step_wait()
        expected_obs, expected_rewards, expected_dones, columns, last, limit = _twin_step(twin, actions)
        _assert_same(obs, expected_obs)
        np.testing.assert_array_equal(rewards, expected_rewards)
        np.testing.assert_array_equal(dones, expected_dones)
        assert len(infos) == venv.num_envs
        for env, info in enumerate(infos):
            assert {"objective", "step", "diverged", "suboptimality"} <= set(info)
            for key, values in columns.items():
                assert info[key] == pytest.approx(values[env].item())
            assert ("terminal_observation" in info) == bool(dones[env])
            if dones[env]:
                assert info["TimeLimit.truncated"] == bool(limit[env])
                _assert_same(info["terminal_observation"], last[env])
        ended_somewhere |= bool(dones.any() and not dones.all())
    assert ended_somewhere == isinstance(horizon, tuple)


def _arrays(obs) -> list[np.ndarray]:
    return list(obs.values()) if isinstance(obs, dict) else [obs]


@pytest.mark.parametrize("coordinatewise", [False, True])
@pytest.mark.parametrize("horizon", [3, (2, 5)])
def test_returned_observations_and_terminal_rows_stay_as_they_were(coordinatewise, horizon):
    venv = _venv(coordinatewise, horizon)
    venv.reset()
    rng = np.random.default_rng(1)
    kept = []  # (what a step returned, a deep copy taken at once)
    for _ in range(STEPS):
        venv.step_async(_actions(venv, rng))
        obs, _, dones, infos = venv.step_wait()
        ended = [infos[env] for env in np.flatnonzero(dones)]
        kept.append(((obs, ended), copy.deepcopy((obs, ended))))
        if ended:  # each ended env its own dict; their rows hold no memory in common
            assert len({id(info) for info in ended}) == len(ended)
            rows = [array for info in ended for array in _arrays(info["terminal_observation"])]
            for i, row in enumerate(rows):
                assert not any(np.shares_memory(row, other) for other in rows[i + 1 :])
                assert not any(np.shares_memory(row, array) for array in _arrays(obs))
    for (obs, ended), (obs_then, ended_then) in kept:  # later steps changed nothing returned before
        _assert_same(obs, obs_then)
        for info, info_then in zip(ended, ended_then, strict=True):
            _assert_same(info["terminal_observation"], info_then["terminal_observation"])
            assert info.keys() == info_then.keys()
