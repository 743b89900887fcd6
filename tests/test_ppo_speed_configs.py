"""The PPO speed configurations of agents/rl/ (docs/ppo_speed.md) merged over hyperparams.yaml: each
file keeps the settings it names whatever logistic regression's default is, and that default is
the checked `ppo_fast_wide.yaml`."""

from __future__ import annotations

import pytest

from agents.rl.config_loading import load_training_config

LOGISTIC = "l2o/LogisticRegression-v0"
WIDE = {"pi": [64, 64], "vf": [32, 32]}


def settings(config: str | None, env_id: str = LOGISTIC) -> tuple:
    """(instances, steps per rollout, epochs, update fraction, network sizes)."""
    training = load_training_config(env_id, "ppo", config)
    fraction = (training.algo.get("rollout_buffer_kwargs") or {}).get("update_fraction", 1.0)
    return (
        training.num_envs,
        training.algo["n_steps"],
        training.algo["n_epochs"],
        fraction,
        training.policy["net_arch"],
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, (256, 25, 5, 0.25, WIDE)),
        ("agents/rl/ppo_fast_wide.yaml", (256, 25, 5, 0.25, WIDE)),
        ("agents/rl/ppo_fast_wider.yaml", (512, 25, 5, 0.125, WIDE)),
        ("agents/rl/ppo_fast_subsampled.yaml", (128, 25, 5, 0.5, [64, 64])),
        ("agents/rl/ppo_fast.yaml", (128, 25, 5, 1.0, [64, 64])),
        ("agents/rl/ppo_logistic_previous.yaml", (32, 100, 10, 1.0, [64, 64])),
    ],
)
def test_each_file_holds_its_settings_on_logistic_regression(config, expected):
    assert settings(config) == expected


def test_other_families_keep_their_settings():
    assert settings(None, "l2o/RobustLinearRegression-v0") == (32, 100, 10, 1.0, [64, 64])
    assert settings("agents/rl/ppo_fast_wide.yaml", "l2o/TwoLayerNet-v0") == (256, 25, 5, 0.25, WIDE)
