"""Environment ids: the built-in families and plug-in registration of new objectives.

Built-in ids point at `tasks` by string entry points, so importing `l2o_gym` imports no task.
Each id is registered with the single env as `entry_point` and the native vector env as
`vector_entry_point`: ``gymnasium.make(id)`` and ``gymnasium.make_vec(id, num_envs=B)`` both work.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from l2o_gym.family_loader import load_object, resolve_family, split_kwargs
from l2o_gym.function_family import FunctionFamily, Initializer, Objective
from l2o_gym.problem import TaskFamily

ENV_ENTRY_POINT = "l2o_gym.envs.optimization_env:OptimizationEnv"
VECTOR_ENTRY_POINT = "l2o_gym.envs.optimization_vector_env:OptimizationVectorEnv"

BUILTIN_FAMILIES: dict[str, str] = {
    "l2o/Quadratic-v0": "tasks.quadratic:QuadraticFamily",
    "l2o/Rosenbrock-v0": "tasks.rosenbrock:RosenbrockFamily",
    "l2o/LogisticRegression-v0": "tasks.logistic_regression:LogisticRegressionFamily",
    "l2o/RobustLinearRegression-v0": "tasks.robust_linear_regression:RobustLinearRegressionFamily",
    "l2o/TwoLayerNet-v0": "tasks.two_layer_net:TwoLayerNetFamily",
    "l2o/MAMLSinusoid-v0": "tasks.maml_sinusoid:MAMLSinusoidFamily",
    "l2o/MAMLDigits-v0": "tasks.maml_digits:MAMLDigitsFamily",
    "l2o/MANNDigits-v0": "tasks.mann_digits:MANNDigitsFamily",
    "l2o/HyperNetDigits-v0": "tasks.hypernet_digits:HyperNetDigitsFamily",
}


def register_family(env_id: str, family: TaskFamily | type | str, **env_kwargs: Any) -> None:
    """Register `env_id` for a TaskFamily (instance, class or "module:Class"); `env_kwargs` are
    defaults for the episode options and the family's own keywords."""
    if not isinstance(env_id, str) or "-v" not in env_id:
        raise ValueError(f"env_id must look like 'namespace/Name-v0', got {env_id!r}")
    gym.register(
        id=env_id,
        entry_point=ENV_ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs={"family": family, **env_kwargs},
        disable_env_checker=False,
    )


def register_objective(
    env_id: str,
    fn: Objective,
    dim: int,
    *,
    init: Initializer | torch.Tensor | None = None,
    **env_kwargs: Any,
) -> None:
    """Register a plain function `fn(x: Tensor[d]) -> scalar Tensor` as `env_id`.

    `init` draws a starting point [d] from a torch generator (or is one fixed point); by default
    starting points are standard normal. `fn` is checked now: a non-scalar result is an error.
    """
    episode_kwargs, family_kwargs = split_kwargs(env_kwargs)
    family = FunctionFamily(fn, dim, init, **family_kwargs)
    register_family(env_id, family, **episode_kwargs)


def make_family(env_id: str, **family_kwargs: Any) -> TaskFamily:
    """The task family behind a registered id (with the id's default kwargs, overridden)."""
    spec = gym.spec(env_id)
    kwargs = dict(spec.kwargs)
    family = kwargs.pop("family")
    _, default_family_kwargs = split_kwargs(kwargs)
    return resolve_family(family, {**default_family_kwargs, **family_kwargs})


def env_options(env_id: str) -> dict[str, Any]:
    """The episode options registered with `env_id` (horizon, action_scale, ...)."""
    episode_kwargs, _ = split_kwargs({k: v for k, v in gym.spec(env_id).kwargs.items() if k != "family"})
    return episode_kwargs


def l2o_env_ids() -> list[str]:
    """Registered ids that are l2o_gym optimization environments."""
    return sorted(env_id for env_id, spec in gym.registry.items() if spec.entry_point == ENV_ENTRY_POINT)


def make_sb3_vec_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    coordinatewise: bool = False,
    **env_kwargs: Any,
):
    """A stable-baselines3 VecEnv of `num_envs` instances of `env_id` (B · d envs when
    coordinatewise), natively batched."""
    from l2o_gym.envs.sb3_vec_env import OptimizationSB3VecEnv

    kwargs = {**gym.spec(env_id).kwargs, **env_kwargs, "coordinatewise": coordinatewise}
    family = kwargs.pop("family")
    return OptimizationSB3VecEnv(family, num_envs, seed=seed, **kwargs)


def register_builtin_envs() -> None:
    for env_id, entry_point in BUILTIN_FAMILIES.items():
        if env_id not in gym.registry:
            register_family(env_id, entry_point)
    load_object("tasks.heldout_suite:register_heldout_suite")()  # test-only ids, listed in tasks/heldout_suite.py


__all__ = [
    "register_family",
    "register_objective",
    "make_family",
    "make_sb3_vec_env",
    "l2o_env_ids",
    "load_object",
]
