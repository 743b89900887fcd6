"""The few-parameter step schedule and its evolution-strategies meta-training."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from agents.hand_designed import make_optimizer
from agents.meta.schedule_es import (
    DIVERGED_RATIO,
    ScheduleShape,
    antithetic_gradient,
    population_objective,
    schedule_objective,
    train_schedule_es,
)
from agents.meta.step_schedule import StepScheduleOptimizer, parameter_segments
from agents.meta.step_schedule_training import save_trained
from agents.runtime.saved_rules import load_rule
from l2o_gym.unroll import unroll
from tasks.hypernet_digits import HyperNetDigitsFamily
from tasks.mann_digits import MANNDigitsFamily
from tests.test_step_schedule import TINY_MANN


def hypernet() -> HyperNetDigitsFamily:
    return HyperNetDigitsFamily(n_classes=2, train_per_class=3, test_per_class=3, channels=4, n_z=2)


def test_shape_offsets_and_knots_place_the_log_step_sizes():
    shape = ScheduleShape([2, 3], horizon=9, initial_lr=0.01, knots=3)  # knots at steps 0, 4, 8
    assert shape.size == 5
    torch.testing.assert_close(shape.log_lr(torch.zeros(5)), torch.full((9, 2), math.log(0.01)))
    theta = torch.tensor([1.0, -1.0, 0.0, 2.0, 0.0])
    log_lr = shape.log_lr(theta) - math.log(0.01)
    torch.testing.assert_close(log_lr[:, 0] - log_lr[:, 1], torch.full((9,), 2.0))  # the offsets, every step
    torch.testing.assert_close(log_lr[:, 1] + 1, torch.tensor([0, 0.5, 1, 1.5, 2, 1.5, 1, 0.5, 0]))  # warm-up, decay
    population = torch.stack([theta, torch.zeros(5)])
    assert shape.log_lr(population).shape == (2, 9, 2)
    torch.testing.assert_close(shape.log_lr(population)[0], shape.log_lr(theta))
    with pytest.raises(ValueError, match="knots must be an int >= 2"):
        ScheduleShape([2], 5, 0.01, knots=1)
    with pytest.raises(ValueError, match="theta must have 5 entries"):
        shape.log_lr(torch.zeros(4))


def test_zero_theta_is_adam_and_each_member_runs_its_own_schedule():
    family = hypernet()
    problem = family.sample(2, torch.Generator().manual_seed(0))
    shape = ScheduleShape(parameter_segments(family), 4, 0.02)
    ours = unroll(shape.rule(torch.zeros(shape.size)), copy.deepcopy(problem), 4)
    reference = unroll(make_optimizer("adam", lr=0.02), copy.deepcopy(problem), 4)
    torch.testing.assert_close(ours.objectives, reference.objectives, rtol=1e-4, atol=1e-5)
    # members: instance 0 with θ = 0 (Adam), instance 1 with a step of ~0 (stays at its start: F = 1)
    population = torch.zeros(2, shape.size)
    population[1, len(shape.segments) :] = -60.0
    values = population_objective(copy.deepcopy(problem), shape.log_lr(population), shape.segments, [2, 4])
    adam_ratio = (reference.query[[2, 4], 0] / reference.query[0, 0]).mean()
    torch.testing.assert_close(values, torch.stack([adam_ratio, torch.tensor(1.0)]), rtol=1e-4, atol=1e-5)
    population[1, len(shape.segments) :] = 30.0  # an absurd step: diverges, scored DIVERGED_RATIO
    values = population_objective(copy.deepcopy(problem), shape.log_lr(population), shape.segments, [4])
    assert float(values[1]) == DIVERGED_RATIO and float(values[0]) < 1.0


def test_antithetic_estimate_points_downhill_on_a_quadratic():
    target = torch.tensor([3.0, -2.0, 1.0, 0.5])

    def objective(population):
        return ((population - target) ** 2).sum(dim=1)

    generator = torch.Generator().manual_seed(0)
    theta = torch.zeros(4)
    gradient, values = antithetic_gradient(objective, theta, 0.1, 4000, generator)
    assert values.shape == (8000,)
    true = 2 * (theta - target)
    assert float(torch.nn.functional.cosine_similarity(gradient, true, dim=0)) > 0.99
    theta = theta.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=0.1)
    for _ in range(200):  # few pairs per step, as in training
        theta.grad, _ = antithetic_gradient(objective, theta.detach(), 0.1, 4, generator)
        optimizer.step()
    assert float(objective(theta.detach().unsqueeze(0))) < 0.05 * float(objective(torch.zeros(1, 4)))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        antithetic_gradient(objective, theta.detach(), 0.0, 4, generator)


def test_pairs_share_their_instance():
    family = hypernet()
    problem = family.sample(3, torch.Generator().manual_seed(1))
    shape = ScheduleShape(parameter_segments(family), 3, 0.01)
    objective = schedule_objective(shape, problem, [3])
    values = objective(torch.zeros(6, shape.size))  # the same θ for everyone: each pair ties exactly
    torch.testing.assert_close(values[:3], values[3:])
    with pytest.raises(ValueError, match="a population of 4 needs 2 instances"):
        objective(torch.zeros(4, shape.size))


def test_tiny_es_training_end_to_end_and_round_trip(tmp_path):
    family = MANNDigitsFamily(**TINY_MANN)
    rule, record = train_schedule_es(
        family, horizon=3, initial_lr=0.01, iterations=2, instances=2, seed=0, validation_instances=2, validate_every=1
    )
    assert len(record.meta_losses) == 2 and record.inner_steps == 24
    assert [i for i, _ in record.validations] == [0, 1, 2]
    assert len(record.theta) == len(parameter_segments(family)) + 5
    shape = ScheduleShape(parameter_segments(family), 3, 0.01)
    torch.testing.assert_close(rule.net.log_lr, shape.log_lr(torch.tensor(record.theta)))
    loaded = load_rule(save_trained(rule, record, tmp_path / "es", "l2o/MANNDigits-v0"))
    assert isinstance(loaded, StepScheduleOptimizer)
    torch.testing.assert_close(loaded.net.log_lr, rule.net.log_lr)
    from tasks.quadratic import QuadraticFamily

    with pytest.raises(ValueError, match="no held-out query set"):
        train_schedule_es(QuadraticFamily(), horizon=2, initial_lr=0.01, iterations=1, instances=2, seed=0)


def test_benchmark_page_splice_replaces_only_the_named_families():
    from benchmarks.meta_loop_learners import splice_page

    def page(command: str, tag: str) -> str:
        return "\n".join(
            [
                "# Title",
                "",
                f"Written by `python benchmarks/meta_loop_learners.py {command}`; every figure ...",
                "",
                "## l2o/HyperNetDigits-v0",
                "",
                f"hyper {tag}",
                "## l2o/MANNDigits-v0",
                "",
                f"mann {tag}",
                "## Throughput and training time",
                "",
                "| family | x |",
                f"| l2o/HyperNetDigits-v0 | {tag} |",
                f"| l2o/MANNDigits-v0 | {tag} |",
                f"| l2o/MANNDigits-v0 | defaults {tag} |",
                f"| l2o/MAMLSinusoid-v0 | {tag} |",
                "",
                "## Notes",
                "",
                f"notes {tag}",
            ]
        )

    new_run = page("--families mann", "new").replace("| l2o/HyperNetDigits-v0 | new |\n", "")
    spliced = splice_page(page("--out a", "old"), new_run, ["l2o/MANNDigits-v0"], "--families mann")
    lines = spliced.split("\n")
    assert "hyper old" in lines and "mann new" in lines and "mann old" not in lines and "notes new" in lines
    table = [line for line in lines if line.startswith("| l2o/")]
    assert table == [
        "| l2o/HyperNetDigits-v0 | old |",
        "| l2o/MANNDigits-v0 | new |",
        "| l2o/MANNDigits-v0 | defaults new |",
        "| l2o/MAMLSinusoid-v0 | old |",
    ]
    assert "`python benchmarks/meta_loop_learners.py --out a`, except l2o/MANNDigits-v0" in lines[2]
    assert "`python benchmarks/meta_loop_learners.py --families mann`" in lines[2]
