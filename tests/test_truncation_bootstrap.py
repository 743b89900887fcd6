"""Truncated episodes bootstrapped in one batched value pass (agents/rl/truncation_bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import l2o_gym
from agents.rl.truncation_bootstrap import TRUNCATED, BatchedBootstrapPPO, TruncationBootstrap


def tiny_env(coordinatewise: bool = True):
    return l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 3, seed=0, coordinatewise=coordinatewise, dim=3, horizon=8)


class ConstantValue:
    """A stand-in policy whose value is 2 + the observation's first entry."""

    def obs_to_tensor(self, obs):
        return torch.as_tensor(obs), True

    def predict_values(self, obs):
        return 2.0 + obs[:, :1]


@pytest.mark.parametrize("coordinatewise", [True, False])
def test_the_rollout_matches_sb3s_own_bootstrap(coordinatewise):
    models = []
    policy = "MlpPolicy" if coordinatewise else "MultiInputPolicy"
    envs = 9 if coordinatewise else 3
    for algorithm in (PPO, BatchedBootstrapPPO):
        env = VecMonitor(tiny_env(coordinatewise))
        model = algorithm(policy, env, n_steps=20, batch_size=60, n_epochs=1, seed=0, gamma=0.9)
        model.learn(20 * envs)
        models.append(model)
    sb3, ours = (model.rollout_buffer for model in models)
    assert np.allclose(ours.rewards, sb3.rewards, atol=1e-6) and np.allclose(ours.returns, sb3.returns, atol=1e-5)
    assert ours.episode_starts[1:].any()  # episodes of 8 steps ended inside the rollout
    episodes = [[(e["r"], e["l"]) for e in model.ep_info_buffer] for model in models]
    assert len(episodes[0]) == 2 * envs and episodes[1] == episodes[0]  # two episodes per env


def test_truncated_envs_get_the_value_once_and_the_envs_infos_stay():
    raw, env = tiny_env(), tiny_env()  # the same instances, stepped alike
    seen = []  # the infos the wrapped env itself returns
    inner = env.step_wait
    env.step_wait = lambda: (found := inner(), seen.append(found[3]))[0]
    wrapped = TruncationBootstrap(env, ConstantValue(), gamma=0.5)
    actions = np.zeros((raw.num_envs, 1), np.float32)
    raw.reset(), wrapped.reset()
    for _ in range(8):  # episodes of 8 steps: all end, truncated, at the last
        _, raw_rewards, dones, raw_infos = raw.step(actions)
        _, rewards, _, infos = wrapped.step(actions)
    assert dones.all() and all(info[TRUNCATED] for info in raw_infos)
    terminal = np.stack([info["terminal_observation"] for info in raw_infos])
    assert np.allclose(rewards, raw_rewards + 0.5 * (2.0 + terminal[:, 0]), atol=1e-6)
    assert not any(info[TRUNCATED] for info in infos)
    assert all(info[TRUNCATED] for info in seen[-1])
