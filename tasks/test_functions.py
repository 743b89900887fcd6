"""Standard test functions for optimizers, shifted per instance: Rastrigin, Styblinski–Tang and
Beale. Held out from training (test-only: the "train" split is refused).

Each instance has its own shift s [d] ~ U(-shift, shift)^d and starting point x0 ~ U(domain)^d;
the objective is g(x - s), so the optimum moves with s and f* is known:
- Rastrigin (any d): g(z) = 10 d + Σ z_i² - 10 cos(2π z_i); f* = 0 at z = 0; domain [-5.12, 5.12];
  highly multimodal (a local method finds a nearby local minimum).
- Styblinski–Tang (any d): g(z) = ½ Σ z_i⁴ - 16 z_i² + 5 z_i; f* = -39.16616570377142 d at
  z_i = -2.903534; domain [-5, 5]; 2^d local minima.
- Beale (d = 2): g(z) = (1.5 - z₁ + z₁z₂)² + (2.25 - z₁ + z₁z₂²)² + (2.625 - z₁ + z₁z₂³)²;
  f* = 0 at z = (3, 0.5); domain [-4.5, 4.5]; steep walls, values up to ~1e5.

Shapes: shift [B, d], x [B, d].
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from tasks.sklearn_tables import check_heldout_split

STYBLINSKI_TANG_MIN_PER_DIM = -39.16616570377142


class ShiftedProblem(Problem):
    """shift [B, d]; `kind` names the test function g; f(x) = g(x - shift)."""

    instance_fields = ("shift",)

    def __init__(self, kind: str, shift: Tensor, x0: Tensor) -> None:
        super().__init__(x0)
        self.kind, self.shift = kind, shift

    def loss(self, x: Tensor) -> Tensor:
        z = x - self.shift
        if self.kind == "rastrigin":
            return 10.0 * z.shape[1] + (z.pow(2) - 10.0 * torch.cos(2 * math.pi * z)).sum(dim=1)
        if self.kind == "styblinski_tang":
            return 0.5 * (z.pow(4) - 16.0 * z.pow(2) + 5.0 * z).sum(dim=1)
        u, v = z[:, 0], z[:, 1]
        return (1.5 - u + u * v).pow(2) + (2.25 - u + u * v.pow(2)).pow(2) + (2.625 - u + u * v.pow(3)).pow(2)

    def compute_optimum(self) -> Tensor:
        value = STYBLINSKI_TANG_MIN_PER_DIM * self.dim if self.kind == "styblinski_tang" else 0.0
        return torch.full((self.batch_size,), value, dtype=self.x0.dtype, device=self.device)


class ShiftedTestFunctionFamily(TaskFamily):
    """A shifted test function (`kind`) in `dim` dimensions (test-only)."""

    test_only = True  # held out from training: every id of this family is test-only

    KINDS: ClassVar[dict[str, float]] = {"rastrigin": 5.12, "styblinski_tang": 5.0, "beale": 4.5}  # kind -> domain
    default_action_scale = 0.1
    has_optimum = True

    def __init__(self, kind: str = "rastrigin", dim: int = 2, shift: float = 1.0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {sorted(self.KINDS)}, got {kind!r}")
        self.kind, self.dim = kind, check_positive_int("dim", dim)
        if kind == "beale" and dim != 2:
            raise ValueError(f"Beale is 2-dimensional: dim must be 2, got {dim}")
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not 0 <= shift < float("inf"):
            raise ValueError(f"shift must be a finite number >= 0, got {shift!r}")
        self.shift = float(shift)
        self.description = f"[held-out, test-only] shifted {kind.replace('_', '-')} in {dim} dimensions"

    def sample_split_instances(self, n: int, generator: torch.Generator, split: str, device: torch.device) -> Problem:
        check_heldout_split(split)
        domain = self.KINDS[self.kind]
        shift = self.shift * (2 * torch.rand(n, self.dim, generator=generator) - 1)
        x0 = domain * (2 * torch.rand(n, self.dim, generator=generator) - 1)
        return ShiftedProblem(self.kind, shift.to(device), x0.to(device))

    def sample_instances(self, n: int, generator: torch.Generator, device: torch.device) -> Problem:
        """Refused: a held-out family has no training split (use `sample(..., split="test")`)."""
        return self.sample_split_instances(n, generator, "train", device)
