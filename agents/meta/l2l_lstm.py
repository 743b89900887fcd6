"""Andrychowicz et al.'s coordinatewise LSTM optimizer ("learning to learn by gradient descent by
gradient descent", 2016), as an `UpdateRule`.

One small network is shared by every coordinate of every instance: the gradient g [B, d] is
flattened to B·d rows, preprocessed by LogAndSign (p = 10) into [B·d, 2], fed through a two-layer
LSTM of 20 units (hidden state: per layer h, c [B·d, 20]) and a linear head to one number per row,
scaled by 0.01: Δx [B, d]. `reset(state)` builds the zero hidden state for state's B·d rows.

Saving and loading: `agents.meta.lstm_rule.LSTMRule` (kind "l2l").
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from agents.meta.log_and_sign import DEFAULT_P, log_and_sign
from agents.meta.lstm_rule import LSTMRule
from l2o_gym.problem import check_positive_int
from l2o_gym.state import OptimizationState

Hidden = list[tuple[Tensor, Tensor]]


class CoordinatewiseLSTM(nn.Module):
    """LogAndSign -> `num_layers` LSTM cells of `hidden_size` -> linear -> × output_scale, per row.

    Initial weights U(-1/√hidden, 1/√hidden) (PyTorch's default law) drawn from `generator`
    (default: a generator seeded with 0).
    """

    def __init__(
        self,
        hidden_size: int = 20,
        num_layers: int = 2,
        p: float = DEFAULT_P,
        output_scale: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        if not (p > 0 and output_scale > 0):
            raise ValueError(f"p and output_scale must be > 0, got p={p!r}, output_scale={output_scale!r}")
        self.p, self.output_scale = float(p), float(output_scale)
        sizes = [2] + [hidden_size] * num_layers
        self.cells = nn.ModuleList(nn.LSTMCell(sizes[i], sizes[i + 1]) for i in range(num_layers))
        self.head = nn.Linear(hidden_size, 1)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        bound = 1.0 / math.sqrt(hidden_size)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(-bound + 2.0 * bound * torch.rand(param.shape, generator=gen))

    def architecture(self) -> dict[str, Any]:
        return {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "p": self.p,
            "output_scale": self.output_scale,
        }

    def initial_hidden(self, rows: int, device: torch.device, dtype: torch.dtype) -> Hidden:
        zeros = torch.zeros(rows, self.hidden_size, device=device, dtype=dtype)
        return [(zeros, zeros) for _ in range(self.num_layers)]

    def forward(self, grad: Tensor, hidden: Hidden) -> tuple[Tensor, Hidden]:
        """grad [N] -> (update [N], new hidden)."""
        inputs = log_and_sign(grad, self.p)
        new_hidden = []
        for cell, (h, c) in zip(self.cells, hidden, strict=True):
            h, c = cell(inputs, (h, c))
            new_hidden.append((h, c))
            inputs = h
        return self.output_scale * self.head(inputs).squeeze(-1), new_hidden


class L2LOptimizer(LSTMRule):
    """The coordinatewise LSTM as an update rule over B instances of dimension d."""

    kind = "l2l"
    network = CoordinatewiseLSTM

    def lstm_step(self, state: OptimizationState) -> Tensor:
        # state.grad carries a graph only under advance(..., second_order=True)
        grad = state.grad.reshape(-1).to(self.hidden[0][0].dtype)
        update, self.hidden = self.net(grad, self.hidden)
        return update.view_as(state.x).to(state.x.dtype)

    def action_scale(self) -> float:
        return self.net.output_scale


load = L2LOptimizer.load  # the loader `agents.runtime.saved_rules.load_rule` finds for kind "l2l"
