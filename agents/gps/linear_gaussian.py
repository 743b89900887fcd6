"""Time-varying linear-Gaussian controllers: p(u_t | s_t) = N(K_t s_t + k_t, Σ_t), batched over conditions.

Shapes: C conditions (one per coordinate of each training instance), T steps, state width S,
action width A: gains [C, T, A, S], offsets [C, T, A], covariances [C, T, A, A].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LinearGaussian:
    """A batch of time-varying linear-Gaussian controllers (see module docstring for shapes)."""

    gains: Tensor
    offsets: Tensor
    covariances: Tensor

    @property
    def horizon(self) -> int:
        return self.gains.shape[1]

    def mean(self, states: Tensor, t: int) -> Tensor:
        """Mean action at step t for states [..., C, S] -> [..., C, A]."""
        return torch.einsum("cas,...cs->...ca", self.gains[:, t], states) + self.offsets[:, t]

    def sample(
        self, states: Tensor, t: int, generator: torch.Generator | None = None, mean: Tensor | None = None
    ) -> Tensor:
        """An action drawn at step t for states [N, C, S] -> [N, C, A] (around `mean` [N, C, A] if given)."""
        mean = self.mean(states, t) if mean is None else mean
        chol = torch.linalg.cholesky(self.covariances[:, t])  # [C, A, A]
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.einsum("cab,ncb->nca", chol.to(mean.dtype), noise)

    def precisions(self) -> Tensor:
        """Σ_t^{-1}: [C, T, A, A]."""
        return torch.linalg.inv(self.covariances)

    def to(self, dtype: torch.dtype) -> LinearGaussian:
        return LinearGaussian(self.gains.to(dtype), self.offsets.to(dtype), self.covariances.to(dtype))

    def state_dict(self) -> dict[str, Tensor]:
        return {"gains": self.gains, "offsets": self.offsets, "covariances": self.covariances}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> LinearGaussian:
        return cls(state["gains"], state["offsets"], state["covariances"])
