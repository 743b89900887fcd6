"""Turn what an env id or a user names (a family, its class, or "module:Class") into a TaskFamily,
and sort keyword arguments into the episode's and the family's."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.problem import TaskFamily

EPISODE_OPTIONS: tuple[str, ...] = tuple(
    name for name in inspect.signature(EpisodeBatch).parameters if name not in ("family", "num_instances")
)


def load_object(entry_point: str) -> Any:
    """Import "package.module:Name"."""
    if not isinstance(entry_point, str) or ":" not in entry_point:
        raise ValueError(f"entry point must look like 'package.module:Name', got {entry_point!r}")
    module_name, attr = entry_point.split(":", 1)
    return getattr(importlib.import_module(module_name), attr)


def resolve_family(family: TaskFamily | type | str, family_kwargs: dict[str, Any]) -> TaskFamily:
    """A TaskFamily from an instance, a class or an entry point, built with `family_kwargs`.

    An unknown keyword raises a TypeError naming it and listing what the env and family accept.
    """
    if isinstance(family, str):
        family = load_object(family)
    if isinstance(family, TaskFamily):
        if family_kwargs:
            raise TypeError(
                f"unknown keyword argument(s) {sorted(family_kwargs)}: the family is already built; "
                f"allowed: {list(EPISODE_OPTIONS)}"
            )
        return family
    if not (inspect.isclass(family) and issubclass(family, TaskFamily)):
        raise TypeError(f"family must be a TaskFamily, its class or 'module:Class', got {family!r}")
    parameters = inspect.signature(family).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [k for k in family_kwargs if k not in parameters and not takes_any]
    if unknown:
        allowed = list(EPISODE_OPTIONS) + [p for p in parameters if p != "self"]
        raise TypeError(f"unknown keyword argument(s) {unknown} for {family.__name__}; allowed: {allowed}")
    return family(**family_kwargs)


def split_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(episode options, family kwargs) from one keyword dict."""
    episode = {k: v for k, v in kwargs.items() if k in EPISODE_OPTIONS}
    family = {k: v for k, v in kwargs.items() if k not in EPISODE_OPTIONS}
    return episode, family
