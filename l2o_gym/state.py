"""The optimization state: where B optimizers stand, and the one transition that moves them.

Every optimizer, learned or hand-designed, in training and in evaluation, moves through
`OptimizationState.advance(step)`.

Divergence: an instance whose step gives a non-finite location, objective or gradient, or an
objective above ``f0 + explode_ratio * (|f0| + 1)``, is marked `diverged` and frozen where it
was before that step (its tensors stay finite); later steps leave it untouched.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from l2o_gym import native_kernel
from l2o_gym.history_window import HistoryWindow
from l2o_gym.problem import Problem, check_positive_int
from l2o_gym.signed_log import SIGNED_LOG_NORM, signed_log

DEFAULT_HISTORY = 25
DEFAULT_EXPLODE_RATIO = 1e4
CHANGE_CLIP = 10.0


def finite_rows(*tensors: Tensor) -> Tensor:
    """[B] true where every entry of each tensor's row ([B] or [B, d]) is finite.

    For float32 (and narrower) tensors one float64 sum per tensor decides it: a sum of such values
    cannot overflow float64, so it is finite exactly when every term is (an inf or a NaN makes it
    inf or NaN). Wider tensors are checked entry by entry."""
    if all(t.dtype in _SUMMABLE for t in tensors):
        total = None
        for t in tensors:
            row = t.detach().to(torch.float64) if t.dim() == 1 else t.detach().sum(dim=1, dtype=torch.float64)
            total = row if total is None else total.add_(row)
        return torch.isfinite(total)
    ok = None
    for t in tensors:
        row = torch.isfinite(t).reshape(t.shape[0], -1).all(dim=1)
        ok = row if ok is None else ok & row
    return ok


_SUMMABLE = (torch.float32, torch.float16, torch.bfloat16)


def relative_change(f_new: Tensor, f_old: Tensor) -> Tensor:
    """Li & Malik's objective change (f_new - f_old) / |f_old|, clipped to ±10 (documented)."""
    change = (f_new - f_old) / (f_old.abs() + 1e-12)
    return change.clamp(-CHANGE_CLIP, CHANGE_CLIP)


def native_transition_library(state: OptimizationState, step: Tensor) -> ctypes.CDLL | None:
    """The compiled kernels (`l2o_gym.native_kernel`) where they can advance this state: float32 on
    the CPU, windows of one length, contiguous, without autograd graphs; else None. The windows'
    check is kept with the state (`native_windows`) while they write into the same buffers."""
    x = state.x
    if not (step.dtype == x.dtype == state.f.dtype == state.f0.dtype == torch.float32 and x.device.type == "cpu"):
        return None
    windows = (state.grad_window, state.log_grad_window, state.step_window, state.change_window)
    kept = state.native_windows
    if kept is None or not kept.current(windows):
        if not native_windows_apply(windows):
            return None
        state.native_windows = native_kernel.WindowPointers(windows)
    return native_kernel.library()


def native_windows_apply(windows: tuple[HistoryWindow, ...]) -> bool:
    """Whether the kernels can push into windows (grad, log_grad, step: items [B, d]; change: [B]):
    float32, no graph, contiguous, one length."""
    length = windows[-1].length
    for window, dims in zip(windows, (3, 3, 3, 2), strict=True):
        buffer = window.buffer
        if buffer.dim() != dims or buffer.dtype != torch.float32 or not buffer.is_contiguous() or buffer.requires_grad:
            return False
        if window.length != length:
            return False
    return True


