"""Truncated backpropagation through an unrolled optimization: the one loop that meta-trains an
update rule's weights, shared by L2L / meta-LSTM meta-training and the backprop warm start.

The unroll runs `horizon` steps of `step(state)` through the differentiable transition
``state.advance(step, differentiable=True)``, cut into pieces of `truncation` steps. After each
piece its loss, the mean over the piece's steps of `step_loss(state)` (a scalar per step, the
instances already averaged), is backpropagated into the weights (`MetaGradientStep`), then the graph
is cut: every tensor of the state is detached and `on_cut()` detaches whatever else carries it
(e.g. an LSTM's hidden state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from l2o_gym.problem import check_positive_int
from l2o_gym.state import OptimizationState


def detach_state(state: OptimizationState) -> None:
    """Cut every tensor of the state from its graph (a truncation boundary)."""
    for item in fields(state):
        value = getattr(state, item.name)
        if isinstance(value, Tensor):
            setattr(state, item.name, value.detach())


def apply_meta_gradient(
    loss: Tensor, params: list[Tensor], meta_optimizer: torch.optim.Optimizer, grad_clip: float
) -> bool:
    """Backpropagate `loss`, clip the gradient norm and step; skip (return False, weights untouched)
    when the loss or the gradient is not finite."""
    meta_optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss) or not loss.requires_grad:  # nothing to learn from (e.g. all diverged)
        return False
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if not torch.isfinite(norm):
        meta_optimizer.zero_grad(set_to_none=True)
        return False
    meta_optimizer.step()
    return True


@dataclass
class MetaGradientStep:
    """What one piece's loss updates: the weights `params`, their optimizer and the gradient-norm clip."""

    params: list[Tensor]
    optimizer: torch.optim.Optimizer
    grad_clip: float

    def apply(self, loss: Tensor) -> bool:
        """`apply_meta_gradient` on these weights; False when the piece was skipped."""
        return apply_meta_gradient(loss, self.params, self.optimizer, self.grad_clip)


@dataclass
class UnrollPieces:
    """Outcome of one truncated unroll: each piece's loss (as a float, in order), pieces applied and skipped."""

    losses: list[float] = field(default_factory=list)
    applied: int = 0
    skipped: int = 0


def truncated_unroll(
    state: OptimizationState,
    step: Callable[[OptimizationState], Tensor],
    step_loss: Callable[[OptimizationState], Tensor],
    meta_step: MetaGradientStep,
    *,
    horizon: int,
    truncation: int,
    second_order: bool = False,
    on_cut: Callable[[], None] | None = None,
) -> UnrollPieces:
    """Advance `state` (B instances, in place) `horizon` steps of `step` [B, d], updating the weights
    after every `truncation` steps with the mean of `step_loss` (scalar) over the piece.

    second_order: differentiate through the gradient fed to the rule (``advance(second_order=True)``).
    """
    check_positive_int("horizon", horizon)
    check_positive_int("truncation", truncation)
    pieces = UnrollPieces()
    with torch.enable_grad():
        for begin in range(0, horizon, truncation):
            steps = min(truncation, horizon - begin)
            total = torch.zeros((), dtype=state.f.dtype)
            for _ in range(steps):
                state.advance(step(state), differentiable=True, second_order=second_order)
                total = total + step_loss(state)
            piece_loss = total / steps
            pieces.losses.append(float(piece_loss.detach()))
            if meta_step.apply(piece_loss):
                pieces.applied += 1
            else:
                pieces.skipped += 1
            detach_state(state)
            if on_cut is not None:
                on_cut()
    return pieces
