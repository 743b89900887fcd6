"""An update rule's runtime state (momentum buffers, hidden states, quasi-Newton pairs) as plain data.

`rule_state(rule)` returns a nested dict of tensors (cloned), numbers, None, lists and tuples,
which ``torch.save`` writes and ``torch.load(..., weights_only=True)`` reads back;
`load_rule_state(rule, saved)` puts it into a rule that was `reset` on a state of the same shape,
so that the rule continues exactly where the saved one stopped.

A rule that defines ``runtime_state() -> dict`` and ``load_runtime_state(saved)`` is asked
directly. Otherwise its runtime state is read from its own attributes: every attribute holding a
tensor, None, a number, or a list/tuple of those; a torch.optim optimizer (its ``state_dict``);
an `UpdateRule` it holds (recursively). Modules (weights), strings and dicts are configuration,
not runtime state, and are left out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from l2o_gym.update_rule import UpdateRule

OPTIMIZER_KEY = "__torch_optimizer__"
RULE_KEY = "__update_rule__"


def _is_plain(value: Any) -> bool:
    """Tensors, None, numbers, and lists/tuples of them (recursively)."""
    if value is None or isinstance(value, (Tensor, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return False


def _clone(value: Any) -> Any:
    """A deep copy of plain data (tensors detached and cloned)."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


def rule_state(rule: UpdateRule) -> dict[str, Any]:
    """The rule's runtime state as plain data (see the module docstring)."""
    if hasattr(rule, "runtime_state"):
        return {"custom": _clone(rule.runtime_state())}
    saved: dict[str, Any] = {}
    for name, value in vars(rule).items():
        if isinstance(value, torch.optim.Optimizer):
            saved[name] = {OPTIMIZER_KEY: _clone(value.state_dict())}
        elif isinstance(value, UpdateRule):
            saved[name] = {RULE_KEY: rule_state(value)}
        elif _is_plain(value):
            saved[name] = _clone(value)
    return {"attributes": saved}


def _restored(current: Any, saved: Any) -> Any:
    """`saved`, written into `current` in place where both are tensors of one shape (so that
    references to it, e.g. a torch optimizer's parameter, stay valid)."""
    if isinstance(current, Tensor) and isinstance(saved, Tensor) and current.shape == saved.shape:
        with torch.no_grad():
            current.copy_(saved)
        return current
    return _clone(saved)


def load_rule_state(rule: UpdateRule, saved: dict[str, Any]) -> None:
    """Put `saved` (from `rule_state`) into `rule`, which was reset on a state of the same shape."""
    if not isinstance(saved, dict) or not ({"custom", "attributes"} & set(saved)):
        raise ValueError("saved rule state must come from rule_state(rule)")
    if "custom" in saved:
        if not hasattr(rule, "load_runtime_state"):
            raise ValueError(f"the saved state came from a rule with runtime_state(); {type(rule).__name__} has none")
        rule.load_runtime_state(_clone(saved["custom"]))
        return
    for name, value in saved["attributes"].items():
        current = getattr(rule, name, None)
        if isinstance(value, dict) and OPTIMIZER_KEY in value:
            if not isinstance(current, torch.optim.Optimizer):
                raise ValueError(f"{type(rule).__name__}.{name} is not a torch optimizer; reset the rule first")
            current.load_state_dict(_clone(value[OPTIMIZER_KEY]))
        elif isinstance(value, dict) and RULE_KEY in value:
            if not isinstance(current, UpdateRule):
                raise ValueError(f"{type(rule).__name__}.{name} is not an UpdateRule")
            load_rule_state(current, value[RULE_KEY])
        else:
            setattr(rule, name, _restored(current, value))
