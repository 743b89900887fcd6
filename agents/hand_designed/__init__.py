"""Hand-designed optimizers as batched `UpdateRule`s: gradient descent, momentum, Nesterov, Adam,
RMSprop, AdaGrad (torch.optim on a [B, d] parameter), nonlinear conjugate gradient and L-BFGS
(with a batched Armijo line search), `window_qn`: L-BFGS directions from the state's history
window without line search (one evaluation per step), and `window_adam_qn`: the window's Adam
direction with a decaying step size plus a small clipped quasi-Newton correction. All are driven
through `l2o_gym.unroll.unroll` / `OptimizationState.advance`; none moves x itself.

`HAND_DESIGNED` maps names to classes; `make_optimizer(name, **hparams)` builds one; each class's
`default_grid()` is the log grid `agents.hand_designed.tuning.tune` searches.
"""

from __future__ import annotations

from agents.hand_designed.conjugate_gradient import ConjugateGradient
from agents.hand_designed.elementwise import AdaGrad, Adam, GradientDescent, Momentum, Nesterov, RMSprop
from agents.hand_designed.hyperparameters import HandDesignedRule
from agents.hand_designed.lbfgs import LBFGS
from agents.hand_designed.window_adam_quasi_newton import WindowAdamQuasiNewton
from agents.hand_designed.window_quasi_newton import WindowQuasiNewton
from l2o_gym.update_rule import UpdateRule

HAND_DESIGNED: dict[str, type[UpdateRule]] = {
    cls.name: cls
    for cls in (
        GradientDescent,
        Momentum,
        Nesterov,
        Adam,
        RMSprop,
        AdaGrad,
        ConjugateGradient,
        LBFGS,
        WindowQuasiNewton,
        WindowAdamQuasiNewton,
    )
}


def optimizer_class(name: str) -> type[HandDesignedRule]:
    """The class registered as `name`, or a ValueError listing the allowed names."""
    if name not in HAND_DESIGNED:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {sorted(HAND_DESIGNED)}")
    return HAND_DESIGNED[name]


def make_optimizer(name: str, **hparams: float) -> UpdateRule:
    """Build the optimizer `name` with hyperparameters `hparams` (others at their defaults).

    An unknown name or hyperparameter raises a ValueError listing the allowed ones.
    """
    cls = optimizer_class(name)
    unknown = sorted(set(hparams) - set(cls.HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown} for {name!r}; allowed: {sorted(cls.HYPERPARAMETERS)}")
    return cls(**hparams)


__all__ = [
    "HAND_DESIGNED",
    "LBFGS",
    "AdaGrad",
    "Adam",
    "ConjugateGradient",
    "GradientDescent",
    "HandDesignedRule",
    "Momentum",
    "Nesterov",
    "RMSprop",
    "WindowAdamQuasiNewton",
    "WindowQuasiNewton",
    "make_optimizer",
    "optimizer_class",
]
