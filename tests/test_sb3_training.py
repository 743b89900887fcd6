"""Training learned optimizers with stable-baselines3 (tiny budgets: mechanics, not quality)."""

from __future__ import annotations

import json

import pytest
import torch

import l2o_gym
from agents.rl.checkpoints import latest_checkpoint
from agents.rl.sb3_training import ALGOS, train_sb3
from agents.runtime.learned_optimizer import LearnedOptimizer
from agents.runtime.saved_rules import META_FILE, load_rule
from agents.runtime.torch_optimizer import LearnedTorchOptimizer
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.unroll import unroll
from tests.tiny_training import FixedGD, train_tiny

TINY = {"eval_freq": 400}


def _train(tmp_path, algo="ppo", timesteps=400, **kwargs):
    overrides = {
        "ppo": "algo: {n_steps: 8, batch_size: 64, n_epochs: 1}",
        "a2c": "algo: {n_steps: 4}",
        "recurrent_ppo": "algo: {n_steps: 8, batch_size: 64, n_epochs: 1}",
        "sac": "algo: {learning_starts: 50, batch_size: 32, gradient_steps: 1, buffer_size: 1000}",
        "td3": "algo: {learning_starts: 50, batch_size: 32, gradient_steps: 1, buffer_size: 1000}",
    }[algo]
    return train_tiny(tmp_path, f"eval_freq: 400\n{overrides}\n", algo=algo, name=algo, timesteps=timesteps, **kwargs)


@pytest.mark.parametrize("algo", ALGOS)
def test_each_algorithm_trains_saves_and_loads(tmp_path, algo):
    result = _train(tmp_path, algo, env_kwargs={"dim": 3, "horizon": 8})
    assert result.timesteps >= 400
    for folder in (result.best, result.final):
        meta = json.loads((folder / META_FILE).read_text())
        assert meta["algo"] == algo and meta["env_id"] == "l2o/Quadratic-v0"
        assert meta["observation"] == {**ObservationSpec("coordinatewise", 25, 0.1).to_meta(), "layout_version": 1}
    assert latest_checkpoint(result.out_dir).path.is_file()  # verified against its recorded hash
    assert any((result.out_dir / "tb").rglob("events.out.tfevents.*"))
    rule = load_rule(result.final)
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=3).sample(5, torch.Generator().manual_seed(0), "test")
    curves = unroll(rule, problem, 10)
    assert curves.objectives.shape == (11, 5) and torch.isfinite(curves.objectives).all()


def test_loaded_model_acts_like_the_trained_policy(tmp_path):
    result = _train(tmp_path, env_kwargs={"dim": 3, "horizon": 8})
    loaded = load_rule(result.final)
    from stable_baselines3 import PPO

    model = PPO.load(latest_checkpoint(result.out_dir).path)
    in_memory = LearnedOptimizer(model.policy, loaded.meta)
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=3).sample(4, torch.Generator().manual_seed(1), "test")
    a = unroll(loaded, problem, 6).objectives
    b = unroll(in_memory, problem, 6).objectives
    assert torch.allclose(a, b)


def test_coordinatewise_policy_runs_at_another_dimension(tmp_path):
    result = _train(tmp_path, env_kwargs={"dim": 3, "horizon": 8})
    rule = load_rule(result.final)
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=30).sample(3, torch.Generator().manual_seed(0), "test")
    curves = unroll(rule, problem, 5)
    assert curves.objectives.shape == (6, 3) and torch.isfinite(curves.objectives).all()


def test_dict_policy_refuses_another_dimension(tmp_path):
    result = _train(tmp_path, coordinatewise=False, env_kwargs={"dim": 3, "horizon": 8})
    rule = load_rule(result.final)
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=4).sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="dimension 3"):
        unroll(rule, problem, 3)


def test_resume_continues_the_step_count(tmp_path):
    first = _train(tmp_path, timesteps=400, env_kwargs={"dim": 3, "horizon": 8})
    assert 400 <= first.timesteps < 800
    again = _train(tmp_path, timesteps=first.timesteps + 400, resume=True, env_kwargs={"dim": 3, "horizon": 8})
    assert again.timesteps >= first.timesteps + 400
    tb_runs = list((first.out_dir / "tb").iterdir())
    assert tb_runs


def test_torch_optimizer_wrapper_lowers_loss_of_a_torch_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    optimizer = LearnedTorchOptimizer(model.parameters(), FixedGD())

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = float(closure())
    for _ in range(50):
        optimizer.step(closure)
    assert float(closure()) < 0.9 * first


