"""The l2o_gym command line (also installed as ``l2o-gym``): train learned optimizers, list
environments, tune hand-designed baselines, evaluate optimizers on held-out instances.

    python train_agent.py          # the default job: train PPO on logistic regression, held-out report
    python train_agent.py --env ID --algo {ppo,sac,td3,a2c,recurrent_ppo,l2l,meta_lstm} --timesteps N
                          --num-envs B --seed S --out DIR [--config FILE.yaml] [--coordinatewise] [--resume|--overwrite]
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
from l2o_gym.execution import add_backend_options, backend_usage_error
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


def parse_compare_to(text: str, optimizers: Sequence[str]) -> list[str]:
    """--compare-to: teacher, best or evaluated optimizer names, comma-separated."""
    allowed = ["teacher", "best", *optimizers, REFERENCE]
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise UsageError(f"--compare-to: unknown {', '.join(unknown)}; allowed: {', '.join(dict.fromkeys(allowed))}")
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
    from l2o_gym.family_loader import EPISODE_OPTIONS

    kwargs = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--family-kwarg: expected KEY=VALUE, got {item!r}")
        if key.strip() in EPISODE_OPTIONS:
            hint = "use --horizon" if key.strip() == "horizon" else "set it in a training config's env section"
            raise UsageError(f"--family-kwarg: {key.strip()} is an episode option, not a family keyword; {hint}")
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


def check_out(path: Path, what: str = "--out") -> Path:
    """An output folder we may write into (checked, not made)."""
    from agents.rl.run_folder import RunFolderError, check_writable

    try:
        return check_writable(path, what)
    except RunFolderError as err:
        raise UsageError(str(err)) from None


def check_cache(cache: Path | None) -> Path | None:
    """The tuned-settings cache: its folder must be writable (it is written after tuning)."""
    check_out(cache_path(cache).parent, "--cache")
    if cache is not None and cache.exists() and not cache.is_file():
        raise UsageError(f"--cache: {str(cache)!r} is not a file")
    return cache


def check_policy_dimensions(policies: dict, env_ids: Sequence[str], family_kwargs: dict) -> None:
    """Every dict-layout policy acts only at the dimension it was trained at: each is checked
    against every env before any work."""
    for name, rule in policies.items():
        meta, spec = getattr(rule, "meta", None), getattr(rule, "observation_spec", None)
        if not isinstance(meta, dict) or spec is None or spec.coordinatewise:
            continue
        for env_id in env_ids:
            dim = make_family(env_id, **family_kwargs).dim
            if dim != meta.get("dim"):
                raise UsageError(
                    f"--policy {name}: this dict-layout policy acts on dimension {meta.get('dim')}, {env_id} has "
                    f"dimension {dim}; evaluate it on a {meta.get('dim')}-dimensional family or train a "
                    "coordinatewise policy"
                )


# ---------------------------------------------------------------------------------------------
# work


def tuned_rules(
    names: Sequence[str],
    env_ids: Sequence[str],
    horizon: int,
    cache: Path | None,
    instances: int,
    seed: int,
    family_kwargs: dict | None = None,
    backend: str = "local",
    address: str | None = None,
) -> dict[str, dict]:
    """{env id: {name: rule}}: hand-designed rules tuned on each env's validation split (cached in `cache`;
    the missing settings tuned as cells on `backend`)."""
    from agents.hand_designed import make_optimizer
    from agents.hand_designed.tuning import ensure_tuned

    requests = [(name, env_id, horizon, family_kwargs) for env_id in env_ids for name in names]
    settings = ensure_tuned(requests, cache, instances=instances, seed=seed, backend=backend, address=address)
    rules: dict[str, dict] = {env_id: {} for env_id in env_ids}
    for (name, env_id, _, _), setting in zip(requests, settings, strict=True):
        rules[env_id][name] = make_optimizer(name, **setting.hparams)
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
    backend: str = "local",
    address: str | None = None,
    rule_specs: Sequence = (),
    compare_to: Sequence[str] = (),
    policy_paths: dict | None = None,
) -> int:
    """Tune the baselines, evaluate them, the policies and the --rule specs on every env (cells on
    `backend`; finished cells kept in OUT/cells so that a run interrupted resumes), write one
    report, print the tables. Each policy is paired by cost against `compare_to` (see
    `agents.rl.policy_comparisons`)."""
    from agents.rl.policy_comparisons import compare_policies, teacher_rules
    from agents.runtime.cli_rules import rules_for_env
    from l2o_gym.evaluation_sweep import EvaluationSpec, evaluate_many
    from l2o_gym.report import markdown_table, write_report

    names = list(optimizers)
    if REFERENCE not in names:
        names.append(REFERENCE)
        print(f"(adding tuned {REFERENCE}: the reference of the speed-up and win-rate columns)", file=sys.stderr)
    print(
        f"tuning {', '.join(names)} on {', '.join(env_ids)} (validation split; cache {cache_path(cache)})",
        file=sys.stderr,
    )
    tuned = tuned_rules(names, env_ids, horizon, cache, tune_instances, seed, family_kwargs, backend, address)
    print(f"evaluating on {instances} {split} instances, {horizon} steps", file=sys.stderr, flush=True)
    teachers = teacher_rules(policy_paths or {}) if "teacher" in compare_to else {}
    specs = [
        EvaluationSpec(
            env_id,
            {
                **tuned[env_id],
                **policies,
                **dict(teachers.values()),
                **rules_for_env(
                    rule_specs, env_id, horizon, instances=tune_instances, seed=seed, family_kwargs=family_kwargs
                ),
            },
            split=split,
            instances=instances,
            horizon=horizon,
            seed=seed,
            reference=REFERENCE,
            family_kwargs=family_kwargs or {},
        )
        for env_id in env_ids
    ]
    results = evaluate_many(specs, backend=backend, address=address, results_dir=out / "cells")
    teacher_names = {policy: label for policy, (label, _) in teachers.items()}
    for result in results:
        compare_policies(result, list(policies), compare_to, names, teacher_names)
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
    add_backend_options(parser)


def check_backend_args(args: argparse.Namespace) -> None:
    error = backend_usage_error(args.backend, args.address)
    if error is not None:
        raise UsageError(error)


def add_tune(subparsers) -> None:
    parser = subparsers.add_parser("tune", help="tune hand-designed baselines on an env's validation split")
    _add_common(parser)
    parser.add_argument("--optimizers", help="comma-separated names (default: all hand-designed)")
    parser.set_defaults(run=run_tune, parser=parser)


def run_tune(args: argparse.Namespace) -> int:
    env_ids = parse_envs(args.env)
    names = parse_optimizers(args.optimizers)
    family_kwargs = parse_family_kwargs(args.family_kwarg, env_ids)
    check_cache(args.cache)
    check_backend_args(args)
    from agents.hand_designed.tuning import find_tuned

    tuned_rules(
        names,
        env_ids,
        args.horizon,
        args.cache,
        args.tune_instances,
        args.seed,
        family_kwargs,
        args.backend,
        args.address,
    )
    for env_id in env_ids:
        print(f"{env_id} (validation split, horizon {args.horizon}) {family_kwargs or ''}", flush=True)
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
    _add_common(parser, env_required=False)
    parser.add_argument(
        "--optimizers", help="comma-separated hand-designed names (default: all); tuned adam is always added"
    )
    parser.add_argument(
        "--policy", action="append", default=[], metavar="PATH", help="a saved learned optimizer (repeatable)"
    )
    parser.add_argument("--split", choices=l2o_gym.SPLITS, default="test", help="instances to evaluate on")
    parser.add_argument("--instances", type=positive_int, default=100, help="instances (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/<env>)")
    from agents.runtime.cli_rules import add_rule_option

    add_rule_option(parser)
    from tasks.heldout_suite import add_suite_option

    add_suite_option(parser)
    parser.add_argument(
        "--compare-to",
        default="teacher,best",
        metavar="RULES",
        help="pair each policy by cost against these (comma-separated): teacher (its run's imitation teacher), "
        "best (the best tuned one-evaluation-per-step hand rule), or an optimizer's name (default teacher,best)",
    )
    parser.set_defaults(run=run_evaluate, parser=parser)


def run_evaluate(args: argparse.Namespace) -> int:
    from tasks.heldout_suite import check_heldout_split, check_unseen, suite_env_ids

    if args.env is None and args.suite is None:
        raise UsageError("--env or --suite: give the environment(s) to evaluate on")
    env_ids = suite_env_ids(args.suite, parse_envs(args.env) if args.env is not None else [])
    try:
        check_heldout_split(env_ids, args.split)
    except ValueError as err:
        raise UsageError(f"--split: {err}") from None
    optimizers = parse_optimizers(args.optimizers)
    default_out = Path("reports") / (
        f"{args.suite}_suite" if args.suite else "_".join(e.replace("/", "_") for e in env_ids)
    )
    out = check_out(args.out if args.out is not None else default_out)
    family_kwargs = parse_family_kwargs(args.family_kwarg, env_ids)
    check_cache(args.cache)
    policies = load_policies(args.policy)
    check_policy_dimensions(policies, env_ids, family_kwargs)
    if args.leave_one_out and not policies:
        raise UsageError("--leave-one-out: give the --policy to check")
    if args.suite is not None or args.leave_one_out:
        try:
            check_unseen(policies, env_ids)
        except ValueError as err:
            raise UsageError(f"--policy: {err}") from None
    compare_to = parse_compare_to(args.compare_to, optimizers)
    clash = sorted(set(policies) & {*optimizers, REFERENCE})
    if clash:
        raise UsageError(f"--policy: {', '.join(clash)} is also a hand-designed optimizer's name; rename the folder")
    check_backend_args(args)
    from agents.runtime.cli_rules import parse_rule_options

    try:
        rule_specs = parse_rule_options(args.rule, taken={*optimizers, REFERENCE, *policies})
    except ValueError as err:
        raise UsageError(str(err)) from None
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
        backend=args.backend,
        address=args.address,
        rule_specs=rule_specs,
        compare_to=compare_to,
        policy_paths={Path(p).resolve().name: p for p in args.policy},
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
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run --out already holds (its files are deleted)"
    )
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


def train_gps(args: argparse.Namespace, env_id: str, out: Path) -> tuple[Path, dict]:
    """Guided policy search (--config: a YAML of `agents.gps.options.GPSOptions` fields); the run
    folder is checked first and replaced only with --overwrite. Returns the best learned optimizer
    and the run's family keywords (none: GPS trains on the family's defaults)."""
    from agents.gps.training import train_gps_from_cli
    from agents.rl.run_folder import check_run_folder, clear_run

    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: continue the run or replace it")
    if not args.resume:  # a resumed GPS run is checked against its own checkpoint and options
        checked(check_run_folder, out, resume=False, overwrite=args.overwrite)
    if args.overwrite:
        clear_run(out)
    best = train_gps_from_cli(env_id, out, args.config, args.seed, args.resume, not args.no_progress, UsageError)
    return best, {}


def run_train(args: argparse.Namespace) -> int:
    from tasks.heldout_suite import check_trainable

    env_id = check_env(args.env)
    try:
        check_trainable(env_id)
    except ValueError as err:
        raise UsageError(f"--env: {err}") from None
    horizons = parse_horizons(args.report_horizons)
    out = args.out if args.out is not None else Path("runs") / f"{env_id.replace('/', '_')}_{args.algo}"
    check_cache(args.cache)
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"--config: {str(args.config)!r} does not exist")
    start = time.perf_counter()
    if args.algo in META_ALGOS:
        best, family_kwargs = train_meta(args, env_id, out)
    elif args.algo == "gps":
        best, family_kwargs = train_gps(args, env_id, out)
    else:
        best, family_kwargs = train_rl(args, env_id, out)
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
            family_kwargs=family_kwargs,
        )
    return 0


def checked(step: Callable, *args, **kwargs):
    """step(...) with configuration, run-folder and checkpoint errors as usage errors (exit 2)."""
    from agents.rl.checkpoints import CheckpointError
    from agents.rl.config import ConfigError
    from agents.rl.run_folder import RunFolderError

    try:
        return step(*args, **kwargs)
    except (ConfigError, RunFolderError, CheckpointError) as err:
        raise UsageError(str(err)) from None


def train_rl(args: argparse.Namespace, env_id: str, out: Path) -> tuple[Path, dict]:
    """Train an SB3 learner; every setting, the run folder and the checkpoint are checked first.
    Returns the best learned optimizer and the run's family keywords (the report's family)."""
    from agents.rl.sb3_training import prepare_training, train_sb3

    options = {"timesteps": args.timesteps, "num_envs": args.num_envs, "coordinatewise": args.coordinatewise}
    folder = {"resume": args.resume, "overwrite": args.overwrite}
    config, family = checked(prepare_training, env_id, args.algo, out, config=args.config, **options, **folder)
    result = train_sb3(
        env_id,
        args.algo,
        out_dir=out,
        seed=args.seed,
        config=config,
        progress_bar=not args.no_progress,
        **folder,
    )
    return result.best, family.family_kwargs


def check_meta_resume(out: Path) -> None:
    """The newest meta-training checkpoint loads as plain tensors (no unpickling), or a usage error."""
    from agents.meta.meta_checkpoints import latest_checkpoint

    path = latest_checkpoint(out)
    if path is None:
        raise UsageError(f"--resume: {str(out)!r} holds no meta-training checkpoint")
    try:
        torch.load(path, weights_only=True)
    except Exception as err:
        raise UsageError(
            f"--resume: {path} is damaged ({type(err).__name__}); move it away to resume from an earlier one"
        ) from None


def train_meta(args: argparse.Namespace, env_id: str, out: Path) -> tuple[Path, dict]:
    """Meta-train the L2L or meta-LSTM optimizer (hyperparameters: --config keys as keywords);
    returns the best learned optimizer and the run's family keywords."""
    from agents.meta.meta_training import train_meta_optimizer
    from agents.rl.config import MetaTrainingConfig
    from agents.rl.hyperparams import read_yaml_mapping
    from agents.rl.run_family import RunFamily
    from agents.rl.run_folder import check_run_folder, clear_run
    from l2o_gym.family_loader import split_kwargs

    config = MetaTrainingConfig.parse({}, "the meta-training defaults")
    if args.config is not None:
        config = checked(MetaTrainingConfig.parse, checked(read_yaml_mapping, args.config), str(args.config))
    family_kwargs = split_kwargs(config.options.env_kwargs or {})[1]
    checked(RunFamily.resolve, env_id, family_kwargs, str(args.config or "the meta-training settings"))
    checked(check_run_folder, out, resume=args.resume, overwrite=args.overwrite)
    if args.resume:
        check_meta_resume(out)
    if args.overwrite:
        clear_run(out)
    best = train_meta_optimizer(
        env_id,
        args.algo,
        args.timesteps or config.timesteps or MetaTrainingConfig.DEFAULT_TIMESTEPS,
        args.seed,
        out,
        config.options,
        progress=not args.no_progress,
        tensorboard_log=out / "tb",
        resume=args.resume,
    )
    return best, family_kwargs


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
