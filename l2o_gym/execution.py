"""Run independent cells of work in this process or on a Ray cluster, with the same results.

A sweep (a tuning grid, an evaluation table, several training seeds) is a mapping of cell keys
to arguments; `run_cells(fn, cells)` returns {key: fn(argument)} in the order of `cells`.

- backend "local" (the default) calls `fn` here, one cell after the other; backend "ray" sends
  each cell to a Ray worker (one CPU each). Ray is imported only then; `address` (or the
  RAY_ADDRESS variable) names an existing cluster, else a local Ray with `num_cpus` CPUs is
  started (kept for later calls in this process; `shutdown_backend` stops it).
- Workers run with one torch thread, as the command line does, so that a cell computes the same
  numbers whichever process runs it.
- A failing cell is run once more (`retries`), then reported: after every other cell has run,
  `CellsFailed` names each failed key and its error. Nothing is silently dropped.
- With `results_dir`, each finished cell is written at once, atomically, as one JSON file
  (`encode` turns the result into JSON-able data, `decode` back); a later call with the same
  folder loads the finished cells instead of running them again, so an interrupted sweep resumes.
  A cell's key must therefore name everything its result depends on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from l2o_gym.atomic_io import atomic_write_json

BACKENDS = ("local", "ray")
CELL_FORMAT = "l2o_gym.cell_result"
CELL_VERSION = 1
FAILURES_JSON = "failures.json"
RAY_INSTALL_HINT = "pip install 'l2o-gym[ray]'"


class BackendUnavailable(ValueError):
    """The backend asked for cannot run here (Ray is not installed)."""


class CellsFailed(RuntimeError):
    """Cells that failed twice; `failures` maps each key to its error (one line)."""

    def __init__(self, failures: dict[str, str], finished: int) -> None:
        self.failures = failures
        self.finished = finished
        lines = "; ".join(f"{key}: {error}" for key, error in failures.items())
        super().__init__(f"{len(failures)} cell(s) failed after a retry ({finished} finished): {lines}")


def check_backend(backend: str, address: str | None = None) -> str:
    """`backend` if it can run here, else a one-line ValueError naming the argument and what is allowed."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise ValueError(f"address applies to backend 'ray' only, got backend {backend!r}")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise BackendUnavailable(f"backend 'ray' needs Ray, which is not installed: {RAY_INSTALL_HINT}") from None
    return backend


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """--backend {local,ray} and --address on a command line that runs cells."""
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="run the cells in this process or on Ray")
    parser.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS, else a local Ray)")


def backend_usage_error(backend: str, address: str | None) -> str | None:
    """The one-line usage error of --backend / --address (naming the option at fault), or None
    when the backend can run here."""
    try:
        check_backend(backend, address)
    except ValueError as err:
        option = "--address" if address is not None and backend != "ray" else "--backend"
        return f"{option}: {err}"
    return None


def parse_backend_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """A script's arguments with the backend options added; a backend that cannot run here is
    `parser.error` (one line, exit 2) before any work."""
    add_backend_options(parser)
    args = parser.parse_args()
    error = backend_usage_error(args.backend, args.address)
    if error is not None:
        parser.error(error)
    return args


def cell_file(results_dir: str | Path, key: str) -> Path:
    """The JSON file holding cell `key`'s result: a readable slug of the key and a hash of it."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:80] or "cell"
    return Path(results_dir) / f"{slug}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"


def load_cell(results_dir: str | Path, key: str, decode: Callable[[Any], Any]) -> tuple[bool, Any]:
    """(True, result) if cell `key` finished in `results_dir`, else (False, None)."""
    path = cell_file(results_dir, key)
    if not path.exists():
        return False, None
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a cell result: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CELL_FORMAT or payload.get("version") != CELL_VERSION:
        raise ValueError(f"{path} is not a cell result (format {CELL_FORMAT!r} version {CELL_VERSION} expected)")
    if payload.get("key") != key:
        raise ValueError(f"{path} holds cell {payload.get('key')!r}, not {key!r}")
    return True, decode(payload["result"])


def save_cell(results_dir: str | Path, key: str, result: Any, encode: Callable[[Any], Any]) -> Path:
    """Write cell `key`'s result atomically (JSON)."""
    payload = {"format": CELL_FORMAT, "version": CELL_VERSION, "key": key, "result": encode(result)}
    return atomic_write_json(cell_file(results_dir, key), payload)


def _identity(value: Any) -> Any:
    return value


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None)  # a RayTaskError carries the worker's exception
    error = cause if isinstance(cause, BaseException) else error
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".strip()


