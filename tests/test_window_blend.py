"""The window_qn / Adam blend rule with learned schedules, and its ES training on the cost."""

from __future__ import annotations

import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.meta.window_blend_es import blend_costs, population_costs, train_window_blend
from agents.meta.window_blend_rule import WindowBlendOptimizer, WindowBlendParameters
from agents.runtime.saved_rules import load_rule, read_meta
from agents.runtime.torch_optimizer import LearnedTorchOptimizer
from l2o_gym.unroll import unroll

ENV = "l2o/TwoLayerNet-v0"
TEACHER = {"lr": 1.0, "max_step": 0.25, "gd_lr": 1.0}


def problem(count: int, seed: int = 0):
    return l2o_gym.make_family(ENV).sample(count, torch.Generator().manual_seed(seed), "validation")


def trained_net() -> WindowBlendParameters:
    net = WindowBlendParameters(TEACHER, horizon=30, knots=3)
    with torch.no_grad():
        net.theta.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5, 0.2, -0.4, 0.3, -0.5]))
    return net


def test_zero_theta_is_the_teacher_exactly() -> None:
    instances = problem(6)
    teacher = unroll(make_optimizer("window_qn", **TEACHER), instances, 30).objectives
    blend = unroll(WindowBlendOptimizer(WindowBlendParameters(TEACHER, horizon=30)), instances, 30).objectives
    assert torch.equal(teacher, blend)


def test_a_population_runs_each_instance_with_its_own_theta() -> None:
    net, instances = trained_net(), problem(4)
    thetas = torch.stack([torch.zeros(net.size), net.theta.detach(), -net.theta.detach(), 2 * net.theta.detach()])
    together = unroll(WindowBlendOptimizer(net, thetas), instances, 40).objectives
    for i in range(4):
        alone_net = WindowBlendParameters(TEACHER, horizon=30, knots=3)
        with torch.no_grad():
            alone_net.theta.copy_(thetas[i])
        alone = unroll(WindowBlendOptimizer(alone_net), instances.select_rows(torch.tensor([i])), 40).objectives
        torch.testing.assert_close(together[:, i : i + 1], alone)
    assert not torch.equal(together[:, 0], unroll(WindowBlendOptimizer(net), instances, 40).objectives[:, 0])


def test_profiles_interpolate_between_knots_and_hold_the_last() -> None:
    net = trained_net()  # horizon 30, knots at steps 0, 14.5, 29
    factors = net.schedule(net.theta.detach(), torch.tensor([0, 29, 80]))
    assert factors["qn"][:, 0].log().tolist() == pytest.approx([0.3, 0.1, 0.1], abs=1e-6)
    assert factors["adam"][:, 0].tolist() == pytest.approx([0.3 * 0.5, 0.3 * -0.4, 0.3 * -0.4], abs=1e-6)
    middle = net.schedule(net.theta.detach(), torch.tensor([7]))["qn"].log()
    assert float(middle) == pytest.approx(0.3 + (-0.2 - 0.3) * 7 / 14.5, abs=1e-5)


def test_saved_rule_loads_evaluates_and_drives_torch_parameters(tmp_path) -> None:
    rule = WindowBlendOptimizer(trained_net())
    rule.save(tmp_path / "blend", ENV, {"note": "test"})
    assert read_meta(tmp_path / "blend")["kind"] == "window_blend"
    loaded = load_rule(tmp_path / "blend")
    instances = problem(5, seed=3)
    assert torch.equal(unroll(rule, instances, 50).objectives, unroll(loaded, instances, 50).objectives)
    # through the torch.optim wrapper (any d), its Adam moments saved and restored with the state
    point = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    optimizer = LearnedTorchOptimizer([point], tmp_path / "blend")
    losses = [optimizer.step(lambda: weighted_square(optimizer, point)) for _ in range(12)]
    assert float(losses[-1].detach()) < float(losses[0].detach())
    copy_point = torch.nn.Parameter(point.detach().clone())
    restored = LearnedTorchOptimizer([copy_point], tmp_path / "blend")
    restored.load_state_dict(optimizer.state_dict())
    for _ in range(5):
        optimizer.step(lambda: weighted_square(optimizer, point))
        restored.step(lambda: weighted_square(restored, copy_point))
    assert torch.equal(point, copy_point)


def weighted_square(optimizer: LearnedTorchOptimizer, point: torch.Tensor) -> torch.Tensor:
    optimizer.zero_grad()
    loss = (torch.tensor([1.0, 3.0, 0.3, 0.1]) * point**2).sum()
    loss.backward()
    return loss


def test_antithetic_members_share_their_instance() -> None:
    net, instances = trained_net(), problem(3)
    theta = net.theta.detach()
    same = population_costs(net, instances, (10, 20))(theta.expand(6, -1))
    torch.testing.assert_close(same[:3], same[3:])
    alone = blend_costs(net, instances, theta, (10, 20))
    torch.testing.assert_close(same[:3], alone)
    with pytest.raises(ValueError, match="needs 2 instances"):
        population_costs(net, instances, (10,))(theta.expand(4, -1))


def test_training_keeps_the_best_validated_theta() -> None:
    family = l2o_gym.make_family(ENV)
    rule, record = train_window_blend(
        family, TEACHER, iterations=4, instances=16, seed=0, horizons=(5, 10), validation_instances=32, validate_every=2
    )
    assert [i for i, _ in record.validations] == [0, 2, 4]
    best = min(v for _, v in record.validations)
    validation = family.sample(32, torch.Generator().manual_seed(1), split="validation")
    kept = float(blend_costs(rule.net, validation, rule.net.theta.detach(), (5, 10)).mean())
    assert kept == pytest.approx(best, rel=1e-6)
    assert record.theta == pytest.approx(rule.net.theta.tolist())


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="teacher must hold"):
        WindowBlendParameters({"lr": 1.0}, horizon=10)
    with pytest.raises(ValueError, match="knots"):
        WindowBlendParameters(TEACHER, horizon=10, knots=1)
    with pytest.raises(ValueError, match="theta must have"):
        WindowBlendParameters(TEACHER, horizon=10).schedule(torch.zeros(3), torch.tensor([0]))
