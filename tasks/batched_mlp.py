"""A multilayer perceptron whose B instances each have their own weights, held in one flat vector.

``BatchedMLP(sizes)`` with sizes (n_0, ..., n_L) lays its parameters out as, per layer l,
W_l [n_{l-1}, n_l] then b_l [n_l] (row-major), so x [B, d] with d = Σ n_{l-1} n_l + n_l.
``forward(x [B, d], inputs [B, n, n_0]) -> [B, n, n_L]`` runs all instances at once with batched
matmuls; ReLU between layers, none after the last. ``loss_and_grad`` gives a loss of the outputs
and its gradient in x by backpropagation written out in batched matmuls (the same numbers as
autograd, about half its time on the MAML networks: no graph is recorded).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from l2o_gym.problem import check_positive_int


class BatchedMLP:
    """Layer sizes (n_0, ..., n_L), L >= 1; `num_params` = d."""

    def __init__(self, sizes: tuple[int, ...] | list[int]) -> None:
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output size, got {sizes!r}")
        self.sizes = tuple(check_positive_int("sizes[i]", n) for n in sizes)
        self.num_params = sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def unflatten(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """[(W_l [B, n_{l-1}, n_l], b_l [B, n_l]), ...] as views into x [B, d]."""
        if x.dim() != 2 or x.shape[1] != self.num_params:
            raise ValueError(f"x must have shape [B, {self.num_params}], got {tuple(x.shape)}")
        layers, start = [], 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            weight = x[:, start : start + a * b].view(-1, a, b)
            start += a * b
            layers.append((weight, x[:, start : start + b]))
            start += b
        return layers

    def forward(self, x: Tensor, inputs: Tensor) -> Tensor:
        """Outputs [B, n, n_L] of each instance's network on its inputs [B, n, n_0]."""
        return self._run(self.unflatten(x), inputs)[0]

    @staticmethod
    def _run(layers: list[tuple[Tensor, Tensor]], inputs: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The outputs [B, n, n_L] and each layer's input [B, n, n_{l-1}] (the inputs, then the
        ReLU outputs)."""
        seen = [inputs]
        for i, (weight, bias) in enumerate(layers):
            h = torch.baddbmm(bias.unsqueeze(1), seen[-1], weight)
            if i < len(layers) - 1:
                seen.append(torch.relu(h))
        return h, seen

    def loss_and_grad(
        self, x: Tensor, inputs: Tensor, output_loss: Callable[[Tensor], tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor]:
        """f [B] and ∇f [B, d] (this layout) of f = output_loss(forward(x, inputs)); output_loss
        maps the outputs [B, n, n_L] to (f [B], ∂f/∂outputs [B, n, n_L])."""
        layers = self.unflatten(x.detach())
        outputs, seen = self._run(layers, inputs)
        f, upstream = output_loss(outputs)
        parts: list[Tensor] = []
        for i in range(len(layers) - 1, -1, -1):
            weight = layers[i][0]
            parts += [upstream.sum(dim=1), torch.bmm(seen[i].transpose(1, 2), upstream).flatten(1)]  # b_l, W_l
            if i > 0:  # through W_l, then ReLU's gate (its output is positive exactly where it passed)
                upstream = torch.bmm(upstream, weight.transpose(1, 2)).mul_(seen[i] > 0)
        return f, torch.cat(parts[::-1], dim=1)

    def init(self, n: int, generator: torch.Generator) -> Tensor:
        """n parameter vectors [n, d], torch.nn.Linear's default: U(±1/sqrt(fan_in)) for W and b."""
        parts = []
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(a)
            parts.append((2 * torch.rand(n, a * b + b, generator=generator) - 1) * bound)
        return torch.cat(parts, dim=1)
