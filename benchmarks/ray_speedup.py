"""Wall time of an evaluation table in-process against Ray, measured in the same run.

The table: hand-designed baselines tuned on each family's validation split, then evaluated on
its test instances at each horizon (what `l2o-gym evaluate` does, for several horizons). The
whole pipeline runs twice from an empty tuning cache, once per backend: in this process, cell
after cell, and on a local Ray with `--num-cpus` workers (its start-up counted and also shown on
its own). Both runs must write byte-identical reports. Prints a markdown table and, with
`--write-docs`, puts it into docs/ray.md between its markers.

    python benchmarks/ray_speedup.py [--envs ...] [--optimizers adam,rmsprop,gd,cg] [--horizons 40,100]
                                     [--instances 100] [--tune-instances 100] [--num-cpus 2] [--write-docs]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from agents.hand_designed import make_optimizer
from agents.hand_designed.tuning import ensure_tuned
from l2o_gym.evaluation_sweep import EvaluationSpec, evaluate_many
from l2o_gym.execution import check_backend, shutdown_backend, start_ray
from l2o_gym.report import write_report

FAMILIES = ("l2o/LogisticRegression-v0", "l2o/RobustLinearRegression-v0", "l2o/TwoLayerNet-v0")
OPTIMIZERS = ("adam", "rmsprop", "gd", "cg")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "ray.md"
START, END = "<!-- ray_speedup:start -->", "<!-- ray_speedup:end -->"


def evaluation_table(args: argparse.Namespace, backend: str, folder: Path) -> float:
    """Tune (empty cache) and evaluate every (family, horizon) on `backend`; write the report; wall seconds."""
    start = time.perf_counter()
    requests = [(name, env_id, h, None) for env_id in args.envs for h in args.horizons for name in args.optimizers]
    settings = ensure_tuned(
        requests, folder / "tuned.json", instances=args.tune_instances, backend=backend, progress=False
    )
    rules: dict[tuple[str, int], dict] = {}
    for (name, env_id, horizon, _), setting in zip(requests, settings, strict=True):
        rules.setdefault((env_id, horizon), {})[name] = make_optimizer(name, **setting.hparams)
    specs = [
        EvaluationSpec(env_id, table_rules, instances=args.instances, horizon=horizon)
        for (env_id, horizon), table_rules in rules.items()
    ]
    results = evaluate_many(specs, backend=backend, progress=False)
    write_report(results, folder / "report")
    return time.perf_counter() - start


def markdown(
    args: argparse.Namespace, local: float, ray_start: float, ray_cells: float, identical: bool, load: list[float]
) -> str:
    cells = len(args.envs) * len(args.horizons) * len(args.optimizers)
    lines = [
        f"Measured by `python benchmarks/ray_speedup.py` on {os.cpu_count()} cores ({platform.machine()}), "
        f"Ray with {args.num_cpus} workers: {len(args.envs)} families x {len(args.horizons)} horizons "
        f"({', '.join(map(str, args.horizons))}) x {len(args.optimizers)} optimizers "
        f"({', '.join(args.optimizers)}) = {cells} tuning cells and {cells} unroll cells, "
        f"{args.instances} test / {args.tune_instances} validation instances. The machine's 1-minute load "
        f"average (other processes included) was {load[0]:.1f} at the start, {load[1]:.1f} between the runs and "
        f"{load[2]:.1f} at the end.",
        "",
        "| backend | wall time | ratio to in-process |",
        "|---|---:|---:|",
        f"| in-process | {local:.1f} s | 1.00 |",
        f"| Ray, cells only | {ray_cells:.1f} s | {local / ray_cells:.2f} |",
        f"| Ray, with its start-up ({ray_start:.1f} s) | {ray_start + ray_cells:.1f} s | "
        f"{local / (ray_start + ray_cells):.2f} |",
        "",
        f"Reports byte-identical between the backends: {'yes' if identical else 'NO'}.",
    ]
    return "\n".join(lines)


def write_docs(table: str) -> None:
    text = DOCS.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOCS} lacks the markers {START} ... {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default=",".join(FAMILIES))
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--horizons", default="40,100")
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--tune-instances", type=int, default=100)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true", help=f"put the table into {DOCS}")
    args = parser.parse_args()
    args.envs, args.optimizers = args.envs.split(","), args.optimizers.split(",")
    args.horizons = [int(h) for h in args.horizons.split(",")]
    try:
        check_backend("ray")
    except ValueError as err:
        parser.exit(2, f"{parser.prog}: {err}\n")
    torch.set_num_threads(1)
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local = evaluation_table(args, "local", folder / "local")
        load.append(os.getloadavg()[0])
        print(f"in-process: {local:.1f} s", flush=True)
        start = time.perf_counter()
        start_ray(num_cpus=args.num_cpus)
        ray_start = time.perf_counter() - start
        ray_cells = evaluation_table(args, "ray", folder / "ray")
        shutdown_backend()
        load.append(os.getloadavg()[0])
        print(f"ray: {ray_cells:.1f} s (+ {ray_start:.1f} s start-up)", flush=True)
        identical = all(
            (folder / "local" / "report" / name).read_bytes() == (folder / "ray" / "report" / name).read_bytes()
            for name in ("report.md", "report.json")
        )
    table = markdown(args, local, ray_start, ray_cells, identical, load)
    print(table)
    if args.write_docs:
        write_docs(table)
        print(f"written into {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
