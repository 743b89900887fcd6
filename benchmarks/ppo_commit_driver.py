"""PPO problem-steps/s measured inside a materialised tree of commit d3f495a (or a later commit with
the same training API), as that code's `train_sb3` built its PPO model.

`benchmarks/ppo_against_commit.py` runs this file's source with ``python -c`` in the extracted
tree (which is then first on sys.path), so it imports only what existed at d3f495a:
`agents.rl.hyperparams.load_hyperparams`, `agents.rl.sb3_training`'s `algorithm_class`,
`policy_name`, `with_schedules` and `step_form_from_config`, `agents.runtime`'s
`policy_kwargs_from_config` and `StepFormVecEnv`, `l2o_gym.make_sb3_vec_env` and
`l2o_gym.registry.env_options`. It builds the env and the model line for line as that
`train_sb3` did (hyperparameters of the env id, coordinatewise rows, step form, episode monitor,
a TensorBoard log), without warm start or validation, and times `rollouts` rollouts and updates
after one warm-up rollout and update, as `benchmarks.ppo_throughput.measure_ppo` does for the
current code. Prints one JSON line: num_envs, dim, problem_steps, cpu_s, wall_s, collect_cpu_s.

    python -c "$(cat ppo_commit_driver.py)" ENV_ID ROLLOUTS SEED   (cwd: the commit's tree)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any


def build_model(env_id: str, seed: int, logs: str) -> tuple[Any, int, int]:
    """(the PPO model as the commit's `train_sb3` built it, instances, dimension)."""
    from stable_baselines3.common.vec_env import VecMonitor

    import l2o_gym
    from agents.rl.hyperparams import load_hyperparams
    from agents.rl.sb3_training import algorithm_class, policy_name, step_form_from_config, with_schedules
    from agents.runtime.sb3_policy_io import policy_kwargs_from_config
    from agents.runtime.step_forms import StepFormVecEnv
    from l2o_gym.registry import env_options

    params = load_hyperparams(env_id, "ppo")
    coordinatewise = bool(params["coordinatewise"])
    env_kwargs = {**env_options(env_id), **params.get("env", {})}
    raw = l2o_gym.make_sb3_vec_env(
        env_id, int(params["num_envs"]), seed=seed, coordinatewise=coordinatewise, **env_kwargs
    )
    step_form = step_form_from_config(params.get("step"))
    venv = VecMonitor(raw if step_form.name == "linear" else StepFormVecEnv(raw, step_form))
    model = algorithm_class("ppo")(
        policy_name("ppo", coordinatewise),
        venv,
        seed=seed,
        verbose=0,
        tensorboard_log=logs,
        policy_kwargs=policy_kwargs_from_config(params.get("policy")),
        **with_schedules(params.get("algo", {}) or {}),
    )
    return model, int(params["num_envs"]), int(raw.episodes.dim)


def measure(env_id: str, rollouts: int, seed: int) -> dict[str, float]:
    """Both clocks over `rollouts` rollouts and updates, and the CPU time inside the rollouts."""
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as logs:
        model, instances, dim = build_model(env_id, seed, logs)
        per_rollout = int(model.n_steps) * model.env.num_envs
        model.learn(per_rollout)  # warm-up: one rollout and one update
        collecting = [0.0]
        collect = model.collect_rollouts

        def timed_collect(*args: Any, **kwargs: Any) -> bool:
            start = time.process_time()
            try:
                return collect(*args, **kwargs)
            finally:
                collecting[0] += time.process_time() - start

        model.collect_rollouts = timed_collect
        cpu, wall = time.process_time(), time.perf_counter()
        model.learn(rollouts * per_rollout, reset_num_timesteps=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    problem_steps = rollouts * int(model.n_steps) * instances
    return {
        "num_envs": instances,
        "dim": dim,
        "problem_steps": problem_steps,
        "cpu_s": cpu,
        "wall_s": wall,
        "collect_cpu_s": collecting[0],
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
