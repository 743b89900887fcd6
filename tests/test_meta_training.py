"""Truncated-BPTT meta-training: it lowers the meta-loss, skips non-finite pieces, saves, resumes;
and the differentiable transition leaves the default one unchanged."""

import json

import pytest
import torch

from agents.meta.meta_training import (
    latest_checkpoint,
    make_rule,
    meta_train_iteration,
    train_meta_optimizer,
)
from agents.meta.meta_training_options import MetaTrainingOptions
from agents.meta.truncated_unroll import MetaGradientStep, apply_meta_gradient, truncated_unroll
from agents.runtime.saved_rules import load_rule, read_meta
from l2o_gym import make_family
from l2o_gym.problem import Problem
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll

QUAD = "l2o/Quadratic-v0"


def _family(dim=3):
    return make_family(QUAD, dim=dim)


def _meta_loss(rule, problem, horizon):
    """The normalised meta-loss, mean over steps 1..T of mean_b f_t / f0, measured without training."""
    curves = unroll(rule, problem, horizon)
    return float((curves.objectives[1:] / curves.objectives[0]).mean())


@pytest.mark.parametrize("algo", ["l2l", "meta_lstm"])
def test_meta_training_lowers_the_meta_loss_on_a_fixed_batch(algo):
    family = _family()
    rule = make_rule(algo, family, torch.Generator().manual_seed(0))
    problem = family.sample(8, torch.Generator().manual_seed(1))
    before = _meta_loss(rule, problem, 10)
    opt = torch.optim.Adam(rule.net.parameters(), lr=1e-2)
    for _ in range(5):
        stats = meta_train_iteration(rule, problem, opt, horizon=10, truncation=5, grad_clip=1.0)
        assert stats.applied == 2 and stats.skipped == 0 and stats.timesteps == 80
    assert _meta_loss(rule, problem, 10) < 0.97 * before


def test_apply_meta_gradient_skips_non_finite_loss_and_gradient():
    param = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.Adam([param], lr=0.1)
    assert not apply_meta_gradient(param.sum() * float("nan"), [param], opt, 1.0)
    finite_loss_nan_grad = torch.where(torch.tensor([True, True]), param, torch.sqrt(-param)).sum()
    assert torch.isfinite(finite_loss_nan_grad)
    assert not apply_meta_gradient(finite_loss_nan_grad, [param], opt, 1.0)
    assert torch.equal(param.detach(), torch.tensor([1.0, 2.0])) and param.grad is None
    assert apply_meta_gradient(param.sum(), [param], opt, 1.0)
    assert not torch.equal(param.detach(), torch.tensor([1.0, 2.0]))


class _CliffProblem(Problem):
    """f = Σ x² + sqrt(1 - x_0): not finite beyond x_0 = 1, and its gradient there is NaN."""

    def loss(self, x):
        return x.pow(2).sum(1) + torch.sqrt(1.0 - x[:, 0])


class _JumpRule:
    """A learnable rule whose first step jumps over the cliff (its meta-gradient is NaN)."""

    def __init__(self):
        self.net = torch.nn.Linear(1, 1)
        with torch.no_grad():
            self.net.weight.fill_(0.0)
            self.net.bias.fill_(2.0)

    def reset(self, state):
        self.t = 0

    def step(self, state):
        self.t += 1
        out = self.net(torch.ones(state.batch_size, 1)).expand(-1, state.x.shape[1])
        return out if self.t == 1 else 0.001 * out

    def detach_hidden(self):
        pass

    def start_points(self, problem):
        return None


def test_diverging_unroll_skips_the_piece_and_keeps_weights_and_state_finite():
    problem = _CliffProblem(torch.zeros(2, 2))
    rule = _JumpRule()
    before = [p.detach().clone() for p in rule.net.parameters()]
    opt = torch.optim.Adam(rule.net.parameters(), lr=0.1)
    stats = meta_train_iteration(rule, problem, opt, horizon=4, truncation=2, grad_clip=1.0)
    # piece 1 (the jump) has a NaN meta-gradient and is skipped; in piece 2 every row is frozen
    assert stats.skipped >= 1 and stats.meta_loss == 1.0
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, rule.net.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in rule.net.parameters())


