"""A learned optimizer as a `torch.optim.Optimizer` over ordinary torch parameters.

All parameters are flattened into one vector x [1, D], seen as one problem instance whose
objective is the user's closure; every step is one `OptimizationState.advance`, the gym's
transition, driven by the update rule, so the optimizer behaves as in the gym.

    optimizer = LearnedTorchOptimizer(model.parameters(), "runs/default/best_model")
    def closure():
        optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); return loss
    for _ in range(100):
        loss = optimizer.step(closure)

torch.optim conventions (details and examples in docs/torch_optimizer.md):
- ``step(closure)`` evaluates the closure once at the current parameters, completes the previous
  transition with that loss and gradient, lets the rule propose the next step, moves the
  parameters, and returns the closure's loss (evaluated before the step). A closure that leaves
  no gradient at all is an error.
- Each group's ``lr`` multiplies the learned step (default 1), so lr schedulers work.
- A parameter with ``requires_grad=False`` or no gradient after the closure is not moved.
- ``state_dict`` holds the whole optimization state (gradient, step and objective-change
  histories, f0, the step count, the rule's own runtime state): resuming equals not stopping.
- ``add_param_group`` appends coordinates (zero histories); a rule with its own runtime state
  (momentum, hidden state) is then reset, with a warning.
- Divergence (a non-finite step, loss or gradient, or a loss above f0 + explode_ratio·(|f0| + 1)):
  the last good parameters are restored; ``on_divergence="backoff"`` (default) warns once and
  multiplies later steps by ``backoff``; ``"raise"`` raises `DivergenceError`. ``divergences``
  counts them. A loss above f0 + rise_ratio·(|f0| + 1) that stays below the divergence threshold
  is a rise: warned once, counted in ``rises``, no action.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from agents.runtime.rule_state import load_rule_state, rule_state
from agents.runtime.saved_rules import load_rule
from l2o_gym.problem import Problem
from l2o_gym.state import DEFAULT_EXPLODE_RATIO, DEFAULT_HISTORY, OptimizationState
from l2o_gym.update_rule import UpdateRule

ON_DIVERGENCE = ("backoff", "raise")
STATE_KEY = "learned"
STATE_FORMAT = 1


class DivergenceError(RuntimeError):
    """Raised by `LearnedTorchOptimizer` with ``on_divergence="raise"`` (parameters already restored)."""


class ClosureProblem(Problem):
    """One instance whose objective at x [1, D] is the closure with the parameters at x.

    The wrapper's own evaluations (``trial = False``) take the parameters as they stand (x is where
    they are) and record `last_loss`, the closure's return value, and `has_grad` [n_params], which
    parameters received a gradient. A rule's own evaluations at other points (a line search;
    ``trial = True``) first move the parameters to x and set `displaced`."""

    def __init__(self, params: Callable[[], list[Tensor]], x0: Tensor) -> None:
        super().__init__(x0)
        self.params = params
        self.closure: Callable[[], Tensor] | None = None
        self.trial = False
        self.displaced = False
        self.last_loss: Tensor | None = None
        self.has_grad: list[bool] = []

    def loss(self, x: Tensor) -> Tensor:
        return self.loss_and_grad(x)[0]

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.closure is None:
            raise RuntimeError("no closure to evaluate: call step(closure)")
        params = self.params()
        if self.trial:
            write_parameters(params, x, [True] * len(params))
            self.displaced = True
        with torch.enable_grad():
            loss = self.closure()
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError("closure must return the loss as a one-element Tensor (after calling backward())")
        has_grad = [p.requires_grad and p.grad is not None for p in params]
        if not any(has_grad):
            raise RuntimeError("the closure left no gradients: it must call loss.backward() before returning the loss")
        if not self.trial:
            self.last_loss, self.has_grad = loss, has_grad
        grads = [(p.grad if has else torch.zeros_like(p)).reshape(-1) for p, has in zip(params, has_grad, strict=True)]
        return loss.detach().reshape(1).to(x.dtype), torch.cat(grads).detach().unsqueeze(0).to(x.dtype)


def write_parameters(params: list[Tensor], x: Tensor, which: list[bool]) -> None:
    """Copy x [1, D] into the parameters marked in `which` (the others are not touched)."""
    offset = 0
    with torch.no_grad():
        for p, write in zip(params, which, strict=True):
            n = p.numel()
            if write:
                p.copy_(x[0, offset : offset + n].view_as(p))
            offset += n


class LearnedTorchOptimizer(torch.optim.Optimizer):
    """Optimise `params` with a learned (or any) update rule; `rule` is a saved folder or an UpdateRule.

    `lr` is the default per-group multiplier of the rule's step; `history` the history window
    (default: the rule's own, else 25); `on_divergence`, `backoff` and `explode_ratio` as in the
    module docstring."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        rule: UpdateRule | str | Path,
        *,
        lr: float = 1.0,
        on_divergence: str = "backoff",
        backoff: float = 0.5,
        explode_ratio: float = DEFAULT_EXPLODE_RATIO,
        rise_ratio: float = 1.0,
        history: int | None = None,
    ) -> None:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0:
            raise ValueError(f"lr must be a number >= 0 (a multiplier of the learned step), got {lr!r}")
        if on_divergence not in ON_DIVERGENCE:
            raise ValueError(f"on_divergence must be one of {ON_DIVERGENCE}, got {on_divergence!r}")
        if not 0 < backoff <= 1:
            raise ValueError(f"backoff must lie in (0, 1], got {backoff!r}")
        if not explode_ratio > 0:
            raise ValueError(f"explode_ratio must be > 0, got {explode_ratio!r}")
        if not 0 < rise_ratio <= explode_ratio:
            raise ValueError(f"rise_ratio must lie in (0, explode_ratio], got {rise_ratio!r}")
        self.optimization_state: OptimizationState | None = None
        super().__init__(params, defaults={"lr": float(lr)})
        self.rule = load_rule(rule) if isinstance(rule, (str, Path)) else rule
        if not isinstance(self.rule, UpdateRule):
            raise TypeError(f"rule must be a saved optimizer's folder or an UpdateRule, got {type(rule).__name__}")
        rule_history = getattr(self.rule, "history", None)
        self.history = int(history if history is not None else rule_history or DEFAULT_HISTORY)
        self.on_divergence = on_divergence
        self.backoff = float(backoff)
        self.explode_ratio = float(explode_ratio)
        self.rise_ratio = float(rise_ratio)
        self.divergences = 0
        self.rises = 0
        self.step_multiplier = 1.0
        self._warned = False
        self._warned_rise = False

    # -- parameters ------------------------------------------------------------------------------

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _flat(self) -> Tensor:
        """The parameters as one row x [1, D] (a copy)."""
        return torch.cat([p.detach().reshape(-1) for p in self._params()]).unsqueeze(0).clone()

    def _new_problem(self) -> ClosureProblem:
        params = self._params()
        if len({(p.dtype, p.device) for p in params}) > 1:
            raise ValueError("all parameters must share one dtype and device")
        return ClosureProblem(self._params, self._flat())

    def _multipliers(self, has_grad: list[bool]) -> Tensor:
        """Per coordinate [1, D]: the group's lr times the backoff multiplier, 0 where not moved."""
        x = self.optimization_state.x
        lrs = [group["lr"] for group in self.param_groups for _ in group["params"]]
        parts = [
            torch.full((p.numel(),), lr * self.step_multiplier if moved else 0.0, dtype=x.dtype)
            for p, lr, moved in zip(self._params(), lrs, has_grad, strict=True)
        ]
        return torch.cat(parts).to(x.device).unsqueeze(0)

    # -- the step --------------------------------------------------------------------------------

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One step; `closure` (required) zeroes the grads, computes the loss, calls backward and
        returns the loss. Returns the closure's return value (the loss before the step)."""
        if closure is None:
            raise ValueError("closure is required: it must zero the grads, compute the loss, call backward()")
        if self.optimization_state is None:
            problem = self._new_problem()
            problem.closure = closure
            self.optimization_state = OptimizationState.start(
                problem, history=self.history, explode_ratio=self.explode_ratio
            )
            self.rule.reset(self.optimization_state)
        else:
            self.optimization_state.problem.closure = closure
            self._complete_transition()
        state = self.optimization_state
        problem = state.problem
        self._check_rise(problem.last_loss, state.f0)
        with torch.no_grad():
            proposed = self._propose(state)
            if not torch.isfinite(proposed).all():
                self._diverged("the rule proposed a non-finite step")
                proposed = torch.zeros_like(proposed)
            moved = state.x + proposed * self._multipliers(problem.has_grad)
            write_parameters(self._params(), moved, problem.has_grad)
        return problem.last_loss

    def _propose(self, state: OptimizationState) -> Tensor:
        """The rule's step [1, D]; parameters moved by its own evaluations are put back at x."""
        problem = state.problem
        problem.trial = True
        try:
            proposed = self.rule.step(state).to(state.x.dtype)
        finally:
            problem.trial = False
            if problem.displaced:
                write_parameters(self._params(), state.x, [True] * len(self._params()))
                problem.displaced = False
        return proposed

    def _complete_transition(self) -> None:
        """Advance the state to the parameters as they stand (evaluating the closure there)."""
        state = self.optimization_state
        current = self._flat().to(state.x.dtype)
        if current.shape != state.x.shape:
            raise RuntimeError(f"the parameters hold {current.shape[1]} values, the state {state.x.shape[1]}")
        diverged = bool(state.advance(current - state.x).any())
        if not diverged:
            state.x = current  # exactly the parameters (x + (current - x) may round)
            return
        loss = state.problem.last_loss
        value = float(loss.detach()) if loss is not None else float("nan")
        state.diverged = torch.zeros_like(state.diverged)
        write_parameters(self._params(), state.x, [True] * len(self._params()))
        self._diverged(f"the loss reached {value:.4g} (start {float(state.f0[0]):.4g}) or a value was not finite")

    def _check_rise(self, loss: Tensor, f0: Tensor) -> None:
        """Count (and warn once about) a finite loss above f0 + rise_ratio·(|f0| + 1)."""
        value, start = float(loss.detach()), float(f0[0])
        scale = abs(start) + 1.0
        if (
            not math.isfinite(value)
            or not start + self.rise_ratio * scale < value <= start + self.explode_ratio * scale
        ):
            return  # no rise, or a divergence (handled on its own)
        self.rises += 1
        if not self._warned_rise:
            self._warned_rise = True
            warnings.warn(
                f"LearnedTorchOptimizer: the loss rose to {value:.4g} from {start:.4g} at the start "
                f"(warned once; `rises` counts such steps; divergence acts above {self.explode_ratio:g}x)",
                RuntimeWarning,
                stacklevel=3,
            )

    def _diverged(self, what: str) -> None:
        """Count a divergence (parameters already at the last good point); raise or back off."""
        self.divergences += 1
        message = f"LearnedTorchOptimizer diverged at step {int(self.optimization_state.t[0])}: {what}"
        if self.on_divergence == "raise":
            raise DivergenceError(message + "; the last good parameters are restored")
        self.step_multiplier *= self.backoff
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{message}; restored the last good parameters and multiplied later steps by {self.backoff:g} "
                "(warned once; `divergences` counts them; on_divergence='raise' makes it an error)",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- state_dict, parameter groups ------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's state dict plus, under "learned", the whole optimization state (histories,
        f0, step count), the rule's runtime state and the divergence bookkeeping (tensors cloned)."""
        saved = super().state_dict()
        state = self.optimization_state
        tensors = None
        if state is not None:
            tensors = {name: getattr(state, name).clone() for name in _TENSOR_FIELDS}
        saved[STATE_KEY] = {
            "format": STATE_FORMAT,
            "numels": [p.numel() for p in self._params()],
            "optimization_state": tensors,
            "explode_ratio": self.explode_ratio if state is None else state.explode_ratio,
            "history": self.history,
            "rule_state": None if state is None else rule_state(self.rule),
            "divergences": self.divergences,
            "rises": self.rises,
            "warned_rise": self._warned_rise,
            "step_multiplier": self.step_multiplier,
            "warned": self._warned,
        }
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (the parameters themselves are the model's to load)."""
        saved = dict(state_dict)
        learned = saved.pop(STATE_KEY, None)
        if not isinstance(learned, dict) or learned.get("format") != STATE_FORMAT:
            raise ValueError("state_dict was not written by LearnedTorchOptimizer.state_dict (no 'learned' entry)")
        numels = [p.numel() for p in self._params()]
        if list(learned["numels"]) != numels:
            raise ValueError(f"state_dict holds parameters of sizes {learned['numels']}, this optimizer {numels}")
        super().load_state_dict(saved)
        self.history = int(learned["history"])
        self.explode_ratio = float(learned["explode_ratio"])
        self.divergences = int(learned["divergences"])
        self.rises = int(learned["rises"])
        self._warned_rise = bool(learned["warned_rise"])
        self.step_multiplier = float(learned["step_multiplier"])
        self._warned = bool(learned["warned"])
        self.optimization_state = None
        if learned["optimization_state"] is None:
            return
        problem = self._new_problem()
        like = problem.x0
        tensors = {
            name: value.to(like.device, like.dtype if value.is_floating_point() else value.dtype).clone()
            for name, value in learned["optimization_state"].items()
        }
        state = OptimizationState.from_histories(problem, explode_ratio=self.explode_ratio, **tensors)
        self.rule.reset(state)
        load_rule_state(self.rule, learned["rule_state"])
        self.optimization_state = state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch.optim's rules); after the first step its coordinates are appended to
        x with zero histories, and a rule holding runtime state is reset (with a warning)."""
        super().add_param_group(param_group)
        state = getattr(self, "optimization_state", None)
        if state is None:
            return
        new = self.param_groups[-1]["params"]
        if any((p.dtype, p.device) != (state.x.dtype, state.x.device) for p in new):
            self.param_groups.pop()
            raise ValueError(f"the new parameters must be {state.x.dtype} on {state.x.device}, like the others")
        values = torch.cat([p.detach().reshape(-1) for p in new]).unsqueeze(0)
        zeros = torch.zeros_like(values)
        history_zeros = zeros.unsqueeze(1).expand(-1, state.history, -1)
        state.x = torch.cat([state.x, values], dim=1)
        state.grad = torch.cat([state.grad, zeros], dim=1)
        state.last_step = torch.cat([state.last_step, zeros], dim=1)
        state.grad_history = torch.cat([state.grad_history, history_zeros], dim=2)
        state.step_history = torch.cat([state.step_history, history_zeros], dim=2)
        state.problem.x0 = state.x.clone()
        state.problem.has_grad = state.problem.has_grad + [False] * len(new)
        if _holds_tensors(rule_state(self.rule)):
            warnings.warn(
                f"add_param_group: {type(self.rule).__name__} keeps runtime state shaped by the parameter count "
                "(momentum, hidden state); it restarts now",
                RuntimeWarning,
                stacklevel=2,
            )
        self.rule.reset(state)


_TENSOR_FIELDS = (
    "x",
    "f",
    "grad",
    "f0",
    "grad_history",
    "step_history",
    "change_history",
    "last_step",
    "t",
    "diverged",
)


def _holds_tensors(value: Any) -> bool:
    if isinstance(value, Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensors(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensors(v) for v in value)
    return False
