"""A tiny PPO run on a 3-dimensional quadratic for tests (mechanics, not quality)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.sb3_training import TrainingResult, train_sb3
from l2o_gym.update_rule import UpdateRule


class FixedGD(UpdateRule):
    """Gradient descent with step 0.02: a cheap validation reference (no tuning)."""

    name = "gd"

    def step(self, state):
        return -0.02 * state.grad


def train_tiny(
    tmp_path: Path,
    config_text: str,
    *,
    timesteps: int = 400,
    num_envs: int = 2,
    name: str = "run",
    reference: UpdateRule | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> TrainingResult:
    """PPO on l2o/Quadratic-v0 (dim 3, horizon 8) with the YAML `config_text` merged over the defaults."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(config_text)
    return train_sb3(
        "l2o/Quadratic-v0",
        "ppo",
        out_dir=tmp_path / name,
        timesteps=timesteps,
        num_envs=num_envs,
        config=config,
        reference=reference or FixedGD(),
        progress_bar=False,
        validation_instances=4,
        env_kwargs={"dim": 3, "horizon": 8, **(env_kwargs or {})},
    )
