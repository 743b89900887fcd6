"""The package's own MAML (Finn et al., 2017): meta-train an initialisation, and cache it on disk.

`meta_train(sample_tasks, init, config)` learns θ [d] such that a few gradient steps on a task's
support loss give a low query loss. Each meta-iteration draws a meta-batch of M tasks as one
batched Problem (the tasks' `loss(x[M, d]) -> [M]` is the support loss and
`query_loss(x[M, d]) -> [M]` the query loss), so the inner loop runs for all M tasks at once:

    X_0 = θ expanded to [M, d];  X_{s+1} = X_s - α ∇ loss(X_s)   (s < inner_steps)
    meta-loss = mean(query_loss(X_S));  θ <- Adam(θ, ∇_θ meta-loss)

Second-order MAML backpropagates through the inner gradients (create_graph=True); first-order
MAML treats them as constants. ``inner_steps = 0`` is the "pretrained on all tasks" baseline
(plain regression of θ on the tasks' query loss).

Cache: `cached_init(name, config, build)` stores {format, name, config, metadata, init} with
torch.save (written atomically through l2o_gym.atomic_io) under ``$L2O_GYM_CACHE/maml/`` or
``~/.cache/l2o_gym/maml/``, named by a hash of the config. A present, valid file is loaded without
training; a missing one is built (announced on the module's logger); an unreadable or inconsistent
one raises `CorruptCacheError` (``on_corrupt="raise"``) or is reported with a RuntimeWarning naming
the file and the reason, then rebuilt (``on_corrupt="rebuild"``, the default).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from l2o_gym.atomic_io import atomic_write
from l2o_gym.problem import Problem, check_positive_int, split_seed

CACHE_ENV_VAR = "L2O_GYM_CACHE"
CACHE_FORMAT = 1
ON_CORRUPT = ("rebuild", "raise")
INITS = ("maml", "fomaml", "pretrained", "random")  # where a family's instances start
LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class MAMLConfig:
    """Meta-training settings (all in the cache key)."""

    iterations: int = 2000
    meta_batch: int = 25
    inner_steps: int = 1
    inner_lr: float = 0.01
    meta_lr: float = 1e-3
    first_order: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("iterations", self.iterations)
        check_positive_int("meta_batch", self.meta_batch)
        if isinstance(self.inner_steps, bool) or not isinstance(self.inner_steps, int) or self.inner_steps < 0:
            raise ValueError(f"inner_steps must be an integer >= 0, got {self.inner_steps!r}")
        for name in ("inner_lr", "meta_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


class CorruptCacheError(RuntimeError):
    """A cache file exists but cannot be used; the message names the file and the reason."""


def inner_loop(problem: Problem, theta: Tensor, steps: int, lr: float, first_order: bool) -> Tensor:
    """Adapted parameters [M, d] after `steps` gradient steps of size `lr` on each task's loss,
    starting from theta [d] (or [M, d]); differentiable in theta (to second order unless first_order)."""
    x = theta.expand(problem.batch_size, -1) if theta.dim() == 1 else theta
    for _ in range(steps):
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(problem.loss(x).sum(), x, create_graph=not first_order)
        x = x - lr * grad
    return x


def meta_train(
    sample_tasks: Callable[[int, torch.Generator], Problem],
    init: Tensor,
    config: MAMLConfig,
    log_every: int = 0,
) -> tuple[Tensor, dict[str, Any]]:
    """Meta-train from init [d]; sample_tasks(M, generator) gives a Problem of M tasks with
    `query_loss`. Returns the learned initialisation [d] and metadata (losses, time)."""
    if init.dim() != 1:
        raise ValueError(f"init must have shape [d], got {tuple(init.shape)}")
    generator = torch.Generator().manual_seed(split_seed(config.seed, "train"))  # the train stream only
    theta = torch.nn.Parameter(init.detach().clone())
    optimizer = torch.optim.Adam([theta], lr=config.meta_lr)
    started = time.perf_counter()
    losses = []
    with torch.enable_grad():
        for it in range(config.iterations):
            tasks = sample_tasks(config.meta_batch, generator)
            adapted = inner_loop(tasks, theta, config.inner_steps, config.inner_lr, config.first_order)
            meta_loss = tasks.query_loss(adapted).mean()
            optimizer.zero_grad(set_to_none=True)
            meta_loss.backward()
            optimizer.step()
            losses.append(float(meta_loss.detach()))
            if log_every and (it + 1) % log_every == 0:
                recent = sum(losses[-log_every:]) / log_every
                print(f"meta-iteration {it + 1}/{config.iterations}: meta-loss {recent:.4f}", flush=True)
    tail = losses[-max(1, len(losses) // 20) :]
    metadata = {
        "seconds": time.perf_counter() - started,
        "final_meta_loss": sum(tail) / len(tail),
        "first_meta_loss": losses[0],
        "torch_version": str(torch.__version__),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return theta.detach().clone(), metadata


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache folder: `override`, else $L2O_GYM_CACHE, else ~/.cache/l2o_gym."""
    if override is not None:
        return Path(override)
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env) if env else Path.home() / ".cache" / "l2o_gym"


