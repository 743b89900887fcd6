"""The learned per-tensor step-size schedule: its step, its first-order meta-training, save and load."""

from __future__ import annotations

import copy

import pytest
import torch

from agents.hand_designed import make_optimizer
from agents.meta.step_schedule import PerTensorStepSchedule, StepScheduleOptimizer, parameter_segments
from agents.meta.step_schedule_training import (
    default_loss_steps,
    save_trained,
    schedule_meta_iteration,
    train_step_schedule,
)
from agents.runtime.saved_rules import load_rule
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll
from tasks.hypernet_digits import HyperNetDigitsFamily
from tasks.mann_digits import MANNDigitsFamily

TINY_MANN = {
    "n_way": 2,
    "per_class": 2,
    "hidden": 4,
    "memory_slots": 4,
    "memory_width": 2,
    "episodes_per_batch": 1,
    "eval_episodes": 2,
}


TINY_RUN = {"horizon": 3, "initial_lr": 0.01, "iterations": 2, "batch_size": 2, "seed": 0}


def hypernet() -> HyperNetDigitsFamily:
    return HyperNetDigitsFamily(n_classes=2, train_per_class=3, test_per_class=3, channels=4, n_z=2)


def schedule(family, horizon: int = 5, lr: float = 0.01, direction: str = "adam") -> StepScheduleOptimizer:
    return StepScheduleOptimizer(PerTensorStepSchedule(parameter_segments(family), horizon, lr, direction))


def test_untrained_it_is_adam_or_sgd_with_its_step_size():
    family = hypernet()
    problem = family.sample(3, torch.Generator().manual_seed(0))
    for direction, name in (("adam", "adam"), ("sgd", "gd")):
        ours = unroll(schedule(family, 3, 0.02, direction), copy.deepcopy(problem), 6)  # beyond T: last row
        reference = unroll(make_optimizer(name, lr=0.02), copy.deepcopy(problem), 6)
        torch.testing.assert_close(ours.objectives, reference.objectives, rtol=1e-4, atol=1e-5)


def test_segments_follow_the_parameter_layout():
    family = MANNDigitsFamily(**TINY_MANN)
    segments = parameter_segments(family)
    assert len(segments) == 7 and sum(segments) == family.dim
    assert parameter_segments(type("Flat", (), {"dim": 5})()) == [5]
    rule = schedule(family, horizon=2)
    with torch.no_grad():
        rule.net.log_lr[1, 0] = 0.0  # W_in's step size at step 1 (and after): 1
    sizes = rule.net.step_sizes(4)
    assert torch.all(sizes[: segments[0]] == 1.0) and torch.allclose(sizes[segments[0] :], torch.tensor(0.01))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="segments must be"):
        PerTensorStepSchedule([], 3, 0.01)
    with pytest.raises(ValueError, match="initial_lr must be > 0"):
        PerTensorStepSchedule([3], 3, 0.0)
    with pytest.raises(ValueError, match="direction must be one of"):
        PerTensorStepSchedule([3], 3, 0.01, "rmsprop")
    with pytest.raises(ValueError, match="horizon"):
        PerTensorStepSchedule([3], 0, 0.01)
    state = OptimizationState.start(hypernet().sample(2, torch.Generator().manual_seed(0)))
    rule = StepScheduleOptimizer(PerTensorStepSchedule([3], 2, 0.01))
    with pytest.raises(ValueError, match="step sizes for d = 3"):
        rule.step(state)


def test_one_step_meta_gradient_is_the_first_order_one():
    """Horizon 1, SGD direction: x1 = x0 - a g0, so dL_q(x1)/d log a_k = -a Σ_{i in k} g0_i ∂L_q/∂x1_i."""
    family = hypernet()
    problem = family.sample(2, torch.Generator().manual_seed(3))
    rule = schedule(family, horizon=1, lr=0.05, direction="sgd")
    optimizer = torch.optim.SGD(rule.net.parameters(), lr=0.0)  # keeps the meta-gradient in .grad
    state = OptimizationState.start(copy.deepcopy(problem))
    x1 = (state.x - 0.05 * state.grad).requires_grad_(True)
    query0 = problem.query_loss(state.x).detach()
    (grad_q,) = torch.autograd.grad((problem.query_loss(x1) / query0).mean(), x1)
    per_coordinate = (-0.05 * state.grad * grad_q).sum(dim=0)
    expected = torch.stack([part.sum() for part in per_coordinate.split(parameter_segments(family))])
    schedule_meta_iteration(rule, problem, optimizer, horizon=1, loss_steps=[1], grad_clip=1e9)
    assert float(expected.abs().max()) > 1e-4
    torch.testing.assert_close(rule.net.log_lr.grad, expected.unsqueeze(0), rtol=1e-3, atol=1e-9)


