"""A tiny PPO run on a 3-dimensional quadratic for tests (mechanics, not quality)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import l2o_gym
from agents.rl.sb3_training import TrainingResult, train_sb3
from agents.runtime.step_forms import StepForm, StepFormVecEnv
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.update_rule import UpdateRule

# metadata of a small coordinatewise PPO policy on the 3-dimensional quadratic (log-magnitude steps)
TINY_POLICY_META = {
    "kind": "sb3",
    "algo": "ppo",
    "observation": ObservationSpec("coordinatewise", 6, 0.1).to_meta(),
    "dim": 3,
    "horizon": [8, 12],
    "step_form": {"name": "log_magnitude", "log_range": 6.0},
}
# backpropagation settings under which that policy's validation score falls clearly
TINY_BACKPROP = {
    "iterations": 30,
    "batch_size": 16,
    "instances": 64,
    "truncation": 4,
    "lr": 3e-3,
    "validation_instances": 16,
}


class FixedGD(UpdateRule):
    """Gradient descent with step 0.02: a cheap validation reference (no tuning)."""

    name = "gd"

    def step(self, state):
        return -0.02 * state.grad


def tiny_policy(device: str | torch.device = "cpu") -> torch.nn.Module:
    """A fresh SB3 actor-critic described by `TINY_POLICY_META`, on `device`."""
    from stable_baselines3 import PPO

    env = l2o_gym.make_sb3_vec_env(
        "l2o/Quadratic-v0", 2, seed=0, coordinatewise=True, dim=3, history=6, action_scale=0.1
    )
    env = StepFormVecEnv(env, StepForm.from_meta(TINY_POLICY_META))
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=16, seed=0, device=device, policy_kwargs={"net_arch": [16]})
    return model.policy


def train_tiny(
    tmp_path: Path,
    config_text: str,
    *,
    algo: str = "ppo",
    timesteps: int = 400,
    num_envs: int = 2,
    name: str = "run",
    reference: UpdateRule | None = None,
    env_kwargs: dict[str, Any] | None = None,
    tiny_env: bool = True,
    validation_instances: int = 4,
    **train_kwargs: Any,
) -> TrainingResult:
    """`algo` on l2o/Quadratic-v0 with the YAML `config_text` (written to tmp_path/<name>.yaml)
    merged over the defaults, into tmp_path/<name>. `tiny_env`: dim 3 and horizon 8 passed as
    keyword arguments under `env_kwargs` (False: only `env_kwargs`, e.g. when the YAML sets them)."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(config_text)
    return train_sb3(
        "l2o/Quadratic-v0",
        algo,
        out_dir=tmp_path / name,
        timesteps=timesteps,
        num_envs=num_envs,
        config=config,
        reference=reference or FixedGD(),
        progress_bar=False,
        validation_instances=validation_instances,
        env_kwargs={**({"dim": 3, "horizon": 8} if tiny_env else {}), **(env_kwargs or {})} or None,
        **train_kwargs,
    )
