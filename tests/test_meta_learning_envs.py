"""The four meta-learning ids through gymnasium.make and make_vec with the coordinatewise
observation (thousands of parameters), at their default model sizes and small data."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import l2o_gym  # noqa: F401  (registers the ids)
from l2o_gym.registry import make_family


def small_kwargs(env_id: str, cache) -> dict:
    """Default models; meta-training and data cut down so that the test is fast."""
    return {
        "l2o/MAMLSinusoid-v0": {"meta_iterations": 2, "cache_dir": str(cache)},
        "l2o/MAMLDigits-v0": {"meta_iterations": 2, "cache_dir": str(cache)},
        "l2o/MANNDigits-v0": {"episodes_per_batch": 2, "eval_episodes": 2},
        "l2o/HyperNetDigits-v0": {"train_per_class": 5, "test_per_class": 5},
    }[env_id]


METRICS = {
    "l2o/MAMLSinusoid-v0": "query_mse",
    "l2o/MAMLDigits-v0": "query_accuracy",
    "l2o/MANNDigits-v0": "accuracy_2nd",
    "l2o/HyperNetDigits-v0": "test_accuracy",
}
DIMS = {
    "l2o/MAMLSinusoid-v0": 1761,
    "l2o/MAMLDigits-v0": 3301,
    "l2o/MANNDigits-v0": 15910,
    "l2o/HyperNetDigits-v0": 1565,
}


@pytest.mark.parametrize("env_id", sorted(METRICS))
def test_make_and_make_vec_coordinatewise(env_id, tmp_path):
    kwargs = small_kwargs(env_id, tmp_path)
    assert make_family(env_id, **kwargs).dim == DIMS[env_id]
    env = gym.make(env_id, coordinatewise=True, horizon=3, **kwargs)
    obs, info = env.reset(seed=0)
    dim = DIMS[env_id]
    assert obs.shape[0] == dim and env.observation_space.contains(obs)
    assert METRICS[env_id] in info
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample() * 0.1)
    assert np.isfinite(reward) and env.observation_space.contains(obs)
    env.close()

    vec = gym.make_vec(env_id, num_envs=2, coordinatewise=True, horizon=2, split="test", **kwargs)
    obs, info = vec.reset(seed=1)
    assert obs.shape[:2] == (2, dim)
    for _ in range(3):  # crosses an autoreset
        obs, reward, terminated, truncated, info = vec.step(np.zeros((2, dim), np.float32))
    assert reward.shape == (2,) and info[METRICS[env_id]].shape == (2,)
    assert np.isfinite(obs).all()
    vec.close()


@pytest.mark.parametrize("env_id", sorted(METRICS))
def test_evaluate_with_hand_designed_optimizers(env_id, tmp_path):
    from agents.hand_designed import make_optimizer
    from l2o_gym.evaluation import evaluate

    family = make_family(env_id, **small_kwargs(env_id, tmp_path))
    rules = {"adam": make_optimizer("adam", lr=1e-3), "gd": make_optimizer("gd", lr=0.01)}
    result = evaluate(rules, family, instances=2, horizon=2, reference_horizon=2)
    for name in rules:
        curves = result.curves[name]
        assert curves.objectives.shape == (3, 2) and torch.isfinite(curves.objectives).all()
        assert curves.metrics[METRICS[env_id]].shape == (2,)


def test_task_metrics_off_leaves_them_out_and_changes_nothing_else(tmp_path):
    kwargs = {**small_kwargs("l2o/MAMLSinusoid-v0", tmp_path), "coordinatewise": True, "horizon": 2}
    runs = []
    for task_metrics in (True, False):
        vec = gym.make_vec("l2o/MAMLSinusoid-v0", num_envs=2, task_metrics=task_metrics, **kwargs)
        obs, info = vec.reset(seed=1)
        steps = [(obs, info)]
        rng = np.random.default_rng(0)
        for _ in range(3):  # crosses an autoreset
            obs, reward, terminated, truncated, info = vec.step(rng.uniform(-1, 1, (2, 1761)).astype(np.float32))
            steps.append((obs, reward, terminated, truncated, info))
        runs.append(steps)
    for with_metrics, without in zip(*runs, strict=True):
        assert "query_mse" in with_metrics[-1] and "query_mse" not in without[-1]
        assert {k: v for k, v in with_metrics[-1].items() if "query_mse" not in k}.keys() == without[-1].keys()
        for key in without[-1]:
            np.testing.assert_array_equal(with_metrics[-1][key], without[-1][key])
        for a, b in zip(with_metrics[:-1], without[:-1], strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="task_metrics must be true or false"):
        gym.make_vec("l2o/MAMLSinusoid-v0", num_envs=2, task_metrics="no", **kwargs)
