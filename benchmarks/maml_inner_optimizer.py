"""Learned inner optimizers for MAML's 5-shot sinusoid, judged on the query set.

From the package's MAML initialisation (`tasks.maml_sinusoid`, cached under $L2O_GYM_CACHE or
~/.cache/l2o_gym, meta-trained on first use), every rule adapts the 1-40-40-1 network to a task's
5 support points; the figure is the MSE on the task's 100 held-out query points after 1 / 5 / 10
steps, on `--tasks` test tasks, mean with a 95 % interval. The rules:

- ``gd α=0.01``: plain gradient descent with MAML's inner step (the paper's evaluation);
- ``gd (tuned)`` and ``adam (tuned)``: the step size chosen from a grid by the mean query MSE after
  5 steps on `--tune-tasks` validation tasks (the objective the learned rules are trained on);
- ``meta_sgd``: a learned per-coordinate step Δx = -α ⊙ ∇f (`agents.meta.meta_sgd`), α meta-trained
  by backpropagation through 10 steps (second order) on the query loss;
- ``l2l``: Andrychowicz et al.'s coordinatewise LSTM (`agents.meta`) meta-trained on the query loss
  (``meta_objective="query"``) for `--l2l-timesteps` inner steps;
- a saved RL policy (``--rl-model``, e.g. coordinatewise PPO trained with the env option
  ``objective: query``), when given.

It also measures throughput (inner steps per second) of the env with the training and the query
objective, and of meta-training each learned rule, in this run. It prints the tables and writes
docs/meta_learning.md and docs/meta_learning_sinusoid.png.

    python benchmarks/maml_inner_optimizer.py                 # about 15 minutes on one busy core
    python benchmarks/maml_inner_optimizer.py --rl-model runs/maml_inner/ppo_query/best_model
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from agents.hand_designed import make_optimizer
from agents.meta.meta_sgd import MetaSGDOptimizer, PerCoordinateStepSize
from agents.meta.meta_training import MetaRule, make_rule, meta_train_iteration, train_meta_optimizer
from agents.runtime.saved_rules import load_rule
from l2o_gym.atomic_io import atomic_write, atomic_write_text
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.evaluation import EvaluationResult, evaluate
from l2o_gym.report import mean_interval
from l2o_gym.unroll import unroll
from tasks.maml_sinusoid import MAMLSinusoidFamily

ENV_ID = "l2o/MAMLSinusoid-v0"
HORIZON = 10
STEPS = (0, 1, 5, 10)
TUNE_STEP = 5
LR_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
GOAL = 0.35
DOC = Path("docs/meta_learning.md")
PLOT = Path("docs/meta_learning_sinusoid.png")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    positive = positive_int
    parser.add_argument("--tasks", type=positive, default=600, help="test tasks (default 600)")
    parser.add_argument("--tune-tasks", type=positive, default=200, help="validation tasks for tuning (default 200)")
    parser.add_argument("--seed", type=positive, default=1, help="seed of the test tasks and the training (default 1)")
    parser.add_argument("--l2l-timesteps", type=positive, default=40000, help="L2L meta-training inner steps")
    parser.add_argument("--l2l-batch", type=positive, default=8, help="L2L meta-batch (default 8)")
    parser.add_argument("--l2l-lr", type=float, default=3e-3, help="L2L meta-learning rate (default 3e-3)")
    parser.add_argument("--meta-sgd-iterations", type=positive, default=150, help="Meta-SGD meta-iterations")
    parser.add_argument("--out", type=Path, default=Path("runs/maml_inner"), help="folder of the trained rules")
    parser.add_argument("--l2l-model", type=Path, default=None, help="a saved L2L rule: evaluate it, do not train")
    parser.add_argument("--rl-model", type=Path, default=None, help="a saved RL policy trained on the query objective")
    parser.add_argument("--no-doc", action="store_true", help="print only; do not write docs/meta_learning.md")
    args = parser.parse_args(argv)
    if not 0 < args.l2l_lr < 1:
        parser.exit(2, f"--l2l-lr must lie in (0, 1), got {args.l2l_lr!r}\n")
    for name in ("l2l_model", "rl_model"):
        path = getattr(args, name)
        if path is not None and not (path / "l2o_meta.json").is_file():
            parser.exit(2, f"--{name.replace('_', '-')}: {str(path)!r} is not a saved learned optimizer\n")
    for name in ("l2l_query", "meta_sgd"):
        if (args.out / name).exists() and not (name == "l2l_query" and args.l2l_model is not None):
            parser.exit(2, f"--out: {str(args.out / name)!r} exists; choose another --out (nothing is overwritten)\n")
    return args


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------
# baselines and training


def tune(family: MAMLSinusoidFamily, name: str, tasks: int, seed: int) -> tuple[float, float]:
    """(step size, mean query MSE after TUNE_STEP steps) of `name` best on `tasks` validation tasks."""
    problem = family.sample(tasks, torch.Generator().manual_seed(seed), split="validation")
    scores = {}
    for lr in LR_GRID:
        query = unroll(make_optimizer(name, lr=lr), copy.deepcopy(problem), TUNE_STEP).query[TUNE_STEP]
        scores[lr] = float(query.mean()) if torch.isfinite(query).all() else float("inf")
    best = min(scores, key=scores.get)
    return best, scores[best]


def meta_train(
    rule: MetaRule | MetaSGDOptimizer,
    family: MAMLSinusoidFamily,
    generator: torch.Generator,
    iterations: int,
    batch: int,
    objective: str,
) -> tuple[int, float]:
    """Meta-train `rule` (Adam 1e-3, unrolls of HORIZON steps, clip 1; second order for Meta-SGD)
    for `iterations` meta-batches of `batch` training tasks -> (inner steps, wall seconds)."""
    meta_optimizer = torch.optim.Adam(rule.net.parameters(), lr=1e-3)
    began, steps = time.perf_counter(), 0
    for _ in range(iterations):
        problem = family.sample(batch, generator, split="train")
        steps += meta_train_iteration(
            rule,
            problem,
            meta_optimizer,
            horizon=HORIZON,
            truncation=HORIZON,
            grad_clip=1.0,
            second_order=isinstance(rule, MetaSGDOptimizer),
            meta_objective=objective,
        ).timesteps
    return steps, time.perf_counter() - began


def train_meta_sgd(family: MAMLSinusoidFamily, iterations: int, seed: int, out: Path) -> tuple[MetaSGDOptimizer, dict]:
    """α meta-trained on the query loss of 10 unrolled steps (meta-batch 25, Adam 1e-3, second order)."""
    rule = MetaSGDOptimizer(PerCoordinateStepSize(family.dim, initial_lr=0.01))
    generator = torch.Generator().manual_seed(seed)
    steps, wall = meta_train(rule, family, generator, iterations, batch=25, objective="query")
    info = {"iterations": iterations, "inner_steps": steps, "wall_s": wall}
    rule.save(out / "meta_sgd", ENV_ID, info)
    return rule, info


def saved_training(folder: Path, dim: int) -> dict | None:
    """Inner steps (and wall time where its run recorded it) of a saved learned optimizer's training."""
    meta = json.loads((folder / "l2o_meta.json").read_text())
    if meta["kind"] == "sb3":  # SB3 counts one timestep per coordinate row of each instance
        return {"inner_steps": int(meta["timesteps"]) // dim, "wall_s": None}
    if "training" not in meta:
        return None
    run = folder.parent / "training.json"
    wall = json.loads(run.read_text()).get("wall_time_s") if run.is_file() else None
    return {"inner_steps": int(meta["training"]["timesteps"]), "wall_s": wall}


def train_l2l(args: argparse.Namespace, dim: int) -> tuple[Path, dict | None]:
    """L2L meta-trained on the query loss (or the saved one given); its folder and training figures."""
    if args.l2l_model is not None:
        return args.l2l_model, saved_training(args.l2l_model, dim)
    began = time.perf_counter()
    best = train_meta_optimizer(
        ENV_ID,
        "l2l",
        args.l2l_timesteps,
        args.seed,
        args.out / "l2l_query",
        horizon=HORIZON,
        truncation=HORIZON,
        batch_size=args.l2l_batch,
        progress=False,
        checkpoint_every=10**9,
        lr=args.l2l_lr,
        validation_instances=64,
        validation_every=50,
        meta_objective="query",
    )
    return best, {"wall_s": time.perf_counter() - began, "inner_steps": args.l2l_timesteps}  # with validation


# ---------------------------------------------------------------------------------------------
# throughput


def best_of(measure, *args, repeats: int = 3) -> tuple[float, float]:
    """(training, query) figures of measure(*args, objective), interleaved, the best of `repeats`
    each (the machine is shared: the best run is the least disturbed one)."""
    train, query = [], []
    for _ in range(repeats):
        train.append(measure(*args, "train"))
        query.append(measure(*args, "query"))
    return max(train), max(query)


def env_throughput(family: MAMLSinusoidFamily, objective: str, instances: int = 16, steps: int = 30) -> float:
    """Env steps (inner steps on one instance) per second with random actions."""
    batch = EpisodeBatch(family, instances, horizon=steps, objective=objective)
    batch.reset(torch.Generator().manual_seed(0))
    actions = torch.Generator().manual_seed(1)
    began = time.perf_counter()
    for _ in range(steps):
        batch.step(2 * torch.rand(instances, family.dim, generator=actions) - 1)
        batch.observe()
    return instances * steps / (time.perf_counter() - began)


def meta_throughput(family: MAMLSinusoidFamily, algo: str, batch: int, objective: str, iterations: int = 2) -> float:
    """Inner steps per second of meta-training `algo` ("l2l" or "meta_sgd") with `objective`."""
    generator = torch.Generator().manual_seed(0)
    if algo == "meta_sgd":
        rule = MetaSGDOptimizer(PerCoordinateStepSize(family.dim))
    else:
        rule = make_rule(algo, family, generator)
    steps, wall = meta_train(rule, family, generator, iterations, batch, objective)
    return steps / wall


def throughput_rows(family: MAMLSinusoidFamily, l2l_batch: int) -> list[tuple[str, float, float]]:
    """(what, steps/s with the training objective, steps/s with the query objective)."""
    meta_throughput(family, "l2l", l2l_batch, "train", iterations=1)  # warm-up
    return [
        ("env step + observation (16 instances)", *best_of(env_throughput, family)),
        (f"L2L meta-training (meta-batch {l2l_batch})", *best_of(meta_throughput, family, "l2l", l2l_batch)),
        ("Meta-SGD meta-training (meta-batch 25, second order)", *best_of(meta_throughput, family, "meta_sgd", 25)),
    ]


# ---------------------------------------------------------------------------------------------
# tables, plot, document


def results_table(result: EvaluationResult, training: dict[str, dict]) -> list[str]:
    lines = [
        "| rule | " + " | ".join(f"query MSE, {t} steps" for t in STEPS) + " | median, 5 steps | diverged | training |",
        "|---|" + "---:|" * (len(STEPS) + 3),
    ]
    for name, curves in result.curves.items():
        cells = ["{:.3f} ± {:.3f}".format(*mean_interval(curves.query[t])) for t in STEPS]
        info = training.get(name)
        trained = "—" if not info else f"{info['inner_steps']:,} inner steps"
        trained += "" if not info or info["wall_s"] is None else f", {info['wall_s']:.0f} s"
        median5 = float(curves.query[5].median())
        lines.append(f"| {name} | {' | '.join(cells)} | {median5:.3f} | {int(curves.diverged.sum())} | {trained} |")
    return lines


def plot(result: EvaluationResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curves in result.curves.items():
        ax.plot(range(curves.query.shape[0]), curves.query.double().mean(dim=1), marker="o", ms=3, label=name)
    ax.axhline(GOAL, color="grey", ls=":", lw=1, label=f"goal {GOAL} after 5 steps")
    ax.set_yscale("log")
    ax.set_xlabel("inner step")
    ax.set_ylabel(f"query MSE (mean over {result.instances} test tasks)")
    ax.set_title("5-shot sinusoid from the MAML initialisation")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


DOC_HEAD = """# Meta-learning inner loops: the query set as the objective

The meta-learning families are inner loops: an optimizer adapts a model to one task from a few
examples, and what matters is how the adapted model does on the task's *held-out* part. The gym
can pay its reward, and L2L / the meta-LSTM can take their meta-loss, on that held-out part,
while the optimizer still sees only the training (support) loss and its gradients.

## Which families have a held-out part

{families}

Every other family (quadratic, Rosenbrock, logistic regression, robust regression, two-layer net)
has none (`TaskFamily.has_query` is False) and refuses the option in one line.

## Using it

- Env option `objective="query"` (default `"train"`), e.g. `gym.make("l2o/MAMLSinusoid-v0",
  objective="query")`, or `env: {objective: query}` in a training YAML. The reward is the cost
  form on the query loss f_q, r_t = -f_q(x_t) / |f_q(x_0)|: f_q's optimum is unknown, so the form
  for an unknown optimum is used (`reward: auto` chooses it; `log_suboptimality` is refused). The
  observation, the optimization state (f, gradients, histories), divergence and its penalty stay
  those of the training objective; f_q costs one batched forward per step, without a gradient.
- Meta-training: `train_meta_optimizer(..., meta_objective="query")` (or `meta_objective: query` in a
  `--config` file of `l2o-gym train --algo l2l|meta_lstm`): the BPTT meta-loss is the mean over the
  unroll of f_q(x_t) / |f_q(x_0)| of the unrolled iterates, differentiated through them; the best
  model is chosen by the final query loss on the validation instances.
- Evaluation (`l2o_gym.evaluate`) records for such families the query loss and the task metrics at
  every step (`Curves.query`, `Curves.metric_curves`); the report adds a table of them after 1, 5,
  10 and T steps with 95 % intervals, and `report.json` their mean curves.
- A family of one's own: give the problem a `query_loss(x[B, d]) -> [B]` and set `has_query = True`
  on the problem and the family.
- MANN and hypernetwork inner loops (a learned step schedule vs tuned Adam), throughput of all four:
  [meta_loop_learners.md](meta_loop_learners.md).

"""


FAMILIES = (
    ("family", "training objective (observed)", "held-out part: `Problem.query_loss`", "metrics"),
    (
        "`l2o/MAMLSinusoid-v0`",
        "MSE on the K support points",
        "MSE on the `n_query` query points of the same sine",
        "`query_mse`",
    ),
    (
        "`l2o/MAMLDigits-v0`",
        "cross-entropy on the N·K support images",
        "cross-entropy on the N·Q query images (held-out classes in validation / test)",
        "`query_accuracy`, `query_loss`",
    ),
    (
        "`l2o/HyperNetDigits-v0`",
        "cross-entropy on the task's training images",
        "cross-entropy on its test images (other images of the same classes)",
        "`test_accuracy`, `test_loss`, `train_accuracy`",
    ),
    (
        "`l2o/MANNDigits-v0`",
        "cross-entropy on fresh minibatch episodes (stochastic)",
        "cross-entropy on the instance's fixed evaluation episodes (same classes and image pool as the minibatches: "
        "new episodes, not new images)",
        "`accuracy_1st` … `accuracy_10th`, `eval_loss`",
    ),
)


def document(body: list[str]) -> str:
    rows = ["| " + " | ".join(row) + " |" for row in FAMILIES]
    rows.insert(1, "|---|---|---|---|")
    return DOC_HEAD.replace("{families}", "\n".join(rows)) + "\n".join(body) + "\n"


def rl_setup(folder: Path | None) -> list[str]:
    """A line on how the saved RL policy was trained (from its metadata), or nothing."""
    if folder is None:
        return []
    meta = json.loads((folder / "l2o_meta.json").read_text())
    options = ", ".join(f"{k}: {v}" for k, v in meta.get("env_kwargs", {}).items())
    return [
        f"- rl policy: {meta.get('algo', meta['kind'])} ({str(folder)!r}), coordinatewise, env options {{{options}}}, "
        f"step form {meta.get('step_form', {}).get('name', 'linear')} (settings: benchmarks/maml_inner_ppo.yaml; "
        "its best model is chosen on the training objective, so the final model is the one evaluated)."
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    family = MAMLSinusoidFamily(k_shot=5, init="maml")
    family.initial_parameters()
    source = "cache" if family.init_metadata.get("from_cache") else "meta-trained now"
    args.out.mkdir(parents=True, exist_ok=True)

    print("throughput ...", flush=True)
    speeds = throughput_rows(family, args.l2l_batch)
    print("tuning gd and adam on validation tasks ...", flush=True)
    gd_lr, _ = tune(family, "gd", args.tune_tasks, args.seed)
    adam_lr, _ = tune(family, "adam", args.tune_tasks, args.seed)
    print("meta-training Meta-SGD ...", flush=True)
    meta_sgd, meta_sgd_info = train_meta_sgd(family, args.meta_sgd_iterations, args.seed, args.out)
    print("meta-training L2L ...", flush=True)
    l2l_folder, l2l_info = train_l2l(args, family.dim)

    rules = {
        "gd α=0.01": make_optimizer("gd", lr=0.01),
        f"gd (tuned α={gd_lr:g})": make_optimizer("gd", lr=gd_lr),
        f"adam (tuned lr={adam_lr:g})": make_optimizer("adam", lr=adam_lr),
        "meta_sgd (query)": meta_sgd,
        "l2l (query)": load_rule(l2l_folder),
    }
    training = {"meta_sgd (query)": meta_sgd_info, "l2l (query)": l2l_info}
    if args.rl_model is not None:
        rules["rl policy (query)"] = load_rule(args.rl_model)
        training["rl policy (query)"] = saved_training(args.rl_model, family.dim)
    print("evaluating on test tasks ...", flush=True)
    result = evaluate(
        rules, family, split="test", instances=args.tasks, horizon=HORIZON, seed=args.seed, reference=None
    )
    gd_five = mean_interval(result.curves["gd α=0.01"].query[5])[0]
    verdicts = [
        f"- {name}: {mean_interval(result.curves[name].query[5])[0]:.3f} after 5 steps "
        f"({'meets' if mean_interval(result.curves[name].query[5])[0] <= GOAL else 'misses'} the goal ≤ {GOAL}; "
        f"gd α=0.01: {gd_five:.3f})"
        for name in rules
        if "(query)" in name
    ]
    body = [
        "## Learned inner optimizers for MAML's 5-shot sinusoid",
        "",
        f"`python benchmarks/maml_inner_optimizer.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
        f"(seed {args.seed}): {args.tasks} test tasks, 5 support and 100 "
        f"query points each, every rule starting from the package's second-order MAML initialisation ({source}); "
        f"query MSE mean ± 95 % interval. Tuned baselines: step size from {list(LR_GRID)} by the mean query MSE after "
        f"{TUNE_STEP} steps on {args.tune_tasks} validation tasks. Goal: ≤ {GOAL} after 5 steps.",
        "",
        *results_table(result, training),
        "",
        *verdicts,
        "",
        "How the learned rules were trained (every one on the training split's tasks, from the MAML initialisation):",
        "",
        f"- meta_sgd: α [d] from 0.01 everywhere, {args.meta_sgd_iterations} meta-iterations of 25 tasks, 10 "
        "unrolled steps, meta-loss the mean query MSE over the steps / its value at x_0, second order, Adam 1e-3.",
        f"- l2l: the coordinatewise LSTM (2 × 20 units, output × 0.01), meta-batch {args.l2l_batch}, 10 unrolled steps "
        f"(one truncation), meta_objective query, Adam {args.l2l_lr:g}, the best of its validations on 64 "
        "validation tasks (final query MSE).",
        *rl_setup(args.rl_model),
        "",
        f"![query MSE per step]({PLOT.name})",
        "",
        f"Throughput measured in this run (inner steps per second on one instance; one core, shared machine); "
        f"plain gd α=0.01 reaches {gd_five:.3f} after 5 steps here:",
        "",
        "| what | training objective | query objective | query / training |",
        "|---|---:|---:|---:|",
        *(f"| {what} | {a:.0f} | {b:.0f} | {b / a:.2f} |" for what, a, b in speeds),
        "",
    ]
    print("\n".join(body))
    if not args.no_doc:
        plot(result, PLOT)
        atomic_write_text(DOC, document(body))
        print(f"wrote {DOC} and {PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
