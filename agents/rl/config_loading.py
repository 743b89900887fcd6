"""A training run's configuration loaded and checked before any work.

`load_training_config(env_id, algo, path, ...)` merges agents/rl/hyperparams.yaml, a user's file
and command-line overrides (`agents.rl.hyperparams.merged_hyperparams`) into a typed
`TrainingConfig`; `check_training_config` builds the run's family, checks the episode options
against `EpisodeBatch`, the warm starts, and the algorithm's and policy's keywords against their
``__init__``. A bad key, type or value raises a one-line `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.rl.algorithms import algorithm_class
from agents.rl.config import (
    ALGOS,
    COORDINATEWISE_SECTIONS,
    ConfigError,
    TrainingConfig,
    check_value,
    check_warm_start_policy,
    positive_int,
)
from agents.rl.hyperparams import merged_hyperparams
from agents.rl.run_family import RunFamily, check_episode_options
from agents.runtime.sb3_policy_io import policy_class, policy_kwargs_from_config


def check_warm_starts(config: TrainingConfig, algo: str, source: str) -> None:
    for name in COORDINATEWISE_SECTIONS:
        if getattr(config, name) is not None:
            check_warm_start_policy(name, algo, config.coordinatewise, source)


# keywords the training code passes itself: a config may not set them
RESERVED_KEYWORDS = (
    "self",
    "args",
    "kwargs",
    "policy",
    "env",
    "seed",
    "verbose",
    "tensorboard_log",
    "policy_kwargs",
    "_init_setup_model",
    "observation_space",
    "action_space",
    "lr_schedule",
)


def check_keywords(cls: type, given: Mapping[str, Any], section: str, source: str) -> None:
    """Every key of `given` is a keyword of `cls.__init__` (or of its bases, through **kwargs)
    that the training code does not pass itself."""
    allowed: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters
        allowed += [p for p in parameters if p not in RESERVED_KEYWORDS and p not in allowed]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    unknown = [k for k in given if k not in allowed]
    if unknown:
        raise ConfigError(
            f"unknown {section} keyword {unknown[0]!r} = {given[unknown[0]]!r} for {cls.__name__} in {source}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def load_training_config(
    env_id: str,
    algo: str,
    config: str | Path | TrainingConfig | None = None,
    *,
    timesteps: int | None = None,
    num_envs: int | None = None,
    coordinatewise: bool | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> TrainingConfig:
    """The typed configuration of training `algo` on `env_id`: hyperparams.yaml, the user's file
    `config` and the overrides, parsed and checked (a ConfigError is one line)."""
    if algo not in ALGOS:
        raise ConfigError(f"algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    if isinstance(config, TrainingConfig):
        parsed = config
    else:
        params, source = merged_hyperparams(env_id, algo, config)
        parsed = TrainingConfig.parse(params, source)
    for key, value in (("timesteps", timesteps), ("num_envs", num_envs)):
        if value is not None:
            check_value(positive_int, value, key, "the arguments")
    parsed = parsed.replace(timesteps=timesteps, num_envs=num_envs, coordinatewise=coordinatewise)
    if env_kwargs:
        parsed = dataclasses.replace(parsed, env={**parsed.env, **env_kwargs})
    return parsed if parsed.coordinatewise else parsed.for_dict_layout()


def check_training_config(config: TrainingConfig, env_id: str, algo: str) -> RunFamily:
    """Everything a run needs checked before work: the family and episode options, the warm starts,
    the algorithm's and the policy's keywords, the activation. Returns the
    run's family (built once)."""
    source = config.source
    run_family = RunFamily.resolve(env_id, config.env, source)
    check_episode_options(run_family, config.coordinatewise, source)
    check_warm_starts(config, algo, source)
    check_keywords(algorithm_class(algo), config.algo, "algo", source)
    check_keywords(policy_class(algo, config.coordinatewise), config.policy, "policy", source)
    try:
        policy_kwargs_from_config(config.policy)
    except ValueError as err:
        raise ConfigError(f"policy.{err} (in {source})") from None
    for key in ("learning_rate", "clip_range"):
        value = config.algo.get(key)
        if isinstance(value, str) and not _is_schedule(value):
            raise ConfigError(
                f"algo.{key} must be a number or a linear schedule like 'lin_0.0003', got {value!r} (in {source})"
            )
    return run_family


def _is_schedule(text: str) -> bool:
    try:
        float(text.removeprefix("lin_"))
    except ValueError:
        return False
    return text.startswith("lin_")
