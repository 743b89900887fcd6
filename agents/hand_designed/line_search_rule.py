"""The common part of the hand-designed rules that step by a batched Armijo line search (nonlinear
CG, L-BFGS): `lr` is the first trial step (tuned over `INITIAL_STEPS`), at most `max_evals` trials
a step, and the trials each instance used reported as its extra evaluations [B]."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from agents.hand_designed.hyperparameters import INITIAL_STEPS, HandDesignedRule


class LineSearchRule(HandDesignedRule):
    """A HandDesignedRule whose steps come from a line search of at most `max_evals` trials."""

    HYPERPARAMETERS: ClassVar[dict[str, float]] = {"lr": 1.0}
    # the attributes a step carries to the next (per-instance tensors [B, ...]); None until reset
    MEMORY: ClassVar[tuple[str, ...]] = ()

    def __init__(self, max_evals: int = 25, **hparams: float) -> None:
        super().__init__(**hparams)
        self.max_evals = max_evals
        self._evaluations: Tensor | None = None
        self.forget()

    def forget(self) -> None:
        """Set every MEMORY attribute, and the last step's evaluations, to None."""
        for name in self.MEMORY:
            setattr(self, name, None)
        self._evaluations = None

    @classmethod
    def default_grid(cls) -> dict[str, list[float]]:
        return {"lr": list(INITIAL_STEPS)}

    def extra_evaluations(self) -> Tensor | None:
        """The last step's line-search trials per instance [B]."""
        return self._evaluations