def test_differentiable_advance_leaves_default_behaviour_unchanged():
    for env_id, kw in [(QUAD, {"dim": 4}), ("l2o/Rosenbrock-v0", {"dim": 3})]:
        problem = make_family(env_id, **kw).sample(5, torch.Generator().manual_seed(0))
        step = 0.01 * torch.randn(5, problem.dim, generator=torch.Generator().manual_seed(1))
        plain = OptimizationState.start(problem)
        tracked = OptimizationState.start(problem)
        param = step.clone().requires_grad_(True)
        plain.advance(param)  # default: detached even when the step carries a graph
        assert not plain.x.requires_grad and not plain.f.requires_grad and not plain.grad.requires_grad
        tracked.advance(param, differentiable=True)
        assert tracked.x.requires_grad and tracked.f.requires_grad and not tracked.grad.requires_grad
        for name in ("x", "f", "grad", "grad_history", "change_history", "last_step", "t", "diverged"):
            assert torch.allclose(getattr(plain, name).float(), getattr(tracked, name).detach().float(), atol=1e-5)
        # ∂f/∂step is the gradient at the new point
        (d_step,) = torch.autograd.grad(tracked.f.sum(), param)
        assert torch.allclose(d_step, plain.grad, atol=1e-4)
    second = OptimizationState.start(problem)
    second.advance(step.clone().requires_grad_(True), differentiable=True, second_order=True)
    assert second.grad.requires_grad
    with pytest.raises(ValueError, match="second_order"):
        OptimizationState.start(problem).advance(step, second_order=True)


def test_differentiable_advance_keeps_diverged_rows_finite():
    problem = _family(dim=2).sample(3, torch.Generator().manual_seed(0))
    state = OptimizationState.start(problem)
    step = torch.zeros(3, 2)
    step[1] = float("inf")
    step[2] = 1e6
    x_before = state.x.clone()
    diverged = state.advance(step.requires_grad_(True), differentiable=True)
    assert diverged.tolist() == [False, True, True]
    assert torch.equal(state.x[1:].detach(), x_before[1:])
    assert torch.isfinite(state.x).all() and torch.isfinite(state.f).all() and torch.isfinite(state.grad).all()


def _train(tmp_path, timesteps, resume=False, **kw):
    return train_meta_optimizer(
        QUAD,
        "l2l",
        timesteps,
        seed=0,
        out_dir=tmp_path,
        horizon=6,
        truncation=3,
        batch_size=4,
        progress=False,
        checkpoint_every=24,
        resume=resume,
        env_kwargs={"dim": 3},
        validation_instances=4,
        validation_every=2,
        **kw,
    )


def test_saved_model_acts_identically_and_carries_metadata(tmp_path):
    path = _train(tmp_path, 48, tensorboard_log=tmp_path / "tb")
    assert path.name == "best_model" and (tmp_path / "model").is_dir()
    meta = read_meta(tmp_path / "model")
    assert meta["kind"] == "l2l" and meta["env_id"] == QUAD and meta["training"]["timesteps"] == 48
    assert any((tmp_path / "tb").rglob("events.out.tfevents*"))
    rule = load_rule(tmp_path / "model")
    again = load_rule(tmp_path / "model")
    problem = _family().sample(5, torch.Generator().manual_seed(3), split="test")
    a, b = unroll(rule, problem, 12).objectives, unroll(again, problem, 12).objectives
    assert torch.equal(a, b)


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tmp_path):
    _train(tmp_path / "a", 48)
    assert json.loads((tmp_path / "a" / "training.json").read_text())["timesteps"] == 48
    _train(tmp_path / "a", 96, resume=True)
    summary = json.loads((tmp_path / "a" / "training.json").read_text())
    assert summary["timesteps"] == 96 and summary["iterations"] == 4
    assert latest_checkpoint(tmp_path / "a").name == "meta_000000000096.pt"
    _train(tmp_path / "b", 96)
    resumed = torch.load(tmp_path / "a" / "model" / "weights.pt", weights_only=True)
    straight = torch.load(tmp_path / "b" / "model" / "weights.pt", weights_only=True)
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="algo"):
        train_meta_optimizer(QUAD, "ppo", 10, 0, tmp_path)
    with pytest.raises(ValueError, match="timesteps"):
        train_meta_optimizer(QUAD, "l2l", 0, 0, tmp_path)
    with pytest.raises(ValueError, match="learn_init"):
        make_rule("l2l", _family(), torch.Generator(), learn_init=True)