@dataclass
class OptimizationState:
    """B optimizers on `problem` (shapes: B instances, d dims, H history items).

    x, grad, last_step: [B, d]; f, f0: [B]; grad_history: [B, H, d] (oldest first, the current
    gradient last, zero-filled at the start); step_history: [B, H, d] the steps taken (the last step
    last, zero-filled), so step_history[:, j] led from the point of grad_history[:, j - 1] to that
    of grad_history[:, j]; change_history: [B, H] relative objective changes (zero-filled); t: [B]
    steps taken; diverged: [B] bool.

    The histories live in `HistoryWindow`s written once per step (``grad_window``, ``step_window``,
    ``change_window``, and ``log_grad_window``: the gradients through `signed_log`, each
    transformed once); ``grad_history`` etc. return ordered copies and accept ordered tensors.
    """

    problem: Problem
    x: Tensor
    f: Tensor
    grad: Tensor
    f0: Tensor
    grad_window: HistoryWindow
    step_window: HistoryWindow
    change_window: HistoryWindow
    log_grad_window: HistoryWindow
    last_step: Tensor
    t: Tensor
    diverged: Tensor
    explode_ratio: float = DEFAULT_EXPLODE_RATIO
    # the windows as `native_transition_library` found the kernels can write them (None: not checked)
    native_windows: native_kernel.WindowPointers | None = field(default=None, repr=False, compare=False)

    @classmethod
    def start(
        cls,
        problem: Problem,
        x0: Tensor | None = None,
        history: int = DEFAULT_HISTORY,
        explode_ratio: float = DEFAULT_EXPLODE_RATIO,
        coordinate_major: bool = False,
        reuse: OptimizationState | None = None,
        time_major: bool = False,
    ) -> OptimizationState:
        """State at x0 [B, d] (default `problem.init()`), with zero-filled histories.

        `reuse`: a state being replaced whole (nothing reads its windows any more): its window
        buffers are written over where they fit (`HistoryWindow.starting_with`) instead of
        allocating fresh ones.

        Each window's layout (`HistoryWindow`) follows what reads it: the gradients and steps
        (read by their newest items and decayed sums) time first, the improvements and the
        signed-log gradients batch first (the dict observation copies each instance's window);
        ``coordinate_major`` lays the signed-log gradients out with each coordinate's H items
        contiguous instead (coordinatewise rows); ``time_major`` lays them and the improvements out
        time first (a dict observation read as views, never copied: a push writes two contiguous
        blocks, the views are strided). The numbers are the same either way."""
        check_positive_int("history", history)
        if not explode_ratio > 0:
            raise ValueError(f"explode_ratio must be > 0, got {explode_ratio!r}")
        x = problem.init() if x0 is None else x0.detach().clone()
        if x.shape != (problem.batch_size, problem.dim):
            raise ValueError(f"x0 must have shape {(problem.batch_size, problem.dim)}, got {tuple(x.shape)}")
        f, grad = problem.loss_and_grad(x)
        if not (torch.isfinite(f).all() and torch.isfinite(grad).all()):
            raise ValueError("the objective or its gradient is not finite at the starting point")
        batch = x.shape[0]
        zeros = torch.zeros_like(x)
        observed_layout = "time_first" if time_major and not coordinate_major else "batch_first"

        def window(newest: Tensor, layout: str, name: str) -> HistoryWindow:
            old = None if reuse is None else getattr(reuse, name).buffer
            return HistoryWindow.starting_with(newest, history, layout, old)

        return cls(
            problem=problem,
            x=x,
            f=f,
            grad=grad,
            f0=f.clone(),
            grad_window=window(grad, "time_first", "grad_window"),
            step_window=window(zeros, "time_first", "step_window"),
            change_window=window(zeros[:, 0], observed_layout, "change_window"),
            log_grad_window=window(
                signed_log(grad), "time_last" if coordinate_major else observed_layout, "log_grad_window"
            ),
            last_step=zeros,
            t=torch.zeros(batch, dtype=torch.long, device=x.device),
            diverged=torch.zeros(batch, dtype=torch.bool, device=x.device),
            explode_ratio=explode_ratio,
        )

    @classmethod
    def from_histories(
        cls,
        problem: Problem,
        *,
        grad_history: Tensor,
        step_history: Tensor,
        change_history: Tensor,
        explode_ratio: float = DEFAULT_EXPLODE_RATIO,
        **tensors: Tensor,
    ) -> OptimizationState:
        """A state from ordered histories (grad_history, step_history [B, H, d], change_history
        [B, H], oldest first) and the other tensors (x, f, grad, f0, last_step, t, diverged), e.g.
        as read back from a saved state; the windows are rebuilt as `start` lays them out."""
        return cls(
            problem=problem,
            grad_window=HistoryWindow.from_ordered(grad_history),
            step_window=HistoryWindow.from_ordered(step_history),
            change_window=HistoryWindow.from_ordered(change_history, "batch_first"),
            log_grad_window=HistoryWindow.from_ordered(signed_log(grad_history), "batch_first"),
            explode_ratio=explode_ratio,
            **tensors,
        )

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def history(self) -> int:
        return self.change_window.length

    @property
    def grad_history(self) -> Tensor:
        """[B, H, d] the last H gradients, oldest first (a copy)."""
        return self.grad_window.ordered()

    @grad_history.setter
    def grad_history(self, value: Tensor) -> None:
        self.grad_window = HistoryWindow.from_ordered(value, self.grad_window.layout)
        self.log_grad_window = HistoryWindow.from_ordered(signed_log(value), self.log_grad_window.layout)

    @property
    def step_history(self) -> Tensor:
        """[B, H, d] the last H steps taken, oldest first (a copy)."""
        return self.step_window.ordered()

    @step_history.setter
    def step_history(self, value: Tensor) -> None:
        self.step_window = HistoryWindow.from_ordered(value, self.step_window.layout)

    @property
    def change_history(self) -> Tensor:
        """[B, H] the last H relative objective changes, oldest first (a copy)."""
        return self.change_window.ordered()

    @change_history.setter
    def change_history(self, value: Tensor) -> None:
        self.change_window = HistoryWindow.from_ordered(value, self.change_window.layout)

    def advance(self, step: Tensor, *, differentiable: bool = False, second_order: bool = False) -> Tensor:
        """Move x by step [B, d] where not yet diverged; return the instances that diverged now [B].

        By default the step is detached and nothing keeps an autograd graph. With
        ``differentiable=True`` (meta-training by backpropagation through the unroll) x_new = x + step
        and f_new = problem.loss(x_new) keep their graph; the gradient fed to the optimizer is
        detached (second derivatives dropped) unless ``second_order=True``, which computes it with
        ``create_graph=True``. Divergence handling is the same: frozen rows keep finite values.
        """
        if step.shape != self.x.shape:
            raise ValueError(f"step must have shape {tuple(self.x.shape)}, got {tuple(step.shape)}")
        if second_order and not differentiable:
            raise ValueError("second_order=True needs differentiable=True")
        if differentiable:
            step = step.to(self.x.dtype)
        elif step.requires_grad or step.dtype != self.x.dtype:  # else already what the step needs
            step = step.detach().to(self.x.dtype)
        lib = None if differentiable else native_transition_library(self, step)
        if lib is not None:
            return self._advance_native(lib, step.contiguous())
        step_finite = finite_rows(step)
        safe_step = step.masked_fill(~step_finite.unsqueeze(1), 0.0)
        x_new = self.x + safe_step
        if differentiable:
            f_new, grad_new = self._loss_and_grad_with_graph(x_new, second_order)
        else:
            f_new, grad_new = self.problem.loss_and_grad(x_new)
        moved, diverged_now = self._checked(step_finite, x_new, f_new, grad_new)
        self._take(safe_step, x_new, f_new, grad_new, moved, diverged_now)
        return diverged_now

    def _checked(self, step_finite: Tensor, x_new: Tensor, f_new: Tensor, grad_new: Tensor) -> tuple[Tensor, Tensor]:
        """moved [B] (active, and the step kept everything finite and below the explosion limit) and
        diverged_now [B] (active, and not so)."""
        active = ~self.diverged
        limit = self.f0 + self.explode_ratio * (self.f0.abs() + 1.0)
        ok = step_finite & finite_rows(x_new, f_new, grad_new) & (f_new <= limit)
        return active & ok, active & ~ok

    def _take(
        self, safe_step: Tensor, x_new: Tensor, f_new: Tensor, grad_new: Tensor, moved: Tensor, diverged_now: Tensor
    ) -> None:
        """Move the rows where moved [B] is true to x_new (the others keep their state and windows)."""
        frozen = (~moved).nonzero().squeeze(1)  # rows that keep their state (one host sync)
        if frozen.numel():
            m1 = moved.unsqueeze(1)
            change = relative_change(torch.where(moved, f_new, self.f), self.f)
            self.last_step = torch.where(m1, safe_step, self.last_step)
            self.x = torch.where(m1, x_new, self.x)
            self.f = torch.where(moved, f_new, self.f)
            self.grad = torch.where(m1, grad_new, self.grad)
        else:
            frozen = None
            change = relative_change(f_new, self.f)
            self.last_step, self.x, self.f, self.grad = safe_step, x_new, f_new, grad_new
        self.grad_window.push(self.grad, frozen)
        self.log_grad_window.push(signed_log(self.grad), frozen)
        self.step_window.push(self.last_step, frozen)
        self.change_window.push(change, frozen)
        self.t = self.t + (~self.diverged).long()
        self.diverged = self.diverged | diverged_now

    def _advance_native(self, lib: ctypes.CDLL, step: Tensor) -> Tensor:
        """`advance` by the compiled transition (`l2o_gym.native_kernel`); the same numbers."""
        safe_step, x_new, step_finite = native_kernel.transition_start(lib, self.x.contiguous(), step)
        f_new, grad_new = self.problem.loss_and_grad(x_new)
        if f_new.dtype != torch.float32 or grad_new.dtype != torch.float32 or grad_new.requires_grad:
            moved, diverged_now = self._checked(step_finite, x_new, f_new, grad_new)
            self._take(safe_step, x_new, f_new, grad_new, moved, diverged_now)
            return diverged_now
        f_new, grad_new = f_new.contiguous(), grad_new.contiguous()
        before = (safe_step, step_finite, self.f.contiguous(), self.f0.contiguous(), self.diverged.contiguous())
        windows = self.native_windows  # set by native_transition_library
        moved, diverged_now, frozen = native_kernel.transition_finish(
            lib, (x_new, f_new, grad_new), before, self.explode_ratio, windows, SIGNED_LOG_NORM
        )
        if frozen:
            self._take(safe_step, x_new, f_new, grad_new, moved, diverged_now)
            return diverged_now
        for window in windows.windows:
            window.commit_push()
        self.last_step, self.x, self.f, self.grad = safe_step, x_new, f_new, grad_new
        self.t = self.t + 1
        return diverged_now

    def _loss_and_grad_with_graph(self, x: Tensor, second_order: bool) -> tuple[Tensor, Tensor]:
        """f [B] keeping x's graph, and ∇f [B, d] (detached unless second_order)."""
        with torch.enable_grad():
            tracked = x.requires_grad
            x_in = x if tracked else x.detach().requires_grad_(True)
            f = self.problem.loss(x_in)
            (grad,) = torch.autograd.grad(f.sum(), x_in, create_graph=second_order and tracked, retain_graph=tracked)
        if not tracked:
            f = f.detach()
        if not (second_order and tracked):
            grad = grad.detach()
        return f, grad

    def replace_rows(self, mask: Tensor, other: OptimizationState) -> None:
        """Replace rows where mask [B] is true by `other`'s rows (other.batch_size = mask.sum()).

        The problem's instances are replaced too, so the state stays consistent.
        """
        self.problem.replace_rows(mask, other.problem)
        rows = mask.nonzero().squeeze(1) if mask.dtype == torch.bool else mask  # once, not per tensor
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Tensor):
                value[rows] = getattr(other, item.name)
            elif isinstance(value, HistoryWindow):
                value.replace_rows(rows, getattr(other, item.name))
