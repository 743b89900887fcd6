"""Observations: what a policy sees of an `OptimizationState`.

Two layouts:

* `DictObservation` (Li & Malik): ``{"location": x [d], "gradients": [H, d], "improvements": [H]}``.
  `location` is x as it is. Gradients pass through `signed_log` (keeps the absolute scale,
  bounded by about ±6 for any float32). Improvements are Li & Malik's relative objective changes
  (f_t - f_{t-1}) / |f_{t-1}|, negative when the objective fell, clipped to ±10.
* `CoordinatewiseObservation`: one row of features per coordinate, so one policy serves any
  dimension. Row i of instance b holds: coordinate i's gradient history (H, signed_log), the
  instance's shared improvement history (H), coordinate i's last step (signed_log), and two
  linear features: its current gradient squashed as g / (1 + |g|) (≈ g near an optimum) and its
  previous action (last step / action_scale, in [-1, 1]); then, for each β in `MOMENTUM_BETAS`,
  the gradient's exponential moving average over the history window (signed_log) and the same
  average divided by the window's root-mean-square gradient (Adam's direction, in [-1, 1]) —
  ``2 H + 3 + 2 · 3`` features. With the linear pair, a policy linear in its input already
  expresses heavy-ball momentum; the averages make momentum- and Adam-like steps in log
  magnitude (agents/runtime/step_forms.py) easy to express. With ``quasi_newton_pairs`` = m > 0 each row
  also holds coordinate i of the L-BFGS direction from the newest m pairs of the history window
  (`l2o_gym.quasi_newton.window_direction`, 0 where there is none), signed_log and as a fraction
  of action_scale clipped to [-1, 1]: the one feature that sees across coordinates (the curvature
  the steps and gradients of the whole instance reveal), ``+ 2`` features. With
  ``time_features`` each row also holds the number of steps taken so far, t, as tanh(t / τ) for τ
  in `TIME_SCALES` (learned_optimization's training-step features; what Adam's bias correction and
  a decaying step size read), ``+ 4`` features. Nothing in a row depends on the dimension or the
  horizon, so a policy trained on one transfers to others.

Both return torch tensors with a leading instance dimension B.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from l2o_gym import native_kernel
from l2o_gym.quasi_newton import window_direction
from l2o_gym.signed_log import SIGNED_LOG_BOUND, SIGNED_LOG_NORM
from l2o_gym.signed_log import SIGNED_LOG_EPS as SIGNED_LOG_EPS  # re-exported, as before
from l2o_gym.signed_log import signed_log as signed_log
from l2o_gym.state import CHANGE_CLIP, OptimizationState

MOMENTUM_BETAS = (0.5, 0.9, 0.99)  # decay rates of the gradient averages in coordinatewise rows
RMS_BETA = 0.99  # decay rate of the squared-gradient average that normalises them
TIME_SCALES = (10.0, 30.0, 100.0, 300.0)  # steps; time features are tanh(t / τ)


class DictObservation:
    """Li & Malik's observation for one instance of dimension `dim` with `history` items."""

    def __init__(self, dim: int, history: int) -> None:
        self.dim, self.history = dim, history

    def space(self) -> spaces.Dict:
        return spaces.Dict(
            {
                "location": spaces.Box(-np.inf, np.inf, (self.dim,), np.float32),
                "gradients": spaces.Box(-SIGNED_LOG_BOUND, SIGNED_LOG_BOUND, (self.history, self.dim), np.float32),
                "improvements": spaces.Box(-CHANGE_CLIP, CHANGE_CLIP, (self.history,), np.float32),
            }
        )

    def __call__(self, state: OptimizationState) -> dict[str, Tensor]:
        """Observation of every instance: location [B, d], gradients [B, H, d], improvements [B, H]
        (fresh tensors; the gradients transformed once, when they entered the window)."""
        return {
            "location": state.x.clone(),
            "gradients": state.log_grad_window.ordered(),
            "improvements": state.change_window.ordered(),
        }


def window_averages(history: Tensor, steps: Tensor, betas: tuple[float, ...]) -> Tensor:
    """Exponential moving averages over a history window, bias-corrected for its filled part.

    history [B, H, ...] (oldest first, newest last, zero-filled before the first `steps` + 1
    entries); steps [B]; returns [B, len(betas), ...]. The zero-filled entries add nothing, so
    the weighted sum takes one weight table for all rows (one matrix product) and the bias
    correction divides by the filled weights' sum, Σ_{a <= min(steps, H - 1)} β^a, afterwards.
    """
    window = history.shape[1]
    decay, totals = _window_weights(window, tuple(betas), history.dtype, history.device)  # [n, H], [H, n]
    batch = history.shape[0]
    rows = history.reshape(batch, window, -1).transpose(1, 2).reshape(-1, window)  # [B·D, H]
    sums = (rows @ decay.T).reshape(batch, -1, len(betas)).transpose(1, 2)  # [B, n, D]: one matrix product
    total = totals[steps.to(torch.long).clamp(0, window - 1)].unsqueeze(2)  # [B, n, 1]
    return (sums / total).reshape(batch, len(betas), *history.shape[2:])