@pytest.mark.parametrize("algo", ["l2l", "meta_lstm"])
def test_second_order_option_trains_and_differs_from_first_order(algo):
    family = _family()
    problem = family.sample(4, torch.Generator().manual_seed(2))
    weights = {}
    for second_order in (False, True):
        rule = make_rule(algo, family, torch.Generator().manual_seed(0))
        opt = torch.optim.SGD(rule.net.parameters(), lr=1.0)
        stats = meta_train_iteration(
            rule, problem, opt, horizon=4, truncation=4, grad_clip=1e9, second_order=second_order
        )
        assert stats.applied == 1
        weights[second_order] = torch.cat([p.detach().flatten() for p in rule.net.parameters()])
    assert not torch.allclose(weights[False], weights[True])


def test_options_refuse_unknown_keys_and_bad_values_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"cfg.yaml: unknown meta-training setting\(s\) \[.horizn.\]; allowed: "):
        MetaTrainingOptions.from_mapping({"horizn": 5}, "cfg.yaml")
    with pytest.raises(ValueError, match="unknown meta-training setting"):
        train_meta_optimizer(QUAD, "l2l", 10, 0, tmp_path, batch=4)
    for bad in ({"lr": "1e-3"}, {"lr": 0.0}, {"grad_clip": -1.0}, {"truncation": 0}, {"normalize": "yes"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MetaTrainingOptions.from_mapping(bad)
    assert not any(tmp_path.iterdir())  # refused before any work


def test_options_object_and_keywords_train_the_same_rule(tmp_path):
    options = MetaTrainingOptions(horizon=6, truncation=3, batch_size=4, env_kwargs={"dim": 3}, validation_instances=4)
    by_object = train_meta_optimizer(QUAD, "l2l", 24, 0, tmp_path / "a", options, progress=False)
    by_keywords = _train(tmp_path / "b", 24)
    a = torch.load(by_object.parent / "model" / "weights.pt", weights_only=True)
    b = torch.load(by_keywords.parent / "model" / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_truncated_unroll_updates_once_per_piece_and_cuts_the_graph_between_pieces():
    problem = _family().sample(3, torch.Generator().manual_seed(0))
    state = OptimizationState.start(problem)
    weight = torch.nn.Parameter(torch.tensor(0.05))
    meta_step = MetaGradientStep([weight], torch.optim.SGD([weight], lr=1e-3), grad_clip=10.0)
    cuts = []
    pieces = truncated_unroll(
        state,
        lambda s: -weight * s.grad,
        lambda s: s.f.mean(),
        meta_step,
        horizon=7,
        truncation=3,
        on_cut=lambda: cuts.append(state.x.requires_grad),
    )
    assert pieces.applied == 3 and pieces.skipped == 0 and len(pieces.losses) == 3
    assert cuts == [False, False, False] and int(state.t[0]) == 7
    assert float(weight.detach()) > 0.05  # a longer gradient step lowers f on a quadratic


def test_cli_refuses_a_bad_meta_training_config_with_exit_code_2_before_any_work(tmp_path, capsys):
    import train_agent

    config = tmp_path / "meta.yaml"
    for text, message in [("horizn: 5\n", "unknown meta-training setting(s) ['horizn']"), ("lr: 1e-3\n", "lr must be")]:
        config.write_text(text)
        argv = ["--env", QUAD, "--algo", "l2l", "--config", str(config), "--out", str(tmp_path / "run")]
        with pytest.raises(SystemExit) as exit_info:
            train_agent.main([*argv, "--no-progress"])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
