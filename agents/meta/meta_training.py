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
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from agents.meta.l2l_lstm import CoordinatewiseLSTM, L2LOptimizer
from agents.meta.meta_lstm import MetaLearnerLSTM, MetaLSTMOptimizer
from l2o_gym.atomic_io import atomic_write, atomic_write_json
from l2o_gym.family_loader import split_kwargs
from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from l2o_gym.registry import env_options, make_family
from l2o_gym.rewards import check_objective
from l2o_gym.state import DEFAULT_EXPLODE_RATIO, DEFAULT_HISTORY, OptimizationState
from l2o_gym.unroll import Curves, unroll

ALGOS = ("l2l", "meta_lstm")
DEFAULT_GRAD_CLIP = {"l2l": 1.0, "meta_lstm": 0.25}  # Ravi & Larochelle clip at 0.25
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"meta_(\d+)\.pt$")
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


def detach_state(state: OptimizationState) -> None:
    """Cut every tensor of the state from its graph (a truncation boundary)."""
    for field in fields(state):
        value = getattr(state, field.name)
        if isinstance(value, Tensor):
            setattr(state, field.name, value.detach())


def apply_meta_gradient(
    loss: Tensor, params: list[Tensor], meta_optimizer: torch.optim.Optimizer, grad_clip: float
) -> bool:
    """Backpropagate `loss`, clip the gradient norm and step; skip (return False, weights untouched)
    when the loss or the gradient is not finite."""
    meta_optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss) or not loss.requires_grad:  # nothing to learn from (e.g. all diverged)
        return False
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if not torch.isfinite(norm):
        meta_optimizer.zero_grad(set_to_none=True)
        return False
    meta_optimizer.step()
    return True


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
    check_positive_int("horizon", horizon)
    check_positive_int("truncation", truncation)
    query = check_objective(meta_objective, problem.has_query, "meta_objective") == "query"
    params = [p for p in rule.net.parameters() if p.requires_grad]
    with torch.enable_grad():
        state = start_state(rule, problem, history, explode_ratio)
        rule.reset(state)
        scale = state.f0.abs() + 1e-12 if normalize else torch.ones_like(state.f0)
        if query:
            query_f0 = problem.query_loss(state.x).detach()
            query_scale = query_f0.abs() + 1e-12 if normalize else torch.ones_like(query_f0)
        losses, applied, skipped = [], 0, 0
        for begin in range(0, horizon, truncation):
            steps = min(truncation, horizon - begin)
            total = torch.zeros((), dtype=state.f.dtype)
            for _ in range(steps):
                state.advance(rule.step(state), differentiable=True, second_order=second_order)
                if query:
                    total = total + (problem.query_loss(state.x) / query_scale).mean()
                else:
                    total = total + (state.f / scale).mean()
            piece_loss = total / steps
            losses.append(float(piece_loss.detach()))
            if apply_meta_gradient(piece_loss, params, meta_optimizer, grad_clip):
                applied += 1
            else:
                skipped += 1
            detach_state(state)
            rule.detach_hidden()
    finite = [v for v in losses if math.isfinite(v)]
    return PieceStats(
        meta_loss=sum(finite) / len(finite) if finite else float("nan"),
        applied=applied,
        skipped=skipped,
        timesteps=problem.batch_size * horizon,
        final_ratio=float((state.f / scale).mean()),
    )


def evaluate_rule(rule: MetaRule, problem: Problem, horizon: int, history: int, explode_ratio: float) -> Curves:
    """Unroll the rule (no graph) on `problem`, starting at its learned θ_0 where it has one."""
    if hasattr(rule, "apply_initial_point"):
        rule.apply_initial_point(problem)
    return unroll(rule, problem, horizon, history=history, explode_ratio=explode_ratio)


# ---------------------------------------------------------------------------------------------
# the training run: progress bar, TensorBoard, checkpoints, resume


