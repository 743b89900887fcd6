"""Evaluation tables as independent cells, run in-process or on Ray (`l2o_gym.execution`).

`evaluate_many(specs)` gives the same `EvaluationResult`s as `l2o_gym.evaluate` called on each
`EvaluationSpec` (a family, its settings and the rules), but cuts the work into cells that can
run on different workers:

1. one *optimum* cell per distinct set of instances (family, family kwargs, split, instances,
   seed): draws the instances and computes each one's optimum f* [B] (the costly solve, once);
2. one *unroll* cell per (family, horizon, method): draws the same instances again (the same
   seeded generator gives the same tensors), takes f* from step 1 and unrolls the method (the
   reference also for `reference_horizon` steps);
3. here: the metrics of each table from its methods' curves (`method_metrics`).

Every cell is seeded by its settings alone, so either backend gives the same numbers, and a
results folder lets an interrupted table resume (`run_cells`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2o_gym.evaluation import EvaluationResult, check_rules
from l2o_gym.execution import run_cells
from l2o_gym.metrics import method_metrics
from l2o_gym.problem import check_positive_int, check_split
from l2o_gym.registry import make_family
from l2o_gym.state import DEFAULT_HISTORY
from l2o_gym.unroll import Curves, unroll
from l2o_gym.update_rule import UpdateRule


@dataclass
class EvaluationSpec:
    """One table: `rules` on `instances` instances of `split` of the family `env_id` (built with
    `family_kwargs`), `horizon` steps, instances drawn with `seed`; the arguments of `evaluate`."""

    env_id: str
    rules: dict[str, UpdateRule]
    split: str = "test"
    instances: int = 100
    horizon: int = 40
    seed: int = 0
    reference: str | None = "adam"
    history: int = DEFAULT_HISTORY
    family_kwargs: dict[str, Any] = field(default_factory=dict)
    reference_horizon: int | None = None

    def check(self) -> EvaluationSpec:
        """This spec with reference_horizon filled in, or a ValueError naming the bad field."""
        if not isinstance(self.env_id, str):
            raise TypeError(f"env_id must be a registered env id (str), got {self.env_id!r}")
        self.rules = check_rules(self.rules)
        check_split(self.split)
        for name in ("instances", "horizon", "history"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if self.reference is not None and self.reference not in self.rules:
            raise ValueError(f"reference {self.reference!r} is not among the rules {sorted(self.rules)}")
        if self.reference_horizon is None:
            self.reference_horizon = 4 * self.horizon
        check_positive_int("reference_horizon", self.reference_horizon)
        if self.reference_horizon < self.horizon:
            raise ValueError(f"reference_horizon must be >= horizon ({self.horizon}), got {self.reference_horizon}")
        self.family_kwargs = dict(self.family_kwargs or {})
        make_family(self.env_id, **self.family_kwargs)  # a bad id or keyword fails before any work
        return self

    def instances_key(self) -> str:
        kwargs = json.dumps(self.family_kwargs, sort_keys=True, default=repr)
        return f"{self.env_id}|{kwargs}|{self.split}|n={self.instances}|seed={self.seed}"


def rule_fingerprint(rule: UpdateRule) -> str:
    """A short hash of the rule's pickled state; for a rule that cannot be pickled, of its class name
    and the weights of the torch modules it holds."""
    try:
        data = pickle.dumps(rule, protocol=4)
    except Exception:  # a rule holding something unpicklable: its class and weights name it
        digest = hashlib.sha1(f"{type(rule).__module__}.{type(rule).__qualname__}".encode())
        for name, value in sorted(vars(rule).items()):
            if isinstance(value, torch.nn.Module):
                for key, tensor in value.state_dict().items():
                    digest.update(f"{name}.{key}".encode())
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:12]
    return hashlib.sha1(data).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# the cells (module-level functions: shipped to workers by reference)


def optimum_cell(spec: EvaluationSpec) -> dict[str, Any]:
    """Draw the spec's instances and compute f* [B] (None where unknown); with the family's description."""
    family = make_family(spec.env_id, **spec.family_kwargs)
    problem = family.sample(spec.instances, torch.Generator().manual_seed(spec.seed), split=spec.split)
    return {"f_star": problem.optimum(), "description": family.description, "dim": family.dim}


def unroll_cell(argument: tuple[EvaluationSpec, str, torch.Tensor | None]) -> dict[str, Curves | None]:
    """Curves of one method on the spec's instances (f* given); the reference's long run too."""
    spec, method, f_star = argument
    family = make_family(spec.env_id, **spec.family_kwargs)
    problem = family.sample(spec.instances, torch.Generator().manual_seed(spec.seed), split=spec.split)
    problem.f_star = f_star
    rule = spec.rules[method]
    curves = unroll(rule, problem, spec.horizon, history=spec.history, with_optimum=True)
    reference_long = None
    if method == spec.reference and spec.reference_horizon > spec.horizon:
        problem = family.sample(spec.instances, torch.Generator().manual_seed(spec.seed), split=spec.split)
        problem.f_star = f_star
        reference_long = unroll(rule, problem, spec.reference_horizon, history=spec.history, with_optimum=True)
    return {"curves": curves, "reference_long": reference_long}


# ---------------------------------------------------------------------------------------------
# JSON forms of the cells' results (exact: tensors as their raw bytes in hex)


def encode_tensor(tensor: torch.Tensor | None) -> dict[str, Any] | None:
    if tensor is None:
        return None
    array = tensor.detach().cpu().contiguous().numpy()
    return {"dtype": str(array.dtype), "shape": list(array.shape), "hex": array.tobytes().hex()}


def decode_tensor(data: dict[str, Any] | None) -> torch.Tensor | None:
    if data is None:
        return None
    array = np.frombuffer(bytes.fromhex(data["hex"]), dtype=np.dtype(data["dtype"])).reshape(data["shape"])
    return torch.from_numpy(array.copy())


def _encode_value(value: Any) -> Any:
    """A Curves field: a tensor, None, or a mapping of name -> tensor."""
    if isinstance(value, Mapping):
        return {"mapping": {name: encode_tensor(item) for name, item in value.items()}}
    return encode_tensor(value)


def _decode_value(data: Any) -> Any:
    if isinstance(data, dict) and "mapping" in data:
        return {name: decode_tensor(item) for name, item in data["mapping"].items()}
    return decode_tensor(data)


def encode_curves(curves: Curves | None) -> dict[str, Any] | None:
    """Every field of `curves` (tensors exactly, mappings of tensors name by name), or None."""
    if curves is None:
        return None
    return {field.name: _encode_value(getattr(curves, field.name)) for field in dataclasses.fields(curves)}


def decode_curves(data: dict[str, Any] | None) -> Curves | None:
    if data is None:
        return None
    return Curves(**{name: _decode_value(value) for name, value in data.items()})


def _encode_optimum(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "f_star": encode_tensor(result["f_star"])}


def _decode_optimum(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "f_star": decode_tensor(data["f_star"])}


def _encode_unroll(result: dict[str, Curves | None]) -> dict[str, Any]:
    return {name: encode_curves(curves) for name, curves in result.items()}


def _decode_unroll(data: dict[str, Any]) -> dict[str, Curves | None]:
    return {name: decode_curves(curves) for name, curves in data.items()}


# ---------------------------------------------------------------------------------------------


def evaluate_many(
    specs: Sequence[EvaluationSpec],
    *,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    results_dir: str | Path | None = None,
    num_cpus: int | None = None,
) -> list[EvaluationResult]:
    """`evaluate` on every spec, cut into cells run on `backend`; one result per spec, in order."""
    specs = [spec.check() for spec in specs]
    if not specs:
        raise ValueError("specs must hold at least one EvaluationSpec")
    options = dict(backend=backend, address=address, progress=progress, results_dir=results_dir, num_cpus=num_cpus)
    # each cell gets only the rule it runs (no rule at all for an optimum)
    optimum_cells = {f"optimum|{spec.instances_key()}": replace(spec, rules={}) for spec in specs}
    optima = run_cells(
        optimum_cell, optimum_cells, encode=_encode_optimum, decode=_decode_optimum, desc="optima", **options
    )
    # keys first: a rule run in this process changes its state, hence its fingerprint
    keys = [{method: _unroll_key(spec, method) for method in spec.rules} for spec in specs]
    unroll_cells: dict[str, tuple[EvaluationSpec, str, torch.Tensor | None]] = {}
    for spec, spec_keys in zip(specs, keys, strict=True):
        f_star = optima[f"optimum|{spec.instances_key()}"]["f_star"]
        for method, key in spec_keys.items():
            unroll_cells[key] = (replace(spec, rules={method: spec.rules[method]}), method, f_star)
    runs = run_cells(unroll_cell, unroll_cells, encode=_encode_unroll, decode=_decode_unroll, desc="unrolls", **options)
    return [
        _assemble(spec, optima[f"optimum|{spec.instances_key()}"], {m: runs[k] for m, k in spec_keys.items()})
        for spec, spec_keys in zip(specs, keys, strict=True)
    ]


def _unroll_key(spec: EvaluationSpec, method: str) -> str:
    long = spec.reference_horizon if method == spec.reference and spec.reference_horizon > spec.horizon else "-"
    return (
        f"unroll|{spec.instances_key()}|T={spec.horizon}|Tref={long}|history={spec.history}"
        f"|{method}|{rule_fingerprint(spec.rules[method])}"
    )


def _assemble(spec: EvaluationSpec, optimum: Mapping[str, Any], runs: Mapping[str, Any]) -> EvaluationResult:
    """The spec's result from its optimum cell and its methods' unroll cells (`runs[method]`)."""
    curves = {method: runs[method]["curves"] for method in spec.rules}
    reference_long = None if spec.reference is None else runs[spec.reference]["reference_long"]
    return EvaluationResult(
        env_id=spec.env_id,
        description=optimum["description"],
        dim=optimum["dim"],
        split=spec.split,
        instances=spec.instances,
        horizon=spec.horizon,
        seed=spec.seed,
        reference=spec.reference,
        curves=curves,
        metrics=method_metrics(curves, spec.reference, reference_long),
        family_kwargs=spec.family_kwargs,
        reference_long=reference_long,
    )


__all__ = ["EvaluationSpec", "decode_curves", "encode_curves", "evaluate_many", "rule_fingerprint"]
