"""Guided policy search end to end: one iteration on real samples, the saved optimizer, training and resume."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from agents.gps.controllers import initial_controllers
from agents.gps.coordinate_state import GRADIENT, LAST_STEP, impose_kinematics
from agents.gps.cost import local_quadratic_cost
from agents.gps.dynamics import MixturePrior, fit_dynamics
from agents.gps.lqr import expected_cost, kl_constrained_update
from agents.gps.options import GPSOptions, options_from_config
from agents.gps.policy import CoordinatewisePolicyNet, GPSOptimizer
from agents.gps.policy_fit import linearise_policy
from agents.gps.sampling import sample_trajectories
from agents.gps.step_adjustment import MOMENTUM_LIMIT
from agents.gps.training import CHECKPOINT, train_gps
from agents.runtime.saved_rules import load_rule, read_meta
from agents.runtime.torch_optimizer import LearnedTorchOptimizer
from l2o_gym.features import make_observation
from l2o_gym.registry import make_family
from l2o_gym.unroll import unroll

ENV = "l2o/LogisticRegression-v0"
TINY = dict(
    instances=3,
    samples=6,
    horizon=6,
    iterations=1,
    inner_iterations=1,
    policy_steps=5,
    policy_batch=64,
    mixture_components=2,
    validation_instances=4,
)


def tiny_samples():
    family = make_family(ENV)
    problem = family.sample(3, torch.Generator().manual_seed(0), "train")
    observation = make_observation(True, family.dim, 25, 2.0)
    controllers, _ = initial_controllers(problem, 8, 0.3, observation, (1.0, 0.5))
    samples = sample_trajectories(problem, controllers, observation, 8, generator=torch.Generator().manual_seed(1))
    return controllers, samples


def test_momentum_controllers_reproduce_momentum() -> None:
    family = make_family(ENV)
    problem = family.sample(3, torch.Generator().manual_seed(0), "train")
    observation = make_observation(True, family.dim, 25, 2.0)
    controllers, _ = initial_controllers(problem, 8, 0.3, observation, (1.0, 0.5))
    run = sample_trajectories(problem, controllers, observation, 1, explore=False)
    from agents.hand_designed import Momentum

    curves = unroll(Momentum(lr=1.0, momentum=0.5), problem, 8)
    assert torch.allclose(run.objectives[0].T, curves.objectives, rtol=1e-5, atol=1e-6)


def test_one_iteration_lowers_the_surrogate_cost_on_a_tiny_problem() -> None:
    controllers, samples = tiny_samples()
    dynamics = fit_dynamics(samples.states, samples.actions, samples.weights, MixturePrior(components=2))
    dynamics.matrices, dynamics.offsets, dynamics.noise = impose_kinematics(
        dynamics.matrices, dynamics.offsets, dynamics.noise
    )
    cost = local_quadratic_cost(samples.states, samples.curvature, samples.weights)
    new, eta, kl = kl_constrained_update(dynamics, cost, controllers, 0.2)
    before, after = expected_cost(dynamics, cost, controllers), expected_cost(dynamics, cost, new)
    assert (after <= before + 1e-9).all()
    assert after.mean() < before.mean()
    assert (kl <= 0.2 * controllers.horizon * (1 + 1e-9)).all()


def test_kinematics_are_exact() -> None:
    _, samples = tiny_samples()
    dynamics = fit_dynamics(samples.states, samples.actions, samples.weights, MixturePrior(components=2))
    m, o, _ = impose_kinematics(dynamics.matrices, dynamics.offsets, dynamics.noise)
    z = torch.cat([samples.states[:, :, :-1], samples.actions], dim=-1).double()
    predicted = torch.einsum("ctij,nctj->ncti", m, z) + o
    true = samples.states[:, :, 1:].double()
    assert torch.allclose(predicted[..., 0], true[..., 0], atol=1e-5)  # x' = x + u
    assert torch.allclose(predicted[..., 2], true[..., 2], atol=1e-6)  # last step' = u


def test_saved_gps_optimizer_round_trip(tmp_path) -> None:
    family = make_family(ENV)
    observation = make_observation(True, family.dim, 25, 2.0)
    torch.manual_seed(0)
    net = CoordinatewisePolicyNet(observation.num_features, 2.0)
    net.start_as_momentum(0.5, 0.3)
    torch.nn.init.normal_(net.body[-1].weight, std=0.01)
    rule = GPSOptimizer(net.eval(), 25)
    rule.save(tmp_path / "gps", ENV, {"note": "test"})
    meta = read_meta(tmp_path / "gps")
    assert meta["kind"] == "gps" and meta["observation"] == "coordinatewise"
    loaded = load_rule(tmp_path / "gps")
    problem = family.sample(5, torch.Generator().manual_seed(3), "test")
    a = unroll(rule, problem, 10).objectives
    b = unroll(loaded, problem, 10).objectives
    assert torch.equal(a, b)
    # a GPS optimizer is dimension-free and drives ordinary torch parameters
    model = torch.nn.Linear(7, 1)
    data, target = torch.randn(32, 7), torch.randn(32, 1)
    optimizer = LearnedTorchOptimizer(model.parameters(), tmp_path / "gps")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(data), target)
        loss.backward()
        return loss

    first = float(closure().detach())
    for _ in range(20):
        optimizer.step(closure)
    assert float(closure().detach()) < first


def test_bad_options_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="kl_step"):
        GPSOptions(kl_step=0)
    with pytest.raises(ValueError, match="samples"):
        GPSOptions(samples=1)
    with pytest.raises(ValueError, match="init"):
        GPSOptions(init="random")
    config = tmp_path / "gps.yaml"
    config.write_text("kl_stepp: 0.1\n")
    with pytest.raises(ValueError, match="unknown GPS option"):
        options_from_config(config, 0)


def test_tiny_training_writes_a_loadable_optimizer_and_resumes(tmp_path) -> None:
    out = tmp_path / "run"
    best = train_gps(ENV, out, GPSOptions(**TINY), progress=False)
    assert best == out / "best"
    assert load_rule(best).name == "gps"
    assert (out / "checkpoint.pt").is_file() and (out / "final" / "l2o_meta.json").is_file()
    assert any((out / "tb").iterdir())
    with pytest.raises(ValueError, match="already holds"):
        train_gps(ENV, out, GPSOptions(**TINY), progress=False)
    with pytest.raises(ValueError, match="differ"):
        train_gps(ENV, out, GPSOptions(**{**TINY, "kl_step": 0.5, "iterations": 2}), resume=True, progress=False)
    train_gps(ENV, out, GPSOptions(**{**TINY, "iterations": 2}), resume=True, progress=False)
    assert json.loads((out / "final" / "l2o_meta.json").read_text())["training"]["iteration"] == 2


@pytest.mark.slow
def test_cli_trains_gps_and_reports(tmp_path) -> None:
    import train_agent

    config = tmp_path / "gps.yaml"
    config.write_text("".join(f"{k}: {v}\n" for k, v in TINY.items()))
    out = tmp_path / "cli"
    code = train_agent.main(
        [
            "--env",
            ENV,
            "--algo",
            "gps",
            "--config",
            str(config),
            "--out",
            str(out),
            "--no-progress",
            "--test-instances",
            "5",
            "--report-horizons",
            "10",
            "--cache",
            str(tmp_path / "tuned.json"),
        ]
    )
    assert code == 0
    assert (out / "report_T10" / "report.md").is_file()


def test_cli_rejects_a_bad_gps_config(tmp_path, capsys) -> None:
    import train_agent

    config = tmp_path / "gps.yaml"
    config.write_text("kl_step: -1\n")
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["--env", ENV, "--algo", "gps", "--config", str(config), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "kl_step" in capsys.readouterr().err


def test_evaluate_cli_runs_a_saved_gps_optimizer(tmp_path) -> None:
    import train_agent

    family = make_family(ENV)
    net = CoordinatewisePolicyNet(make_observation(True, family.dim, 25, 2.0).num_features, 2.0)
    net.start_as_momentum(1.0, 0.5)
    GPSOptimizer(net.eval(), 25).save(tmp_path / "gps_rule", ENV)
    code = train_agent.main(
        ["evaluate", "--env", ENV, "--optimizers", "adam", "--policy", str(tmp_path / "gps_rule"),
         "--instances", "4", "--horizon", "5", "--tune-instances", "4",
         "--cache", str(tmp_path / "tuned.json"), "--out", str(tmp_path / "report")]
    )  # fmt: skip
    assert code == 0
    assert "gps_rule" in (tmp_path / "report" / "report.md").read_text()


def test_training_keeps_the_gain_bound_and_resumes_the_adaptation(tmp_path) -> None:
    out = tmp_path / "run"
    options = GPSOptions(**{**TINY, "gain_bound": 1.5, "iterations": 2})
    train_gps(ENV, out, options, progress=False)
    state = torch.load(out / CHECKPOINT, weights_only=True)
    rates = state["adaptation.learning_rates"]
    gradient_gains = state["controller.gains"][:, :, 0, GRADIENT].abs()
    assert (gradient_gains <= 1.5 * rates[:, None] * (1 + 1e-9)).all()
    assert (state["controller.gains"][:, :, 0, LAST_STEP].abs() <= MOMENTUM_LIMIT + 1e-12).all()
    multipliers = state["adaptation.multipliers"]
    assert multipliers.shape == (TINY["instances"],) and not torch.equal(multipliers, torch.ones_like(multipliers))
    assert torch.isfinite(state["adaptation.predicted"]).all()
    train_gps(ENV, out, GPSOptions(**{**options.to_dict(), "iterations": 3}), resume=True, progress=False)
    resumed = torch.load(out / CHECKPOINT, weights_only=True)
    assert resumed["progress.iteration"] == 3
    assert torch.equal(resumed["adaptation.learning_rates"], rates)


def test_bad_safeguard_options_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="gain_bound"):
        GPSOptions(gain_bound=0)
    with pytest.raises(ValueError, match="adapt_kl_step"):
        GPSOptions(adapt_kl_step="yes")
    assert GPSOptions(gain_bound=None).gain_bound is None


def test_policy_linearisation_recovers_momentum_and_respects_gain_limits() -> None:
    controllers, samples = tiny_samples()
    observation = make_observation(True, make_family(ENV).dim, 25, 2.0)
    net = CoordinatewisePolicyNet(observation.num_features, 2.0)
    net.set_standardisation(samples.rows)
    net.start_as_momentum(1.0, 0.5)
    free = linearise_policy(net, samples.rows, samples.states, samples.weights, controllers.covariances)
    assert torch.allclose(free.gains[..., 0, GRADIENT], torch.full_like(free.gains[..., 0, GRADIENT], -1.0), atol=1e-4)
    assert torch.allclose(free.gains[..., 0, LAST_STEP], torch.full_like(free.gains[..., 0, LAST_STEP], 0.5), atol=1e-4)
    limits = torch.tensor([[0.0, 0.25, 0.1]], dtype=torch.float64).expand(free.gains.shape[0], 3)
    clipped = linearise_policy(
        net, samples.rows, samples.states, samples.weights, controllers.covariances, gain_limits=limits
    )
    assert torch.allclose(clipped.gains[..., 0, GRADIENT].abs(), torch.full_like(clipped.gains[..., 0, 0], 0.25))
    assert torch.allclose(clipped.gains[..., 0, LAST_STEP].abs(), torch.full_like(clipped.gains[..., 0, 0], 0.1))
    assert (clipped.covariances >= free.covariances - 1e-12).all()  # the clip's misfit widens the policy


def test_tiny_shaped_training_runs_and_rejects_a_bad_shaping(tmp_path) -> None:
    with pytest.raises(ValueError, match="cost_shaping"):
        GPSOptions(cost_shaping="log")
    options = GPSOptions(**{**TINY, "iterations": 2, "cost_shaping": "log_gap"})
    best = train_gps("l2o/RobustLinearRegression-v0", tmp_path / "run", options, progress=False)
    assert load_rule(best).name == "gps"
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert torch.isfinite(state["adaptation.predicted"]).all()
    assert torch.isfinite(state["controller.gains"]).all()


def test_validation_horizon_sets_the_steps_that_choose_the_best_policy(tmp_path) -> None:
    with pytest.raises(ValueError, match="validation_horizon must be None or a positive integer"):
        GPSOptions(validation_horizon=0)
    options = GPSOptions(**{**TINY, "validation_horizon": 11})
    best = train_gps(ENV, tmp_path / "run", options, progress=False)
    recorded = read_meta(best)["training"]["validation_cost"]
    validation = make_family(ENV).sample(options.validation_instances, torch.Generator().manual_seed(0), "validation")
    from agents.hand_designed.tuning import li_malik_cost

    for steps, same in ((11, True), (options.horizon, False)):
        curves = unroll(load_rule(best), copy.deepcopy(validation), steps, history=options.history)
        assert (abs(float(li_malik_cost(curves).mean()) - recorded) < 1e-4 * abs(recorded)) == same
