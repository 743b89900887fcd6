"""Tune hand-designed optimizers fairly, save the settings, and reuse them.

`tune(name, family)` runs every point of a hyperparameter grid (the cartesian product of the
grid's lists; by default the optimizer's log grid) on the SAME `instances` instances of `split`
for `horizon` steps, and keeps the point with the lowest mean Li & Malik cost: per instance
Σ_{t=1..T} f(x_t) / |f(x_0)|, plus DIVERGED_COST_PER_STEP · T for an instance that diverged
(its objective stays at its last finite value, so the cost stays finite). Ties go to the first
point in grid order.

Settings are saved as JSON (`save_tuned` / `load_tuned`); `tuned_optimizer` reuses a cached
setting keyed by (env id or family class, family kwargs, horizon, optimizer name) or tunes and
saves one. Default cache: $L2O_GYM_CACHE/tuned.json if that variable is set (a directory), else
~/.cache/l2o_gym/tuned.json.

`ensure_tuned(requests)` does the same for many (optimizer, env id, horizon, family kwargs)
at once: the settings missing from the cache are tuned as independent cells on a backend of
`l2o_gym.execution` (in-process by default, or Ray), each saved to the cache as it finishes, so
an interrupted tuning sweep resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from agents.hand_designed import make_optimizer, optimizer_class
from l2o_gym.atomic_io import atomic_write_json
from l2o_gym.execution import check_backend, run_cells
from l2o_gym.problem import TaskFamily, check_positive_int, check_split
from l2o_gym.registry import make_family
from l2o_gym.unroll import Curves, unroll
from l2o_gym.update_rule import UpdateRule

DIVERGED_COST_PER_STEP = 10.0
CACHE_FORMAT = "l2o_gym.tuned_settings"
CACHE_VERSION = 1


@dataclass
class TunedSetting:
    """The best grid point of optimizer `name` on a family: hparams, its mean cost `score`, where it
    was tuned (env_id, or None for a family given directly), `horizon`, `split`; and what identifies
    the family in the cache: `family` ("module:Class") and `family_kwargs`."""

    name: str
    hparams: dict[str, float]
    score: float
    env_id: str | None
    horizon: int
    split: str
    family: str = ""
    family_kwargs: dict[str, Any] = field(default_factory=dict)
    instances: int = 0
    seed: int = 0

    def key(self) -> str:
        """Cache key: env id (or family class), family kwargs, horizon, optimizer name."""
        return cache_key(self.name, self.env_id or self.family, self.family_kwargs, self.horizon)


def cache_key(name: str, family_id: str, family_kwargs: dict[str, Any], horizon: int) -> str:
    return json.dumps([family_id, family_kwargs, horizon, name], sort_keys=True, default=repr)


def li_malik_cost(curves: Curves) -> Tensor:
    """Per-instance cost [B]: Σ_{t=1..T} f(x_t) / |f(x_0)|, plus DIVERGED_COST_PER_STEP · T if diverged."""
    objectives = curves.objectives
    horizon = objectives.shape[0] - 1
    cost = (objectives[1:] / objectives[0].abs().clamp_min(1e-12)).sum(dim=0)
    cost = torch.nan_to_num(cost, nan=0.0, posinf=0.0, neginf=0.0)
    return cost + curves.diverged.to(cost.dtype) * (DIVERGED_COST_PER_STEP * horizon)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _resolve_family(
    family: TaskFamily | str, family_kwargs: dict[str, Any] | None = None
) -> tuple[TaskFamily, str | None, str, dict[str, Any]]:
    """(family, env id or None, "module:Class", kwargs identifying it)."""
    if isinstance(family, str):
        kwargs = dict(family_kwargs or {})
        built = make_family(family, **kwargs)
        return built, family, f"{type(built).__module__}:{type(built).__qualname__}", kwargs
    if isinstance(family, TaskFamily):
        if family_kwargs:
            raise ValueError("family_kwargs apply to an env id only; the family given is already built")
        attrs = {k: v for k, v in sorted(vars(family).items()) if not k.startswith("_") and _jsonable(v)}
        return family, None, f"{type(family).__module__}:{type(family).__qualname__}", attrs
    raise TypeError(f"family must be a TaskFamily or a registered env id (str), got {type(family).__name__}")


def _grid_points(name: str, grid: dict[str, list[float]] | None) -> list[dict[str, float]]:
    """Every point of the grid, each validated by building the optimizer (errors before any work)."""
    cls = optimizer_class(name)
    grid = cls.default_grid() if grid is None else grid
    if not isinstance(grid, dict) or not grid:
        raise ValueError(
            f"grid for {name!r} must be a non-empty dict of hyperparameter -> list of values, got {grid!r}"
        )
    for key, values in grid.items():
        if key not in cls.HYPERPARAMETERS:
            raise ValueError(
                f"grid names unknown hyperparameter {key!r} for {name!r}; allowed: {sorted(cls.HYPERPARAMETERS)}"
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] for {name!r} must be a non-empty list of numbers, got {values!r}")
    grid = {key: list(values) for key, values in grid.items()}
    keys = list(grid)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]
    for point in points:
        make_optimizer(name, **point)  # raises a ValueError for an invalid value
    return points


def tune(
    name: str,
    family: TaskFamily | str,
    *,
    split: str = "validation",
    grid: dict[str, list[float]] | None = None,
    instances: int = 100,
    horizon: int = 40,
    seed: int = 0,
    family_kwargs: dict[str, Any] | None = None,
) -> TunedSetting:
    """The grid point of optimizer `name` with the lowest mean Li & Malik cost on `family` (a
    TaskFamily or a registered env id, built with `family_kwargs`)."""
    points = _grid_points(name, grid)
    check_split(split)
    check_positive_int("instances", instances)
    check_positive_int("horizon", horizon)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    built, env_id, family_id, kwargs = _resolve_family(family, family_kwargs)
    problem = built.sample(instances, torch.Generator().manual_seed(seed), split)
    best_point, best_score = points[0], math.inf
    for point in points:
        score = float(li_malik_cost(unroll(make_optimizer(name, **point), problem, horizon)).mean())
        if score < best_score:
            best_point, best_score = point, score
    return TunedSetting(
        name=name,
        hparams={k: float(v) for k, v in best_point.items()},
        score=best_score,
        env_id=env_id,
        horizon=horizon,
        split=split,
        family=family_id,
        family_kwargs=kwargs,
        instances=instances,
        seed=seed,
    )


def save_tuned(settings: TunedSetting | Iterable[TunedSetting], path: str | Path) -> Path:
    """Write settings to `path` as JSON, atomically (a later setting with the same key wins)."""
    if isinstance(settings, TunedSetting):
        settings = [settings]
    by_key: dict[str, TunedSetting] = {}
    for setting in settings:
        if not isinstance(setting, TunedSetting):
            raise TypeError(f"settings must be TunedSetting objects, got {type(setting).__name__}")
        by_key[setting.key()] = setting
    payload = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "settings": [asdict(s) for s in by_key.values()]}
    return atomic_write_json(path, payload)


def load_tuned(path: str | Path) -> list[TunedSetting]:
    """Settings saved by `save_tuned`; a file of another kind raises a ValueError naming it."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a tuned-settings JSON file: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path} is not a tuned-settings file (format {CACHE_FORMAT!r} expected)")
    if payload.get("version") != CACHE_VERSION:
        raise ValueError(f"{path} has tuned-settings version {payload.get('version')!r}, expected {CACHE_VERSION}")
    try:
        return [TunedSetting(**entry) for entry in payload["settings"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} holds a malformed tuned setting: {error}") from error


def default_cache_path() -> Path:
    """$L2O_GYM_CACHE/tuned.json if L2O_GYM_CACHE is set, else ~/.cache/l2o_gym/tuned.json."""
    root = os.environ.get("L2O_GYM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "l2o_gym") / "tuned.json"


def _cache_file(cache_path: str | Path | None) -> Path:
    """`cache_path`, or the default cache when None."""
    return Path(cache_path) if cache_path is not None else default_cache_path()


def _add_to_cache(setting: TunedSetting, path: Path) -> None:
    """Save `setting` with the settings already in `path` (it replaces one of the same key)."""
    existing = load_tuned(path) if path.exists() else []
    save_tuned([*existing, setting], path)


def find_tuned(
    name: str,
    family_or_env_id: TaskFamily | str,
    horizon: int,
    cache_path: str | Path | None = None,
    family_kwargs: dict[str, Any] | None = None,
) -> TunedSetting | None:
    """The cached setting for (family, family kwargs, horizon, name), or None."""
    path = _cache_file(cache_path)
    if not path.exists():
        return None
    _, env_id, family_id, kwargs = _resolve_family(family_or_env_id, family_kwargs)
    wanted = cache_key(name, env_id or family_id, kwargs, horizon)
    for setting in load_tuned(path):
        if setting.key() == wanted:
            return setting
    return None


def tuned_optimizer(
    name: str,
    family_or_env_id: TaskFamily | str,
    horizon: int,
    cache_path: str | Path | None = None,
    *,
    family_kwargs: dict[str, Any] | None = None,
    **tune_kwargs: Any,
) -> UpdateRule:
    """Optimizer `name` with its tuned hyperparameters: from the cache if there, else tuned now (with
    `tune_kwargs`) and saved. A cached setting is reused whatever `tune_kwargs` say."""
    optimizer_class(name)
    check_positive_int("horizon", horizon)
    path = _cache_file(cache_path)
    setting = find_tuned(name, family_or_env_id, horizon, path, family_kwargs)
    if setting is None:
        setting = tune(name, family_or_env_id, horizon=horizon, family_kwargs=family_kwargs, **tune_kwargs)
        _add_to_cache(setting, path)
    return make_optimizer(name, **setting.hparams)


TuningRequest = tuple[str, str, int, "dict[str, Any] | None"]  # (optimizer, env id, horizon, family kwargs)


def tune_cell(arguments: dict[str, Any]) -> dict[str, Any]:
    """One tuning cell: `tune(**arguments)` as a JSON-able dict."""
    return asdict(tune(**arguments))


def ensure_tuned(
    requests: Iterable[TuningRequest],
    cache_path: str | Path | None = None,
    *,
    instances: int = 100,
    seed: int = 0,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
) -> list[TunedSetting]:
    """The tuned setting of every (optimizer, env id, horizon, family kwargs) request, in order: from
    the cache where there, else tuned now on `backend` (one cell per request; each saved to the cache
    as it finishes). A cached setting is reused whatever `instances` and `seed` say."""
    check_backend(backend, address)
    check_positive_int("instances", instances)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    path = _cache_file(cache_path)
    requests = [(name, env_id, horizon, dict(kwargs or {})) for name, env_id, horizon, kwargs in requests]
    cells: dict[str, dict[str, Any]] = {}
    for name, env_id, horizon, kwargs in requests:
        optimizer_class(name)
        check_positive_int("horizon", horizon)
        if not isinstance(env_id, str):
            raise TypeError(f"env id must be a registered id (str), got {env_id!r}")
        if find_tuned(name, env_id, horizon, path, kwargs) is None:
            _grid_points(name, None)
            cells[cache_key(name, env_id, kwargs, horizon)] = dict(
                name=name, family=env_id, horizon=horizon, family_kwargs=kwargs, instances=instances, seed=seed
            )

    def save(_: str, setting: dict[str, Any]) -> None:
        _add_to_cache(TunedSetting(**setting), path)

    if cells:
        run_cells(tune_cell, cells, backend=backend, address=address, progress=progress, desc="tuning", on_result=save)
    settings = []
    for name, env_id, horizon, kwargs in requests:
        setting = find_tuned(name, env_id, horizon, path, kwargs)
        if setting is None:
            raise RuntimeError(f"tuned setting of {name} on {env_id} (horizon {horizon}) missing from {path}")
        settings.append(setting)
    return settings


__all__ = [
    "DIVERGED_COST_PER_STEP",
    "TunedSetting",
    "default_cache_path",
    "ensure_tuned",
    "find_tuned",
    "li_malik_cost",
    "load_tuned",
    "save_tuned",
    "tune",
    "tune_cell",
    "tuned_optimizer",
]
