"""RL beyond the warm start: the residual policy (teacher's step + a correction starting at zero)
and the reward measured against a reference optimizer run on the same instances."""

from __future__ import annotations

import json

import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.rl.config import ConfigError, TrainingConfig
from agents.rl.config_loading import load_training_config
from agents.rl.run_family import RunFamily
from agents.rl.sb3_training import build_env, build_model, run_meta, warm_starts
from agents.runtime.learned_optimizer import LearnedOptimizer
from agents.runtime.residual_step import ResidualStep
from agents.runtime.saved_rules import META_FILE, load_rule
from agents.runtime.torch_optimizer import LearnedTorchOptimizer
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.metrics import cost, curve_values
from l2o_gym.rewards import ReferenceReward
from l2o_gym.unroll import unroll
from tests.tiny_training import train_tiny

TEACHER_HPARAMS = {"lr": 1.0, "max_step": 0.1, "gd_lr": 0.1}
RESIDUAL_RUN = f"""eval_freq: 200
eval_horizons: [8]
algo: {{n_steps: 8, batch_size: 48, n_epochs: 1}}
env: {{quasi_newton_pairs: 3, dim: 3, horizon: 8}}
policy: {{log_std_init: -3.0}}
imitation: {{teacher: window_qn, teacher_hparams: {json.dumps(TEACHER_HPARAMS)}}}
residual: {{form: scale, range: 1.0}}
baseline: {{form: gap}}
select_best: teacher_cost
"""


def _quadratic(n: int, seed: int = 0, dim: int = 3):
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=dim)
    return family.sample(n, torch.Generator().manual_seed(seed), "test")


def _teacher(pairs: int = 3):
    return make_optimizer("window_qn", **TEACHER_HPARAMS).__class__(pairs=pairs, **TEACHER_HPARAMS)


def test_a_new_residual_policy_is_its_teacher(tmp_path):
    config_path = tmp_path / "run.yaml"
    config_path.write_text(RESIDUAL_RUN)
    config = load_training_config("l2o/Quadratic-v0", "ppo", config_path, num_envs=2)
    family = RunFamily.resolve("l2o/Quadratic-v0", config.env)
    venv, raw, residual = build_env(config, family, 0)
    meta = run_meta(config, family, "ppo", raw, 0, residual)
    model = build_model("ppo", config, venv, 0, tmp_path, 0)
    warm_starts(model, config, family, meta, tmp_path)
    assert meta["residual"]["teacher"] == "window_qn" and meta["residual"]["teacher_hparams"] == TEACHER_HPARAMS
    policy = LearnedOptimizer(model.policy, meta)
    problem = _quadratic(6)
    ours = unroll(policy, problem, 12, history=policy.history).objectives
    theirs = unroll(_teacher(), problem, 12, history=policy.history).objectives
    assert torch.equal(ours, theirs)
    # in the env, the agent's zero correction takes the teacher's steps too
    venv.reset()
    state = raw.episodes.state
    x0 = state.x.clone()
    expected = _teacher().step(state).clamp(-0.1, 0.1)
    venv.step(torch.zeros(venv.num_envs, 1).numpy())
    stepped = raw.episodes.state.x
    assert torch.allclose(stepped - x0, expected, atol=1e-6)


def test_residual_forms_correct_the_teachers_step():
    state = l2o_gym.state.OptimizationState.start(_quadratic(2), history=5)
    teacher_step = _teacher().step(state)
    ones = torch.ones_like(teacher_step)
    scaled = ResidualStep(_teacher(), "scale", 0.5).step(state, ones, 0.1)
    added = ResidualStep(_teacher(), "add", 0.5).step(state, -ones, 0.1)
    assert torch.allclose(scaled, teacher_step * torch.exp(torch.tensor(0.5)))
    assert torch.allclose(added, teacher_step - 0.05)
    with pytest.raises(ValueError, match="residual form"):
        ResidualStep(_teacher(), "multiply")


@pytest.mark.parametrize("form", ["gap", "cost"])
def test_reference_reward_pays_the_cost_difference_to_the_reference(form):
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    batch = EpisodeBatch(family, 4, horizon=6, history=5, reward=ReferenceReward(_teacher(pairs=2), form))
    batch.reset(torch.Generator().manual_seed(0))
    start = batch.state
    f0, f_star = start.f0.clone(), start.problem.optimum().clone()
    ref_curves = unroll(_teacher(pairs=2), start.problem.select_rows(torch.arange(4)), 6, history=5)
    rewards, objectives = [], [f0]
    for _ in range(6):  # the policy: plain gradient steps, not the reference
        action = (-0.05 * batch.state.grad / batch.observation_spec.action_scale).clamp(-1, 1)
        reward, terminated, _ = batch.step(action)
        assert not terminated.any()
        rewards.append(reward)
        objectives.append(batch.state.f.clone())
    ours = cost(curve_values(torch.stack(objectives), f_star))
    theirs = cost(curve_values(ref_curves.objectives, f_star))
    scale = (f0 - f_star).abs() if form == "gap" else torch.ones_like(f0)  # "cost": the difference itself
    assert torch.allclose(torch.stack(rewards).sum(0), (theirs - ours) / scale, rtol=1e-4, atol=1e-6)


