"""Your own optimizer as an `UpdateRule`: any torch.optim class or UpdateRule class, by import path.

A rule is named by a spec, ``PATH`` or ``PATH(key=value, ...)``, where PATH is an import path
(``torch.optim.SGD``, ``mypackage.rules:MyRule``) and the values are Python literals. A list
value is a grid: the rule is then tuned on the validation split (the lowest mean Li & Malik
cost, as `agents.hand_designed.tuning` tunes the built-in baselines) before it is evaluated.

    torch.optim.SGD(lr=0.1, momentum=0.9)          # fixed settings
    torch.optim.Adam(lr=[1e-3, 1e-2, 1e-1])        # lr tuned on the validation split
    mypackage.rules:MyRule(alpha=0.5)               # an UpdateRule subclass, built with alpha=0.5

Only the module the spec names is imported, and only a torch.optim.Optimizer subclass or an
l2o_gym UpdateRule subclass is accepted. A torch.optim class runs on the B instances' locations
(`TorchOptimizerRule`): the elementwise torch optimizers (SGD, Adam, ...) on one [B, d] parameter,
any other on B parameters [d] (one per instance, so that per-tensor statistics, e.g. Adafactor's,
never mix instances).
"""

from __future__ import annotations

import ast
import copy
import importlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from agents.hand_designed.tuning import li_malik_cost
from l2o_gym.problem import TaskFamily, check_positive_int, check_split
from l2o_gym.registry import make_family
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll
from l2o_gym.update_rule import UpdateRule

# torch optimizers whose update of a tensor is elementwise given its gradient (state per element,
# scalars shared by every element): one [B, d] parameter is B independent runs.
ELEMENTWISE: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
    torch.optim.Rprop,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
    torch.optim.ASGD,
)
REFUSED: dict[type, str] = {
    torch.optim.LBFGS: "torch.optim.LBFGS needs a closure and evaluates several points per step; "
    "use the hand-designed 'lbfgs' rule (batched line search) instead",
}


class TorchOptimizerRule(UpdateRule):
    """`optimizer_class` (a torch.optim.Optimizer subclass) with `settings`, run on the B instances."""

    def __init__(self, optimizer_class: type[torch.optim.Optimizer], name: str | None = None, **settings: Any) -> None:
        check_optimizer_class(optimizer_class)
        try:
            optimizer_class([torch.zeros(2)], **settings)
        except (TypeError, ValueError) as err:
            raise ValueError(f"settings {settings} for {optimizer_class.__name__}: {err}") from None
        self.optimizer_class = optimizer_class
        self.settings = dict(settings)
        self.name = name or optimizer_class.__name__
        self.shared_parameter = optimizer_class in ELEMENTWISE
        self._x: Tensor | None = None
        self._grad: Tensor | None = None
        self._optimizer: torch.optim.Optimizer | None = None

    def reset(self, state: OptimizationState) -> None:
        self._x = state.x.detach().clone()
        self._grad = torch.zeros_like(self._x)
        if self.shared_parameter:
            params = [self._x]
            self._x.grad = self._grad
        else:  # one leaf view per instance (requires_grad=False tensors are leaves), sharing _x's storage
            params = list(self._x.unbind(0))
            for param, grad in zip(params, self._grad.unbind(0), strict=True):
                param.grad = grad
        self._optimizer = self.optimizer_class(params, **self.settings)

    def step(self, state: OptimizationState) -> Tensor:
        if self._optimizer is None or self._x is None or self._x.shape != state.x.shape:
            raise RuntimeError(f"{self.name}: call reset(state) before step(state)")
        with torch.no_grad():
            self._x.copy_(state.x)
            self._grad.copy_(state.grad)
            self._optimizer.step()
            return self._x - state.x

    def __repr__(self) -> str:
        return f"TorchOptimizerRule({self.optimizer_class.__name__}, {self.settings})"


def check_optimizer_class(cls: object) -> type[torch.optim.Optimizer]:
    """`cls` if it is a usable torch.optim.Optimizer subclass, else a one-line error."""
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise TypeError(f"{cls!r} is not a torch.optim.Optimizer subclass")
    if cls in REFUSED:
        raise ValueError(REFUSED[cls])
    return cls


