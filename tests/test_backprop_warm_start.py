"""Backpropagation warm start: the rule it trains is the rule evaluated, it lowers the validation
log-suboptimality, and it never hands back worse weights than it received."""

import json

import pytest
import torch

import l2o_gym
from agents.rl.backprop_warm_start import backprop_warm_start, policy_steps
from agents.runtime.learned_optimizer import LearnedOptimizer
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.state import OptimizationState
from tests.tiny_training import TINY_BACKPROP, TINY_POLICY_META, tiny_policy, train_tiny

META = TINY_POLICY_META


def test_the_trained_steps_are_the_learned_optimizers_steps():
    policy = tiny_policy()
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=3).sample(4, torch.Generator().manual_seed(0), "train")
    state = OptimizationState.start(problem, history=6)
    state.advance(-0.05 * state.grad)
    rule = LearnedOptimizer(policy, META)
    rule.reset(state)
    ours = policy_steps(rule, state)
    assert ours.requires_grad  # differentiable in the weights
    assert torch.allclose(ours.detach(), rule.step(state), atol=1e-6)


def test_backprop_lowers_the_validation_log_suboptimality():
    torch.manual_seed(0)
    policy = tiny_policy()
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    result = backprop_warm_start(policy, family, TINY_BACKPROP, META, seed=0)
    assert result.best_score < result.start_score - 0.5
    assert result.best_iteration > 0 and result.skipped_pieces == 0


def test_weights_are_kept_when_backprop_does_not_help():
    torch.manual_seed(0)
    policy = tiny_policy()
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    backprop_warm_start(policy, family, TINY_BACKPROP, META, seed=0)  # a rule that optimizes well
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    # steps of size 10 in every weight wreck it: no iteration validates better than the start
    config = {**TINY_BACKPROP, "iterations": 2, "lr": 10.0}
    result = backprop_warm_start(policy, family, config, META, seed=0)
    assert result.best_iteration == 0 and result.best_score == result.start_score
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())


def test_bad_settings_are_refused():
    policy = tiny_policy()
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    with pytest.raises(ValueError, match="unknown backprop setting"):
        backprop_warm_start(policy, family, {"iteration": 3}, META, seed=0)
    with pytest.raises(ValueError, match="iterations"):
        backprop_warm_start(policy, family, {"iterations": 0}, META, seed=0)
    with pytest.raises(ValueError, match="coordinatewise"):
        backprop_warm_start(
            policy, family, {}, {**META, "observation": ObservationSpec("dict", 6, 0.1).to_meta()}, seed=0
        )


def test_train_sb3_records_the_backprop_warm_start(tmp_path):
    result = train_tiny(
        tmp_path,
        "eval_freq: 400\nalgo: {n_steps: 8, batch_size: 48, n_epochs: 1}\n"
        "backprop: {iterations: 2, batch_size: 4, instances: 8, truncation: 4, validation_instances: 4}\n",
        timesteps=100,
    )
    record = json.loads((result.out_dir / "backprop_warm_start.json").read_text())
    assert record["best_score"] <= record["start_score"]