def test_reference_reward_is_zero_for_the_reference_itself_across_restarts():
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    batch = EpisodeBatch(family, 5, horizon=(2, 5), history=5, reward=ReferenceReward(_teacher(2), "log_ratio"))
    generator = torch.Generator().manual_seed(1)
    batch.reset(generator)
    policy = _teacher(2)
    restarted = 0
    for _ in range(15):
        step = policy.step(batch.state).clamp(-0.1, 0.1) / batch.observation_spec.action_scale
        reward, terminated, truncated = batch.step(step)
        assert torch.allclose(reward, torch.zeros_like(reward), atol=1e-5)
        done = terminated | truncated
        restarted += int(done.sum())
        batch.reset_rows(done, generator)
    assert restarted > 5


def test_residual_and_baseline_settings_are_checked(tmp_path):
    base = {"timesteps": 10, "num_envs": 2, "coordinatewise": True, "eval_freq": 5}
    with pytest.raises(ConfigError, match="residual needs an imitation section"):
        TrainingConfig.parse({**base, "residual": {}}, "x.yaml")
    with pytest.raises(ConfigError, match="baseline needs imitation.teacher one of window_qn"):
        TrainingConfig.parse({**base, "imitation": {"teacher": "adam"}, "baseline": {}}, "x.yaml")
    with pytest.raises(ConfigError, match="residual.form must be one of scale, add"):
        TrainingConfig.parse({**base, "imitation": {"teacher": "window_qn"}, "residual": {"form": "x"}}, "x.yaml")
    with pytest.raises(ConfigError, match="select_best teacher_cost needs an imitation"):
        TrainingConfig.parse({**base, "select_best": "teacher_cost"}, "x.yaml")
    parsed = TrainingConfig.parse(
        {**base, "step": {"form": "log_magnitude"}, "imitation": {"teacher": "window_qn"}, "residual": {}}, "x.yaml"
    )
    assert parsed.step.form == "linear" and parsed.residual.form == "scale"


def test_residual_run_with_the_baseline_reward_trains_saves_and_loads(tmp_path):
    result = train_tiny(tmp_path, RESIDUAL_RUN, timesteps=400, tiny_env=False)
    assert result.validation[0]["cost_net_wins_vs_teacher"] == 0.0  # step 0: the teacher itself
    assert "cost_win_rate_vs_teacher_T8" in result.validation[-1]
    for folder in (result.best, result.final):
        meta = json.loads((folder / META_FILE).read_text())
        assert meta["residual"]["form"] == "scale" and meta["residual"]["pairs"] == 3
    rule = load_rule(result.final)
    assert isinstance(rule, LearnedOptimizer) and rule.residual is not None
    start = load_rule(result.out_dir / "warm_start")  # where PPO started: the teacher itself
    problem = _quadratic(5, seed=4)
    assert torch.equal(unroll(start, problem, 9, history=25).objectives, unroll(_teacher(), problem, 9).objectives)
    curves = unroll(rule, _quadratic(5, seed=2), 10, history=rule.history)
    assert torch.isfinite(curves.objectives).all()
    point = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    optimizer = LearnedTorchOptimizer([point], result.final)
    losses = [optimizer.step(lambda: _quadratic_loss(optimizer, point)) for _ in range(20)]
    assert float(losses[-1]) < float(losses[0])


def _quadratic_loss(optimizer, point):
    optimizer.zero_grad()
    loss = (torch.tensor([1.0, 3.0, 0.3]) * point**2).sum()
    loss.backward()
    return loss


def _cell(family, lever, best_step, net_wins, test_wins, seed=0, mean_cost=1.0):
    """A recorded cell: validation history (best model at `best_step`) and its test pairs."""
    validation = [
        {"timesteps": 0.0, "cost_net_wins_vs_teacher": 0.0, "mean_cost": 2.0},
        {"timesteps": float(best_step), "cost_net_wins_vs_teacher": net_wins, "mean_cost": mean_cost},
        {"timesteps": float(best_step + 100), "cost_net_wins_vs_teacher": 0.99, "mean_cost": 0.1},  # not the best model
    ]
    pairs = [
        {
            "method": method,
            "against": "teacher",
            "horizon": horizon,
            "timesteps": step,
            "win_fraction": test_wins,
            "sign_test_p": 1e-9,
            "wilcoxon_p": 1e-9,
        }
        for method, step in (("best_model", best_step), ("model", best_step + 100))
        for horizon in (40, 100)
    ]
    return {"family": family, "lever": lever, "seed": seed, "cpu_s": 60.0, "validation": validation, "pairs": pairs}


