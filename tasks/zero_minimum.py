"""Problems whose minimum value is known to be zero for every instance (f* = 0)."""

from __future__ import annotations

import torch
from torch import Tensor

from l2o_gym.problem import Problem


class ZeroMinimumProblem(Problem):
    """A problem with f* = 0 on each of its B instances (no solve needed)."""

    def compute_optimum(self) -> Tensor:
        """f* [B]: zeros."""
        return torch.zeros(self.batch_size, dtype=self.x0.dtype, device=self.device)
