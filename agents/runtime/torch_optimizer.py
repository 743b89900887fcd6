"""A learned optimizer as a `torch.optim.Optimizer` over ordinary torch parameters.

All parameters are flattened into one vector x [1, D], seen as one problem instance whose
objective is the user's closure. Each ``step(closure)`` is one `OptimizationState.advance`, the
gym's transition, driven by the update rule — so the optimizer behaves exactly as in the gym.
Works with dimension-free (coordinatewise) learned optimizers and any `UpdateRule`.

    optimizer = LearnedTorchOptimizer(model.parameters(), "runs/ppo/best")
    def closure():
        optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); return loss
    for _ in range(100):
        optimizer.step(closure)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from agents.runtime.saved_rules import load_rule
from l2o_gym.problem import Problem
from l2o_gym.state import OptimizationState
from l2o_gym.update_rule import UpdateRule


class ClosureProblem(Problem):
    """One instance whose objective at x [1, D] is the closure evaluated with the parameters set to x."""

    def __init__(self, params: list[torch.nn.Parameter], closure: Callable[[], Tensor]) -> None:
        super().__init__(parameters_to_vector(params).detach().unsqueeze(0))
        self.params = params
        self.closure = closure

    def _evaluate(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            vector_to_parameters(x[0].to(self.params[0].dtype), self.params)
        with torch.enable_grad():
            loss = self.closure()
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError("closure must return the loss as a one-element Tensor (after calling backward())")
        return loss.detach().reshape(1).to(x.dtype)

    def loss(self, x: Tensor) -> Tensor:
        return self._evaluate(x)

    def loss_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self._evaluate(x)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.params]
        return f, torch.cat([g.reshape(-1) for g in grads]).detach().unsqueeze(0).to(x.dtype)


class LearnedTorchOptimizer(torch.optim.Optimizer):
    """Optimise `params` with a learned (or any) update rule; `rule` is a saved folder or an UpdateRule."""

    def __init__(self, params: Iterable[torch.nn.Parameter], rule: UpdateRule | str | Path) -> None:
        super().__init__(params, defaults={})
        self.rule = load_rule(rule) if isinstance(rule, (str, Path)) else rule
        self.state_: OptimizationState | None = None
        history = getattr(self.rule, "history", None)
        self._history = int(history) if history is not None else 25

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One optimizer step; `closure` (required) zeroes grads, computes the loss, calls backward."""
        if closure is None:
            raise ValueError("closure is required: it must zero the grads, compute the loss and call backward()")
        if self.state_ is None:
            problem = ClosureProblem(self._params(), closure)
            self.state_ = OptimizationState.start(problem, history=self._history)
            self.rule.reset(self.state_)
        else:
            self.state_.problem.closure = closure
        with torch.no_grad():
            self.state_.advance(self.rule.step(self.state_))
            vector_to_parameters(self.state_.x[0].to(self._params()[0].dtype), self._params())
        return self.state_.f[0].clone()