def test_the_lever_is_chosen_by_validation_never_by_test():
    from benchmarks.beyond_warm_start import choose_levers, nearest_goal_on_test, summary

    cells = [
        _cell("logistic", "a", 200, net_wins=0.3, test_wins=0.90),  # best on test
        _cell("logistic", "b", 300, net_wins=0.6, test_wins=0.60),  # best on validation
        _cell("logistic", "b", 300, net_wins=0.9, test_wins=0.70, seed=1),  # other seeds do not choose
        _cell("logistic", "c", 400, net_wins=0.5, test_wins=0.95, seed=0),
        _cell("robust", "a", 100, net_wins=0.2, test_wins=0.5),
        _cell("robust", "c", 100, net_wins=0.4, test_wins=0.5, seed=2),
    ]
    assert choose_levers(cells) == {"logistic": "b", "robust": "a"}
    assert nearest_goal_on_test([c for c in cells if c["family"] == "logistic"]) == "c"
    # the seeds' tally: seed 0 misses the goal (60 %), seed 1 meets it (70 %)
    assert "| logistic | b | c | 1 / 2 |" in summary(cells)


def test_the_validation_figure_is_the_best_models_record():
    from benchmarks.beyond_warm_start import choose_levers, validation_figure

    cell = _cell("quadratic", "a", 500, net_wins=0.25, test_wins=0.5, mean_cost=3.0)
    assert validation_figure(cell) == (0.25, -3.0)  # not the later, higher record of the final model
    tied = [cell, _cell("quadratic", "b", 500, net_wins=0.25, test_wins=0.5, mean_cost=2.0)]
    assert choose_levers(tied) == {"quadratic": "b"}  # ties: the lower mean validation cost
    cell["validation"] = cell["validation"][:1]
    with pytest.raises(ValueError, match="no validation record at the best model's step 500"):
        validation_figure(cell)


def _hand_rows(learned, costs):
    """Test pairs of a best model with mean cost `learned[T]` against rules with mean costs `costs[name][T]`."""
    return [
        {
            "method": "best_model",
            "against": name,
            "horizon": horizon,
            "mean_cost": learned[horizon],
            "against_mean_cost": by_horizon[horizon],
            "win_fraction": 0.7,
            "win_low": 0.6,
            "win_high": 0.8,
            "sign_test_p": 1e-5,
            "wilcoxon_p": 2e-5,
        }
        for name, by_horizon in costs.items()
        for horizon in (40, 100)
    ]


def test_the_best_learned_rule_is_chosen_by_validation_cost_and_paired_with_the_best_hand_rule():
    from benchmarks.beyond_warm_start import choose_best_rules, hand_rule_table

    low_test = _cell("two_layer", "a", 100, net_wins=0.9, test_wins=0.9, mean_cost=5.0)  # most net wins
    low_validation = _cell("two_layer", "b", 100, net_wins=0.1, test_wins=0.5, mean_cost=4.0)
    other_seed = _cell("two_layer", "a", 100, net_wins=0.1, test_wins=0.5, seed=1, mean_cost=1.0)
    assert choose_best_rules([low_test, low_validation, other_seed]) == {"two_layer": "b"}
    rules = {"adam@40": {40: 7.0, 100: 12.0}, "window_qn@100": {40: 5.4, 100: 8.7}, "adam@100": {40: 7.1, 100: 12.1}}
    low_validation["hand_rules"] = _hand_rows({40: 6.0, 100: 9.0}, rules)
    low_test["hand_rules"] = _hand_rows({40: 1.0, 100: 1.0}, rules)
    table = hand_rule_table([low_test, low_validation, other_seed]).splitlines()
    # the chosen lever first; against the rule with the lowest mean cost at each T, and tuned Adam tuned at T
    assert table[2].startswith(
        "| two_layer | b (chosen) | 0 | 40 | 6 | window_qn@100 5.4 | 70 % [60, 80] | 1e-05 / 2e-05 | adam@40 7 |"
    )
    assert table[2].endswith("| 7 | 70 % [60, 80] | no / yes |")  # 6.0: above window_qn@100, below adam@40
    assert table[3].endswith("| no / no |")  # 9.0: not below window_qn@100's 8.7, tuned at T = 100 itself
    assert "| 100 | 9 | window_qn@100 8.7 |" in table[3] and "| 12.1 |" in table[3]
    assert table[4].startswith("| two_layer | a | 0 | 40 | 1 |") and len(table) == 6  # no hand pairs: no row


def test_a_seed_below_the_validation_threshold_is_counted_by_its_restart():
    from benchmarks.beyond_warm_start import summary

    cells = [
        _cell("two_layer", "b", 300, net_wins=0.6, test_wins=0.8),
        _cell("two_layer", "b", 300, net_wins=0.1, test_wins=0.5, seed=1),  # below 0.25: retrained
        _cell("two_layer", "b", 300, net_wins=0.5, test_wins=0.7, seed=11),
        _cell("two_layer", "b", 300, net_wins=0.2, test_wins=0.9, seed=2),  # below, but no restart was run
    ]
    page = summary(cells)
    assert "| two_layer | b | 1 | +0.10 | 50 % (1e-09) | 50 % (1e-09) | 1.0 | retrained" in page
    assert "| two_layer | b | 1 → 11 (restart) | +0.50 | 70 % (1e-09) | 70 % (1e-09) | 2.0 | yes |" in page
    assert "| two_layer | b | b | 3 / 3 |" in page  # seeds 0, 1 → 11 and 2 counted; the failed run is not
