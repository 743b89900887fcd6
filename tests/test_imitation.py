"""Imitation warm start: teacher rows along the teacher's trajectory, and a policy fitted to them."""

import pytest
import torch
from stable_baselines3 import PPO

import l2o_gym
from agents.hand_designed import make_optimizer
from agents.rl.imitation import imitate, teacher_rows
from agents.rl.sb3_training import imitation_teacher, train_sb3
from agents.runtime.learned_optimizer import LearnedOptimizer
from agents.runtime.phased_rule import PhasedRule
from agents.runtime.saved_rules import load_rule
from agents.runtime.step_forms import StepForm, StepFormVecEnv
from l2o_gym.observation_spec import ObservationSpec
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll
from tests.tiny_training import train_tiny


def test_teacher_rows_pair_each_coordinate_with_its_step():
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    teacher = make_optimizer("gd", lr=0.01)
    rows, actions = teacher_rows(
        teacher, family, instances=4, horizon=5, observation=ObservationSpec("coordinatewise", 6, 0.1)
    )
    assert rows.shape == (4 * 5 * 3, ObservationSpec("coordinatewise", 6).num_features)
    assert actions.shape == (60, 1) and actions.abs().max() <= 1.0
    # gd's action is -lr * g / action_scale; the squashed-gradient feature is g / (1 + |g|)
    squashed = rows[:, 2 * 6 + 1 : 2 * 6 + 2]
    grad = squashed / (1 - squashed.abs())
    assert torch.allclose(actions, (-0.01 * grad / 0.1).clamp(-1, 1), atol=1e-5)
    with pytest.raises(ValueError, match="coordinatewise ObservationSpec"):
        teacher_rows(teacher, family, instances=4, horizon=5, observation=ObservationSpec("dict", 6))


@pytest.mark.parametrize("form", [None, StepForm("log_magnitude", log_range=10.0)], ids=["plain", "log_magnitude"])
def test_imitation_makes_the_policy_act_like_the_teacher(form):
    """The policy fitted to gd's steps (through the step form, if any) optimizes like gd."""
    torch.manual_seed(0)
    env = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=0, coordinatewise=True, dim=3, action_scale=0.1)
    env = env if form is None else StepFormVecEnv(env, form)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=16, policy_kwargs={"log_std_init": -3.0}, seed=0)
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    observation = ObservationSpec("coordinatewise", 25, 0.1)
    rows, actions = teacher_rows(
        make_optimizer("gd", lr=0.01), family, instances=16, horizon=20, observation=observation
    )
    targets = actions if form is None else form.policy_outputs(actions[:, 0])
    before = torch.nn.functional.mse_loss(model.policy.get_distribution(rows).distribution.mean, targets)
    after = imitate(model.policy, rows, targets, epochs=40)
    assert after < 0.2 * float(before)
    meta = {"observation": observation.to_meta(), "algo": "ppo", "dim": 3}
    if form is not None:
        meta["step_form"] = form.to_meta()
    problem = family.sample(8, torch.Generator().manual_seed(3), "test")
    learned = unroll(LearnedOptimizer(model.policy, meta), problem, 20).final
    assert (learned < problem.loss(problem.init())).float().mean() > 0.8  # it optimizes, like gd


@pytest.mark.parametrize(
    "settings",
    [
        "{teacher: gd, instances: 4, epochs: 2}",
        "{teacher: gd, instances: 4, epochs: 2, dagger_rounds: 1}",
        "{teacher: gd, opening: momentum, opening_steps: 3, instances: 4, epochs: 2}",
    ],
)
def test_train_sb3_with_an_imitation_warm_start(tmp_path, settings):
    result = train_tiny(
        tmp_path,
        f"eval_freq: 400\nalgo: {{n_steps: 8, batch_size: 48, n_epochs: 1}}\nimitation: {settings}\n",
        timesteps=200,
        reference=make_optimizer("gd", lr=0.01),
    )
    rule = load_rule(result.final)
    assert rule.coordinatewise and rule.step_form.name == "log_magnitude"
    assert result.validation[0]["timesteps"] == 0  # the warm-started policy competes for best_model


def test_imitation_teacher_is_tuned_and_phased_on_request():
    plain = imitation_teacher({"teacher": "gd"}, "l2o/Quadratic-v0", 8)
    assert plain.name == "gd"
    phased = imitation_teacher({"teacher": "gd", "opening": "momentum", "opening_steps": 3}, "l2o/Quadratic-v0", 8)
    assert isinstance(phased, PhasedRule) and phased.steps == 3
    assert phased.opening.name == "momentum" and phased.main.name == "gd"
    given = imitation_teacher({"teacher": "window_qn", "teacher_hparams": {"max_step": 0.3}}, "l2o/Quadratic-v0", 8)
    assert given.hparams == {"lr": 1.0, "max_step": 0.3, "gd_lr": 0.1}  # as given, the rest at defaults
    with pytest.raises(ValueError, match="teacher_hparams must be a mapping"):
        imitation_teacher({"teacher": "gd", "teacher_hparams": 0.1}, "l2o/Quadratic-v0", 8)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        imitation_teacher({"teacher": "gd", "teacher_hparams": {"max_step": 0.1}}, "l2o/Quadratic-v0", 8)