@dataclass
class RuleSpec:
    """A parsed spec: the import `path`, fixed `settings`, and a `grid` (settings given as lists)."""

    text: str
    path: str
    settings: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The name in reports: the spec without spaces and without the module path."""
        compact = self.text.replace(" ", "")
        head, _, args = compact.partition("(")
        return head.replace(":", ".").rsplit(".", 1)[-1] + (f"({args}" if args else "")


def parse_rule_spec(text: str) -> RuleSpec:
    """``PATH`` or ``PATH(key=literal, ...)`` -> RuleSpec; a list literal is a grid (one-line errors)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a rule spec must be 'module.Class' or 'module:Class(key=value, ...)', got {text!r}")
    text = text.strip()
    path, paren, rest = text.partition("(")
    path = path.strip()
    if (
        not path
        or not all(part.isidentifier() for part in path.replace(":", ".").split("."))
        or "." not in path.replace(":", ".")
    ):
        raise ValueError(f"rule spec {text!r}: {path!r} is not an import path like torch.optim.SGD or pkg.mod:Class")
    settings: dict[str, Any] = {}
    if paren:
        try:
            call = ast.parse("f(" + rest, mode="eval").body
        except SyntaxError:
            raise ValueError(f"rule spec {text!r}: expected PATH(key=value, ...) with Python literals") from None
        if not isinstance(call, ast.Call) or call.args:
            raise ValueError(f"rule spec {text!r}: settings must be keywords, key=value")
        for keyword in call.keywords:
            try:
                settings[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError:
                raise ValueError(f"rule spec {text!r}: the value of {keyword.arg} is not a Python literal") from None
    grid = {k: v for k, v in settings.items() if isinstance(v, list)}
    for key, values in grid.items():
        if not values:
            raise ValueError(f"rule spec {text!r}: the grid of {key} is empty")
    fixed = {k: v for k, v in settings.items() if k not in grid}
    return RuleSpec(text=text, path=path, settings=fixed, grid=grid)


def import_rule_class(path: str) -> type:
    """The class at `path` ("pkg.mod.Class" or "pkg.mod:Class"): a torch.optim.Optimizer or an
    UpdateRule subclass, or a one-line error. Imports only the module named."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r} (from {path!r}): {err}") from None
    cls = getattr(module, attribute, None)
    if cls is None:
        raise ValueError(f"{module_name!r} has no attribute {attribute!r}")
    if isinstance(cls, type) and issubclass(cls, UpdateRule):
        return cls
    if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
        return check_optimizer_class(cls)
    raise TypeError(f"{path!r} is neither a torch.optim.Optimizer subclass nor an l2o_gym UpdateRule subclass")


def make_rule(cls: type, settings: dict[str, Any], name: str | None = None) -> UpdateRule:
    """An UpdateRule from a class found by `import_rule_class` and its settings."""
    if issubclass(cls, torch.optim.Optimizer):
        return TorchOptimizerRule(cls, name=name, **settings)
    try:
        rule = cls(**settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build {cls.__name__}({settings}): {err}") from None
    if name is not None:
        rule.name = name
    return rule


def grid_points(settings: dict[str, Any], grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every point of the grid (its cartesian product), merged over the fixed `settings`."""
    keys = list(grid)
    return [{**settings, **dict(zip(keys, combo, strict=True))} for combo in itertools.product(*grid.values())]


def tune_rule(
    cls: type,
    grid: dict[str, list[Any]],
    family: TaskFamily | str,
    *,
    settings: dict[str, Any] | None = None,
    horizon: int = 40,
    split: str = "validation",
    instances: int = 100,
    seed: int = 0,
    family_kwargs: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], float]:
    """The grid point (merged over fixed `settings`) with the lowest mean Li & Malik cost on
    `instances` instances of `split`, every point on its own copy of the same instances; and its cost."""
    check_split(split)
    check_positive_int("horizon", horizon)
    check_positive_int("instances", instances)
    if not grid:
        raise ValueError("grid must name at least one setting with a list of values")
    built = make_family(family, **(family_kwargs or {})) if isinstance(family, str) else family
    keys = list(grid)
    points = [
        {**(settings or {}), **dict(zip(keys, combo, strict=True))} for combo in itertools.product(*grid.values())
    ]
    rules = [make_rule(cls, point) for point in points]  # every point checked before any work
    problem = built.sample(instances, torch.Generator().manual_seed(seed), split=split)
    best, best_cost = points[0], math.inf
    for point, rule in zip(points, rules, strict=True):
        cost = float(li_malik_cost(unroll(rule, copy.deepcopy(problem), horizon)).mean())
        if cost < best_cost:
            best, best_cost = point, cost
    return best, best_cost


def rule_from_spec(
    spec: str | RuleSpec,
    family: TaskFamily | str | None = None,
    *,
    horizon: int = 40,
    instances: int = 100,
    seed: int = 0,
    family_kwargs: dict[str, Any] | None = None,
) -> UpdateRule:
    """The rule a spec names, named `spec.name`; a spec with a grid is tuned on `family`'s
    validation split first (then `family` is required)."""
    spec = parse_rule_spec(spec) if isinstance(spec, str) else spec
    cls = import_rule_class(spec.path)
    if not spec.grid:
        return make_rule(cls, spec.settings, name=spec.name)
    if family is None:
        raise ValueError(f"rule spec {spec.text!r} has a grid: give the family (env id) to tune it on")
    best, _ = tune_rule(
        cls,
        spec.grid,
        family,
        settings=spec.settings,
        horizon=horizon,
        instances=instances,
        seed=seed,
        family_kwargs=family_kwargs,
    )
    rule = make_rule(cls, best, name=spec.name)
    rule.tuned_settings = best
    return rule
