"""Environment ids: registration of task families and plug-in objectives, and the entry-point
group through which packages of tasks register their ids.

l2o_gym names no task. When it is imported it calls every function declared in the entry-point
group ``l2o_gym.envs`` (``[project.entry-points."l2o_gym.envs"]`` in a package's pyproject.toml);
the project's own tasks declare ``builtin = "tasks.registration:register_envs"`` there. Ids point at
their families by string entry points, so importing l2o_gym imports no task module. Each id is
registered with the single env as `entry_point` and the native vector env as `vector_entry_point`:
``gymnasium.make(id)`` and ``gymnasium.make_vec(id, num_envs=B)`` both work.
"""

from __future__ import annotations

import importlib.util
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import gymnasium as gym
import torch

from l2o_gym.family_loader import load_object, resolve_family, split_kwargs
from l2o_gym.function_family import FunctionFamily, Initializer, Objective
from l2o_gym.observation_spec import LAYOUT_OPTIONS
from l2o_gym.problem import TaskFamily

ENV_ENTRY_POINT = "l2o_gym.envs.optimization_env:OptimizationEnv"
VECTOR_ENTRY_POINT = "l2o_gym.envs.optimization_vector_env:OptimizationVectorEnv"

ENTRY_POINT_GROUP = "l2o_gym.envs"
# The project's own declaration in that group (pyproject.toml), called also where the installed
# metadata lacks it: a source checkout used without installing, or an install older than it.
PROJECT_REGISTRATIONS = EntryPoint(name="builtin", value="tasks.registration:register_envs", group=ENTRY_POINT_GROUP)


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
    """The episode options registered with `env_id` (horizon, action_scale, ...; the layout options
    among them are `ObservationSpec.from_options`'s)."""
    episode_kwargs, _ = split_kwargs({k: v for k, v in gym.spec(env_id).kwargs.items() if k != "family"})
    return episode_kwargs


def l2o_env_ids() -> list[str]:
    """Registered ids that are l2o_gym optimization environments."""
    return sorted(env_id for env_id, spec in gym.registry.items() if spec.entry_point == ENV_ENTRY_POINT)


def make_sb3_vec_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    coordinatewise: bool | None = None,
    **env_kwargs: Any,
):
    """A stable-baselines3 VecEnv of `num_envs` instances of `env_id` (B · d envs when
    coordinatewise), natively batched. An `observation` spec among `env_kwargs` replaces the
    layout options registered with the id; `coordinatewise` (default false) sets that option."""
    from l2o_gym.envs.sb3_vec_env import OptimizationSB3VecEnv

    registered = dict(gym.spec(env_id).kwargs)
    if env_kwargs.get("observation") is not None:
        registered = {k: v for k, v in registered.items() if k not in LAYOUT_OPTIONS}
    elif coordinatewise is None:
        coordinatewise = False
    kwargs = {**registered, **env_kwargs}
    if coordinatewise is not None:
        kwargs["coordinatewise"] = coordinatewise
    family = kwargs.pop("family")
    return OptimizationSB3VecEnv(family, num_envs, seed=seed, **kwargs)


def registration_entry_points() -> list[EntryPoint]:
    """The functions that register environment ids: the ``l2o_gym.envs`` group of the installed
    packages, plus the project's own where it is importable and not declared."""
    declared = list(entry_points(group=ENTRY_POINT_GROUP))
    own_declared = any(ep.value == PROJECT_REGISTRATIONS.value for ep in declared)
    if not own_declared and importlib.util.find_spec(PROJECT_REGISTRATIONS.module.split(".")[0]) is not None:
        declared.append(PROJECT_REGISTRATIONS)
    return declared


def register_envs_from_entry_points() -> None:
    """Call every registration function (`registration_entry_points`); one that fails is reported
    as a RuntimeWarning naming it, and the others still register their ids."""
    for entry_point in registration_entry_points():
        try:
            entry_point.load()()
        except Exception as err:  # a broken plug-in must not make l2o_gym unimportable
            warnings.warn(
                f"l2o_gym: the {ENTRY_POINT_GROUP} entry point {entry_point.name} = {entry_point.value!r} "
                f"failed: {err!r}",
                RuntimeWarning,
                stacklevel=2,
            )


__all__ = [
    "register_family",
    "register_objective",
    "make_family",
    "make_sb3_vec_env",
    "l2o_env_ids",
    "load_object",
    "register_envs_from_entry_points",
]
