"""Ravi & Larochelle's own setting: the meta-learner LSTM with learned initial parameters c_0 = θ_0,
meta-trained on few-shot episodes by backpropagation through the inner loop on the query loss.

One meta-iteration draws M training episodes (`TaskFamily.sample(M, ..., split="train")`, e.g.
N-way K-shot digit episodes of the training classes) and runs the inner loop on all of them at once:

    X_0 = θ_0 expanded to [M, d]
    X_t = f_t ⊙ X_{t-1} - i_t ⊙ ∇L_t        (t = 1..T; `agents.meta.meta_lstm`, the support loss L)
    meta-loss = mean_m query_loss(X_T)        (the episode's held-out query images, after the last step)

and takes one Adam step on the LSTM's weights *and* θ_0 (gradient-norm clip 0.25). As in the paper,
the gradient ∇L_t and the loss L_t fed to the LSTM are treated as constants (no second derivatives):
the meta-gradient reaches θ_0 through the cell state c_t = θ_t and through θ_{t-1} in the gates.
The gradient and loss are LogAndSign-preprocessed (p = 10) before the first LSTM; the gates start at
b_F ~ U(4, 6), b_I ~ U(-5, -4) (SGD with a small step). Batch normalisation: the digits network has
none, so there are no running statistics to reset per episode. The full support set is the batch of
every inner step (5 or 25 images), where the paper draws minibatches from its larger support sets.

θ_0 starts at one draw of the family network's default initialisation (``family.net.init``; the
same start the package's MAML uses for seed 0), so the meta-LSTM learns its initialisation from
scratch instead of starting at MAML's.

The result is a saved meta-LSTM folder (`agents.runtime.saved_rules` format, kind "meta_lstm"):
``l2o_meta.json`` records the architecture (``learn_init: true``, d) and under ``training`` the
inner steps T, the family's keywords and the CPU time; ``weights.pt`` holds θ_0 beside the LSTM's
weights. `adapt_saved(folder, problem)` loads it, starts the problem's instances at θ_0 and runs its
T steps through the gym's transition (`l2o_gym.unroll`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from agents.meta.meta_lstm import MetaLearnerLSTM, MetaLSTMOptimizer
from agents.meta.truncated_unroll import apply_meta_gradient
from agents.runtime.saved_rules import load_rule, read_meta
from l2o_gym.atomic_io import atomic_write_json
from l2o_gym.problem import Problem, TaskFamily, check_positive_int
from l2o_gym.registry import make_family
from l2o_gym.unroll import Curves, unroll


@dataclass(frozen=True)
class LearnedInitOptions:
    """How to meta-train: T inner steps per episode, M episodes per meta-iteration, Adam's step size
    and the gradient-norm clip (0.25, the paper's), validation episodes and how often to validate
    (the best rule by mean final query loss is kept), the family's keywords and the seed."""

    inner_steps: int = 5
    meta_batch: int = 16
    iterations: int = 1000
    lr: float = 3e-3
    grad_clip: float = 0.25
    hidden_size: int = 20
    validation_episodes: int = 200
    validation_every: int = 100
    family_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("inner_steps", "meta_batch", "iterations", "hidden_size", "validation_episodes"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("validation_every", self.validation_every)
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.family_kwargs, dict):
            raise ValueError(f"family_kwargs must be a mapping, got {self.family_kwargs!r}")


def adapt(net: MetaLearnerLSTM, problem: Problem, steps: int) -> Tensor:
    """X_T [B, d] after `steps` meta-LSTM updates from θ_0 on each instance's training (support) loss.

    Differentiable in the LSTM's weights and θ_0; the gradient and loss inputs are detached."""
    if net.theta0 is None:
        raise ValueError("the meta-LSTM has no learned θ_0 (build it with learn_init=True)")
    x = net.theta0.to(problem.x0.dtype).unsqueeze(0).expand(problem.batch_size, -1)
    hidden = net.initial_hidden(x.numel(), x.device, x.dtype)
    for _ in range(steps):
        point = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = problem.loss(point)
            (grad,) = torch.autograd.grad(loss.sum(), point)
        step, hidden = net(grad, loss.detach(), x, hidden)
        x = x + step
    return x


def new_learner(family: TaskFamily, options: LearnedInitOptions) -> MetaLSTMOptimizer:
    """A fresh meta-LSTM with θ_0 at one draw of the family network's default initialisation."""
    if not hasattr(family, "net") or not hasattr(family.net, "init"):
        raise ValueError(f"{type(family).__name__} has no network initialiser (net.init); a learned θ_0 needs one")
    generator = torch.Generator().manual_seed(options.seed)
    net = MetaLearnerLSTM(options.hidden_size, dim=family.dim, learn_init=True, generator=generator)
    with torch.no_grad():
        net.theta0.copy_(family.net.init(1, torch.Generator().manual_seed(options.seed))[0])
    return MetaLSTMOptimizer(net)


def validation_loss(net: MetaLearnerLSTM, problem: Problem, steps: int) -> float:
    """Mean query loss after the inner loop on the fixed validation episodes."""
    with torch.no_grad():
        return float(problem.query_loss(adapt(net, problem, steps).detach()).mean())


def train_learned_init(
    env_id: str, options: LearnedInitOptions, out_dir: str | Path, *, progress: bool = True
) -> tuple[Path, dict[str, Any]]:
    """Meta-train the meta-LSTM and θ_0 on `env_id`'s training episodes (see the module docstring).

    Writes ``best_model/`` (lowest mean validation query loss), ``model/`` (the last) and
    ``training.json`` into out_dir, which must not hold a run yet. Returns (best folder, summary)."""
    out_dir = Path(out_dir)
    if (out_dir / "training.json").exists() or (out_dir / "model").exists():
        raise FileExistsError(f"{str(out_dir)!r} already holds a run; choose another folder (nothing is overwritten)")
    family = make_family(env_id, **options.family_kwargs)
    if getattr(family, "init", "random") != "random" and "init" not in options.family_kwargs:
        family = make_family(env_id, **options.family_kwargs, init="random")  # the instances' x0 is unused
    if not getattr(family, "has_query", False):
        raise ValueError(f"{env_id} has no query set; the learned initialisation is meta-trained on the query loss")
    rule = new_learner(family, options)
    meta_optimizer = torch.optim.Adam(rule.net.parameters(), lr=options.lr)
    params = list(rule.net.parameters())
    generator = torch.Generator().manual_seed(options.seed + 1)
    validation = family.sample(options.validation_episodes, torch.Generator().manual_seed(options.seed), "validation")
    summary: dict[str, Any] = {"env_id": env_id, **asdict(options), "best_validation_query_loss": math.inf}
    cpu_started, wall_started, skipped, losses = time.process_time(), time.perf_counter(), 0, []
    for iteration in range(1, options.iterations + 1):
        problem = family.sample(options.meta_batch, generator, split="train")
        with torch.enable_grad():
            meta_loss = problem.query_loss(adapt(rule.net, problem, options.inner_steps)).mean()
            skipped += not apply_meta_gradient(meta_loss, params, meta_optimizer, options.grad_clip)
        losses.append(float(meta_loss.detach()))
        if iteration % options.validation_every == 0 or iteration == options.iterations:
            score = validation_loss(rule.net, validation, options.inner_steps)
            summary.update(iterations=iteration, skipped=skipped, cpu_s=time.process_time() - cpu_started)
            recent = sum(losses[-options.validation_every :]) / len(losses[-options.validation_every :])
            if progress:
                print(f"  meta-iteration {iteration}: meta-loss {recent:.4f}, validation {score:.4f}", flush=True)
            if score < summary["best_validation_query_loss"]:
                summary.update(best_validation_query_loss=score, best_iteration=iteration)
                rule.save(out_dir / "best_model", env_id, dict(summary))
    summary.update(wall_s=time.perf_counter() - wall_started, final_meta_loss=losses[-1])
    rule.save(out_dir / "model", env_id, summary)
    atomic_write_json(out_dir / "training.json", summary)
    return out_dir / "best_model", summary


def adapt_saved(folder: str | Path, problem: Problem) -> Curves:
    """Load the saved meta-LSTM with its θ_0, start `problem`'s instances there (in place) and run
    the inner steps it was trained for through `l2o_gym.unroll`; the curves (metrics at X_T)."""
    meta = read_meta(folder)
    rule = load_rule(folder)
    if not isinstance(rule, MetaLSTMOptimizer) or rule.net.theta0 is None:
        raise ValueError(f"{str(folder)!r} is not a meta-LSTM with a learned initialisation")
    steps = int(meta.get("training", {}).get("inner_steps", 0))
    if steps < 1:
        raise ValueError(f"{str(folder)!r} records no inner_steps under training; it was not saved by this module")
    rule.apply_initial_point(problem)
    return unroll(rule, problem, steps)