def test_imitation_settings_are_checked(tmp_path):
    config = tmp_path / "bad.yaml"
    for text, message in (
        ("imitation: {teacher: gd, epoch: 2}\n", "unknown imitation setting"),
        ("imitation: {teacher: gd, opening_steps: 5}\n", "opening_steps needs an opening"),
    ):
        config.write_text(text)
        with pytest.raises(ValueError, match=message):
            train_sb3(
                "l2o/Quadratic-v0",
                "ppo",
                out_dir=tmp_path / "r",
                timesteps=100,
                num_envs=2,
                config=config,
                reference=make_optimizer("gd", lr=0.01),
                progress_bar=False,
                env_kwargs={"dim": 3},
            )


def test_rows_along_a_student_label_the_students_own_states_with_the_teachers_action():
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    student = make_optimizer("gd", lr=0.001)  # a poor student: its states differ from the teacher's
    teacher = make_optimizer("gd", lr=0.01)
    sizes = {"instances": 4, "horizon": 5, "observation": ObservationSpec("coordinatewise", 6, 0.1), "seed": 0}
    rows, actions = teacher_rows(teacher, family, student=student, **sizes)
    own_rows, _ = teacher_rows(teacher, family, **sizes)
    assert rows.shape == own_rows.shape and not torch.allclose(rows, own_rows)
    squashed = rows[:, 2 * 6 + 1 : 2 * 6 + 2]
    grad = squashed / (1 - squashed.abs())
    assert torch.allclose(actions, (-0.01 * grad / 0.1).clamp(-1, 1), atol=1e-5)  # the teacher's action there


def test_a_policy_with_quasi_newton_features_imitates_the_window_rule_and_keeps_its_layout(tmp_path):
    result = train_tiny(
        tmp_path,
        "eval_freq: 400\nalgo: {n_steps: 8, batch_size: 48, n_epochs: 1}\n"
        "env: {quasi_newton_pairs: 3}\nimitation: {teacher: window_qn, instances: 8, epochs: 20}\n"
        "backprop: {iterations: 2, batch_size: 4, instances: 8, validation_instances: 4}\n",
        timesteps=200,
    )
    rule = load_rule(result.final)
    assert rule.observation_spec.quasi_newton_pairs == 3 and rule.meta["observation"]["quasi_newton_pairs"] == 3
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    state = OptimizationState.start(family.sample(4, torch.Generator().manual_seed(0), "test"))
    assert rule.observe(state).shape == (12, ObservationSpec("coordinatewise", 25, quasi_newton_pairs=3).num_features)
    assert torch.isfinite(unroll(rule, family.sample(4, torch.Generator().manual_seed(1), "test"), 8).final).all()


def test_a_policy_with_time_features_copies_a_rule_that_reads_the_step_count(tmp_path):
    """The window Adam rule with a step size decaying within the horizon: a student that sees t
    (time features) follows it; the layout is recorded and read back."""
    teacher_hparams = {"lr": 0.05, "lr_decay_steps": 4.0, "qn_lr": 0.3, "qn_max_step": 0.02}
    result = train_tiny(
        tmp_path,
        "eval_freq: 400\nalgo: {n_steps: 8, batch_size: 48, n_epochs: 1}\nstep: {form: linear}\n"
        "env: {quasi_newton_pairs: 3, time_features: true}\n"
        f"imitation: {{teacher: window_adam_qn, teacher_hparams: {teacher_hparams}, instances: 64, epochs: 60}}\n",
        timesteps=100,
    )
    student = load_rule(result.best)
    assert student.observation_spec == ObservationSpec("coordinatewise", 25, 0.1, 3, True)
    assert student.meta["observation"]["time_features"]
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=3)
    state = OptimizationState.start(family.sample(8, torch.Generator().manual_seed(5), "test"))
    teacher = make_optimizer("window_adam_qn", **teacher_hparams)
    layout = ObservationSpec("coordinatewise", 25, quasi_newton_pairs=3, time_features=True)
    assert student.observe(state).shape == (24, layout.num_features)
    student.reset(state)
    errors, sizes, student_sizes = [], [], []
    for _ in range(8):  # along the teacher's own trajectory
        step, copied = teacher.step(state), student.step(state)
        errors.append(float((copied - step).abs().mean()))
        sizes.append(float(step.abs().mean()))
        student_sizes.append(float(copied.abs().mean()))
        state.advance(step)
    assert sizes[-1] < 0.4 * sizes[0] and student_sizes[-1] < 0.5 * student_sizes[0]  # both shrink with t
    assert sum(errors) < 0.15 * sum(sizes)