def test_torch_optimizer_wrapper_with_a_saved_learned_optimizer(tmp_path):
    result = _train(tmp_path, env_kwargs={"dim": 3, "horizon": 8})
    model = torch.nn.Linear(5, 1)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = LearnedTorchOptimizer(model.parameters(), result.final)
    x, y = torch.randn(16, 5), torch.randn(16, 1)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(5):
        loss = optimizer.step(closure)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="closure is required"):
        optimizer.step()


def test_bad_model_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rule(tmp_path / "nothing")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.zip").write_bytes(b"PK junk")
    with pytest.raises(ValueError, match="not a saved l2o_gym optimizer"):
        load_rule(foreign)
    result = _train(tmp_path, env_kwargs={"dim": 3, "horizon": 8})
    meta_path = result.final / META_FILE
    meta = json.loads(meta_path.read_text())
    (result.final / "policy.pth").write_bytes(b"\x00corrupt")
    with pytest.raises(ValueError, match="corrupt"):
        load_rule(result.final)
    meta_path.write_text(json.dumps({**meta, "observation": {**meta["observation"], "layout_version": 99}}))
    with pytest.raises(ValueError, match="layout_version 99 is not this library's .1.: the policy saw other"):
        load_rule(result.final)
    meta_path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_rule(result.final)


def test_unknown_algo_and_bad_config(tmp_path):
    with pytest.raises(ValueError, match="algo must be one of"):
        train_sb3("l2o/Quadratic-v0", "dqn", out_dir=tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 3\n")
    with pytest.raises(ValueError, match="unknown hyperparameter section"):
        train_sb3("l2o/Quadratic-v0", "ppo", out_dir=tmp_path, config=bad)
    with pytest.raises(ValueError, match="holds no run to resume"):
        train_sb3("l2o/Quadratic-v0", "ppo", out_dir=tmp_path / "new", resume=True, reference=FixedGD())


def test_gsde_policy_saves_and_loads(tmp_path):
    result = train_tiny(tmp_path, "eval_freq: 400\nalgo: {n_steps: 8, batch_size: 48, n_epochs: 1, use_sde: true}\n")
    rule = load_rule(result.final)
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=3).sample(2, torch.Generator().manual_seed(0), "test")
    assert torch.isfinite(unroll(rule, problem, 4).objectives).all()


def test_linear_learning_rate_schedule(tmp_path):
    from agents.rl.sb3_training import linear_schedule, with_schedules

    schedule = linear_schedule("lin_0.001")
    assert schedule(1.0) == pytest.approx(0.001) and schedule(0.25) == pytest.approx(0.00025)
    kwargs = with_schedules({"learning_rate": "lin_0.001", "n_steps": 8})
    assert callable(kwargs["learning_rate"]) and kwargs["n_steps"] == 8
    with pytest.raises(ValueError, match="lin_0.0003"):
        linear_schedule("lin_fast")
    result = train_tiny(
        tmp_path, "eval_freq: 400\nalgo: {n_steps: 8, batch_size: 64, n_epochs: 1, learning_rate: lin_0.001}\n"
    )
    assert result.timesteps >= 400


def test_validation_at_several_horizons_averages_the_win_rates(tmp_path):
    result = train_tiny(
        tmp_path, "eval_freq: 400\neval_horizons: [4, 8]\nalgo: {n_steps: 8, batch_size: 48, n_epochs: 1}\n"
    )
    row = result.validation[-1]
    wins = (row["win_rate_vs_reference_T4"], row["win_rate_vs_reference_T8"])
    assert row["win_rate_vs_reference"] == pytest.approx(sum(wins) / 2)
    with pytest.raises(ValueError, match="eval_horizons"):
        train_tiny(tmp_path, "eval_horizons: [0]\n", name="bad")


def test_a_dict_layout_run_ignores_the_coordinatewise_only_settings_with_a_warning(tmp_path):
    text = (
        "coordinatewise: false\nalgo: {n_steps: 8, batch_size: 16, n_epochs: 1}\n"
        "env: {quasi_newton_pairs: 3, time_features: true}\n"
    )
    with pytest.warns(UserWarning, match="env.quasi_newton_pairs', 'env.time_features"):
        result = train_tiny(tmp_path, text, timesteps=100)
    rule = load_rule(result.final)
    assert rule.observation_spec == ObservationSpec("dict", 25, 0.1)
