"""PhasedRule: the opening rule for each instance's first steps, the main rule after."""

import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.runtime.phased_rule import PhasedRule
from l2o_gym.state import OptimizationState


def test_each_instance_switches_after_its_own_opening_steps():
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=3).sample(2, torch.Generator().manual_seed(0), "train")
    state = OptimizationState.start(problem, history=4)
    rule = PhasedRule(make_optimizer("gd", lr=0.1), make_optimizer("gd", lr=0.01), steps=2)
    rule.reset(state)
    state.t[1] = 2  # instance 1 has taken its opening steps already
    step = rule.step(state)
    assert torch.allclose(step[0], -0.1 * state.grad[0]) and torch.allclose(step[1], -0.01 * state.grad[1])
    for _ in range(2):
        state.advance(rule.step(state))
    assert torch.allclose(rule.step(state), -0.01 * state.grad)


def test_momentum_buffers_fill_during_the_opening():
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=3).sample(1, torch.Generator().manual_seed(0), "train")
    state = OptimizationState.start(problem, history=4)
    momentum = make_optimizer("momentum", lr=0.01, momentum=0.9)
    rule = PhasedRule(make_optimizer("gd", lr=0.01), momentum, steps=3)
    rule.reset(state)
    for _ in range(3):
        state.advance(rule.step(state))
    assert not torch.allclose(rule.step(state), -0.01 * state.grad)  # momentum from the opening's gradients


def test_opening_steps_are_checked():
    with pytest.raises(ValueError, match="steps"):
        PhasedRule(make_optimizer("gd", lr=0.1), make_optimizer("gd", lr=0.01), steps=0)