def test_tiny_training_runs_on_mann_and_hypernet_and_round_trips(tmp_path):
    for family, env_id in ((MANNDigitsFamily(**TINY_MANN), "l2o/MANNDigits-v0"), (hypernet(), "l2o/HyperNetDigits-v0")):
        rule, record = train_step_schedule(family, **TINY_RUN, validation_instances=2, validate_every=1)
        assert len(record.meta_losses) == 2 and record.inner_steps == 12
        assert [i for i, _ in record.validations] == [0, 1, 2]
        loaded = load_rule(save_trained(rule, record, tmp_path / env_id.split("/")[1], env_id))
        assert isinstance(loaded, StepScheduleOptimizer)
        assert loaded.net.architecture() == rule.net.architecture()
        torch.testing.assert_close(loaded.net.log_lr, rule.net.log_lr)
        problem = family.sample(2, torch.Generator().manual_seed(5), split="test")
        ours, theirs = unroll(rule, copy.deepcopy(problem), 4), unroll(loaded, copy.deepcopy(problem), 4)
        torch.testing.assert_close(ours.query, theirs.query)


def test_meta_training_moves_the_step_sizes_and_refuses_families_without_a_query():
    family = hypernet()
    rule = schedule(family, horizon=4)
    optimizer = torch.optim.Adam(rule.net.parameters(), lr=0.1)
    loss, applied = schedule_meta_iteration(
        rule, family.sample(2, torch.Generator().manual_seed(1)), optimizer, horizon=4, loss_steps=default_loss_steps(4)
    )
    assert applied and loss > 0
    assert not torch.allclose(rule.net.log_lr, torch.full_like(rule.net.log_lr, float(torch.tensor(0.01).log())))
    assert default_loss_steps(100) == [25, 50, 75, 100] and default_loss_steps(2) == [1, 2]
    from tasks.quadratic import QuadraticFamily

    with pytest.raises(ValueError, match="no held-out query set"):
        train_step_schedule(QuadraticFamily(), horizon=2, initial_lr=0.01, iterations=1, batch_size=2, seed=0)


@pytest.mark.slow
def test_benchmark_quick_run_end_to_end(tmp_path):
    from benchmarks.meta_loop_learners import main

    assert main(["--quick", "--no-doc", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mann" / "step_schedule" / "l2o_meta.json").is_file()


def test_learned_betas_start_as_adam_get_a_meta_gradient_and_round_trip(tmp_path):
    family = hypernet()
    problem = family.sample(3, torch.Generator().manual_seed(0))
    net = PerTensorStepSchedule(parameter_segments(family), 3, 0.02, learn_betas=True)
    ours = unroll(StepScheduleOptimizer(net), copy.deepcopy(problem), 6)
    reference = unroll(make_optimizer("adam", lr=0.02), copy.deepcopy(problem), 6)
    torch.testing.assert_close(ours.objectives, reference.objectives, rtol=1e-4, atol=1e-5)
    rule = StepScheduleOptimizer(net)
    optimizer = torch.optim.SGD(rule.net.parameters(), lr=0.0)  # keeps the meta-gradient in .grad
    schedule_meta_iteration(rule, copy.deepcopy(problem), optimizer, horizon=3, loss_steps=[3], grad_clip=1e9)
    assert net.beta_logits.grad is not None and float(net.beta_logits.grad.abs().max()) > 0
    with torch.no_grad():
        net.beta_logits[0, 0] = 0.0  # β1 = 0.5 on conv1's kernel
    loaded = load_rule(rule.save(tmp_path / "betas", "l2o/HyperNetDigits-v0"))
    torch.testing.assert_close(loaded.net.beta_logits, net.beta_logits)
    assert loaded.net.architecture()["learn_betas"] is True
    beta1, _ = loaded.net.betas()
    assert float(beta1[0]) == 0.5 and abs(float(beta1[-1]) - 0.9) < 1e-6
    with pytest.raises(ValueError, match="learn_betas needs direction 'adam'"):
        PerTensorStepSchedule([3], 3, 0.01, "sgd", learn_betas=True)
