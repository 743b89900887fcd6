"""`train_gps`: mirror-descent guided policy search for a coordinatewise learned optimizer.

    controllers ← per-instance tuned momentum (+ exploration noise)
    for each iteration:
        sample N trajectories per training instance from the controllers (old samples discarded)
        (first iteration) fit the policy to the controllers                       (S-step)
        adapt each instance's ε from the last step's predicted vs actual improvement
        fit per-step dynamics with the mixture prior; quadratise the cost
        repeat inner_iterations times:
            linearise the policy around the samples                               (p̄)
            controllers ← argmin E[cost] s.t. KL(p ‖ p̄) ≤ ε T and gains within
                          their bounds, η by bisection                            (C-step)
            fit the policy to the controllers' actions, precision-weighted        (S-step)
        score the policy on validation instances (Li & Malik's normalised cost, or with
            select_best: wins_vs_adam its paired wins against tuned Adam); keep the best

Writes into out_dir: best/ and final/ (saved learned optimizers, kind "gps"), checkpoint.pt
(written atomically after each iteration; `resume=True` continues from it), gps_options.json,
tb/ (TensorBoard scalars).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import torch

from agents.gps.best_selection import WinsAgainstAdam
from agents.gps.beyond_horizon import extension_rows, rollout_beyond
from agents.gps.controllers import initial_controllers
from agents.gps.coordinate_state import GRADIENT, impose_kinematics
from agents.gps.cost import local_quadratic_cost
from agents.gps.cost_shaping import inverse_gap_weights, log_gap_objectives
from agents.gps.dynamics import MixturePrior, fit_dynamics
from agents.gps.linear_gaussian import LinearGaussian
from agents.gps.lqr import expected_cost, kl_constrained_update
from agents.gps.options import GPSOptions, options_from_config
from agents.gps.policy import CoordinatewisePolicyNet, GPSOptimizer
from agents.gps.policy_fit import controller_targets, fit_policy, linearise_policy
from agents.gps.sampling import Samples, sample_trajectories
from agents.gps.step_adjustment import (
    adjusted_multipliers,
    gain_limits,
    per_instance,
    sampled_instance_cost,
)
from agents.hand_designed.tuning import li_malik_cost, tune
from l2o_gym.atomic_io import atomic_write, atomic_write_json
from l2o_gym.features import make_observation
from l2o_gym.problem import Problem
from l2o_gym.registry import make_family
from l2o_gym.unroll import unroll

CHECKPOINT = "checkpoint.pt"
OPTIONS_FILE = "gps_options.json"
ACTION_HEADROOM = 1.5  # the policy's step bound is at least this multiple of the largest initial step
# what a run trained before an option existed used (others added since: their defaults)
BEFORE_THE_OPTION = {"policy_form": "additive", "time_features": False}


def options_differing(out_dir: str | Path, options: GPSOptions) -> list[str]:
    """The names of the options in which the run recorded in out_dir (its gps_options.json, which must
    exist) differs from `options`, sorted."""
    recorded = {**GPSOptions().to_dict(), **BEFORE_THE_OPTION, **json.loads((Path(out_dir) / OPTIONS_FILE).read_text())}
    return sorted(k for k, v in options.to_dict().items() if recorded.get(k) != v)


def check_run_folder(out_dir: str | Path, options: GPSOptions, resume: bool) -> None:
    """A ValueError (before any work) if out_dir holds a run and resume is false, or if resume is
    true and it holds none or one trained with other options (only `iterations` may change)."""
    out_dir = Path(out_dir)
    checkpoint, saved = out_dir / CHECKPOINT, out_dir / OPTIONS_FILE
    if resume:
        if not checkpoint.is_file() or not saved.is_file():
            raise ValueError(f"resume: {str(out_dir)!r} holds no GPS checkpoint ({CHECKPOINT}, {OPTIONS_FILE})")
        changed = [k for k in options_differing(out_dir, options) if k != "iterations"]
        if changed:
            raise ValueError(f"resume: options {changed} differ from the run in {str(out_dir)!r}")
    elif checkpoint.exists() or (out_dir / "best").exists():
        raise ValueError(f"{str(out_dir)!r} already holds a GPS run; resume it or choose another folder")


def _save_checkpoint(
    path: Path, controllers: LinearGaussian, net: CoordinatewisePolicyNet, progress: dict, adaptation: dict
) -> None:
    state = {f"controller.{k}": v for k, v in controllers.state_dict().items()}
    state.update({f"adaptation.{k}": v for k, v in adaptation.items()})
    state.update({f"net.{k}": v.detach().clone() for k, v in net.state_dict().items()})
    state.update({f"progress.{k}": torch.tensor(v, dtype=torch.float64) for k, v in progress.items()})
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_checkpoint(path: Path) -> tuple[LinearGaussian, dict[str, torch.Tensor], dict[str, float], dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    pick = lambda prefix: {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}  # noqa: E731
    progress = {k: float(v) for k, v in pick("progress.").items()}
    return LinearGaussian.from_state_dict(pick("controller.")), pick("net."), progress, pick("adaptation.")


def _fresh_adaptation(controllers: LinearGaussian, instances: int) -> dict[str, torch.Tensor]:
    """The step adaptation's state: kl_step multipliers [B] (1), the last predicted improvement and
    sampled cost [B] (NaN: none yet), and the initial learning rates [C] the gain bound scales with."""
    nan = torch.full((instances,), float("nan"), dtype=torch.float64)
    return {
        "multipliers": torch.ones(instances, dtype=torch.float64),
        "predicted": nan,
        "previous_cost": nan.clone(),
        "learning_rates": -controllers.gains[:, 0, 0, GRADIENT].double(),
    }


def _family_momentum(env_id: str, family_kwargs: dict | None, options: GPSOptions) -> tuple[float, float]:
    """Momentum's (lr, μ) tuned for the family on its validation split (agents.hand_designed.tuning)."""
    setting = tune(
        "momentum",
        env_id,
        horizon=options.horizon,
        instances=options.validation_instances,
        seed=options.seed,
        family_kwargs=family_kwargs or None,
    )
    return setting.hparams["lr"], setting.hparams["momentum"]


