"""Elementwise hand-designed optimizers backed by torch.optim: gradient descent, momentum,
Nesterov momentum, Adam, RMSprop and AdaGrad.

The B instances' locations form one [B, d] parameter; since these optimizers act elementwise
(their only shared quantity is the step counter, equal for all instances), one torch.optim
optimizer over it is B independent runs. `step(state)` loads state.x and state.grad into the
parameter, lets torch.optim update it, and returns the difference as the step Δx [B, d]; the
caller moves x through `OptimizationState.advance`. The optimizer's buffers (momentum, moments)
belong to the instances of the last `reset`: call `reset` again when the instances change.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from agents.hand_designed.hyperparameters import MOMENTA, HandDesignedRule
from l2o_gym.state import OptimizationState


class TorchOptimRule(HandDesignedRule):
    """Runs `optimizer_class` (a torch.optim.Optimizer) on the [B, d] parameter."""

    optimizer_class: ClassVar[type[torch.optim.Optimizer]]

    def __init__(self, **hparams: float) -> None:
        super().__init__(**hparams)
        self._param: Tensor | None = None
        self._optimizer: torch.optim.Optimizer | None = None

    def optimizer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `optimizer_class`, from `self.hparams`."""
        return dict(self.hparams)

    def reset(self, state: OptimizationState) -> None:
        self._param = state.x.detach().clone()
        self._optimizer = self.optimizer_class([self._param], **self.optimizer_kwargs())

    def step(self, state: OptimizationState) -> Tensor:
        if self._optimizer is None or self._param is None or self._param.shape != state.x.shape:
            raise RuntimeError(f"{self.name}: call reset(state) before step(state)")
        with torch.no_grad():
            self._param.copy_(state.x)
            self._param.grad = state.grad.detach().clone()
            self._optimizer.step()
            return self._param.detach() - state.x


class GradientDescent(TorchOptimRule):
    """x ← x - lr ∇f (torch.optim.SGD)."""

    name = "gd"
    optimizer_class = torch.optim.SGD
    HYPERPARAMETERS = {"lr": 0.1}


class Momentum(TorchOptimRule):
    """Heavy-ball momentum (torch.optim.SGD with momentum)."""

    name = "momentum"
    optimizer_class = torch.optim.SGD
    HYPERPARAMETERS = {"lr": 0.1, "momentum": 0.9}

    @classmethod
    def default_grid(cls) -> dict[str, list[float]]:
        return {**super().default_grid(), "momentum": list(MOMENTA)}


class Nesterov(Momentum):
    """Nesterov momentum (torch.optim.SGD with nesterov=True)."""

    name = "nesterov"

    def optimizer_kwargs(self) -> dict[str, Any]:
        return {**self.hparams, "nesterov": True}


class Adam(TorchOptimRule):
    """Adam (torch.optim.Adam); beta1, beta2 and eps are fixed at their defaults when tuning."""

    name = "adam"
    optimizer_class = torch.optim.Adam
    HYPERPARAMETERS = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

    def optimizer_kwargs(self) -> dict[str, Any]:
        h = self.hparams
        return {"lr": h["lr"], "betas": (h["beta1"], h["beta2"]), "eps": h["eps"]}


class RMSprop(TorchOptimRule):
    """RMSprop (torch.optim.RMSprop), squared-gradient decay `alpha`."""

    name = "rmsprop"
    optimizer_class = torch.optim.RMSprop
    HYPERPARAMETERS = {"lr": 0.01, "alpha": 0.99, "eps": 1e-8}


class AdaGrad(TorchOptimRule):
    """AdaGrad (torch.optim.Adagrad)."""

    name = "adagrad"
    optimizer_class = torch.optim.Adagrad
    HYPERPARAMETERS = {"lr": 0.1, "eps": 1e-10}
