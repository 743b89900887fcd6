"""The cheaper step's building blocks give what the direct constructions give: finiteness by
float64 row sums, signed_log with one log, SB3 infos built column-wise, actions left as passed,
a reset of every row swapped in whole."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import l2o_gym
from l2o_gym.envs.sb3_vec_env import instance_dicts
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.registry import make_family
from l2o_gym.signed_log import SIGNED_LOG_BOUND, SIGNED_LOG_EPS, signed_log
from l2o_gym.state import finite_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_rows_is_isfinite_all(dtype):
    generator = torch.Generator().manual_seed(0)
    big = torch.finfo(dtype).max
    for _ in range(50):
        a = torch.randn(40, 7, generator=generator, dtype=dtype) * big / 4  # near overflow when summed
        b = torch.randn(40, generator=generator, dtype=dtype)
        for value in (math.inf, -math.inf, math.nan):
            a[torch.rand(40, 7, generator=generator) < 0.02] = value
        b[torch.rand(40, generator=generator) < 0.05] = math.nan
        expected = torch.isfinite(a).all(dim=1) & torch.isfinite(b)
        assert torch.equal(finite_rows(a, b), expected)
        assert torch.equal(finite_rows(a), torch.isfinite(a).all(dim=1))


def test_signed_log_matches_log1p_in_float64():
    generator = torch.Generator().manual_seed(1)
    v = torch.randn(100_000, generator=generator) * 10 ** (74 * torch.rand(100_000, generator=generator) - 37)
    v = torch.cat([v, torch.tensor([0.0, -0.0, 1e-45, 1e-8, -1.0, torch.finfo(torch.float32).max])])
    exact = torch.sign(v.double()) * torch.log1p(v.double().abs() / SIGNED_LOG_EPS) / math.log1p(1 / SIGNED_LOG_EPS)
    new = signed_log(v)
    assert (new.double() - exact).abs().max() < 1e-6
    assert torch.equal(new[-6:-4], torch.zeros(2)) and new.abs().max() < SIGNED_LOG_BOUND
    twice = v.clone()
    signed_log(twice)
    assert torch.equal(twice, v)  # the input is left as it was


def test_instance_dicts_hold_each_instance_row():
    columns = {"objective": [1.0, 2.0], "step": [3, 4], "diverged": [False, True], "accuracy": [0.5, 0.25]}
    infos = instance_dicts(columns)
    assert infos == [
        {"objective": 1.0, "step": 3, "diverged": False, "accuracy": 0.5},
        {"objective": 2.0, "step": 4, "diverged": True, "accuracy": 0.25},
    ]
    assert infos[0] is not infos[1]


def test_sb3_coordinatewise_infos_are_shared_per_instance_and_own_where_ended():
    venv = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 3, seed=0, coordinatewise=True, horizon=2)
    dim = venv.dim
    venv.reset()
    actions = np.zeros((venv.num_envs, 1), dtype=np.float32)
    venv.step_async(actions)
    _, _, dones, infos = venv.step_wait()
    assert not dones.any()
    objective = venv.episodes.info()["objective"].tolist()
    for env, info in enumerate(infos):
        assert info is infos[env - env % dim]  # one dict per instance
        assert info["objective"] == pytest.approx(objective[env // dim])
    last = venv._observation()
    venv.step_async(actions)
    _, _, dones, infos = venv.step_wait()
    assert dones.all()
    assert len({id(info) for info in infos}) == venv.num_envs  # ended: each env its own dict
    for env, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"].shape == last[env].shape


def test_vector_env_leaves_the_callers_actions_as_they_were():
    env = gym.make_vec("l2o/Quadratic-v0", num_envs=4, vectorization_mode="vector_entry_point", horizon=2)
    env.reset(seed=0)
    actions = np.full(env.action_space.shape, 0.25, dtype=np.float32)
    for _ in range(5):  # through an autoreset step, whose actions are ignored
        env.step(actions)
    assert (actions == 0.25).all()


def test_a_reset_of_every_row_gives_what_row_by_row_replacement_gives():
    family = make_family("l2o/Rosenbrock-v0", dim=3)
    options = {"horizon": 4, "coordinatewise": True, "quasi_newton_pairs": 2, "history": 5}
    swapped, replaced = EpisodeBatch(family, 6, **options), EpisodeBatch(family, 6, **options)
    for batch in (swapped, replaced):
        batch.reset(torch.Generator().manual_seed(0))
        for _ in range(4):
            batch.step(torch.full((6, 3), 0.1))
    every = torch.ones(6, dtype=torch.bool)
    swapped.reset_rows(every, torch.Generator().manual_seed(1))  # the whole state swapped in
    fresh, horizon = replaced._new_episodes(6, torch.Generator().manual_seed(1))
    replaced.state.replace_rows(every, fresh)  # row by row, as a partial reset does
    replaced.horizon[every] = horizon
    replaced.reward_fn.start(replaced.state, every)
    actions = torch.Generator().manual_seed(2)
    for _ in range(6):
        assert torch.equal(swapped.observe(), replaced.observe())
        action = 2 * torch.rand(6, 3, generator=actions) - 1
        for a, b in zip(swapped.step(action), replaced.step(action), strict=True):
            assert torch.equal(a, b)
