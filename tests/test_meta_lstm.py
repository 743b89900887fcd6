"""Ravi & Larochelle's meta-learner LSTM: gate equations, c_t = θ_t, SGD-like start, θ_0, save/load."""

import pytest
import torch

from agents.meta.log_and_sign import log_and_sign
from agents.meta.meta_lstm import MetaLearnerLSTM, MetaLSTMOptimizer
from agents.meta.meta_training import make_rule, meta_train_iteration
from agents.runtime.saved_rules import load_rule
from l2o_gym import make_family
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll


def _problem(n=3, dim=4, seed=0, init_std=0.01):
    family = make_family("l2o/Quadratic-v0", dim=dim, init_std=init_std)
    return family.sample(n, torch.Generator().manual_seed(seed))


def _rule(seed=0, **kw):
    return MetaLSTMOptimizer(MetaLearnerLSTM(generator=torch.Generator().manual_seed(seed), **kw))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_initialisation_ranges(seed):
    net = _rule(seed).net
    assert 4.0 <= net.b_F.item() <= 6.0 and -5.0 <= net.b_I.item() <= -4.0
    assert net.W_F.abs().max() <= 0.01 and net.W_I.abs().max() <= 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_update_at_initialisation_is_a_small_sgd_step(seed):
    problem = _problem(seed=seed, init_std=0.0)  # θ_0 = 0: the forget gate's decay term vanishes
    state = OptimizationState.start(problem)
    rule = _rule(seed)
    rule.reset(state)
    step = rule.step(state)
    lr = -step / state.grad  # per-coordinate learning rate of the step
    b_i = rule.net.b_I.item()
    # i = σ(W_I·[h, θ, i_prev] + b_I), |W_I·...| <= 0.01 · 20 (|h| < 1): lr lies within σ(b_I ± 0.2)
    assert lr.min() >= torch.sigmoid(torch.tensor(b_i - 0.2)) and lr.max() <= torch.sigmoid(torch.tensor(b_i + 0.2))
    assert torch.allclose(step, -lr.mean() * state.grad, rtol=0.05)
    # with a small θ the step stays an SGD step up to the weight decay (1 - f) θ, 1 - f < σ(-3.8)
    problem = _problem(seed=seed, init_std=0.01)
    state = OptimizationState.start(problem)
    rule.reset(state)
    step = rule.step(state)
    cosine = torch.nn.functional.cosine_similarity(step, -state.grad, dim=1)
    assert (cosine > 0.999).all()


def test_gate_equations_by_hand_and_cell_state_is_theta():
    problem = _problem(n=2, dim=3, seed=4, init_std=0.5)
    rule = _rule(7)
    net = rule.net
    state = OptimizationState.start(problem)
    rule.reset(state)
    f_prev = torch.zeros(6)
    i_prev = torch.zeros(6)
    h = c = torch.zeros(6, 20)
    for _ in range(3):
        g, theta = state.grad.reshape(-1), state.x.reshape(-1)
        loss = state.f.repeat_interleave(3)
        with torch.no_grad():
            inputs = torch.cat([log_and_sign(g), log_and_sign(loss)], dim=1)
            h, c = net.lstm(inputs, (h, c))
            f = torch.sigmoid(torch.cat([h, theta[:, None], f_prev[:, None]], 1) @ net.W_F + net.b_F)
            i = torch.sigmoid(torch.cat([h, theta[:, None], i_prev[:, None]], 1) @ net.W_I + net.b_I)
            expected_theta = f * theta - i * g
            step = rule.step(state)
        state.advance(step)
        assert torch.allclose(state.x.reshape(-1), expected_theta, atol=1e-6)
        f_prev, i_prev = f, i


def test_save_and_load_act_identically(tmp_path):
    rule = _rule(3)
    rule.save(tmp_path / "m", "l2o/Quadratic-v0")
    loaded = load_rule(tmp_path / "m")
    assert isinstance(loaded, MetaLSTMOptimizer)
    assert torch.equal(unroll(rule, _problem(seed=9), 15).objectives, unroll(loaded, _problem(seed=9), 15).objectives)


def test_learned_initial_state_gets_meta_gradient_and_is_used_in_evaluation():
    family = make_family("l2o/Quadratic-v0", dim=3)
    rule = make_rule("meta_lstm", family, torch.Generator().manual_seed(0), learn_init=True)
    theta0 = rule.net.theta0.detach().clone()
    opt = torch.optim.SGD([rule.net.theta0], lr=0.1)
    problem = family.sample(4, torch.Generator().manual_seed(1))
    meta_train_iteration(rule, problem, opt, horizon=4, truncation=2, grad_clip=10.0)
    assert not torch.equal(theta0, rule.net.theta0.detach())  # θ_0 moved by the meta-gradient
    rule.apply_initial_point(problem)
    assert torch.equal(problem.x0, rule.net.theta0.detach().expand(4, 3))
    with pytest.raises(ValueError, match="learn_init"):
        MetaLearnerLSTM(learn_init=True)


def test_without_learned_init_there_is_no_theta0():
    rule = make_rule("meta_lstm", make_family("l2o/Quadratic-v0", dim=3), torch.Generator().manual_seed(0))
    assert rule.net.theta0 is None and rule.start_points(_problem(dim=3)) is None