@lru_cache(maxsize=64)
def _window_weights(
    window: int, betas: tuple[float, ...], dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """β^age [n, H] (oldest first, newest age 0) and the sums of its newest m + 1 entries [H, n]
    for m = min(steps, H - 1) = 0 .. H - 1."""
    age = torch.arange(window - 1, -1, -1, device=device, dtype=dtype)  # newest: 0
    decay = torch.tensor(betas, device=device, dtype=dtype).unsqueeze(1) ** age  # [n, H]
    filled = (age.unsqueeze(0) <= torch.arange(window, device=device, dtype=dtype).unsqueeze(1)).to(dtype)
    return decay, (decay.unsqueeze(0) * filled.unsqueeze(1)).sum(dim=2)  # [H, n]


def grad_window_averages(state: OptimizationState, betas: tuple[float, ...], power: int = 1) -> Tensor:
    """`window_averages` of the state's gradient window (squared with power 2) [B, n, d]: the
    window's exact decayed sums (`HistoryWindow.decayed_sums`, float64, O(d) per step) over the
    filled weights' sum, rounded once to the window's dtype; where the window carries an autograd
    graph, the matrix product of `window_averages` (which keeps it)."""
    window = state.grad_window
    if window.buffer.requires_grad:
        grads = window.view()
        return window_averages(grads if power == 1 else grads.square(), state.t, betas)
    sums = window.decayed_sums(betas, power, beta_major=True)  # [n, B, d] float64
    total = filled_weight_sums(state, betas).unsqueeze(2)  # [n, B, 1]
    return sums.div_(total).to(window.buffer.dtype).transpose(0, 1)


def filled_weight_sums(state: OptimizationState, betas: tuple[float, ...]) -> Tensor:
    """Σ_{a <= min(t, H - 1)} β^a [n, B] (float64): what the window averages divide by."""
    length = state.grad_window.length
    _, totals = _window_weights(length, tuple(betas), torch.float64, state.t.device)  # [H, n]
    return totals.T[:, state.t.to(torch.long).clamp(0, length - 1)]


def window_adam_directions(
    state: OptimizationState, betas: tuple[float, ...] = MOMENTUM_BETAS, averages: Tensor | None = None
) -> Tensor:
    """Adam-like directions from the history window: for each β the gradient's average (β, bias-
    corrected over the filled window; `averages` [B, n, d] if already computed) over its
    root-mean-square (RMS_BETA), clipped to [-1, 1].

    The same numbers a coordinatewise row holds; [B, len(betas), d]."""
    if averages is None:
        averages = grad_window_averages(state, betas)  # [B, n, d]
    rms = grad_window_averages(state, (RMS_BETA,), power=2).sqrt()  # [B, 1, d]
    return (averages / rms.clamp_min(torch.finfo(rms.dtype).tiny)).clamp(-1.0, 1.0)


class CoordinatewiseObservation:
    """One row of ``2 * history + 3 + 2 * len(MOMENTUM_BETAS)`` (+ 2 with quasi-Newton pairs, + 4
    with time features) features per coordinate."""

    def __init__(
        self,
        dim: int,
        history: int,
        action_scale: float = 1.0,
        quasi_newton_pairs: int = 0,
        time_features: bool = False,
    ) -> None:
        self.dim, self.history, self.action_scale = dim, history, action_scale
        self.quasi_newton_pairs = check_quasi_newton_pairs(quasi_newton_pairs, history)
        self.time_features = check_time_features(time_features)

    @property
    def num_features(self) -> int:
        extra = (2 if self.quasi_newton_pairs else 0) + (len(TIME_SCALES) if self.time_features else 0)
        return 2 * self.history + 3 + 2 * len(MOMENTUM_BETAS) + extra

    def row_space(self) -> spaces.Box:
        """The space of one coordinate's row."""
        return spaces.Box(-CHANGE_CLIP, CHANGE_CLIP, (self.num_features,), np.float32)

    def space(self) -> spaces.Box:
        """The space of one instance: [d, F]."""
        return spaces.Box(-CHANGE_CLIP, CHANGE_CLIP, (self.dim, self.num_features), np.float32)

    def __call__(self, state: OptimizationState, out: Tensor | None = None) -> Tensor:
        """Rows of every instance: [B, d, F], each block written into one buffer as it is computed
        (torch.cat of many narrow, strided or broadcast blocks is slower); autograd flows through.
        `out`: a buffer [B, d, F] of x's dtype and device to write them into (else a fresh one)."""
        batch, dim = state.x.shape
        shape = (batch, dim, self.num_features)
        if out is None or tuple(out.shape) != shape or out.dtype != state.x.dtype or out.device != state.x.device:
            out = state.x.new_empty(shape)
        lib = native_kernel.library() if native_rows_apply(state) else None
        if lib is None:
            self._window_columns(state, out)
        else:
            native_kernel.coordinatewise_rows(
                lib,
                out,
                (state.log_grad_window.buffer, state.log_grad_window.head),
                (state.change_window.buffer, state.change_window.head),
                state.last_step.contiguous(),
                state.grad.contiguous(),
                _sums_and_totals(state, MOMENTUM_BETAS, 1),
                _sums_and_totals(state, (RMS_BETA,), 2),
                self.action_scale,
                SIGNED_LOG_NORM,
            )
        column = 2 * self.history + 3 + 2 * len(MOMENTUM_BETAS)
        if self.quasi_newton_pairs:
            newton = window_direction(state, self.quasi_newton_pairs)
            out[:, :, column] = signed_log(newton)
            out[:, :, column + 1] = (newton / self.action_scale).clamp(-1.0, 1.0)
            column += 2
        if self.time_features:
            out[:, :, column:] = time_columns(state.t, dim, state.x.dtype)
        return out

    def _window_columns(self, state: OptimizationState, out: Tensor) -> None:
        """Columns [0, 2 H + 3 + 2 n) of out [B, d, F] by torch operations, block by block."""
        history, n = self.history, len(MOMENTUM_BETAS)
        out[:, :, :history] = state.log_grad_window.view().transpose(1, 2)  # each transformed once
        out[:, :, history : 2 * history] = state.change_window.view().unsqueeze(1)
        column = 2 * history
        out[:, :, column] = signed_log(state.last_step)
        out[:, :, column + 1] = state.grad / state.grad.abs().add(1.0)
        out[:, :, column + 2] = (state.last_step / self.action_scale).clamp(-1.0, 1.0)
        column += 3
        averages = grad_window_averages(state, MOMENTUM_BETAS)  # [B, n, d]
        out[:, :, column : column + n] = signed_log(averages).transpose(1, 2)
        out[:, :, column + n : column + 2 * n] = window_adam_directions(state, MOMENTUM_BETAS, averages).transpose(1, 2)


def native_rows_apply(state: OptimizationState) -> bool:
    """Whether the compiled rows kernel can write this state's rows: float32 on the CPU, no
    autograd graph, the signed-log gradients coordinate-major (time last), the improvements batch
    first."""
    windows = (state.log_grad_window, state.grad_window, state.change_window)
    tensors = (state.x, state.grad, state.last_step, *(w.buffer for w in windows))
    return (
        state.x.dtype == torch.float32
        and state.x.device.type == "cpu"
        and state.log_grad_window.layout == "time_last"
        and state.change_window.time_dim == 1
        and state.log_grad_window.length == state.change_window.length
        and len(MOMENTUM_BETAS) <= native_kernel.MAX_BETAS
        and not any(t.requires_grad for t in tensors)
        and all(w.buffer.is_contiguous() for w in windows)
    )


def _sums_and_totals(state: OptimizationState, betas: tuple[float, ...], power: int) -> tuple[Tensor, Tensor]:
    """The gradient window's decayed sums [n, B, d] and filled weights' sums [n, B] (float64)."""
    sums = state.grad_window.decayed_sums(betas, power, beta_major=True)
    return sums, filled_weight_sums(state, betas)


def time_columns(t: Tensor, dim: int, dtype: torch.dtype) -> Tensor:
    """tanh(t / τ) for τ in TIME_SCALES, the same for every coordinate: t [B] -> [B, dim, 4]."""
    scales = torch.tensor(TIME_SCALES, dtype=dtype, device=t.device)
    return torch.tanh(t.to(dtype).unsqueeze(1) / scales).unsqueeze(1).expand(t.shape[0], dim, len(TIME_SCALES))


def check_time_features(time_features: bool) -> bool:
    """time_features must be a bool."""
    if not isinstance(time_features, bool):
        raise ValueError(f"time_features must be true or false, got {time_features!r}")
    return time_features


def check_quasi_newton_pairs(pairs: int, history: int) -> int:
    """0 (no quasi-Newton features) or a number of pairs in [1, history - 1]."""
    if isinstance(pairs, bool) or not isinstance(pairs, int) or not 0 <= pairs < history:
        raise ValueError(f"quasi_newton_pairs must be an int in [0, {history - 1}] (history {history}), got {pairs!r}")
    return pairs


def make_observation(
    coordinatewise: bool,
    dim: int,
    history: int,
    action_scale: float = 1.0,
    quasi_newton_pairs: int = 0,
    time_features: bool = False,
) -> CoordinatewiseObservation | DictObservation:
    """The observation layout: coordinatewise rows (optionally with quasi-Newton and time features)
    or Li & Malik's dict."""
    if coordinatewise:
        return CoordinatewiseObservation(dim, history, action_scale, quasi_newton_pairs, time_features)
    if quasi_newton_pairs:
        raise ValueError("quasi_newton_pairs needs the coordinatewise observation layout")
    if check_time_features(time_features):
        raise ValueError("time_features needs the coordinatewise observation layout")
    return DictObservation(dim, history)
