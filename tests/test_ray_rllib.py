"""RLlib's PPO trains on the gym's ids through the Gymnasium registry (skipped without the ray extra).

A tiny budget: one training iteration of a few dozen steps; what is checked is that RLlib builds
the gym's own env (single env or the native vector env) from the id and that PPO updates its
network on what it sampled there."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib")
import ray  # noqa: E402
import torch  # noqa: E402

from l2o_gym.envs.optimization_env import OptimizationEnv  # noqa: E402
from l2o_gym.envs.optimization_vector_env import OptimizationVectorEnv  # noqa: E402

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "rllib_ppo.py"


def load_script():
    spec = importlib.util.spec_from_file_location("rllib_ppo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rllib_ppo():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield load_script()
    ray.shutdown()


def train_once(config):
    algo = config.build_algo()
    try:
        before = {k: v.detach().clone() for k, v in algo.get_module().state_dict().items()}
        result = algo.train()
        after = algo.get_module().state_dict()
        changed = any(not torch.equal(before[k], torch.as_tensor(after[k])) for k in before)
        env = algo.env_runner.env.unwrapped
        return result, changed, env
    finally:
        algo.stop()


def test_ppo_trains_on_the_dict_layout_of_a_registered_id(rllib_ppo):
    config = rllib_ppo.ppo_config("l2o/Quadratic-v0", batch=48, minibatch=24, epochs=1)
    assert config.env == "l2o_gym:l2o/Quadratic-v0"
    result, changed, env = train_once(config)
    assert isinstance(env.envs[0].unwrapped, OptimizationEnv)  # Gymnasium's sync vector of the gym's env
    assert env.num_envs == 1 and "gradients" in env.single_observation_space.spaces  # the dict layout
    assert result["num_env_steps_sampled_lifetime"] >= 48
    assert changed  # PPO updated the network


def test_ppo_trains_on_the_native_vector_env_with_coordinatewise_rows(rllib_ppo):
    config = rllib_ppo.ppo_config(
        "l2o/Quadratic-v0", coordinatewise=True, num_envs=4, vector_entry_point=True, batch=48, minibatch=24, epochs=1
    )
    result, changed, env = train_once(config)
    assert isinstance(env, OptimizationVectorEnv) and env.num_envs == 4  # one batched problem of 4 instances
    assert env.single_observation_space.shape == (10, env.single_observation_space.shape[1])
    assert result["num_env_steps_sampled_lifetime"] >= 48
    assert changed


def test_the_example_script_refuses_an_unknown_id(capsys):
    with pytest.raises(SystemExit) as caught:
        load_script().main(["--env", "l2o/Nothing-v0", "--iterations", "1"])
    assert caught.value.code == 2 and "unknown id" in capsys.readouterr().err
