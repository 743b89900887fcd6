"""Meta-train the L2L LSTM or the meta-learner LSTM by truncated backpropagation through unrolled
optimization, on any task family of the gym.

One meta-iteration draws a batch of B training instances (`TaskFamily.sample(B, ..., split="train")`),
runs the learned rule on all of them at once for `horizon` steps through the one transition
`OptimizationState.advance(step, differentiable=True)`, and cuts the unroll into pieces of
`truncation` steps. After each piece the meta-loss of that piece,

    L = (1 / truncation) Σ_t mean_b f_b(x_t) / |f_b(x_0)|        (t over the piece's steps),

is backpropagated into the rule's weights (Adam, lr 1e-3, gradient-norm clipping), then the graph is
cut (state and hidden state detached) and the unroll goes on. This is the paper's meta-loss, the sum
of f over the unroll with equal weights, up to the constant 1/truncation and, by default
(`normalize=True`), each instance divided by its starting objective |f0| (so instances of very
different scales weigh equally; `normalize=False` gives the plain sum of Andrychowicz et al.).
Second derivatives are dropped (the gradient fed to the rule is detached) unless `second_order=True`.
With ``meta_objective="query"`` (families with a held-out query set) f_b in L is the query loss
f_q,b(x_t) (normalised by |f_q,b(x_0)|) of the unrolled iterates, differentiated through them,
while the rule still reads the training (support) gradients; validation then picks the best
rule by its final query loss.

A piece whose meta-loss or meta-gradient is not finite is skipped (counted, weights untouched).
Timesteps count inner optimization steps on one instance: one meta-iteration costs B · horizon,
the way an RL agent on B vector envs counts B per env step, so `timesteps` budgets compare.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from agents.meta.l2l_lstm import CoordinatewiseLSTM, L2LOptimizer
from agents.meta.meta_checkpoints import MetaProgress, latest_checkpoint, restore_checkpoint, save_checkpoint
from agents.meta.meta_lstm import MetaLearnerLSTM, MetaLSTMOptimizer
from agents.meta.meta_training_log import MetaTrainingLog
from agents.meta.meta_training_options import ALGOS, MetaTrainingOptions
from agents.meta.truncated_unroll import MetaGradientStep, truncated_unroll
from l2o_gym.atomic_io import atomic_write_json
from l2o_gym.family_loader import split_kwargs
from l2o_gym.problem import Problem, TaskFamily
from l2o_gym.registry import env_options, make_family
from l2o_gym.rewards import check_objective
from l2o_gym.state import DEFAULT_EXPLODE_RATIO, DEFAULT_HISTORY, OptimizationState
from l2o_gym.unroll import Curves, unroll

MetaRule = L2LOptimizer | MetaLSTMOptimizer


@dataclass
class PieceStats:
    """Outcome of one meta-iteration: mean piece meta-loss, pieces applied and skipped, inner steps."""

    meta_loss: float
    applied: int
    skipped: int
    timesteps: int
    final_ratio: float  # mean f(x_T) / |f0| over the batch


def make_rule(algo: str, family: TaskFamily, generator: torch.Generator, learn_init: bool | None = None) -> MetaRule:
    """A fresh rule of `algo` ("l2l" or "meta_lstm") for `family`, weights drawn from `generator`.

    learn_init (meta_lstm only): None asks the family (`meta_learned_init` attribute, default False);
    with it θ_0 starts at the mean starting point of a batch of the family's training instances.
    """
    if algo == "l2l":
        if learn_init:
            raise ValueError("learn_init is only available for algo='meta_lstm'")
        return L2LOptimizer(CoordinatewiseLSTM(generator=generator))
    if algo == "meta_lstm":
        if learn_init is None:
            learn_init = bool(getattr(family, "meta_learned_init", False))
        net = MetaLearnerLSTM(dim=family.dim, learn_init=learn_init, generator=generator)
        if learn_init:
            with torch.no_grad():
                net.theta0.copy_(family.sample(16, generator, split="train").x0.mean(dim=0))
        return MetaLSTMOptimizer(net)
    raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")


def start_state(rule: MetaRule, problem: Problem, history: int, explode_ratio: float) -> OptimizationState:
    """The state at the problem's x0, or at the rule's learned θ_0 (keeping θ_0's graph) if it has one."""
    start = rule.start_points(problem)
    state = OptimizationState.start(
        problem, None if start is None else start.detach(), history=history, explode_ratio=explode_ratio
    )
    if start is not None:
        state.x = start + 0.0 * state.x  # same values, with the graph back to θ_0
    return state


def meta_train_iteration(
    rule: MetaRule,
    problem: Problem,
    meta_optimizer: torch.optim.Optimizer,
    *,
    horizon: int,
    truncation: int,
    grad_clip: float,
    normalize: bool = True,
    second_order: bool = False,
    history: int = DEFAULT_HISTORY,
    explode_ratio: float = DEFAULT_EXPLODE_RATIO,
    meta_objective: str = "train",
) -> PieceStats:
    """One truncated-BPTT pass of `horizon` steps over all B instances of `problem`; the meta-loss
    is the training objective's or (``meta_objective="query"``) the query loss's."""
    query = check_objective(meta_objective, problem.has_query, "meta_objective") == "query"
    params = [p for p in rule.net.parameters() if p.requires_grad]
    with torch.enable_grad():
        state = start_state(rule, problem, history, explode_ratio)
        rule.reset(state)
        scale = state.f0.abs() + 1e-12 if normalize else torch.ones_like(state.f0)
        if query:
            query_f0 = problem.query_loss(state.x).detach()
            query_scale = query_f0.abs() + 1e-12 if normalize else torch.ones_like(query_f0)

            def piece_loss(s: OptimizationState) -> torch.Tensor:
                return (problem.query_loss(s.x) / query_scale).mean()

        else:

            def piece_loss(s: OptimizationState) -> torch.Tensor:
                return (s.f / scale).mean()

        pieces = truncated_unroll(
            state,
            rule.step,
            piece_loss,
            MetaGradientStep(params, meta_optimizer, grad_clip),
            horizon=horizon,
            truncation=truncation,
            second_order=second_order,
            on_cut=rule.detach_hidden,
        )
    finite = [v for v in pieces.losses if math.isfinite(v)]
    return PieceStats(
        meta_loss=sum(finite) / len(finite) if finite else float("nan"),
        applied=pieces.applied,
        skipped=pieces.skipped,
        timesteps=problem.batch_size * horizon,
        final_ratio=float((state.f / scale).mean()),
    )


def evaluate_rule(rule: MetaRule, problem: Problem, horizon: int, history: int, explode_ratio: float) -> Curves:
    """Unroll the rule (no graph) on `problem`, starting at its learned θ_0 where it has one."""
    return unroll(rule, problem, horizon, history=history, explode_ratio=explode_ratio)


# ---------------------------------------------------------------------------------------------
# the training run


@dataclass
class MetaRun:
    """What a run trains and with what: the rule, its meta-optimizer, the training-instance generator,
    the fixed validation instances, the family and the run's configuration (as recorded)."""

    rule: MetaRule
    meta_optimizer: torch.optim.Optimizer
    sample_generator: torch.Generator
    validation: Problem
    family: TaskFamily
    config: dict[str, Any]

    @property
    def history(self) -> int:
        return self.config["history"]

    @property
    def explode_ratio(self) -> float:
        return self.config["explode_ratio"]


def build_run(env_id: str, algo: str, seed: int, options: MetaTrainingOptions) -> MetaRun:
    """The rule (weights from `seed`), Adam, the training generator (seed + 1) and the validation
    instances (seed) of a fresh run of `algo` on `env_id`."""
    episode_kwargs, family_kwargs = split_kwargs(dict(options.env_kwargs or {}))
    episode = {**env_options(env_id), **episode_kwargs}
    family = make_family(env_id, **family_kwargs)
    check_objective(options.meta_objective, family.has_query, "meta_objective")
    rule = make_rule(algo, family, torch.Generator().manual_seed(seed), options.learn_init)
    meta_optimizer = torch.optim.Adam(rule.net.parameters(), lr=options.lr)
    sample_generator = torch.Generator().manual_seed(seed + 1)
    validation = family.sample(options.validation_instances, torch.Generator().manual_seed(seed), split="validation")
    config = {
        "env_id": env_id,
        "algo": algo,
        "seed": seed,
        "horizon": options.horizon,
        "truncation": options.truncation,
        "batch_size": options.batch_size,
        "lr": options.lr,
        "grad_clip": options.clip_for(algo),
        "normalize": options.normalize,
        "second_order": options.second_order,
        "history": int(episode.get("history", DEFAULT_HISTORY)),
        "explode_ratio": float(episode.get("explode_ratio", DEFAULT_EXPLODE_RATIO)),
        "family_kwargs": family_kwargs,
        "meta_objective": options.meta_objective,
    }
    return MetaRun(rule, meta_optimizer, sample_generator, validation, family, config)


def train_step(run: MetaRun, options: MetaTrainingOptions) -> PieceStats:
    """One meta-iteration on a fresh batch of training instances."""
    problem = run.family.sample(options.batch_size, run.sample_generator, split="train")
    return meta_train_iteration(
        run.rule,
        problem,
        run.meta_optimizer,
        horizon=options.horizon,
        truncation=options.truncation,
        grad_clip=run.config["grad_clip"],
        normalize=options.normalize,
        second_order=options.second_order,
        history=run.history,
        explode_ratio=run.explode_ratio,
        meta_objective=options.meta_objective,
    )


def validate(run: MetaRun, progress: MetaProgress, out_dir: Path, log: MetaTrainingLog) -> None:
    """Unroll the rule on the validation instances; save it as ``best_model`` when it is the best yet
    (by the final objective, or the final query loss with ``meta_objective="query"``)."""
    curves = evaluate_rule(run.rule, run.validation, run.config["horizon"], run.history, run.explode_ratio)
    query = run.config["meta_objective"] == "query"
    mean_final = float((curves.query[-1] if query else curves.final).mean())
    log.validation(curves, progress.timesteps)
    if mean_final < progress.best_validation:
        progress.best_validation = mean_final
        run.rule.save(out_dir / "best_model", run.config["env_id"], {**run.config, "timesteps": progress.timesteps})


def finish(run: MetaRun, progress: MetaProgress, out_dir: Path) -> Path:
    """Save the final rule as ``model`` and the summary as ``training.json``; return the folder to use."""
    summary = {**run.config, "timesteps": progress.timesteps, "iterations": progress.iteration}
    summary.update(
        skipped_pieces=progress.skipped,
        wall_time_s=progress.wall_time_s,
        best_validation_mean_final=progress.best_validation,
    )
    run.rule.save(out_dir / "model", run.config["env_id"], summary)
    atomic_write_json(out_dir / "training.json", summary)
    best_dir = out_dir / "best_model"
    return best_dir if best_dir.is_dir() else out_dir / "model"


def train_meta_optimizer(
    env_id: str,
    algo: Literal["l2l", "meta_lstm"],
    timesteps: int,
    seed: int,
    out_dir: Path,
    options: MetaTrainingOptions | None = None,
    *,
    progress: bool = True,
    tensorboard_log: Path | None = None,
    resume: bool = False,
    **settings: Any,
) -> Path:
    """Meta-train `algo` on `env_id` for `timesteps` inner steps; return the saved model's folder.

    options: the settings (`MetaTrainingOptions`); `settings` keywords override its fields.
    Writes into out_dir: ``checkpoints/meta_<timesteps>.pt`` every `checkpoint_every` timesteps and
    at the end (atomic; `resume=True` continues from the latest, step count, weights, Adam state and
    sampling generator included, and starts fresh when there is none), ``model/`` (the final rule)
    and ``best_model/`` (the rule with the lowest mean final objective on the fixed validation
    instances), both saved-rule folders, and ``training.json`` (summary). Returns ``best_model``
    (``model`` if no validation ran). tensorboard_log: a folder for TensorBoard's event files.
    With ``meta_objective="query"`` (an option) the meta-loss and the validation figure are the
    held-out query loss (families with a query set only).
    """
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    check_timesteps_and_seed(timesteps, seed)
    options = (options or MetaTrainingOptions()).with_settings(settings, "train_meta_optimizer")
    out_dir = Path(out_dir)
    run = build_run(env_id, algo, seed, options)
    so_far = MetaProgress()
    if resume and (path := latest_checkpoint(out_dir)) is not None:
        so_far = restore_checkpoint(path, run.rule, run.meta_optimizer, run.sample_generator, env_id, algo)
    log = MetaTrainingLog(algo, timesteps, so_far.timesteps, progress, tensorboard_log, f"{algo}_{env_id}_{seed}")
    last_checkpoint = so_far.timesteps
    try:
        while so_far.timesteps < timesteps:
            began = time.perf_counter()
            stats = train_step(run, options)
            so_far.advance(stats.timesteps, stats.skipped, time.perf_counter() - began)
            log.iteration(stats, so_far)
            if so_far.iteration % options.validation_every == 0 or so_far.timesteps >= timesteps:
                validate(run, so_far, out_dir, log)
            if so_far.timesteps - last_checkpoint >= options.checkpoint_every:
                save_checkpoint(out_dir, run.config, run.rule, run.meta_optimizer, run.sample_generator, so_far)
                last_checkpoint = so_far.timesteps
    finally:
        log.close()
    save_checkpoint(out_dir, run.config, run.rule, run.meta_optimizer, run.sample_generator, so_far)
    return finish(run, so_far, out_dir)


def check_timesteps_and_seed(timesteps: int, seed: int) -> None:
    """One-line ValueErrors for a non-positive step budget or a bad seed."""
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def load_training_summary(out_dir: str | Path) -> dict[str, Any]:
    """The training.json a run wrote."""
    return json.loads((Path(out_dir) / "training.json").read_text())
