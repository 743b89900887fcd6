"""The l2o_gym command line (also installed as ``l2o-gym``): train learned optimizers, list
environments, tune hand-designed baselines, evaluate optimizers on held-out instances.

    python train_agent.py          # the default job: train PPO on logistic regression, held-out report
    python train_agent.py --env ID --algo {ppo,sac,td3,a2c,recurrent_ppo,l2l,meta_lstm} --timesteps N
                          --num-envs B --seed S --out DIR [--config FILE.yaml] [--coordinatewise] [--resume]
    l2o-gym train ...              # the same as `python train_agent.py --env ...`
    l2o-gym list
    l2o-gym tune --env l2o/LogisticRegression-v0 [--optimizers adam,momentum] [--horizon 40]
    l2o-gym evaluate --env ID --optimizers adam,momentum,... [--policy PATH ...] --split test
                     --instances 100 --horizon 40 --out DIR

Each subcommand is one `add_<name>` function registering its parser and one `run_<name>(args)`
doing the work; every argument is checked before any work starts (argparse error, exit code 2).
Hand-designed optimizers are tuned on the validation split (`agents.hand_designed.tuning`) and the tuned
settings cached in a JSON file, so later runs reuse them. The evaluation always includes tuned
Adam, the reference of the speed-up and win-rate columns.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import l2o_gym
from l2o_gym.registry import l2o_env_ids, make_family

REFERENCE = "adam"
DEFAULT_JOB = ["train", "--env", "l2o/LogisticRegression-v0", "--algo", "ppo", "--out", "runs/default"]
META_ALGOS = ("l2l", "meta_lstm")


class UsageError(ValueError):
    """A bad command-line argument, found before any work starts."""


def int_at_least(minimum: int, what: str):
    """argparse type: an integer >= minimum (`what` names it in errors)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} (>= {minimum}), got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what} (>= {minimum}), got {value}")
        return value

    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "a non-negative integer")


# ---------------------------------------------------------------------------------------------
# checks (no work)


def check_env(env_id: str) -> str:
    ids = l2o_env_ids()
    if env_id not in ids:
        raise UsageError(f"--env: unknown environment {env_id!r}; registered: {', '.join(ids)}")
    return env_id


def parse_envs(text: str) -> list[str]:
    """Comma-separated registered ids -> list (at least one, no duplicates)."""
    env_ids = [e.strip() for e in text.split(",") if e.strip()]
    if not env_ids:
        raise UsageError("--env: no environment given; see `l2o-gym list`")
    if len(set(env_ids)) != len(env_ids):
        raise UsageError(f"--env: an id is listed twice in {text!r}")
    return [check_env(e) for e in env_ids]


def hand_designed_names() -> list[str]:
    from agents.hand_designed import HAND_DESIGNED

    return list(HAND_DESIGNED)


