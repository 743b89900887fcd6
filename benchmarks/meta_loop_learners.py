"""A learned optimizer on the MANN and hypernetwork inner loops, judged on the held-out part; and the
throughput of meta-training and of the env on the four meta-learning families.

For l2o/HyperNetDigits-v0 and l2o/MANNDigits-v0 (settings in SETUPS) the learner is a per-tensor,
per-step learned step-size schedule on Adam's direction (`agents.meta.step_schedule`; on the MANN
with a learned β1, β2 per tensor too), started at
tuned Adam's step size and meta-trained first order on the training split's query loss
(`agents.meta.step_schedule_training`), the best of its validations kept. Baselines: Adam and SGD
with the step size from a grid chosen by the mean query loss after T steps on validation instances
(the learner's own criterion). All rules then run T steps on the same held-out test instances
(held-out classes); the table gives the query loss and accuracy after T steps (mean ± 95 %
interval) and the paired comparison with tuned Adam by the final query loss (win rate with a
Wilson interval, sign and Wilcoxon p). One plot per family. On the MANN also Adam's validation
query loss per step size up to a longer horizon (does the inner loop learn the task at all?).

Throughput (one thread, in this run): env steps per second (`EpisodeBatch` step + observation,
16 instances, query objective; what an RL agent pays per step), meta-training inner steps per
second of the learner, and the wall and CPU time of one training run on each of the four families.

    nice python benchmarks/meta_loop_learners.py            # about 20-25 minutes on one busy core
    python benchmarks/meta_loop_learners.py --quick --no-doc --out /tmp/mll   # a smoke run

Writes docs/meta_loop_learners.md and docs/meta_loop_<family>.png.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from agents.hand_designed import make_optimizer  # noqa: E402
from agents.meta.step_schedule import PerTensorStepSchedule, StepScheduleOptimizer, parameter_segments  # noqa: E402
from agents.meta.step_schedule_training import (  # noqa: E402
    default_loss_steps,
    save_trained,
    schedule_meta_iteration,
    train_step_schedule,
)
from benchmarks.maml_inner_optimizer import env_throughput  # noqa: E402
from l2o_gym.atomic_io import atomic_write, atomic_write_text  # noqa: E402
from l2o_gym.evaluation import EvaluationResult, evaluate  # noqa: E402
from l2o_gym.paired_statistics import sign_test_p, wilcoxon_signed_rank_p, wilson_interval  # noqa: E402
from l2o_gym.problem import TaskFamily  # noqa: E402
from l2o_gym.registry import make_family  # noqa: E402
from l2o_gym.report import mean_interval  # noqa: E402
from l2o_gym.unroll import unroll  # noqa: E402

DOC = Path("docs/meta_loop_learners.md")
ADAM_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
SGD_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Setup:
    """One family's run: its settings, horizon T, meta-training size, the accuracy metric shown."""

    env_id: str
    family_kwargs: dict[str, Any]
    horizon: int
    batch: int
    iterations: int
    test_tasks: int
    tune_tasks: int
    accuracy: str
    defaults_note: str = ""
    evaluated: bool = True
    meta_lr: float = 0.03
    loss_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    learn_betas: bool = False
    probe_horizon: int = 0  # > T: also show Adam's validation query loss up to this many steps

    def loss_steps(self) -> list[int]:
        """The unroll steps whose query loss the meta-loss averages (fractions of T)."""
        return sorted({max(1, round(self.horizon * f)) for f in self.loss_fractions})