def call_cell(fn: Callable[[Any], Any], argument: Any) -> Any:
    """fn(argument) with one torch thread (the worker side of a cell)."""
    import torch

    torch.set_num_threads(1)
    return fn(argument)


def _progress_bar(total: int, initial: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="cell", disable=not progress, file=sys.stderr)


def run_cells(
    fn: Callable[[Any], Any],
    cells: Mapping[str, Any],
    *,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    results_dir: str | Path | None = None,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
    retries: int = 1,
    num_cpus: int | None = None,
    desc: str = "cells",
    on_result: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """{key: fn(argument)} for every cell, in the order of `cells` (see the module's docstring).

    `fn` must be picklable (a module-level function) and its argument and result too for "ray";
    with `results_dir`, `encode(result)` must be JSON-able and `decode` must invert it.
    `on_result(key, result)` is called here as each cell finishes (not for cells loaded).
    """
    check_backend(backend, address)
    if not isinstance(cells, Mapping) or not all(isinstance(k, str) and k for k in cells):
        raise ValueError("cells must be a mapping of non-empty str keys to arguments")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    encode, decode = encode or _identity, decode or _identity
    results: dict[str, Any] = {}
    if results_dir is not None:
        for key in cells:
            found, value = load_cell(results_dir, key, decode)
            if found:
                results[key] = value
    todo = {key: argument for key, argument in cells.items() if key not in results}

    def finished(key: str, value: Any) -> None:
        results[key] = value
        if results_dir is not None:
            save_cell(results_dir, key, value, encode)
        if on_result is not None:
            on_result(key, value)

    failures: dict[str, str] = {}
    with _progress_bar(len(cells), len(results), progress, desc) as bar:
        if todo:
            runner = _run_ray if backend == "ray" else _run_local
            runner(fn, todo, retries, finished, failures, bar, address=address, num_cpus=num_cpus)
    if results_dir is not None:
        failures_path = Path(results_dir) / FAILURES_JSON
        if failures:
            atomic_write_json(failures_path, failures)
        elif failures_path.exists():
            failures_path.unlink()
    if failures:
        raise CellsFailed(failures, len(results))
    return {key: results[key] for key in cells}


def _run_local(fn, todo, retries, finished, failures, bar, **_) -> None:
    for key, argument in todo.items():
        for attempt in range(retries + 1):
            try:
                value = call_cell(fn, argument)
            except Exception as error:  # a cell's failure is reported, never raised mid-sweep
                if attempt == retries:
                    failures[key] = _one_line(error)
                    bar.write(f"cell {key} failed: {failures[key]}")
                continue
            finished(key, value)
            break
        bar.update(1)


def _run_ray(fn, todo, retries, finished, failures, bar, *, address, num_cpus) -> None:
    ray = start_ray(address, num_cpus)
    remote_call = ray.remote(num_cpus=1, max_retries=0)(call_cell)
    fn_ref = ray.put(fn)
    pending = {remote_call.remote(fn_ref, argument): (key, 0) for key, argument in todo.items()}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        key, attempt = pending.pop(ref)
        try:
            value = ray.get(ref)
        except Exception as error:  # the worker's exception, or a lost worker
            if attempt < retries:
                pending[remote_call.remote(fn_ref, todo[key])] = (key, attempt + 1)
                continue
            failures[key] = _one_line(error)
            bar.write(f"cell {key} failed: {failures[key]}")
        else:
            finished(key, value)
        bar.update(1)


def project_root() -> Path:
    """The folder holding the l2o_gym, agents and tasks packages."""
    return Path(__file__).resolve().parent.parent


def start_ray(address: str | None = None, num_cpus: int | None = None):
    """The `ray` module, connected: to `address` or $RAY_ADDRESS (the project's packages are shipped
    as py_modules), else to a local Ray with `num_cpus` CPUs (default: min(2, this machine's))."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailable(f"backend 'ray' needs Ray, which is not installed: {RAY_INSTALL_HINT}") from None
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    root = project_root()
    if address is not None:
        modules = [str(root / name) for name in ("l2o_gym", "agents", "tasks") if (root / name).is_dir()]
        ray.init(address=address, runtime_env={"py_modules": modules}, log_to_driver=False)
    else:
        cpus = num_cpus if num_cpus is not None else min(2, os.cpu_count() or 1)
        path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
    return ray


def shutdown_backend() -> None:
    """Stop the Ray this process started or joined (nothing if Ray is absent or not started)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "CellsFailed",
    "add_backend_options",
    "backend_usage_error",
    "call_cell",
    "cell_file",
    "check_backend",
    "load_cell",
    "parse_backend_args",
    "run_cells",
    "save_cell",
    "shutdown_backend",
    "start_ray",
]