def _checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    folder = out_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.search(p.name))]
    return sorted(found)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint with the most timesteps in out_dir, or None."""
    found = _checkpoints(Path(out_dir))
    return found[-1][1] if found else None


def _save_checkpoint(out_dir: Path, payload: dict[str, Any]) -> Path:
    path = out_dir / CHECKPOINT_DIR / f"meta_{payload['timesteps']:012d}.pt"
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _validation_figure(curves: Curves, label: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = curves.objectives.clamp_min(1e-12)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    steps = torch.arange(objectives.shape[0])
    ax.fill_between(steps, objectives.quantile(0.25, dim=1), objectives.quantile(0.75, dim=1), alpha=0.3)
    ax.plot(steps, objectives.median(dim=1).values, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("objective (median, quartiles)")
    ax.legend()
    fig.tight_layout()
    return fig


def train_meta_optimizer(
    env_id: str,
    algo: Literal["l2l", "meta_lstm"],
    timesteps: int,
    seed: int,
    out_dir: Path,
    *,
    horizon: int = 100,
    truncation: int = 20,
    batch_size: int = 128,
    progress: bool = True,
    tensorboard_log: Path | None = None,
    checkpoint_every: int = 100_000,
    resume: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    lr: float = 1e-3,
    grad_clip: float | None = None,
    normalize: bool = True,
    second_order: bool = False,
    learn_init: bool | None = None,
    validation_instances: int = 64,
    validation_every: int = 10,
    meta_objective: str = "train",
) -> Path:
    """Meta-train `algo` on `env_id` for `timesteps` inner steps; return the saved model's folder.

    Writes into out_dir: ``checkpoints/meta_<timesteps>.pt`` every `checkpoint_every` timesteps and
    at the end (atomic; `resume=True` continues from the latest, step count, weights, Adam state and
    sampling generator included, and starts fresh when there is none), ``model/``
    (the final rule) and ``best_model/`` (the rule with the lowest mean final objective on
    `validation_instances` fixed validation instances, checked every `validation_every`
    meta-iterations), both saved-rule folders, and ``training.json`` (summary). Returns
    ``best_model`` (``model`` if no validation ran). env_kwargs: the family's keywords plus the
    episode options ``history`` and ``explode_ratio`` (other episode options do not apply here).
    learn_init: meta_lstm's learned θ_0 (see `make_rule`); grad_clip: default 1.0 (l2l), 0.25
    (meta_lstm, as Ravi & Larochelle). meta_objective: "train", or "query" (the meta-loss and the
    validation figure are the held-out query loss; families with a query set only).
    """
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    check_positive_int("timesteps", timesteps)
    check_positive_int("horizon", horizon)
    check_positive_int("truncation", truncation)
    check_positive_int("batch_size", batch_size)
    check_positive_int("checkpoint_every", checkpoint_every)
    check_positive_int("validation_every", validation_every)
    check_positive_int("validation_instances", validation_instances)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    clip = DEFAULT_GRAD_CLIP[algo] if grad_clip is None else float(grad_clip)
    if not clip > 0:
        raise ValueError(f"grad_clip must be > 0, got {grad_clip!r}")
    out_dir = Path(out_dir)
    episode_kwargs, family_kwargs = split_kwargs(dict(env_kwargs or {}))
    episode = {**env_options(env_id), **episode_kwargs}
    history = int(episode.get("history", DEFAULT_HISTORY))
    explode_ratio = float(episode.get("explode_ratio", DEFAULT_EXPLODE_RATIO))
    family = make_family(env_id, **family_kwargs)
    query = check_objective(meta_objective, family.has_query, "meta_objective") == "query"

    rule = make_rule(algo, family, torch.Generator().manual_seed(seed), learn_init)
    meta_optimizer = torch.optim.Adam(rule.net.parameters(), lr=lr)
    sample_generator = torch.Generator().manual_seed(seed + 1)
    validation = family.sample(validation_instances, torch.Generator().manual_seed(seed), split="validation")
    config = {
        "env_id": env_id,
        "algo": algo,
        "seed": seed,
        "horizon": horizon,
        "truncation": truncation,
        "batch_size": batch_size,
        "lr": lr,
        "grad_clip": clip,
        "normalize": normalize,
        "second_order": second_order,
        "history": history,
        "explode_ratio": explode_ratio,
        "family_kwargs": family_kwargs,
        "meta_objective": meta_objective,
    }
    done, iteration, skipped, wall = 0, 0, 0, 0.0
    best = float("inf")
    if resume:
        path = latest_checkpoint(out_dir)
        if path is not None:
            ckpt = torch.load(path, weights_only=True)
            if ckpt["config"]["algo"] != algo or ckpt["config"]["env_id"] != env_id:
                raise ValueError(f"{path} is a {ckpt['config']['algo']} run on {ckpt['config']['env_id']}")
            rule.net.load_state_dict(ckpt["net"])
            meta_optimizer.load_state_dict(ckpt["meta_optimizer"])
            sample_generator.set_state(ckpt["sample_generator"])
            done, iteration, skipped = ckpt["timesteps"], ckpt["iteration"], ckpt["skipped"]
            wall, best = ckpt["wall_time_s"], ckpt["best_validation"]

    writer = None
    if tensorboard_log is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(Path(tensorboard_log) / f"{algo}_{env_id.replace('/', '_')}_{seed}"))
    from tqdm.auto import tqdm

    bar = tqdm(total=timesteps, initial=min(done, timesteps), disable=not progress, unit="step", desc=algo)
    training_info = dict(config)

    def checkpoint() -> None:
        payload = {
            "config": config,
            "net": rule.net.state_dict(),
            "meta_optimizer": meta_optimizer.state_dict(),
            "sample_generator": sample_generator.get_state(),
            "timesteps": done,
            "iteration": iteration,
            "skipped": skipped,
            "wall_time_s": wall,
            "best_validation": best,
        }
        _save_checkpoint(out_dir, payload)

    last_checkpoint = done
    try:
        while done < timesteps:
            began = time.perf_counter()
            problem = family.sample(batch_size, sample_generator, split="train")
            stats = meta_train_iteration(
                rule,
                problem,
                meta_optimizer,
                horizon=horizon,
                truncation=truncation,
                grad_clip=clip,
                normalize=normalize,
                second_order=second_order,
                history=history,
                explode_ratio=explode_ratio,
                meta_objective=meta_objective,
            )
            done += stats.timesteps
            iteration += 1
            skipped += stats.skipped
            wall += time.perf_counter() - began
            bar.update(stats.timesteps)
            bar.set_postfix(meta_loss=f"{stats.meta_loss:.4g}", skipped=skipped)
            if writer is not None:
                writer.add_scalar("meta/loss", stats.meta_loss, done)
                writer.add_scalar("meta/final_over_f0", stats.final_ratio, done)
                writer.add_scalar("meta/skipped_pieces", skipped, done)
            if iteration % validation_every == 0 or done >= timesteps:
                curves = evaluate_rule(rule, validation, horizon, history, explode_ratio)
                mean_final = float((curves.query[-1] if query else curves.final).mean())
                if writer is not None:
                    writer.add_scalar("validation/mean_final_objective", mean_final, done)
                    writer.add_scalar("validation/median_final_objective", float(curves.final.median()), done)
                    writer.add_figure("validation/curves", _validation_figure(curves, algo), done)
                if mean_final < best:
                    best = mean_final
                    rule.save(out_dir / "best_model", env_id, {**training_info, "timesteps": done})
            if done - last_checkpoint >= checkpoint_every:
                checkpoint()
                last_checkpoint = done
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    checkpoint()
    summary = {**training_info, "timesteps": done, "iterations": iteration, "skipped_pieces": skipped}
    summary.update({"wall_time_s": wall, "best_validation_mean_final": best})
    rule.save(out_dir / "model", env_id, summary)
    atomic_write_json(out_dir / "training.json", summary)
    best_dir = out_dir / "best_model"
    return best_dir if best_dir.is_dir() else out_dir / "model"


def load_training_summary(out_dir: str | Path) -> dict[str, Any]:
    """The training.json a run wrote."""
    return json.loads((Path(out_dir) / "training.json").read_text())
