"""Tuned hand-designed baselines on Li & Malik's three families, and their held-out results.

For each family and optimizer: tune on the validation split (100 instances, T = 40, the
optimizer's default log grid, mean Li & Malik cost), then run the tuned setting on 100 test
instances (the same instances for every optimizer) and print the mean final objective, the mean
final suboptimality f(x_T) - f*, the ratio of the mean final objective to tuned Adam's (measured
in this run), the mean cost and the divergence rate. Then check Li & Malik's qualitative
findings. The tuning runs as one cell per (family, optimizer), in this process or on Ray
(`--backend ray`, `--address` or $RAY_ADDRESS for a cluster); the figures do not depend on it.
Usage: python benchmarks/tuned_baselines.py [--save tuned.json] [--instances 100] [--backend ray]

The recorded figures live in docs/results.md ("Hand-designed baselines and Li & Malik's findings");
a new run's figures replace them there.
"""

from __future__ import annotations

import argparse

import torch

import l2o_gym  # noqa: F401  (registers the env ids)
from agents.hand_designed import HAND_DESIGNED, make_optimizer
from agents.hand_designed.tuning import TunedSetting, li_malik_cost, save_tuned, tune_cell
from l2o_gym.execution import parse_backend_args, run_cells
from l2o_gym.registry import make_family
from l2o_gym.unroll import unroll

HEADER = (
    "| optimizer | tuned hparams | val cost | test final f | f - f* (mean / median) | final / Adam's "
    "| test cost | diverged |"
)
FAMILIES = ("l2o/LogisticRegression-v0", "l2o/RobustLinearRegression-v0", "l2o/TwoLayerNet-v0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--save", default=None, help="write the tuned settings to this JSON file")
    args = parse_backend_args(parser)
    torch.set_num_threads(1)
    cells = {
        f"{env_id}|{name}": dict(name=name, family=env_id, instances=args.instances, horizon=args.horizon, seed=0)
        for env_id in FAMILIES
        for name in HAND_DESIGNED
    }
    tuned = run_cells(tune_cell, cells, backend=args.backend, address=args.address, desc="tuning")
    settings = []
    results: dict[str, dict[str, dict[str, float]]] = {}
    for env_id in FAMILIES:
        family = make_family(env_id)
        test = family.sample(args.instances, torch.Generator().manual_seed(1), "test")
        f_star = test.optimum()
        rows = {}
        for name in HAND_DESIGNED:
            setting = TunedSetting(**tuned[f"{env_id}|{name}"])
            settings.append(setting)
            curves = unroll(make_optimizer(name, **setting.hparams), test, args.horizon)
            rows[name] = {
                "hparams": setting.hparams,
                "val_cost": setting.score,
                "final": float(curves.final.mean()),
                "subopt": float((curves.final - f_star).mean()),
                "median_subopt": float((curves.final - f_star).median()),
                "cost": float(li_malik_cost(curves).mean()),
                "diverged": float(curves.diverged.float().mean()),
            }
        results[env_id] = rows
        adam_final = rows["adam"]["final"]
        print(f"\n## {env_id}  (dim {family.dim}, test mean f* = {float(f_star.mean()):.5f})")
        print(HEADER)
        print("|---|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            hp = ", ".join(f"{k}={v:g}" for k, v in r["hparams"].items())
            print(
                f"| {name} | {hp} | {r['val_cost']:.3f} | {r['final']:.5f} "
                f"| {r['subopt']:.5f} / {r['median_subopt']:.5f} "
                f"| {r['final'] / adam_final:.3f} | {r['cost']:.3f} | {r['diverged']:.2f} |"
            )
        lr = rows["adam"]["hparams"]["lr"]
        print(
            f"tuned Adam lr {lr:g}; family default_action_scale {family.default_action_scale:g} "
            f"= {family.default_action_scale / lr:.2f} x tuned Adam lr"
        )
    print("\n## Li & Malik's qualitative findings")
    logistic = results[FAMILIES[0]]
    best = min(logistic, key=lambda n: logistic[n]["final"])
    verdict = "yes" if best == "lbfgs" else "no"
    print(f"- L-BFGS best on logistic regression: best mean final objective is {best!r} -> {verdict}")
    for env_id in FAMILIES[1:]:
        r = results[env_id]
        m = r["momentum"]["diverged"]
        for name in ("cg", "lbfgs"):
            verdict = "yes" if r[name]["diverged"] > m else "no"
            rates = f"{r[name]['diverged']:.2f} vs {m:.2f}"
            print(f"- {env_id}: {name} diverges more often than momentum ({rates}) -> {verdict}")
    if args.save:
        print(f"\nsaved tuned settings to {save_tuned(settings, args.save)}")


if __name__ == "__main__":
    main()
