"""Problems and task families: the objectives the gym optimizes.

A `TaskFamily` draws `Problem`s; a `Problem` holds B independent instances of one objective as
batched tensors (leading dimension B). Every per-instance tensor is named in `instance_fields`
so that instances can be replaced row by row (the vector envs' autoreset) without knowing the
family.

Held-out part (the query set): a problem whose family sets ``has_query = True`` implements
`query_loss(x[B, d]) -> [B]`, its objective on data of the same task that the training objective
never sees (MAML's query set, a classifier's test images, fixed validation episodes). Envs can pay
their reward on it (`objective="query"`) and evaluation records it per step.

Train, validation and test instances come from disjoint seed streams: `TaskFamily.sample`
draws a base seed from the caller's generator and maps it to ``3 * base + split_index``, so no
seed ever used for one split can occur for another.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

SPLITS: tuple[str, ...] = ("train", "validation", "test")


def check_split(split: str) -> str:
    """Return `split` if it names a split, else raise a ValueError naming the allowed ones."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def split_seed(base_seed: int, split: str) -> int:
    """Map a base seed (0 <= base < 2**62) into `split`'s stream; the three streams are disjoint."""
    if not 0 <= base_seed < 2**62:
        raise ValueError(f"base_seed must lie in [0, 2**62), got {base_seed}")
    return 3 * base_seed + SPLITS.index(check_split(split))


def autograd_loss_and_grad(loss_fn, x: Tensor) -> tuple[Tensor, Tensor]:
    """f[B] and ∇f[B, d] of a batched loss `loss_fn(x[B, d]) -> f[B]` in one autograd call."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = loss_fn(x)
        (grad,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), grad.detach()


class Problem(ABC):
    """B instances of an objective over x ∈ R^d.

    Subclasses implement `loss(x[B, d]) -> f[B]` and list their per-instance tensors (leading
    dimension B) in `instance_fields`; `x0` [B, d], the instances' starting points, is always one.
    Stochastic problems (minibatches) set `stochastic = True` and draw from `self.generator`.
    """

    instance_fields: ClassVar[tuple[str, ...]] = ()
    stochastic: ClassVar[bool] = False
    has_query: ClassVar[bool] = False  # True where it implements query_loss

    def __init__(self, x0: Tensor, generator: torch.Generator | None = None) -> None:
        if x0.dim() != 2:
            raise ValueError(f"x0 must have shape [B, d], got {tuple(x0.shape)}")
        self.x0 = x0
        self.generator = generator
        self.f_star: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.x0.shape[0]

    @property
    def dim(self) -> int:
        return self.x0.shape[1]

    @property
    def device(self) -> torch.device:
        return self.x0.device

    @abstractmethod
    def loss(self, x: Tensor) -> Tensor:
        """Objective of each instance: x [B, d] -> f [B]."""

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """f [B] and ∇f [B, d] at x [B, d]; override with an analytic gradient where cheaper."""
        return autograd_loss_and_grad(self.loss, x)

    def query_loss(self, x: Tensor) -> Tensor:
        """Objective on each instance's held-out part (its query set): x [B, d] -> [B].

        Only problems with ``has_query = True`` implement it; it is never differentiated by the envs.
        """
        raise NotImplementedError(f"{type(self).__name__} has no held-out query set")

    def init(self) -> Tensor:
        """Starting points x0 [B, d] (a copy)."""
        return self.x0.clone()

    def metrics(self, x: Tensor) -> dict[str, Tensor]:
        """Task-specific per-instance figures at x [B, d] (e.g. query accuracy), each [B]."""
        return {}

    def compute_optimum(self) -> Tensor | None:
        """Each instance's optimal objective f* [B], or None where the family cannot give it."""
        return None

    def optimum(self) -> Tensor | None:
        """f* [B], computed once and cached (None if unknown)."""
        if self.f_star is None:
            f_star = self.compute_optimum()
            if f_star is not None:
                self.f_star = f_star.detach().to(self.x0.dtype)
        return self.f_star

    def astype(self, dtype: torch.dtype) -> Problem:
        """A shallow copy whose floating-point tensors (instance fields, x0, f*, shared constants)
        are in `dtype`; integer tensors (labels) stay as they are."""
        cast = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.is_floating_point():
                setattr(cast, name, value.to(dtype))
        return cast

    def _fields(self) -> tuple[str, ...]:
        return ("x0", *self.instance_fields) + (("f_star",) if self.f_star is not None else ())

    def select_rows(self, index: Tensor) -> Problem:
        """A shallow copy holding the instances at `index` [n] (their f* too, where computed)."""
        selected = copy.copy(self)
        for name in self._fields():
            setattr(selected, name, getattr(self, name)[index])
        return selected

    def cat_rows(self, other: Problem) -> Problem:
        """A shallow copy holding this problem's instances, then `other`'s (f* kept where both have it)."""
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got {type(other).__name__}")
        both = copy.copy(self)
        if self.f_star is None or other.f_star is None:
            both.f_star = None
        for name in both._fields():
            setattr(both, name, torch.cat([getattr(self, name), getattr(other, name).to(self.device)]))
        return both

    def replace_rows(self, mask: Tensor, other: Problem) -> None:
        """Replace the instances where mask [B] is true by `other`'s (other.batch_size = mask.sum())."""
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got {type(other).__name__}")
        if int(mask.sum()) != other.batch_size:
            raise ValueError(f"mask selects {int(mask.sum())} rows, other has {other.batch_size}")
        if self.f_star is not None:
            other.optimum()
        for name in self._fields():
            getattr(self, name)[mask] = getattr(other, name).to(self.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, dim={self.dim})"


class TaskFamily(ABC):
    """A distribution over problems of dimension `dim`.

    Subclasses implement `sample_instances(n, generator, device)`, drawing every random number
    from `generator` (one call for all n instances where possible).
    """

    description: ClassVar[str] = ""
    default_action_scale: ClassVar[float] = 0.1
    has_optimum: ClassVar[bool] = False  # True where its problems implement compute_optimum
    has_query: ClassVar[bool] = False  # True where its problems implement query_loss
    test_only: ClassVar[bool] = False  # True for held-out task families: never trained on
    dim: int

    @abstractmethod
    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> Problem:
        """Draw n instances from `generator` onto `device`."""

    def sample_split_instances(self, n: int, generator: torch.Generator, split: str, device: torch.device) -> Problem:
        """Draw n instances of `split`. Override where the split chooses the data itself (e.g.
        held-out classes); by default a split differs only by its seed stream."""
        return self.sample_instances(n, generator, device)

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        split: str = "train",
        device: str | torch.device = "cpu",
    ) -> Problem:
        """n instances of `split` ("train", "validation" or "test"); all their randomness comes
        from a generator seeded in that split's stream, derived from `generator`."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        base = int(torch.randint(0, 2**62, (1,), generator=generator))
        instance_generator = torch.Generator().manual_seed(split_seed(base, split))
        problem = self.sample_split_instances(n, instance_generator, check_split(split), torch.device(device))
        if problem.dim != self.dim or problem.batch_size != n:
            raise RuntimeError(
                f"{type(self).__name__}.sample_instances returned {problem!r}, expected batch_size={n}, dim={self.dim}"
            )
        return problem

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


def check_trainable(family: TaskFamily, env_id: str) -> TaskFamily:
    """`family`, or a one-line ValueError when it is a held-out (test-only) task family."""
    if family.test_only:
        raise ValueError(f"{env_id} is a held-out (test-only) task family: it is never trained on")
    return family


def check_positive_int(name: str, value: object) -> int:
    """Return value if it is an int >= 1, else raise a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