def parse_optimizers(text: str | None, *, allow_empty: bool = False) -> list[str]:
    """Comma-separated hand-designed optimizer names -> list (known, no duplicates)."""
    known = hand_designed_names()
    if text is None:
        return known
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names and not allow_empty:
        raise UsageError(f"--optimizers: the list is empty; choose from {', '.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"--optimizers: unknown optimizer(s) {', '.join(unknown)}; known: {', '.join(known)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"--optimizers: listed twice: {', '.join(duplicates)}")
    return names


def load_policies(paths: Sequence[str]) -> dict:
    """Saved learned optimizers by name (their folder's name), loaded now so a bad path fails early."""
    from agents.runtime.saved_rules import load_rule

    rules = {}
    for path in paths:
        name = Path(path).resolve().name or str(path)
        if name in rules:
            raise UsageError(f"--policy: two policies are named {name!r}; give them folders of different names")
        try:
            rules[name] = load_rule(path)
        except (FileNotFoundError, ValueError, TypeError) as err:
            raise UsageError(f"--policy {path}: {err}") from None
    return rules


def parse_family_kwargs(items: Sequence[str], env_ids: Sequence[str]) -> dict:
    """KEY=VALUE items (values read as Python literals, else strings), checked by building each family."""
    kwargs = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--family-kwarg: expected KEY=VALUE, got {item!r}")
        try:
            kwargs[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = text
    for env_id in env_ids:
        try:
            make_family(env_id, **kwargs)
        except (TypeError, ValueError) as err:
            raise UsageError(f"--family-kwarg for {env_id}: {err}") from None
    return kwargs


def check_out(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out: {str(path)!r} exists and is not a folder")
    return path


# ---------------------------------------------------------------------------------------------
# work


def tuned_rules(
    names: Sequence[str],
    env_id: str,
    horizon: int,
    cache: Path | None,
    instances: int,
    seed: int,
    family_kwargs: dict | None = None,
) -> dict:
    """Hand-designed rules tuned on the validation split of `env_id` (cached in `cache`)."""
    from agents.hand_designed.tuning import tuned_optimizer

    rules = {}
    for name in names:
        start = time.perf_counter()
        rules[name] = tuned_optimizer(
            name, env_id, horizon, cache_path=cache, family_kwargs=family_kwargs, instances=instances, seed=seed
        )
        print(f"  {name}: ready ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    return rules


def evaluate_and_report(
    env_ids: Sequence[str],
    optimizers: Sequence[str],
    policies: dict,
    *,
    split: str,
    instances: int,
    horizon: int,
    seed: int,
    out: Path,
    cache: Path | None,
    tune_instances: int,
    family_kwargs: dict | None = None,
) -> int:
    """Tune the baselines, evaluate them and the policies on every env, write one report, print the tables."""
    from l2o_gym.evaluation import evaluate
    from l2o_gym.report import markdown_table, write_report

    names = list(optimizers)
    if REFERENCE not in names:
        names.append(REFERENCE)
        print(f"(adding tuned {REFERENCE}: the reference of the speed-up and win-rate columns)", file=sys.stderr)
    results = []
    for env_id in env_ids:
        print(f"tuning {', '.join(names)} on {env_id} (validation split; cache {cache_path(cache)})", file=sys.stderr)
        rules = {**tuned_rules(names, env_id, horizon, cache, tune_instances, seed, family_kwargs), **policies}
        print(f"evaluating on {instances} {split} instances, {horizon} steps", file=sys.stderr, flush=True)
        result = evaluate(
            rules,
            env_id,
            split=split,
            instances=instances,
            horizon=horizon,
            seed=seed,
            reference=REFERENCE,
            family_kwargs=family_kwargs,
        )
        results.append(result)
    report = write_report(results, out)
    for result in results:
        print(markdown_table(result))
    print(f"report: {report} (tables in {out / 'report.md'}, plots {out}/*.png)")
    return 0


# ---------------------------------------------------------------------------------------------
# subcommands: add_<name>(subparsers) registers the parser and sets `run`


def add_list(subparsers) -> None:
    parser = subparsers.add_parser("list", help="list the registered l2o environment ids")
    parser.set_defaults(run=run_list, parser=parser)


def run_list(args: argparse.Namespace) -> int:
    rows = []
    for env_id in l2o_env_ids():
        try:
            family = make_family(env_id)
            rows.append((env_id, str(family.dim), family.description))
        except Exception as err:  # a broken plug-in must not hide the other ids
            rows.append((env_id, "?", f"(cannot build the family: {type(err).__name__}: {err})"))
    width = max(len(r[0]) for r in rows)
    dim_width = max(3, *(len(r[1]) for r in rows))
    print(f"{'id':<{width}}  {'dim':>{dim_width}}  description")
    for env_id, dim, description in rows:
        print(f"{env_id:<{width}}  {dim:>{dim_width}}  {description}")
    return 0


def _add_common(parser: argparse.ArgumentParser, *, env_required: bool = True) -> None:
    parser.add_argument(
        "--env", required=env_required, help="registered environment id(s), comma-separated (see `list`)"
    )
    parser.add_argument("--horizon", type=positive_int, default=40, help="steps per run (default 40)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the instances drawn (default 0)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="tuned-settings JSON cache (default $L2O_GYM_CACHE/tuned.json, else ~/.cache/l2o_gym/tuned.json)",
    )
    parser.add_argument(
        "--family-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="family keyword, e.g. dim=10 for an out-of-distribution variation (repeatable)",
    )
    parser.add_argument(
        "--tune-instances", type=positive_int, default=100, help="validation instances used to tune (default 100)"
    )


def add_tune(subparsers) -> None:
    parser = subparsers.add_parser("tune", help="tune hand-designed baselines on an env's validation split")
    _add_common(parser)
    parser.add_argument("--optimizers", help="comma-separated names (default: all hand-designed)")
    parser.set_defaults(run=run_tune, parser=parser)


def run_tune(args: argparse.Namespace) -> int:
    env_ids = parse_envs(args.env)
    names = parse_optimizers(args.optimizers)
    family_kwargs = parse_family_kwargs(args.family_kwarg, env_ids)
    from agents.hand_designed.tuning import find_tuned

    for env_id in env_ids:
        print(f"{env_id} (validation split, horizon {args.horizon}) {family_kwargs or ''}", flush=True)
        tuned_rules(names, env_id, args.horizon, args.cache, args.tune_instances, args.seed, family_kwargs)
        for name in names:
            setting = find_tuned(name, env_id, args.horizon, args.cache, family_kwargs)
            settings = ", ".join(f"{k}={v:.4g}" for k, v in setting.hparams.items())
            print(f"  {name:<10} {settings:<28} validation cost {setting.score:.4g}", flush=True)
    print(f"tuned settings cached in {cache_path(args.cache)}")
    return 0


def cache_path(cache: Path | None) -> Path:
    from agents.hand_designed.tuning import default_cache_path

    return default_cache_path() if cache is None else cache


def add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate optimizers on held-out instances and write a report")
    _add_common(parser)
    parser.add_argument(
        "--optimizers", help="comma-separated hand-designed names (default: all); tuned adam is always added"
    )
    parser.add_argument(
        "--policy", action="append", default=[], metavar="PATH", help="a saved learned optimizer (repeatable)"
    )
    parser.add_argument("--split", choices=l2o_gym.SPLITS, default="test", help="instances to evaluate on")
    parser.add_argument("--instances", type=positive_int, default=100, help="instances (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/<env>)")
    parser.set_defaults(run=run_evaluate, parser=parser)


def run_evaluate(args: argparse.Namespace) -> int:
    env_ids = parse_envs(args.env)
    optimizers = parse_optimizers(args.optimizers)
    default_out = Path("reports") / "_".join(e.replace("/", "_") for e in env_ids)
    out = check_out(args.out if args.out is not None else default_out)
    family_kwargs = parse_family_kwargs(args.family_kwarg, env_ids)
    policies = load_policies(args.policy)
    clash = sorted(set(policies) & {*optimizers, REFERENCE})
    if clash:
        raise UsageError(f"--policy: {', '.join(clash)} is also a hand-designed optimizer's name; rename the folder")
    return evaluate_and_report(
        env_ids,
        optimizers,
        policies,
        split=args.split,
        instances=args.instances,
        horizon=args.horizon,
        seed=args.seed,
        out=out,
        cache=args.cache,
        tune_instances=args.tune_instances,
        family_kwargs=family_kwargs,
    )


def add_train(subparsers) -> None:
    from agents.rl.sb3_training import ALGOS

    parser = subparsers.add_parser("train", help="train a learned optimizer, then report it against tuned baselines")
    parser.add_argument("--env", required=True, help="registered environment id (see `list`)")
    parser.add_argument("--algo", choices=(*ALGOS, *META_ALGOS, "gps"), default="ppo", help="learning algorithm")
    parser.add_argument(
        "--timesteps", type=positive_int, default=None, help="env steps (inner steps for l2l/meta_lstm)"
    )
    parser.add_argument("--num-envs", type=positive_int, default=None, help="problem instances per rollout")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/<env>_<algo>)")
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML hyperparameters over agents/rl/hyperparams.yaml"
    )
    parser.add_argument(
        "--coordinatewise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one policy shared by all coordinates (dimension-free); default from the hyperparameters",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--test-instances", type=positive_int, default=100, help="held-out instances in the report")
    parser.add_argument(
        "--report-horizons", default="40,100", help="comma-separated horizons of the held-out report (default 40,100)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="tuned-settings cache (see `tune`)")
    parser.set_defaults(run=run_train, parser=parser)


def parse_horizons(text: str) -> list[int]:
    try:
        horizons = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise UsageError(f"--report-horizons: expected comma-separated integers, got {text!r}") from None
    if not horizons or any(h < 1 for h in horizons):
        raise UsageError(f"--report-horizons: expected positive integers, got {text!r}")
    return horizons


def run_train(args: argparse.Namespace) -> int:
    env_id = check_env(args.env)
    horizons = parse_horizons(args.report_horizons)
    out = check_out(args.out if args.out is not None else Path("runs") / f"{env_id.replace('/', '_')}_{args.algo}")
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"--config: {str(args.config)!r} does not exist")
    if args.resume and not out.is_dir():
        raise UsageError(f"--resume: no run folder at {str(out)!r}")
    start = time.perf_counter()
    if args.algo in META_ALGOS:
        best = train_meta(args, env_id, out)
    elif args.algo == "gps":  # guided policy search; --config: a YAML of agents.gps.options.GPSOptions
        from agents.gps.training import train_gps_from_cli

        best = train_gps_from_cli(env_id, out, args.config, args.seed, args.resume, not args.no_progress, UsageError)
    else:
        from agents.rl.sb3_training import train_sb3

        result = train_sb3(
            env_id,
            args.algo,
            out_dir=out,
            timesteps=args.timesteps,
            num_envs=args.num_envs,
            seed=args.seed,
            config=args.config,
            coordinatewise=args.coordinatewise,
            resume=args.resume,
            progress_bar=not args.no_progress,
        )
        best = result.best
    wall = time.perf_counter() - start
    print(f"trained {args.algo} on {env_id} in {wall:.0f} s; learned optimizer: {best}", flush=True)
    from agents.runtime.saved_rules import load_rule

    learned = {args.algo: load_rule(best)}
    for horizon in horizons:
        evaluate_and_report(
            [env_id],
            hand_designed_names(),
            learned,
            split="test",
            instances=args.test_instances,
            horizon=horizon,
            seed=args.seed,
            out=out / f"report_T{horizon}",
            cache=args.cache,
            tune_instances=100,
        )
    return 0


def train_meta(args: argparse.Namespace, env_id: str, out: Path) -> Path:
    """Meta-train the L2L or meta-LSTM optimizer (hyperparameters: --config keys as keywords)."""
    import yaml

    from agents.meta.meta_training import train_meta_optimizer

    kwargs = {}
    if args.config is not None:
        kwargs = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(kwargs, dict):
            raise UsageError(f"--config: {str(args.config)!r} must hold a mapping of train_meta_optimizer keywords")
    return train_meta_optimizer(
        env_id,
        args.algo,
        args.timesteps or 200_000,
        args.seed,
        out,
        progress=not args.no_progress,
        tensorboard_log=out / "tb",
        resume=args.resume,
        **kwargs,
    )


SUBCOMMANDS: list[Callable] = [add_train, add_list, add_tune, add_evaluate]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2o-gym",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n" + __doc__.split("\n\n")[1] + "\n\nRun `l2o-gym COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: no arguments run the default job; leading --options mean `train`; else a subcommand."""
    torch.set_num_threads(1)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print("default job: " + " ".join(DEFAULT_JOB[1:]) + " (run with --help for the commands)", flush=True)
        argv = list(DEFAULT_JOB)
    elif argv[0].startswith("--") and argv[0] not in ("--help",):
        argv = ["train", *argv]  # `python train_agent.py --env ... --algo ...`
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as err:
        args.parser.error(str(err))  # the subcommand's usage line, message, exit code 2


if __name__ == "__main__":
    sys.exit(main())
