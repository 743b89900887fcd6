"""The ``--rule SPEC`` option of ``l2o-gym evaluate``: your own optimizer beside the baselines.

SPEC is a rule spec of `agents.runtime.user_rules` (``torch.optim.SGD(lr=0.1)``,
``torch.optim.Adam(lr=[1e-3, 1e-2, 1e-1])`` tuned on each env's validation split,
``mypackage.rules:MyRule(alpha=0.5)``). Every spec is parsed, imported and built (each grid point
too) before any work, so a bad one is a one-line usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from agents.runtime.user_rules import (
    RuleSpec,
    grid_points,
    import_rule_class,
    make_rule,
    parse_rule_spec,
    rule_from_spec,
)
from l2o_gym.update_rule import UpdateRule


def add_rule_option(parser: Any) -> None:
    """Register ``--rule SPEC`` (repeatable) on an argparse parser."""
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="SPEC",
        help="your optimizer: a torch.optim class or an UpdateRule by import path, e.g. "
        "'torch.optim.SGD(lr=0.1, momentum=0.9)'; list values are tuned on the validation split, "
        "e.g. 'torch.optim.Adam(lr=[0.001, 0.01, 0.1])'; 'pkg.module:MyRule(alpha=0.5)' (repeatable)",
    )


def parse_rule_options(texts: Sequence[str], taken: Iterable[str] = ()) -> list[RuleSpec]:
    """Specs, each checked by building it (and every grid point); ValueError "--rule SPEC: why"."""
    specs: list[RuleSpec] = []
    names = set(taken)
    for text in texts:
        try:
            spec = parse_rule_spec(text)
            cls = import_rule_class(spec.path)
            points = grid_points(spec.settings, spec.grid) if spec.grid else [spec.settings]
            for point in points:
                make_rule(cls, point)
        except (ValueError, TypeError) as err:
            raise ValueError(f"--rule {text}: {err}") from None
        if spec.name in names:
            raise ValueError(f"--rule {text}: the name {spec.name!r} is taken; every method needs its own name")
        names.add(spec.name)
        specs.append(spec)
    return specs


def rules_for_env(
    specs: Sequence[RuleSpec],
    env_id: str,
    horizon: int,
    *,
    instances: int = 100,
    seed: int = 0,
    family_kwargs: dict[str, Any] | None = None,
) -> dict[str, UpdateRule]:
    """The specs' rules for `env_id` (specs with a grid tuned on its validation split)."""
    rules = {}
    for spec in specs:
        rule = rule_from_spec(
            spec, env_id, horizon=horizon, instances=instances, seed=seed, family_kwargs=family_kwargs
        )
        if spec.grid:
            print(f"  {spec.name}: tuned {rule.tuned_settings}", file=sys.stderr, flush=True)
        rules[spec.name] = rule
    return rules