def _training_optima(train: Problem, options: GPSOptions) -> torch.Tensor | None:
    """f* of the training instances [B] where the cost is shaped by it, else None."""
    if options.cost_shaping == "none":
        return None
    f_star = train.optimum()
    if f_star is None:
        raise ValueError(f"cost_shaping {options.cost_shaping!r} needs the family's optima f*; this family has none")
    return f_star


def _policy_cost(rule: GPSOptimizer, problem: Problem, options: GPSOptions, horizon: int | None = None) -> float:
    """Mean Li & Malik normalised cost of the policy on `problem` over `horizon` steps (None: T)."""
    curves = unroll(rule, copy.deepcopy(problem), horizon or options.horizon, history=options.history)
    return float(li_malik_cost(curves).mean())


def _selector(env_id: str, family, options: GPSOptions, family_kwargs: dict | None) -> WinsAgainstAdam | None:
    """What scores the policy against tuned Adam where `select_best` is "wins_vs_adam", else None."""
    if options.select_best != "wins_vs_adam":
        return None
    horizons = (options.horizon, options.validation_horizon or options.horizon)
    return WinsAgainstAdam(
        env_id, family, options.selection_instances, horizons, options.seed, options.history, family_kwargs
    )


def _scores(rule: GPSOptimizer, validation: Problem, options: GPSOptions, selector, prefix: str = "") -> dict:
    """The policy's validation cost, its win rate against tuned Adam (with a selector) and the score
    that chooses best/ (lower is better: the cost, or minus the win rate)."""
    figures = {f"{prefix}validation_cost": _policy_cost(rule, validation, options, options.validation_horizon)}
    if selector is None:
        return {**figures, "selection_score": figures[f"{prefix}validation_cost"]}
    wins = selector.score(rule)
    return {**figures, f"{prefix}selection_wins_vs_adam": wins, "selection_score": -wins}


def _sample_cost(samples: Samples) -> float:
    """Mean Li & Malik normalised cost of the sampled trajectories."""
    f = samples.objectives.double()
    return float((f[..., 1:].sum(-1) / f[..., 0].abs().clamp_min(1e-12)).mean())


def _s_step(net, samples: Samples, controllers: LinearGaussian, options, generator, extension=None) -> float:
    targets, precisions = controller_targets(controllers, samples.states)
    extra = None if extension is None else extension_rows(extension, controllers)
    return fit_policy(
        net,
        samples.rows,
        samples.states,
        targets,
        precisions,
        samples.weights,
        steps=options.policy_steps,
        lr=options.policy_lr,
        batch_size=options.policy_batch,
        generator=generator,
        extra=extra,
    )


