"""The coordinatewise L2L LSTM: shapes, coordinate sharing, a reference nn.LSTM, save/load."""

import pytest
import torch

from agents.meta.l2l_lstm import CoordinatewiseLSTM, L2LOptimizer
from agents.meta.log_and_sign import log_and_sign
from agents.runtime.saved_rules import load_rule, read_meta
from l2o_gym import make_family
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll


def _problem(n=3, dim=4, seed=0):
    return make_family("l2o/Quadratic-v0", dim=dim).sample(n, torch.Generator().manual_seed(seed))


def _rule(seed=0):
    return L2LOptimizer(CoordinatewiseLSTM(generator=torch.Generator().manual_seed(seed)))


def test_reset_builds_hidden_for_every_coordinate_and_step_shape():
    rule, problem = _rule(), _problem(n=3, dim=4)
    state = OptimizationState.start(problem)
    rule.reset(state)
    assert len(rule.hidden) == 2
    for h, c in rule.hidden:
        assert h.shape == (12, 20) and c.shape == (12, 20)
    step = rule.step(state)
    assert step.shape == (3, 4) and torch.isfinite(step).all()


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        _rule().step(OptimizationState.start(_problem()))


def test_matches_reference_two_layer_lstm_over_a_sequence():
    """Row by row, the rule is nn.LSTM(2, 20, num_layers=2) on LogAndSign(g), then linear × 0.01."""
    net = CoordinatewiseLSTM(generator=torch.Generator().manual_seed(3))
    ref = torch.nn.LSTM(2, 20, num_layers=2)
    with torch.no_grad():
        for layer, cell in enumerate(net.cells):
            getattr(ref, f"weight_ih_l{layer}").copy_(cell.weight_ih)
            getattr(ref, f"weight_hh_l{layer}").copy_(cell.weight_hh)
            getattr(ref, f"bias_ih_l{layer}").copy_(cell.bias_ih)
            getattr(ref, f"bias_hh_l{layer}").copy_(cell.bias_hh)
    grads = torch.randn(6, 5, generator=torch.Generator().manual_seed(1)) * torch.logspace(-6, 1, 5)
    hidden = net.initial_hidden(5, torch.device("cpu"), torch.float32)
    ours = []
    with torch.no_grad():
        for g in grads:
            update, hidden = net(g, hidden)
            ours.append(update)
        out, _ = ref(log_and_sign(grads))  # [T, N, 20]
        expected = 0.01 * net.head(out).squeeze(-1)
    assert torch.allclose(torch.stack(ours), expected, atol=1e-6)


def test_batched_equals_per_instance_and_coordinates_are_shared():
    problem = _problem(n=3, dim=4, seed=2)
    batched = unroll(_rule(), problem, 15).objectives
    for b in range(3):
        alone = unroll(_rule(), _slice(problem, b), 15).objectives[:, 0]
        assert torch.allclose(alone, batched[:, b], rtol=1e-5, atol=1e-6)
    # permuting coordinates (W's columns, x0) permutes nothing in the objective curve: shared weights
    perm = torch.tensor([2, 0, 3, 1])
    permuted = _slice(problem, 0)
    permuted.W, permuted.x0 = permuted.W[:, :, perm].clone(), permuted.x0[:, perm].clone()
    curve = unroll(_rule(), permuted, 15).objectives[:, 0]
    assert torch.allclose(curve, batched[:, 0], rtol=1e-5, atol=1e-6)


def _slice(problem, b):
    from tasks.quadratic import QuadraticProblem

    return QuadraticProblem(problem.W[b : b + 1].clone(), problem.y[b : b + 1].clone(), problem.x0[b : b + 1].clone())


def test_output_scale_scales_the_step():
    problem = _problem()
    steps = []
    for scale in (0.01, 0.02):
        rule = L2LOptimizer(CoordinatewiseLSTM(output_scale=scale, generator=torch.Generator().manual_seed(0)))
        state = OptimizationState.start(problem)
        rule.reset(state)
        steps.append(rule.step(state))
    assert torch.allclose(2 * steps[0], steps[1])


def test_save_and_load_act_identically(tmp_path):
    rule = _rule(seed=5)
    rule.save(tmp_path / "m", "l2o/Quadratic-v0", {"note": "test"})
    meta = read_meta(tmp_path / "m")
    assert meta["kind"] == "l2l" and meta["architecture"]["hidden_size"] == 20
    loaded = load_rule(tmp_path / "m")
    assert isinstance(loaded, L2LOptimizer)
    a = unroll(rule, _problem(seed=4), 20).objectives
    b = unroll(loaded, _problem(seed=4), 20).objectives
    assert torch.equal(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        CoordinatewiseLSTM(hidden_size=0)
    with pytest.raises(TypeError, match="either net"):
        L2LOptimizer(CoordinatewiseLSTM(), hidden_size=3)
