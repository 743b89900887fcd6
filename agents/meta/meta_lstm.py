"""Ravi & Larochelle's meta-learner LSTM ("Optimization as a model for few-shot learning", 2017),
as an `UpdateRule`.

The learner's parameters are the meta-LSTM's cell state, c_t = θ_t (here: the location x [B, d]):

    θ_t = f_t ⊙ θ_{t-1} - i_t ⊙ ∇L_t
    i_t = σ(W_I · [h_t, θ_{t-1}, i_{t-1}] + b_I)     (seed slide eq. 7)
    f_t = σ(W_F · [h_t, θ_{t-1}, f_{t-1}] + b_F)     (eq. 8; the slide prints i_{t-1} in f_t's input,
                                                      the paper and its code use f_{t-1}, as here)

where h_t [B·d, 20] is the output of a first 20-unit LSTM reading the LogAndSign-preprocessed
(p = 10) gradient and loss of each coordinate, i.e. the [∇L_t, L_t] of eqs. 7-8 enter through it,
as in the authors' code. Everything is shared across coordinates and batched over all B·d rows.
Initialisation as in the paper: W_F, W_I ~ U(-0.01, 0.01), b_F ~ U(4, 6), b_I ~ U(-5, -4), so the
first steps are f ≈ 1, i ≈ 0.01: SGD with a small learning rate. The step returned is
Δx = θ_t - θ_{t-1} = (f_t - 1) ⊙ x - i_t ⊙ ∇f.

Learned initial state θ_0: only with ``learn_init=True`` (for tasks whose instances start from a
meta-learned initial state, e.g. a MAML initialisation; the classic families draw their own x0 per
instance and do not use it). Then `theta0` [d] is a parameter, the meta-trainer starts every
instance there, and `apply_initial_point(problem)` writes it into a problem's x0 so that
`l2o_gym.unroll` starts there too. Ravi & Larochelle's few-shot setting (θ_0 and the LSTM
meta-trained jointly on the query loss after the inner loop): `agents.meta.learned_init_training`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from agents.meta.log_and_sign import DEFAULT_P, log_and_sign
from agents.meta.lstm_rule import LSTMRule
from l2o_gym.problem import Problem, check_positive_int
from l2o_gym.state import OptimizationState

# per row: first LSTM (h, c) [N, hidden], previous forget and input gates [N]
Hidden = tuple[Tensor, Tensor, Tensor, Tensor]


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


class MetaLearnerLSTM(nn.Module):
    """First LSTM over preprocessed (∇, L) rows, then the gate equations 7-8 (see the module docstring).

    All initial weights are drawn from `generator` (default: a generator seeded with 0).
    """

    def __init__(
        self,
        hidden_size: int = 20,
        p: float = DEFAULT_P,
        dim: int | None = None,
        learn_init: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        if not (p > 0 and math.isfinite(p)):
            raise ValueError(f"p must be a positive finite number, got {p!r}")
        self.p = float(p)
        if learn_init and dim is None:
            raise ValueError("learn_init=True needs dim (the size of the learned initial state θ_0)")
        self.dim = None if dim is None else check_positive_int("dim", dim)
        self.learn_init = bool(learn_init)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.lstm = nn.LSTMCell(4, hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)
        with torch.no_grad():
            for param in self.lstm.parameters():
                param.copy_(_uniform(tuple(param.shape), -bound, bound, gen))
        gate_inputs = hidden_size + 2
        self.W_F = nn.Parameter(_uniform((gate_inputs,), -0.01, 0.01, gen))
        self.W_I = nn.Parameter(_uniform((gate_inputs,), -0.01, 0.01, gen))
        self.b_F = nn.Parameter(_uniform((), 4.0, 6.0, gen))
        self.b_I = nn.Parameter(_uniform((), -5.0, -4.0, gen))
        self.theta0 = nn.Parameter(torch.zeros(self.dim)) if self.learn_init else None

    def architecture(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "p": self.p, "dim": self.dim, "learn_init": self.learn_init}

    def initial_hidden(self, rows: int, device: torch.device, dtype: torch.dtype) -> Hidden:
        zeros = torch.zeros(rows, self.hidden_size, device=device, dtype=dtype)
        gates = torch.zeros(rows, device=device, dtype=dtype)
        return zeros, zeros, gates, gates

    def forward(self, grad: Tensor, loss: Tensor, theta: Tensor, hidden: Hidden) -> tuple[Tensor, Hidden]:
        """grad, theta [B, d], loss [B] -> (step Δθ [B, d], new hidden)."""
        batch, dim = theta.shape
        g = grad.reshape(-1)
        losses = loss.unsqueeze(1).expand(batch, dim).reshape(-1)
        inputs = torch.cat([log_and_sign(g, self.p), log_and_sign(losses, self.p)], dim=1)
        h, c, f_prev, i_prev = hidden
        h, c = self.lstm(inputs, (h, c))
        th = theta.reshape(-1, 1)
        f = torch.sigmoid(torch.cat([h, th, f_prev.unsqueeze(1)], dim=1) @ self.W_F + self.b_F)
        i = torch.sigmoid(torch.cat([h, th, i_prev.unsqueeze(1)], dim=1) @ self.W_I + self.b_I)
        step = (f - 1.0) * th.squeeze(1) - i * g
        return step.view(batch, dim), (h, c, f, i)


class MetaLSTMOptimizer(LSTMRule):
    """The meta-learner LSTM as an update rule over B instances of dimension d."""

    kind = "meta_lstm"
    network = MetaLearnerLSTM

    def lstm_step(self, state: OptimizationState) -> Tensor:
        dtype = self.net.W_F.dtype
        # θ is the cell state (keeps its graph). The gradient and loss inputs carry a graph only under
        # advance(..., second_order=True) (state.grad then has one); otherwise they are detached.
        second_order = state.grad.requires_grad
        loss = state.f if second_order else state.f.detach()
        step, self.hidden = self.net(state.grad.to(dtype), loss.to(dtype), state.x.to(dtype), self.hidden)
        return step.to(state.x.dtype)

    def start_points(self, problem: Problem) -> Tensor | None:
        """θ_0 broadcast to [B, d] (keeping its graph), or None without a learned initial state."""
        if self.net.theta0 is None:
            return None
        if problem.dim != self.net.dim:
            raise ValueError(f"problem has dim {problem.dim}, the learned θ_0 has dim {self.net.dim}")
        return self.net.theta0.to(problem.x0.dtype).unsqueeze(0).expand(problem.batch_size, -1)


load = MetaLSTMOptimizer.load  # the loader `agents.runtime.saved_rules.load_rule` finds for kind "meta_lstm"
