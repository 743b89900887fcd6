"""`output="torch"`: the native vector env's observations, rewards, ends and infos as tensors on
its device, the same values as the numpy output, and actions accepted as tensors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import l2o_gym  # noqa: F401  (registers the ids)


def make(output: str, **kwargs):
    return gym.make_vec(
        "l2o/Quadratic-v0", num_envs=6, vectorization_mode="vector_entry_point", horizon=4, output=output, **kwargs
    )


@pytest.mark.parametrize("coordinatewise", [False, True])
def test_torch_output_equals_numpy_output_through_autoresets(coordinatewise):
    as_numpy, as_torch = make("numpy", coordinatewise=coordinatewise), make("torch", coordinatewise=coordinatewise)
    obs_np, info_np = as_numpy.reset(seed=5)
    obs_t, info_t = as_torch.reset(seed=5)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(11):  # several episodes of 4 steps: autoresets included
        action = rng.uniform(-1, 1, (6, 10)).astype(np.float32)
        obs_np, reward_np, term_np, trunc_np, info_np = as_numpy.step(action)
        obs_t, reward_t, term_t, trunc_t, info_t = as_torch.step(torch.from_numpy(action))
        pairs = [(obs_np[k], obs_t[k]) for k in obs_np] if isinstance(obs_np, dict) else [(obs_np, obs_t)]
        for a, b in pairs:
            assert isinstance(b, torch.Tensor) and np.array_equal(a, b.numpy())
        assert reward_t.dtype == torch.float32 and np.allclose(reward_np, reward_t.numpy())
        assert np.array_equal(term_np, term_t.numpy()) and np.array_equal(trunc_np, trunc_t.numpy())
        assert set(info_np) == set(info_t) and all(isinstance(v, torch.Tensor) for v in info_t.values())
        assert np.allclose(info_np["objective"], info_t["objective"].numpy())
        ended += int(trunc_np.sum())
    assert ended > 0  # the episodes did end on the way


def test_torch_output_refuses_bad_input():
    with pytest.raises(ValueError, match="output must be one of numpy, torch"):
        make("jax")
    env = make("torch")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(6, 10\)"):
        env.step(torch.zeros(6, 3))
    with pytest.raises(ValueError, match="actions must be a real float tensor"):
        env.step(torch.zeros(6, 10, dtype=torch.complex64))