SETUPS = {
    "hypernet": Setup("l2o/HyperNetDigits-v0", {}, 20, 12, 60, 100, 16, "test_accuracy"),
    "mann": Setup(
        "l2o/MANNDigits-v0",
        {"per_class": 5, "episodes_per_batch": 8, "eval_episodes": 16},
        100,
        8,
        30,
        48,
        12,
        "accuracy_2nd",
        defaults_note="per_class 10, episodes_per_batch 16, eval_episodes 32",
        meta_lr=0.1,
        loss_fractions=(0.5, 0.75, 1.0),
        learn_betas=True,
        probe_horizon=400,
    ),
    "maml_sinusoid": Setup(
        "l2o/MAMLSinusoid-v0", {"k_shot": 5, "init": "random"}, 10, 25, 40, 0, 0, "", evaluated=False
    ),
    "maml_digits": Setup("l2o/MAMLDigits-v0", {"init": "random"}, 10, 8, 20, 0, 0, "", evaluated=False),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/meta_loop_learners"), help="where the rules are saved")
    parser.add_argument("--quick", action="store_true", help="a tiny run of every path (figures mean nothing)")
    parser.add_argument("--no-doc", action="store_true", help="print only; do not write docs/")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    return args


def quick(setup: Setup) -> Setup:
    """The smoke-test size of a setup."""
    probe = 8 if setup.probe_horizon else 0
    return replace(
        setup, horizon=4, batch=2, iterations=2, test_tasks=min(setup.test_tasks, 4), tune_tasks=2, probe_horizon=probe
    )


# ---------------------------------------------------------------------------------------------
# baselines, training, evaluation


def tune(
    family: TaskFamily, name: str, grid: tuple[float, ...], setup: Setup, seed: int, horizon: int = 0
) -> tuple[float, dict[float, torch.Tensor]]:
    """The step size of `name` with the lowest mean query loss after T steps on validation instances,
    and each step size's mean query-loss curve [max(T, horizon) + 1] (inf where a run diverged)."""
    problem = family.sample(setup.tune_tasks, torch.Generator().manual_seed(seed + 2), split="validation")
    scores, means = {}, {}
    for lr in grid:
        curves = unroll(make_optimizer(name, lr=lr), copy.deepcopy(problem), max(setup.horizon, horizon))
        means[lr] = curves.query.double().mean(dim=1)
        final = curves.query[setup.horizon]
        early = (curves.diverged_at > 0) & (curves.diverged_at <= setup.horizon)
        finite = torch.isfinite(final).all() and not early.any()
        scores[lr] = float(final.mean()) if finite else float("inf")
    return min(scores, key=scores.get), means


def horizon_probe(means: dict[float, torch.Tensor], setup: Setup) -> list[str]:
    """Adam's mean validation query loss per step size at T/2, T, 3T/2, ... up to the probe horizon."""
    checkpoints = list(range(setup.horizon // 2, setup.probe_horizon + 1, setup.horizon // 2))
    lines = [
        f"Longer horizons (Adam, the {setup.tune_tasks} tuning instances, mean query loss; step 0: "
        f"{float(next(iter(means.values()))[0]):.4f}):",
        "",
        "| Adam lr | " + " | ".join(f"{t} steps" for t in checkpoints) + " |",
        "|---|" + "---:|" * len(checkpoints),
    ]
    for lr, mean in means.items():
        lines.append(f"| {lr:g} | " + " | ".join(f"{float(mean[t]):.4f}" for t in checkpoints) + " |")
    return [*lines, ""]


def paired_table(result: EvaluationResult, learner: str) -> list[str]:
    """The learner against every other rule on the same test instances, by the final query loss and by
    the mean query loss over steps 1..T (the area under its curve; lower wins), with a verdict each."""
    lines = [
        "Paired on the test instances (a win: a lower query loss than the other rule's on the same instance):",
        "",
        "| learner vs | by | wins / decided | win rate [95 % Wilson] | sign p | Wilcoxon p |",
        "|---|---|---:|---:|---:|---:|",
    ]
    verdicts = []
    ours = result.curves[learner].query
    for name, curves in result.curves.items():
        if name == learner:
            continue
        for by, mine, theirs in (
            ("final query loss", ours[-1], curves.query[-1]),
            ("mean query loss, steps 1-T", ours[1:].mean(0), curves.query[1:].mean(0)),
        ):
            row, (low, high) = paired_row(f"{name} | {by}", mine, theirs)
            lines.append(row)
            verdict = "beats" if low > 0.5 else "loses to" if high < 0.5 else "does not differ significantly from"
            verdicts.append(f"- by the {by}, the learner {verdict} {name} (Wilson interval [{low:.2f}, {high:.2f}]).")
    return [*lines, "", *verdicts]


def paired_row(name: str, learner: torch.Tensor, other: torch.Tensor) -> tuple[str, tuple[float, float]]:
    """Learner vs another rule on a figure [B] per instance (lower wins): the table row and the interval."""
    wins, losses = int((learner < other).sum()), int((learner > other).sum())
    low, high = wilson_interval(wins, wins + losses)
    p_sign, p_wilcoxon = sign_test_p(wins, losses), wilcoxon_signed_rank_p((learner - other).double())
    rate = wins / max(wins + losses, 1)
    interval = f"{100 * rate:.0f} % [{100 * low:.0f}, {100 * high:.0f}]"
    return f"| {name} | {wins} / {wins + losses} | {interval} | {p_sign:.2g} | {p_wilcoxon:.2g} |", (low, high)


def results_table(result: EvaluationResult, setup: Setup) -> list[str]:
    checkpoints = sorted({0, 1, setup.horizon // 4, setup.horizon // 2, setup.horizon})
    lines = [
        "| rule | "
        + " | ".join(f"query loss, {t} steps" for t in checkpoints)
        + f" | {setup.accuracy}, T | diverged |",
        "|---|" + "---:|" * (len(checkpoints) + 2),
    ]
    for name, curves in result.curves.items():
        cells = ["{:.4f} ± {:.4f}".format(*mean_interval(curves.query[t])) for t in checkpoints]
        accuracy = "{:.3f} ± {:.3f}".format(*mean_interval(curves.metrics[setup.accuracy]))
        lines.append(f"| {name} | {' | '.join(cells)} | {accuracy} | {int(curves.diverged.sum())} |")
    return lines


def plot(result: EvaluationResult, setup: Setup, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, curves in result.curves.items():
        steps = range(curves.query.shape[0])
        left.plot(steps, curves.query.double().mean(dim=1), label=name)
        accuracy = curves.metric_curves.get(setup.accuracy)
        if accuracy is not None:
            right.plot(steps, accuracy.double().mean(dim=1), label=name)
    left.set(xlabel="inner step", ylabel="query loss (mean over test instances)", title=setup.env_id)
    right.set(xlabel="inner step", ylabel=f"{setup.accuracy} (mean)")
    left.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    plt.close(fig)


def run_family(key: str, setup: Setup, args: argparse.Namespace) -> tuple[list[str], dict[str, float]]:
    """Tune, meta-train and evaluate on one family -> (its document section, its training-run times)."""
    family = make_family(setup.env_id, **setup.family_kwargs)
    print(f"{key}: tuning ...", flush=True)
    adam_lr, adam_means = tune(family, "adam", ADAM_GRID, setup, args.seed, setup.probe_horizon)
    sgd_lr, _ = tune(family, "gd", SGD_GRID, setup, args.seed)
    print(f"{key}: meta-training (adam lr {adam_lr:g}) ...", flush=True)
    cpu = time.process_time()
    rule, record = train_step_schedule(
        family,
        horizon=setup.horizon,
        initial_lr=adam_lr,
        iterations=setup.iterations,
        batch_size=setup.batch,
        seed=args.seed,
        validation_instances=setup.tune_tasks,
        meta_lr=setup.meta_lr,
        loss_steps=setup.loss_steps(),
        learn_betas=setup.learn_betas,
    )
    times = {"wall_s": record.wall_s, "cpu_s": time.process_time() - cpu, "inner_steps": record.inner_steps}
    save_trained(rule, record, args.out / key / "step_schedule", setup.env_id)
    print(f"{key}: evaluating ...", flush=True)
    rules = {
        f"adam (tuned lr={adam_lr:g})": make_optimizer("adam", lr=adam_lr),
        f"sgd (tuned lr={sgd_lr:g})": make_optimizer("gd", lr=sgd_lr),
        "step_schedule (learned)": rule,
    }
    result = evaluate(
        rules,
        family,
        split="test",
        instances=setup.test_tasks,
        horizon=setup.horizon,
        seed=args.seed,
        reference=None,
        metric_curves=True,
    )
    schedule = rule.net.log_lr.detach().exp()
    section = [
        f"## {setup.env_id}",
        "",
        f"Settings {setup.family_kwargs or 'defaults'} (d = {family.dim:,}), T = {setup.horizon} steps, "
        f"{setup.test_tasks} test instances (held-out classes), seed {args.seed}. Meta-training: "
        f"{setup.iterations} iterations of {setup.batch} training instances ({record.inner_steps:,} inner steps, "
        f"{record.wall_s:.0f} s wall, {times['cpu_s']:.0f} s CPU), {len(parameter_segments(family))} tensors x "
        f"{setup.horizon} steps = {schedule.numel()} learned step sizes"
        f"{' and a β1, β2 per tensor' if setup.learn_betas else ''}; meta-loss: the query loss at steps "
        f"{setup.loss_steps()}, meta-lr {setup.meta_lr:g}; best validation at iteration {record.best_iteration}. "
        f"Tuning on {setup.tune_tasks} validation instances: Adam from {list(ADAM_GRID)}, "
        f"SGD from {list(SGD_GRID)}.",
        "",
        *results_table(result, setup),
        "",
        *paired_table(result, "step_schedule (learned)"),
        "",
        *learned_rule_lines(rule, adam_lr),
        "",
        f"![query loss and accuracy per step](meta_loop_{key}.png)",
        "",
        *(horizon_probe(adam_means, setup) if setup.probe_horizon > setup.horizon else []),
    ]
    if not args.no_doc:
        plot(result, setup, DOC.parent / f"meta_loop_{key}.png")
    return section, times


def learned_rule_lines(rule: StepScheduleOptimizer, adam_lr: float) -> list[str]:
    """What the learner learned: its step sizes relative to tuned Adam's, and its β1, β2 if learned."""
    ratio = rule.net.log_lr.detach().exp() / adam_lr
    middle = ratio.shape[0] // 2
    lines = [
        f"Learned step sizes relative to Adam's {adam_lr:g}: median {float(ratio.median()):.2f}, range "
        f"[{float(ratio.min()):.2f}, {float(ratio.max()):.2f}]; first step {_row(ratio[0])}, step {middle + 1} "
        f"{_row(ratio[middle])}, last step {_row(ratio[-1])} (per tensor, layout order)."
    ]
    if rule.net.learn_betas:
        beta1, beta2 = torch.sigmoid(rule.net.beta_logits.detach())
        lines.append(f"Learned β1 per tensor {_row(beta1)}, β2 {_row(beta2, 4)} (Adam: 0.9, 0.999).")
    return lines


def _row(values: torch.Tensor, digits: int = 2) -> str:
    return "[" + ", ".join(f"{float(v):.{digits}f}" for v in values) + "]"


# ---------------------------------------------------------------------------------------------
# throughput


def meta_rate(family: TaskFamily, setup: Setup, seed: int) -> float:
    """Inner steps per second of one meta-iteration of the learner (batch, horizon of `setup`)."""
    rule = StepScheduleOptimizer(PerTensorStepSchedule(parameter_segments(family), setup.horizon, 0.01))
    optimizer = torch.optim.Adam(rule.net.parameters(), lr=0.03)
    problem = family.sample(setup.batch, torch.Generator().manual_seed(seed), split="train")
    began = time.perf_counter()
    schedule_meta_iteration(
        rule, problem, optimizer, horizon=setup.horizon, loss_steps=default_loss_steps(setup.horizon)
    )
    return setup.batch * setup.horizon / (time.perf_counter() - began)


def short_run(family: TaskFamily, setup: Setup, seed: int) -> dict[str, float]:
    """Wall and CPU time of one training run of the learner on a family not evaluated here."""
    cpu = time.process_time()
    _, record = train_step_schedule(
        family,
        horizon=setup.horizon,
        initial_lr=0.01,
        iterations=setup.iterations,
        batch_size=setup.batch,
        seed=seed,
        validation_instances=16,
        validate_every=max(setup.iterations // 4, 1),
    )
    return {"wall_s": record.wall_s, "cpu_s": time.process_time() - cpu, "inner_steps": record.inner_steps}


def throughput_rows(setups: dict[str, Setup], runs: dict[str, dict[str, float]], args: argparse.Namespace) -> list[str]:
    """One row per family: env steps/s, meta-training steps/s, the training run's size and times."""
    lines = [
        "| family | settings | d | env steps/s (16 inst.) | meta-training inner steps/s "
        "| training run: inner steps | wall | CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, setup in setups.items():
        family = make_family(setup.env_id, **setup.family_kwargs)
        env = env_throughput(family, "query", steps=4 if args.quick else 20)
        meta = meta_rate(family, setup, args.seed)
        if key not in runs:
            print(f"{key}: a training run for its time ...", flush=True)
            runs[key] = short_run(family, setup, args.seed)
        run = runs[key]
        settings = ", ".join(f"{k} {v}" for k, v in setup.family_kwargs.items()) or "defaults"
        lines.append(
            f"| {setup.env_id} | {settings}; T {setup.horizon}, batch {setup.batch} | {family.dim:,} | {env:.0f} | "
            f"{meta:.0f} | {int(run['inner_steps']):,} | {run['wall_s']:.0f} s | {run['cpu_s']:.0f} s |"
        )
        if setup.defaults_note:
            default_family = make_family(setup.env_id)
            default_meta = meta_rate(default_family, replace(setup, horizon=min(setup.horizon, 10)), args.seed)
            projected = run["inner_steps"] / default_meta
            lines.append(
                f"| {setup.env_id} | defaults ({setup.defaults_note}); batch {setup.batch} | {default_family.dim:,} | "
                f"{env_throughput(default_family, 'query', steps=4 if args.quick else 10):.0f} | {default_meta:.0f} | "
                f"{int(run['inner_steps']):,} (projected) | {projected:.0f} s (projected) | — |"
            )
    return lines


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    setups = {key: quick(s) if args.quick else s for key, s in SETUPS.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    sections, runs = [], {}
    for key, setup in setups.items():
        if setup.evaluated:
            section, runs[key] = run_family(key, setup, args)
            sections += section
    print("throughput ...", flush=True)
    speed = throughput_rows(setups, runs, args)
    command = " ".join(argv if argv is not None else sys.argv[1:])
    body = [
        "# Learned optimizers on the MANN and hypernetwork inner loops",
        "",
        f"Written by `python benchmarks/meta_loop_learners.py {command}`; every figure below was measured in that run "
        "(2-core machine shared with other jobs, one thread; wall times are upper bounds).",
        "",
        *sections,
        "## Throughput and training time on the four meta-learning families",
        "",
        "Env steps/s: `EpisodeBatch` step + observation, 16 instances, query objective (inner steps on one instance "
        "per second; what an RL agent pays). Meta-training: one first-order meta-iteration of the step schedule. "
        "The training run: MANN and hypernetwork the run above; the MAML families a run of the same learner "
        "(random initialisation: timing only). The MANN's default settings row projects the same run's wall time "
        "from its measured meta-training rate.",
        "",
        *speed,
        "",
        NOTES,
    ]
    text = "\n".join(body) + "\n"
    print(text)
    if not args.no_doc:
        atomic_write_text(DOC, text)
        print(f"wrote {DOC}")
    return 0


NOTES = """## Notes

- The learner and why: a learned step-size schedule, one log step size per parameter tensor and
  per step on top of Adam's direction (`agents/meta/step_schedule.py`); on the MANN also a learned
  β1 and β2 per tensor (``learn_betas``: a learned Adam variant). It starts as tuned Adam, so
  meta-training only has to move it, it has T·K (+ 2K) parameters (K = 7 tensors for the MANN, 11
  for the hypernetwork) rather than a network, and its first-order meta-gradient needs one query
  loss+gradient per loss step on top of the unroll: the cheapest candidate that can beat Adam in a
  CPU budget of minutes. A per-coordinate Meta-SGD on the raw gradient (`agents/meta/meta_sgd.py`)
  needs second-order BPTT through the MANN's 25-step recurrence, and L2L / PPO need far more
  inner steps than these families afford here (L2L on the sinusoid: 40k steps for no gain over SGD).
- Meta-training is first order: the gradients fed to the rule are held constant when
  differentiating the query loss w.r.t. the step sizes (`agents/meta/step_schedule_training.py`);
  with learned betas the moments carry the graph back to β (through the recurrences, gradients
  constant). The clamp before Adam's square root keeps that derivative finite where v = 0.
- Tried in short runs (seed 0, MANN settings as above, 48 test instances drawn apart from the
  benchmark's, each training run 140-290 s CPU), none a significant win over tuned Adam:
  T = 100, learned betas, meta-lr 0.1, meta-loss at steps 50/75/100 (the MANN setup above):
  final query 25/48 wins, mean query 28/48 (validation 1.5768 -> 1.5709, best at the last
  iteration; it learns 5-10x larger steps and β1 about 0.7 on W_head and W_out). On the
  benchmark's own test instances the same setup loses by the final query loss (table above):
  the validation gain of 0.006 on 12 instances was noise the schedule fitted. The first round's
  MANN setup (meta-lr 0.03, loss at 25/50/75/100, no betas) tied (26/48 and 27/48).
  T = 200 from tuned Adam lr 0.01, same settings: the validation query loss rose at every
  validation (1.511 -> 1.561 over 30 iterations), so the untrained rule (= Adam) was kept; the
  first-order meta-gradient, which ignores how a step changes later gradients, points the wrong
  way at this horizon. Hypernetwork with learned betas, meta-lr 0.1, meta-loss at steps 10/15/20:
  validation 0.20 -> 1.60 (diverged), the untrained rule kept; the hypernetwork setup above keeps
  the first round's settings (meta-lr 0.03, loss at 5/10/15/20, no betas).
- Can the inner loop learn the MANN task at all at these horizons? The longer-horizon table above:
  Adam leaves the plateau near ln 5 = 1.609 only after 100-150 steps and keeps improving to 400
  steps (lr 0.01: 1.58 at 100 steps, 1.32 at 400); the step size best at T = 100 (0.005) is not
  the best at 200-400 (0.01). A learner judged at T = 100 is judged on the plateau, where every
  rule's query loss is within 0.04 of chance.
- The sign test counts tiny consistent differences: the untrained learner with learned betas
  (β1 = sigmoid(logit 0.9) = 0.89999998 in float32) lost 27/100 to torch's Adam by the mean query
  loss on the hypernetwork (p 5e-6) at a mean difference of 2e-4; read the win rates with the
  tables' means.
- MANN settings: 5 presentations per class (T = 25-step episodes), 8 episodes per minibatch, 16
  evaluation episodes, instead of 10 / 16 / 32. The task keeps its point (first / second / fifth
  presentation accuracies, chance 0.2) at about a quarter of the cost. Its query set is new
  episodes of the same classes; here the instances are test-split instances (held-out classes).
- Why the MANN step was slow: the backward of indexing the precomputed input drive `drive[:, :, t]`
  filled a zero tensor of the whole [B, E, T, 4H] drive at every one of the T steps (`aten::fill_`,
  about 40 % of the loss+gradient time in the profile); unbinding it once (`tasks/mann_digits.py`)
  gives one backward for all steps. The rest is T sequential small batched matmuls and the LRU sort.
- Next: meta-train the MANN learner at T = 300-400 (where Adam learns) with a meta-gradient that
  does not hold the gradients constant over the whole unroll (truncated second-order pieces, or
  an evolution-strategies estimate of the final query loss), a warm-up/decay shape with a few
  parameters instead of T·K free entries (less meta-gradient noise), larger meta-batches; L2L /
  PPO / GPS on these two families; the MANN at its default size.
"""


if __name__ == "__main__":
    sys.exit(main())
