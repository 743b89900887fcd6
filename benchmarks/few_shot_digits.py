"""Few-shot digits: the meta-LSTM with a learned initialisation in its own setting, against MAML.

5-way 1-shot and 5-shot episodes of `l2o/MAMLDigits-v0` (scikit-learn digits, 40 rotation
pseudo-classes; meta-training on the 24 training classes, tuning on validation episodes of 8
held-out classes, the figures on `--test-episodes` episodes of 8 other held-out classes, the same
episodes for every method). The network is the family's MLP 64-32-32-5. Methods:

- ``meta-LSTM + learned θ_0``: Ravi & Larochelle's meta-learner LSTM and its initial parameters
  c_0 = θ_0, meta-trained jointly on the query loss (`agents.meta.learned_init_training`), saved,
  loaded back and run from θ_0 for the inner steps it was trained with;
- ``MAML`` / ``first-order MAML``: the package's own initialisations (`tasks.maml_training`, cached;
  one inner SGD step α = 0.4, meta-batch 32, Adam 1e-3, 3000 meta-iterations) adapted as MAML
  trains them (1 step of α = 0.4), and with the number of steps chosen on validation episodes;
- ``pretrain + fine-tune``: an MLP with a 24-way head trained on every image of the training classes,
  then per episode a new zero 5-way head (alone, or with the whole network) fine-tuned by Adam on the
  support set; head-only or not, step size and steps chosen on validation episodes;
- ``nearest prototype``: query images assigned to the nearest support-class mean, of the pretrained
  network's last hidden features (32) and of the raw pixels (64).

Accuracy on the query images (15 per class), mean over episodes with a 95 % interval, and the
difference to MAML on the same episodes (paired interval). Training time: CPU seconds of this
process for the meta-LSTM and the pretraining; MAML's as its cache recorded (wall seconds of the
run that built it). Writes docs/few_shot.md.

    python -m benchmarks.few_shot_digits --out runs/few_shot           # trains, about 25 CPU-minutes
    python -m benchmarks.few_shot_digits --out runs/few_shot --reuse   # evaluates the saved meta-LSTMs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from agents.meta.few_shot_baselines import embed, fine_tune, pretrain_classifier, prototype_accuracy
from agents.meta.learned_init_training import LearnedInitOptions, adapt_saved, train_learned_init
from agents.runtime.saved_rules import read_meta
from l2o_gym.atomic_io import atomic_write_text
from l2o_gym.report import mean_interval
from tasks.batched_mlp import BatchedMLP
from tasks.digits_data import NUM_FEATURES, digit_classes
from tasks.maml_digits import HIDDEN, MAMLDigitsFamily, MAMLDigitsProblem
from tasks.maml_training import inner_loop

ENV_ID = "l2o/MAMLDigits-v0"
N_WAY, N_QUERY = 5, 15
SHOTS = (1, 5)
META_LSTM = {  # per shot: inner steps T (the authors' configuration), meta-iterations, episodes per meta-iteration
    1: {"inner_steps": 5, "iterations": 1400, "meta_batch": 8},
    5: {"inner_steps": 8, "iterations": 800, "meta_batch": 8},
}
MAML_STEP_CHOICES = (1, 2, 3, 5, 10)
FINE_TUNE_LRS = (0.003, 0.01, 0.03, 0.1)
FINE_TUNE_STEPS = (10, 25, 50, 100)
GOAL_POINTS = 2.0
DOC = Path("docs/few_shot.md")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/few_shot"), help="where the meta-LSTMs are saved")
    parser.add_argument("--reuse", action="store_true", help="evaluate the meta-LSTMs saved in --out, no training")
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--validation-episodes", type=int, default=200)
    parser.add_argument("--iterations-scale", type=float, default=1.0, help="multiplies the meta-LSTM iterations")
    parser.add_argument("--maml-iterations", type=int, default=3000, help="MAML meta-iterations (the cache key)")
    parser.add_argument("--maml-cache", type=Path, default=None, help="MAML cache folder (default: the package's)")
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    for name in ("test_episodes", "validation_episodes", "maml_iterations", "pretrain_steps"):
        if getattr(args, name) < 2:
            parser.exit(2, f"--{name.replace('_', '-')} must be an integer >= 2, got {getattr(args, name)}\n")
    if not 0 < args.iterations_scale <= 10:
        parser.exit(2, f"--iterations-scale must lie in (0, 10], got {args.iterations_scale}\n")
    if args.seed < 0:
        parser.exit(2, f"--seed must be >= 0, got {args.seed}\n")
    for k in SHOTS:
        folder = args.out / f"{k}shot"
        if args.reuse and not (folder / "best_model" / "l2o_meta.json").is_file():
            parser.exit(2, f"--reuse: {str(folder / 'best_model')!r} holds no saved meta-LSTM\n")
        if not args.reuse and folder.exists():
            parser.exit(2, f"--out: {str(folder)!r} exists; pass --reuse or another --out (nothing is overwritten)\n")
    return args


def episodes(k_shot: int, count: int, split: str, seed: int) -> MAMLDigitsProblem:
    """`count` 5-way k-shot episodes of `split` (the same for every method)."""
    family = MAMLDigitsFamily(n_way=N_WAY, k_shot=k_shot, n_query=N_QUERY, init="random")
    return family.sample_tasks(count, torch.Generator().manual_seed(seed), split)


def query_accuracy(problem: MAMLDigitsProblem, x: Tensor) -> Tensor:
    return problem.metrics(x.detach())["query_accuracy"]


def meta_lstm_row(args: argparse.Namespace, k: int, test: MAMLDigitsProblem) -> dict:
    """Train (or reuse) the meta-LSTM with its learned θ_0, load it back and run it from θ_0."""
    folder = args.out / f"{k}shot"
    if not args.reuse:
        setting = META_LSTM[k]
        options = LearnedInitOptions(
            inner_steps=setting["inner_steps"],
            meta_batch=setting["meta_batch"],
            iterations=max(1, round(setting["iterations"] * args.iterations_scale)),
            validation_episodes=args.validation_episodes,
            family_kwargs={"n_way": N_WAY, "k_shot": k, "n_query": N_QUERY},
            seed=args.seed,
        )
        print(f"{k}-shot: meta-training the meta-LSTM and θ_0 ({options.iterations} meta-iterations)", flush=True)
        train_learned_init(ENV_ID, options, folder)
    best = read_meta(folder / "best_model")["training"]
    run = json.loads((folder / "training.json").read_text())  # the whole run: iterations, CPU time
    curves = adapt_saved(folder / "best_model", test)
    label = f"meta-LSTM + learned θ_0 ({best['inner_steps']} steps)"
    how = (
        f"{run['iterations']} meta-iterations × {run['meta_batch']} episodes (kept: iteration "
        f"{best['best_iteration']}); {run['cpu_s']:.0f} CPU s"
    )
    return {"method": label, "accuracy": curves.metrics["query_accuracy"], "training": how}


def maml_rows(args: argparse.Namespace, k: int, test: MAMLDigitsProblem, validation: MAMLDigitsProblem) -> list[dict]:
    """MAML and first-order MAML: 1 step of α = 0.4 (as trained) and the step count best on validation."""
    rows = []
    for init, name in (("maml", "MAML"), ("fomaml", "first-order MAML")):
        family = MAMLDigitsFamily(
            n_way=N_WAY, k_shot=k, n_query=N_QUERY, init=init, meta_iterations=args.maml_iterations,
            cache_dir=args.maml_cache,
        )  # fmt: skip
        theta = family.initial_parameters()
        lr = family.inner_lr
        seconds = family.init_metadata.get("seconds", 0.0)
        how = f"{args.maml_iterations} meta-iterations × 32 episodes; {seconds:.0f} s wall (its cache's record)"

        def adapted(problem: MAMLDigitsProblem, steps: int, theta: Tensor = theta, lr: float = lr) -> Tensor:
            return query_accuracy(problem, inner_loop(problem, theta, steps, lr, first_order=True))

        rows.append({"method": f"{name} (1 step α={lr:g}, as trained)", "accuracy": adapted(test, 1), "training": how})
        scores = {steps: float(adapted(validation, steps).mean()) for steps in MAML_STEP_CHOICES}
        best = max(scores, key=scores.get)
        label = f"{name} ({best} step{'s' if best > 1 else ''} α={lr:g}, chosen on validation)"
        rows.append({"method": label, "accuracy": adapted(test, best)})
    return rows


def pretrained_network(args: argparse.Namespace) -> tuple[Tensor, BatchedMLP, float]:
    """(parameters [d], network, CPU seconds) of the classifier pretrained on the training classes."""
    classes = digit_classes("train")
    valid = torch.arange(classes.images.shape[1]) < classes.counts.unsqueeze(1)
    images = classes.images[valid]
    labels = torch.arange(classes.num_classes).unsqueeze(1).expand_as(valid)[valid]
    net = BatchedMLP((NUM_FEATURES, *HIDDEN, classes.num_classes))
    began = time.process_time()
    params = pretrain_classifier(net, images, labels, args.pretrain_steps, torch.Generator().manual_seed(args.seed))
    return params, net, time.process_time() - began


def baseline_rows(
    pretrained: tuple[Tensor, BatchedMLP, float], test: MAMLDigitsProblem, validation: MAMLDigitsProblem
) -> list[dict]:
    """Pretrain + fine-tune (settings chosen on validation) and the two nearest-prototype rows."""
    params, net, cpu = pretrained
    scores = {}
    for head_only in (True, False):
        for lr in FINE_TUNE_LRS:
            accuracy = fine_tune(params, validation, lr, FINE_TUNE_STEPS, head_only)
            scores.update({(head_only, lr, steps): float(acc.mean()) for steps, acc in accuracy.items()})
    head_only, lr, steps = max(scores, key=scores.get)
    tuned = fine_tune(params, test, lr, (steps,), head_only)[steps]
    part = "head only" if head_only else "whole network"
    rows = [
        {
            "method": f"pretrain + fine-tune ({part}, Adam {lr:g}, {steps} steps)",
            "accuracy": tuned,
            "training": f"{net.sizes[-1]}-way classifier, pretraining {cpu:.0f} CPU s",
        }
    ]
    features = (embed(net, params, test.support_x), embed(net, params, test.query_x))
    for name, (support, query) in (("pretrained features", features), ("raw pixels", (test.support_x, test.query_x))):
        accuracy = prototype_accuracy(support, test.support_y, query, test.query_y, N_WAY)
        rows.append({"method": f"nearest prototype ({name})", "accuracy": accuracy})
    return rows


def table(rows: list[dict], reference: Tensor) -> list[str]:
    """Markdown lines: accuracy % ± 95 % interval and the paired difference to `reference` [E]."""
    lines = ["| method | accuracy % | vs MAML (1 step), points | training |", "|---|---:|---:|---|"]
    for row in rows:
        mean, half = mean_interval(100 * row["accuracy"])
        diff, diff_half = mean_interval(100 * (row["accuracy"] - reference))
        training = row.get("training", "—")
        lines.append(f"| {row['method']} | {mean:.2f} ± {half:.2f} | {diff:+.2f} ± {diff_half:.2f} | {training} |")
    return lines


def verdict(k: int, rows: list[dict]) -> str:
    """One line: the meta-LSTM's gap to each MAML row (paired), against the goal, and the best row."""
    ours = rows[0]["accuracy"]
    gaps = {row["method"]: mean_interval(100 * (ours - row["accuracy"])) for row in rows[1:5]}
    as_trained = [gap for method, (gap, _) in gaps.items() if "as trained" in method]
    goal = "meets" if min(as_trained) >= -GOAL_POINTS else "misses"
    parts = "; ".join(f"{gap:+.2f} ± {half:.2f} vs {method}" for method, (gap, half) in gaps.items())
    best = max(rows, key=lambda row: float(row["accuracy"].mean()))["method"]
    return (
        f"- {k}-shot: the meta-LSTM {goal} the goal (within {GOAL_POINTS:g} points of MAML and first-order MAML "
        f"as trained): {parts}. Most accurate here: {best}."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    pretrained = pretrained_network(args)
    sections, verdicts = [], []
    for k in SHOTS:
        test = episodes(k, args.test_episodes, "test", args.seed + 1000)
        validation = episodes(k, args.validation_episodes, "validation", args.seed + 2000)
        maml = maml_rows(args, k, test, validation)
        rows = [meta_lstm_row(args, k, test), *maml, *baseline_rows(pretrained, test, validation)]
        lines = [f"### 5-way {k}-shot ({args.test_episodes} test episodes)", "", *table(rows, maml[0]["accuracy"]), ""]
        print("\n".join(lines), flush=True)
        sections.extend(lines)
        verdicts.append(verdict(k, rows))
    print("\n".join(verdicts), flush=True)
    command = "python -m benchmarks.few_shot_digits " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write_text(args.doc, render_doc(command.strip(), args.reuse, sections, verdicts))
    print(f"wrote {args.doc}")
    return 0


def render_doc(command: str, reused: bool, sections: list[str], verdicts: list[str]) -> str:
    """docs/few_shot.md: setup, the tables of this run, the verdicts and the notes."""
    setup = (__doc__ or "").split("\n\n    python -m")[0].split("\n\n", 1)[1]
    trained = " (the meta-LSTMs saved there by the same command without --reuse)" if reused else ""
    body = [
        "# Few-shot digits: the meta-LSTM with a learned initialisation against MAML",
        "",
        f"`{command}`{trained}; one thread on a shared 2-core machine.",
        "",
        setup,
        "",
        "## Results",
        "",
        *sections,
        *verdicts,
        "",
        NOTES,
    ]
    return "\n".join(body) + "\n"


NOTES = """## Notes

- The meta-LSTM follows Ravi & Larochelle where it matters: the learner's parameters are the cell
  state (c_t = θ_t, update f_t ⊙ θ_{t-1} - i_t ⊙ ∇L_t), a first 20-unit LSTM reads the
  LogAndSign-preprocessed (p = 10) gradient and loss, the input and forget gates see θ_{t-1} and
  their previous values, b_F ~ U(4, 6), b_I ~ U(-5, -4), parameters shared across coordinates, the
  gradient and loss inputs treated as constants (no second derivatives), the meta-loss the query
  loss after the last inner step, gradient-norm clip 0.25, 5 inner steps for 1-shot and 8 for
  5-shot (the authors' configuration). θ_0 is learned from one draw of the network's default
  initialisation (the start MAML's own meta-training uses), not from MAML's solution.
- Departures: Adam 3e-3 instead of 1e-3 (with the paper's gate biases the input gate starts at a
  step of about 0.01, and at 1e-3 it rose too slowly for a budget of about 10 CPU-minutes per
  setting); meta-batch 8 episodes; the whole support set is the batch of every inner step (the
  paper samples minibatches from its larger support sets); the digits MLP has no batch
  normalisation, so the paper's handling of its statistics does not arise. The rule kept is the
  one with the lowest mean query loss on 200 validation episodes (checked every 100 iterations).
- Saved as a meta-LSTM folder (kind "meta_lstm", `learn_init: true`): `weights.pt` holds θ_0 with
  the LSTM's weights, `l2o_meta.json` the inner steps; `l2o_gym.unroll`, hence
  `evaluate` and `l2o-gym evaluate --policy`, starts the instances at θ_0 (`UpdateRule.start_points`);
  `adapt_saved` runs the inner steps the rule was trained for.
- MAML's rows use the package's cached initialisations (second- and first-order, trained with one
  inner step of α = 0.4); "as trained" adapts with that one step, the second row with the number of
  steps (of 1, 2, 3, 5, 10) that is best on the validation episodes. The goal is judged against the
  "as trained" rows; the difference to the chosen-steps rows is printed too.
- The nearest-prototype rows use a fixed embedding (no episodic training): the pretrained network's
  last hidden layer (32 ReLU features) and the raw pixels (64).
- Training CPU time is this process's CPU seconds for the whole meta-training run, validation
  included (one thread). The meta-LSTM's meta-loss on the training episodes falls well below its
  validation query loss (24 training classes; held-out classes include digit 3, never seen in any
  rotation), so the rule kept is the validation-best one (the training column names its
  iteration; where it is before the last, the later iterations only overfitted).
- Reading the tables: "within 2 points of MAML" is the issue's goal, but the package's MAML
  initialisations are not strong on this family (one inner step of α = 0.4 from 3000
  meta-iterations; first-order MAML falls well behind second-order, unlike Finn et al.'s Omniglot
  numbers), and the non-episodic baselines (a fine-tuned pretrained network, nearest prototypes of
  raw pixels) are the ones to beat: see the "most accurate" line of each setting.
- Not done: several seeds of the meta-LSTM's meta-training (one seed here), minibatches inside the
  support set, a meta-LSTM started from MAML's initialisation (θ_0 learned from scratch only).
"""


if __name__ == "__main__":
    raise SystemExit(main())