def _gps_iteration(
    net, controllers, samples: Samples, options, generator, seed: int, adaptation: dict, f_star, extension=None
) -> dict:
    """Dynamics, cost, then inner (linearise, C-step, S-step) rounds; returns the new controllers, the
    predicted improvement per instance [B] and figures. f_star [B]: the training instances' optima
    (only read with cost shaping); extension: the policy's states beyond T (fit_beyond_horizon)."""
    prior = MixturePrior(options.mixture_components, options.prior_strength, seed=seed)
    dynamics = fit_dynamics(samples.states, samples.actions, samples.weights, prior)
    dynamics.matrices, dynamics.offsets, dynamics.noise = impose_kinematics(
        dynamics.matrices, dynamics.offsets, dynamics.noise
    )
    cost = local_quadratic_cost(samples.states, samples.curvature, samples.weights)
    instances = adaptation["multipliers"].shape[0]
    shaped = cost  # what the C-steps minimise; the gain limits stay in f's curvature
    if options.cost_shaping == "log_gap":
        dim = controllers.gains.shape[0] // instances
        step_weights = inverse_gap_weights(samples.objectives, f_star, dim)
        shaped = local_quadratic_cost(samples.states, samples.curvature, samples.weights, step_weights=step_weights)
    kl_steps = options.kl_step * adaptation["multipliers"].repeat_interleave(controllers.gains.shape[0] // instances)
    limits = None
    if options.gain_bound is not None:
        limits = gain_limits(adaptation["learning_rates"], cost, options.gain_bound)
    sampled = controllers
    before = expected_cost(dynamics, shaped, sampled)
    kls, etas, losses = [], [], []
    for _ in range(options.inner_iterations):
        reference = linearise_policy(
            net, samples.rows, samples.states, samples.weights, controllers.covariances, gain_limits=limits
        )
        controllers, eta, kl = kl_constrained_update(dynamics, shaped, reference, kl_steps, gain_limits=limits)
        losses.append(_s_step(net, samples, controllers, options, generator, extension))
        kls.append(float((kl / options.horizon).mean()))
        etas.append(float(eta.log10().median()))
    after = expected_cost(dynamics, shaped, controllers)
    gain_ratio = controllers.gains[..., GRADIENT].abs().amax((1, 2)) / adaptation["learning_rates"].abs()
    return {
        "controllers": controllers,
        "predicted": per_instance(before - after, instances),
        "surrogate_before": float(before.mean()),
        "surrogate_after": float(after.mean()),
        "kl_per_step": kls[-1],
        "log10_eta_median": etas[-1],
        "policy_loss": losses[-1],
        "gradient_gain_ratio_max": float(gain_ratio.max()),
        "kl_step_multiplier_median": float(adaptation["multipliers"].median()),
    }


def _start(
    env_id: str, family_kwargs: dict | None, train: Problem, options: GPSOptions, checkpoint: Path, resume: bool
) -> tuple[LinearGaussian, CoordinatewisePolicyNet, dict[str, float], dict[str, torch.Tensor]]:
    """Controllers, policy, progress and step adaptation: from the checkpoint, or fresh (tuned momentum,
    policy = momentum)."""
    family = make_family(env_id, **(family_kwargs or {}))
    if resume:
        controllers, net_state, state, adaptation = _load_checkpoint(checkpoint)
        net = CoordinatewisePolicyNet(
            net_state["feature_mean"].numel(), state["action_scale"], form=options.policy_form
        )
        net.load_state_dict(net_state)
        return controllers, net, state, adaptation
    base_scale = options.action_scale or family.default_action_scale
    provisional = make_observation(True, family.dim, options.history, base_scale, time_features=options.time_features)
    setting = _family_momentum(env_id, family_kwargs, options) if options.init == "family" else None
    controllers, largest_step = initial_controllers(train, options.horizon, options.init_std, provisional, setting)
    action_scale = float(max(base_scale, ACTION_HEADROOM * largest_step))
    state = {"iteration": 0.0, "best_cost": float("inf"), "action_scale": action_scale}
    net = CoordinatewisePolicyNet(provisional.num_features, action_scale, form=options.policy_form)
    if setting is not None:
        net.start_as_momentum(*setting)
    return controllers, net, state, _fresh_adaptation(controllers, train.batch_size)


def _keep(
    rule: GPSOptimizer,
    out_dir: Path,
    env_id: str,
    training_meta: dict[str, Any],
    state: dict[str, float],
    iteration: int,
    score: float,
    validation_cost: float,
    final: bool = True,
) -> None:
    """Save the policy after `iteration` as `final/` (unless `final` is False) and as `best/` where
    its selection `score` is the lowest so far (`state["best_cost"]`, updated)."""
    folders = ["final"] if final else []
    if score < state["best_cost"]:
        state["best_cost"] = score
        folders.append("best")
    meta = {**training_meta, "iteration": iteration, "selection_score": score, "validation_cost": validation_cost}
    for folder in folders:
        rule.save(out_dir / folder, env_id, meta)


def train_gps(
    env_id: str,
    out_dir: str | Path,
    options: GPSOptions | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    family_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Train a GPS optimizer on `env_id`'s training instances; returns the folder of the best policy
    (by `select_best`: validation cost or wins against tuned Adam). See the module docstring for
    the loop and what is written."""
    options = GPSOptions() if options is None else options
    if not isinstance(options, GPSOptions):
        raise TypeError(f"options must be a GPSOptions, got {type(options).__name__}")
    family = make_family(env_id, **(family_kwargs or {}))
    out_dir = Path(out_dir)
    check_run_folder(out_dir, options, resume)
    atomic_write_json(out_dir / OPTIONS_FILE, options.to_dict())
    train = family.sample(options.instances, torch.Generator().manual_seed(options.seed), "train")
    validation = family.sample(options.validation_instances, torch.Generator().manual_seed(options.seed), "validation")
    fit_generator = torch.Generator().manual_seed(options.seed + 7)
    selector = _selector(env_id, family, options, family_kwargs)
    f_star = _training_optima(train, options)
    controllers, net, state, adaptation = _start(env_id, family_kwargs, train, options, out_dir / CHECKPOINT, resume)
    rule = GPSOptimizer(net, options.history, time_features=options.time_features)
    observation = rule.observation(family.dim)
    training_meta = {"options": options.to_dict(), "env_id": env_id, "family_kwargs": family_kwargs or {}}
    keep = functools.partial(_keep, rule, out_dir, env_id, training_meta, state)
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    writer = SummaryWriter(log_dir=str(out_dir / "tb"))
    start = int(state["iteration"])
    bar = tqdm(total=options.iterations, initial=start, disable=not progress, unit="iter", desc="gps")
    for iteration in range(start, options.iterations):
        sample_generator = torch.Generator().manual_seed(options.seed * 1_000_003 + iteration)
        policy = None if options.sampling == "controllers" else net
        samples = sample_trajectories(
            train, controllers, observation, options.samples, generator=sample_generator, policy=policy
        )
        figures = {"sample_cost": _sample_cost(samples)}
        tracked = samples.objectives if f_star is None else log_gap_objectives(samples.objectives, f_star)
        sampled_cost = sampled_instance_cost(tracked)
        if options.adapt_kl_step:
            actual = adaptation["previous_cost"] - sampled_cost
            adaptation["multipliers"] = adjusted_multipliers(adaptation["multipliers"], adaptation["predicted"], actual)
        adaptation["previous_cost"] = sampled_cost
        if iteration == 0:  # the policy starts as the initial controllers (exactly, for one momentum setting)
            net.set_standardisation(samples.rows)
            if options.init == "per_instance":
                figures["initial_policy_loss"] = _s_step(net, samples, controllers, options, fit_generator)
            figures.update(_scores(rule, validation, options, selector, "initial_"))
            figures["initial_train_policy_cost"] = _policy_cost(rule, train, options)
            keep(0, figures["selection_score"], figures["initial_validation_cost"], final=False)
        extension = None
        if options.fit_beyond_horizon is not None:
            extension = rollout_beyond(
                net, train, controllers, observation, options.fit_beyond_horizon, options.samples
            )
        result = _gps_iteration(
            net, controllers, samples, options, fit_generator, options.seed + iteration, adaptation, f_star, extension
        )
        controllers = result.pop("controllers")
        adaptation["predicted"] = result.pop("predicted")
        figures.update(result)
        figures.update(_scores(rule, validation, options, selector))
        figures["train_policy_cost"] = _policy_cost(rule, train, options)
        for name, value in figures.items():
            writer.add_scalar(f"gps/{name}", value, iteration + 1)
        writer.flush()
        score = figures.pop("selection_score")
        keep(iteration + 1, score, figures["validation_cost"])
        state["iteration"] = float(iteration + 1)
        _save_checkpoint(out_dir / CHECKPOINT, controllers, net, state, adaptation)
        bar.set_postfix(val=f"{figures['validation_cost']:.4g}", kl=f"{figures['kl_per_step']:.3g}")
        bar.update(1)
    bar.close()
    writer.close()
    if not (out_dir / "best").exists():  # nothing trained (resumed at the last iteration)
        rule.save(out_dir / "best", env_id, {**training_meta, "iteration": options.iterations})
    return out_dir / "best"


def train_gps_from_cli(
    env_id: str, out_dir: Path, config: Path | None, seed: int, resume: bool, progress: bool, usage_error: type
) -> Path:
    """The command line's `--algo gps`: options and run folder checked first (a bad one raises
    `usage_error`, before any work), then `train_gps`."""
    try:
        options = options_from_config(config, seed)
        check_run_folder(out_dir, options, resume)
    except ValueError as err:
        raise usage_error(f"--algo gps: {err}") from None
    return train_gps(env_id, out_dir, options, resume=resume, progress=progress)
