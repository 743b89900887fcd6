"""PPO's update on a random part of the rollout's rows (agents/rl/row_subsampling.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import RolloutBuffer

from agents.rl.config import ConfigError
from agents.rl.row_subsampling import RowSubsampledRolloutBuffer, algo_kwargs, check_update_fraction
from tests.tiny_training import train_tiny

SPACE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACTION = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def filled(buffer_class, steps=10, envs=8, **kwargs) -> RolloutBuffer:
    """A full rollout buffer whose observation rows are numbered 0, 1, ... (step-major)."""
    buffer = buffer_class(steps, SPACE, ACTION, device="cpu", n_envs=envs, **kwargs)
    for step in range(steps):
        rows = np.arange(step * envs, (step + 1) * envs, dtype=np.float32)
        obs = np.repeat(rows[:, None], 3, axis=1)
        zeros = torch.zeros(envs)
        buffer.add(obs, np.zeros((envs, 1)), np.zeros(envs), np.zeros(envs, bool), zeros, zeros)
    buffer.full = True
    return buffer


def epoch_rows(buffer: RolloutBuffer, batch_size: int) -> list[list[int]]:
    return [batch.observations[:, 0].int().tolist() for batch in buffer.get(batch_size)]


def test_each_epoch_draws_a_fresh_part_of_the_rows():
    np.random.seed(0)
    buffer = filled(RowSubsampledRolloutBuffer, update_fraction=0.25)
    first, second = epoch_rows(buffer, 8), epoch_rows(buffer, 8)
    assert [len(b) for b in first] == [8, 8, 4]  # 20 of the 80 rows, minibatches of 8
    for epoch in (first, second):
        rows = sum(epoch, [])
        assert len(set(rows)) == 20 and set(rows) <= set(range(80))
    assert set(sum(first, [])) != set(sum(second, []))


def test_fraction_one_is_sb3s_buffer():
    np.random.seed(1)
    ours = epoch_rows(filled(RowSubsampledRolloutBuffer, update_fraction=1.0), 16)
    np.random.seed(1)
    assert ours == epoch_rows(filled(RolloutBuffer), 16)
    assert sorted(sum(ours, [])) == list(range(80))


def test_bad_fractions_are_refused_in_one_line():
    for bad in (0, 1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match=r"update_fraction must be a number in \(0, 1\]"):
            check_update_fraction(bad)
    assert algo_kwargs({"n_steps": 8}) == {"n_steps": 8}
    assert algo_kwargs({"rollout_buffer_kwargs": {"update_fraction": 0.5}})["rollout_buffer_class"] is (
        RowSubsampledRolloutBuffer
    )


def test_training_with_subsampled_updates(tmp_path):
    algo = "algo: {n_steps: 8, batch_size: 16, n_epochs: 2, rollout_buffer_kwargs: {update_fraction: 0.5}}"
    result = train_tiny(tmp_path, f"eval_freq: 400\n{algo}\n")
    assert result.timesteps >= 400 and result.final.is_dir()
    with pytest.raises(ConfigError, match="update_fraction"):
        train_tiny(tmp_path, algo.replace("0.5", "2") + "\n", name="bad")
    assert not (tmp_path / "bad").exists()
