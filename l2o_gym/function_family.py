"""A user's plain objective `fn(x: Tensor[d]) -> scalar Tensor` as a task family.

Instances differ by their starting point: each is drawn by `init(generator) -> Tensor[d]`
(default: standard normal). The function is vectorised over instances with `torch.func.vmap`,
so B instances are one tensor computation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from l2o_gym.problem import Problem, TaskFamily, check_positive_int

Objective = Callable[[Tensor], Tensor]
Initializer = Callable[[torch.Generator], Tensor]


class FunctionProblem(Problem):
    """B starting points on one plain objective."""

    def __init__(self, fn: Objective, x0: Tensor) -> None:
        super().__init__(x0)
        self.fn = fn

    def loss(self, x: Tensor) -> Tensor:
        return torch.func.vmap(self.fn)(x)


def standard_normal_init(dim: int) -> Initializer:
    def init(generator: torch.Generator) -> Tensor:
        return torch.randn(dim, generator=generator)

    return init


class FunctionFamily(TaskFamily):
    """Starting points on `fn`; `init` draws one starting point [d] from a generator."""

    description = "a user-registered objective"

    def __init__(
        self, fn: Objective, dim: int, init: Initializer | Tensor | None = None, action_scale: float = 0.1
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(x: Tensor[d]) -> scalar Tensor, got {fn!r}")
        self.dim = check_positive_int("dim", dim)
        self.fn = fn
        self.init_fn = init
        self.default_action_scale = action_scale
        self._check_fn()

    def _check_fn(self) -> None:
        try:
            value = self.fn(torch.zeros(self.dim))
        except Exception as err:
            raise ValueError(f"fn failed on a zero vector of dim {self.dim}: {err!r}") from err
        if not isinstance(value, Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"fn must return a scalar torch Tensor for x of shape ({self.dim},), got {shape}")
        if not value.is_floating_point():
            raise ValueError(f"fn must return a floating-point Tensor, got dtype {value.dtype}")

    def _starts(self, n: int, generator: torch.Generator) -> Tensor:
        if self.init_fn is None:
            return torch.randn(n, self.dim, generator=generator)
        if isinstance(self.init_fn, Tensor):
            return self.init_fn.detach().to(torch.float32).expand(n, self.dim).clone()
        starts = torch.stack([torch.as_tensor(self.init_fn(generator), dtype=torch.float32) for _ in range(n)])
        if starts.shape != (n, self.dim):
            raise ValueError(f"init must return a Tensor of shape ({self.dim},), got {tuple(starts.shape[1:])}")
        return starts

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> FunctionProblem:
        return FunctionProblem(self.fn, self._starts(n, generator).to(device))