def cache_path(name: str, config: dict[str, Any], directory: str | Path | None = None) -> Path:
    """Where the init for (name, config) lives: <cache>/maml/<name>-<hash of config>.pt."""
    key = hashlib.sha256(json.dumps({"name": name, **config}, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir(directory) / "maml" / f"{name}-{key}.pt"


def load_cached(path: Path, name: str, config: dict[str, Any], dim: int) -> tuple[Tensor, dict[str, Any]]:
    """The init [dim] and metadata stored at `path`, or CorruptCacheError saying what is wrong."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a corrupt cache
        raise CorruptCacheError(f"MAML cache {path} is unreadable ({type(error).__name__}: {error})") from error
    if not isinstance(blob, dict) or blob.get("format") != CACHE_FORMAT:
        raise CorruptCacheError(f"MAML cache {path} is not a format-{CACHE_FORMAT} l2o_gym cache file")
    if blob.get("name") != name or blob.get("config") != config:
        raise CorruptCacheError(f"MAML cache {path} was written for another configuration: {blob.get('config')!r}")
    init = blob.get("init")
    if not isinstance(init, Tensor) or init.shape != (dim,) or not torch.isfinite(init).all():
        shape = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
        raise CorruptCacheError(f"MAML cache {path} holds an invalid init ({shape}, expected finite [{dim}])")
    return init, dict(blob.get("metadata", {}))


def cached_init(
    name: str,
    config: dict[str, Any],
    build: Callable[[], tuple[Tensor, dict[str, Any]]],
    dim: int,
    directory: str | Path | None = None,
    on_corrupt: str = "rebuild",
) -> tuple[Tensor, dict[str, Any]]:
    """The init [dim] for (name, config) from the cache, building and storing it if missing.

    `config` must be JSON-serialisable; its hash names the file. Returns (init, metadata)."""
    if on_corrupt not in ON_CORRUPT:
        raise ValueError(f"on_corrupt must be one of {ON_CORRUPT}, got {on_corrupt!r}")
    path = cache_path(name, config, directory)
    if path.exists():
        try:
            init, metadata = load_cached(path, name, config, dim)
            return init, {**metadata, "cache": str(path), "from_cache": True}
        except CorruptCacheError as error:
            if on_corrupt == "raise":
                raise
            warnings.warn(f"{error}; rebuilding it", RuntimeWarning, stacklevel=2)
    LOGGER.warning("meta-training %s (no usable cache at %s); this runs once per configuration", name, path)
    init, metadata = build()
    if init.shape != (dim,):
        raise RuntimeError(f"build() returned an init of shape {tuple(init.shape)}, expected [{dim}]")
    blob = {"format": CACHE_FORMAT, "name": name, "config": config, "metadata": metadata, "init": init}
    atomic_write(path, lambda tmp: torch.save(blob, tmp))
    return init, {**metadata, "cache": str(path), "from_cache": False}


def config_dict(config: MAMLConfig) -> dict[str, Any]:
    return asdict(config)


def start_instances(problem: Problem, family: Any, n: int, generator: torch.Generator, device: torch.device) -> Problem:
    """Set the n instances' starting points — random per instance (``family.init == "random"``) or
    the family's shared (meta-)learned initialisation — and move their tensors to `device`."""
    if family.init == "random":
        problem.x0 = family.net.init(n, generator)
    else:
        problem.x0 = family.initial_parameters().expand(n, -1).clone()
    for name in ("x0", *problem.instance_fields):
        setattr(problem, name, getattr(problem, name).to(device))
    return problem


class MAMLInitialised:
    """What a family whose instances start at one shared initialisation adds: the choice of that
    initialisation (`init`: meta-trained by MAML or first-order MAML, pretrained on all tasks, or
    random per instance), its meta-training length, and its cache. The family provides `net`
    (a `BatchedMLP`), `dim` and `maml_config()`."""

    def set_initialisation(
        self, init: str, meta_iterations: int, cache_dir: str | Path | None, on_corrupt: str
    ) -> None:
        """Check and keep the initialisation settings (a ValueError naming a bad one)."""
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.init = init
        self.meta_iterations = check_positive_int("meta_iterations", meta_iterations)
        self.cache_dir = cache_dir
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(f"on_corrupt must be one of {ON_CORRUPT}, got {on_corrupt!r}")
        self.on_corrupt = on_corrupt
        self._init_vector: Tensor | None = None
        self.init_metadata: dict[str, Any] = {}

    def cached_initial_parameters(
        self, name: str, key: dict[str, Any], sample_train_tasks: Callable[[int, torch.Generator], Problem]
    ) -> Tensor:
        """The shared initialisation [d]: from the cache entry (name, key + the MAML config), or
        meta-trained on `sample_train_tasks(m, generator)` and stored there; kept after the first call."""
        if self._init_vector is None:
            config = self.maml_config()

            def build() -> tuple[Tensor, dict[str, Any]]:
                init = self.net.init(1, torch.Generator().manual_seed(config.seed))[0]
                return meta_train(sample_train_tasks, init, config)

            self._init_vector, self.init_metadata = cached_init(
                name, {**key, **config_dict(config)}, build, self.dim, self.cache_dir, self.on_corrupt
            )
        return self._init_vector
