"""The typed training configuration: every section parsed once, every bad key, type or value one
line naming the key, the value, what is allowed and the file; the command line exits 2 before any
work."""

from __future__ import annotations

import dataclasses

import pytest

import agents.rl.sb3_training
import train_agent
from agents.rl.config import (
    BackpropSettings,
    ConfigError,
    ImitationSettings,
    MetaTrainingConfig,
    TrainingConfig,
    with_window_pairs,
)
from agents.rl.config_loading import check_training_config, load_training_config
from agents.rl.hyperparams import HYPERPARAMS_FILE, merged_hyperparams


def no_work(*args, **kwargs):
    raise AssertionError("work started although the configuration is bad")


def test_the_shipped_hyperparameters_parse_for_every_env_and_algorithm():
    import yaml

    data = yaml.safe_load(HYPERPARAMS_FILE.read_text())
    for algo in data["default"]:
        for env_id in ["l2o/Quadratic-v0", *(k for k in data if k != "default")]:
            config = load_training_config(env_id, algo)
            check_training_config(config, env_id, algo)
    ppo = load_training_config("l2o/LogisticRegression-v0", "ppo")
    assert ppo.step.form == "log_magnitude" and ppo.step.log_range == 10.0
    assert ppo.imitation == ImitationSettings(teacher="window_qn", instances=512, epochs=100)
    assert ppo.env["quasi_newton_pairs"] == 5 and ppo.eval_horizons == [40, 100] and ppo.backprop is None


def test_defaults_live_in_the_settings_and_overrides_apply():
    assert ImitationSettings().teacher == "momentum" and ImitationSettings().steps_of_opening == 20
    assert BackpropSettings().iterations == 100 and BackpropSettings().lr == 1e-4
    assert BackpropSettings.parse({"lr": "3e-3"}).lr == 0.003  # YAML 1.1 reads 3e-3 as a string
    config = load_training_config("l2o/Quadratic-v0", "ppo", timesteps=10, num_envs=3, env_kwargs={"dim": 3})
    assert (config.timesteps, config.num_envs, config.env["dim"]) == (10, 3, 3)


def test_a_dict_layout_run_drops_the_coordinatewise_only_settings():
    with pytest.warns(UserWarning, match="imitation"):
        config = load_training_config("l2o/LogisticRegression-v0", "ppo", coordinatewise=False)
    assert config.imitation is None and config.backprop is None and config.step.form == "linear"
    assert "quasi_newton_pairs" not in config.env


@pytest.mark.parametrize(
    "text, key, allowed",
    [
        ("timesteps: abc\n", "timesteps", "positive integer"),
        ("num_envs: -1\n", "num_envs", "positive integer"),
        ("coordinatewise: maybe\n", "coordinatewise", "true or false"),
        ("eval_horizons: [40, 0]\n", "eval_horizons", "list of positive integers"),
        ("learning_rat: 3\n", "learning_rat", "allowed: timesteps"),
        ("env: {horizon: 0}\n", "horizon", "positive integer"),
        ("env: {colour: 3}\n", "colour", "allowed"),
        ("algo: {n_step: 8}\n", "n_step", "allowed: "),
        ("algo: {learning_rate: fast}\n", "algo.learning_rate", "lin_0.0003"),
        ("policy: {activation_fn: sigmoidish}\n", "activation_fn", "elu"),
        ("policy: {net_arc: [8]}\n", "net_arc", "net_arch"),
        ("step: {form: cubic}\n", "step.form", "linear, log_magnitude"),
        ("step: {log_range: -1}\n", "step.log_range", "positive finite"),
        ("imitation: {teacher: newton}\n", "imitation.teacher", "momentum"),
        ("imitation: {teacher: gd, epoch: 2}\n", "unknown imitation setting 'epoch'", "epochs"),
        ("imitation: {teacher: gd, opening_steps: 5}\n", "opening_steps", "opening"),
        ("imitation: {teacher: gd, teacher_hparams: {max_step: 0.1}}\n", "max_step", "allowed"),
        ("backprop: {iteration: 3}\n", "unknown backprop setting 'iteration'", "iterations"),
        ("backprop: {lr: 0}\n", "backprop.lr", "positive finite"),
    ],
)
def test_a_bad_setting_is_one_line_naming_key_value_allowed_and_file(tmp_path, text, key, allowed):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        check_training_config(load_training_config("l2o/Quadratic-v0", "ppo", path), "l2o/Quadratic-v0", "ppo")
    message = str(error.value)
    assert key in message and allowed in message and str(path) in message and "\n" not in message


def test_the_warm_starts_need_a_coordinatewise_ppo_or_a2c_said_once(tmp_path):
    path = tmp_path / "sac.yaml"
    path.write_text("imitation: {teacher: gd}\n")
    with pytest.raises(ConfigError, match="coordinatewise ppo or a2c"):
        check_training_config(load_training_config("l2o/Quadratic-v0", "sac", path), "l2o/Quadratic-v0", "sac")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"a: [1, 2\n", "not valid YAML"),
        (b"- 1\n- 2\n", "must hold a mapping"),
        (bytes(range(256)), "not text"),
    ],
)
def test_files_that_are_no_yaml_mapping(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        merged_hyperparams("l2o/Quadratic-v0", "ppo", path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: [1, 2\n", "not valid YAML"),
        ("- 1\n", "must hold a mapping"),
        ("learning_rat: 3\n", "unknown hyperparameter section"),
        ("timesteps: abc\n", "timesteps must be a positive integer"),
        ("algo: {n_step: 8}\n", "unknown algo keyword 'n_step'"),
        ("env: {horizon: 0}\n", "horizon must be a positive integer"),
        ("num_envs: -1\n", "num_envs must be a positive integer"),
        ("policy: {activation_fn: sigmoidish}\n", "activation_fn must be one of"),
        ("step: {form: cubic}\n", "step.form must be one of"),
        ("imitation: {teacher: newton}\n", "imitation.teacher must be one of"),
    ],
)
def test_the_command_line_exits_2_before_any_work(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.setattr(agents.rl.sb3_training, "train_sb3", no_work)
    monkeypatch.setattr(train_agent, "evaluate_and_report", no_work)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["--env", "l2o/Quadratic-v0", "--config", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    assert message in line and str(path) in line
    assert not out.exists()


def test_binary_config_file_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["--env", "l2o/Quadratic-v0", "--config", str(path), "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and "not text" in capsys.readouterr().err


def test_meta_training_takes_a_timesteps_key_and_refuses_unknown_ones(tmp_path, monkeypatch, capsys):
    import agents.meta.meta_training

    seen = {}

    def record(env_id, algo, timesteps, seed, out_dir, options, **kwargs):
        seen.update(horizon=options.horizon, lr=options.lr, timesteps=timesteps)
        raise SystemExit(0)

    monkeypatch.setattr(agents.meta.meta_training, "train_meta_optimizer", record)
    path = tmp_path / "meta.yaml"
    path.write_text("timesteps: 500\nhorizon: 7\nlr: 1.0e-3\n")
    with pytest.raises(SystemExit):
        train_agent.main(
            ["--env", "l2o/Quadratic-v0", "--algo", "l2l", "--config", str(path), "--out", str(tmp_path / "m")]
        )
    assert seen["timesteps"] == 500 and seen["horizon"] == 7 and seen["lr"] == 0.001
    for text, message in (("horizn: 7\n", "unknown meta-training setting(s) ['horizn']"), ("lr: abc\n", "lr must be")):
        path.write_text(text)
        with pytest.raises(SystemExit) as exit_info:
            train_agent.main(["--env", "l2o/Quadratic-v0", "--algo", "l2l", "--config", str(path)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_meta_config_file_holds_timesteps_and_the_meta_training_options():
    config = MetaTrainingConfig.parse({"timesteps": 500, "horizon": 7}, "test.yaml")
    assert config.timesteps == 500 and config.options.horizon == 7 and config.options.truncation == 20
    with pytest.raises(ConfigError, match="timesteps must be a positive integer"):
        MetaTrainingConfig.parse({"timesteps": "abc"}, "test.yaml")
    with pytest.raises(ConfigError, match="unknown meta-training setting"):
        MetaTrainingConfig.parse({"horizn": 7}, "test.yaml")


def test_the_window_teachers_use_the_rows_quasi_newton_pairs():
    from agents.hand_designed import make_optimizer

    teacher = with_window_pairs(make_optimizer("window_qn"), 3)
    assert teacher.pairs == 3 and teacher.hparams == make_optimizer("window_qn").hparams
    assert with_window_pairs(make_optimizer("window_adam_qn"), 0).pairs == 5  # rows without the pairs
    assert with_window_pairs(make_optimizer("adam"), 3).name == "adam"


def test_the_window_adam_teachers_beta_is_one_of_the_rows_averages():
    from agents.hand_designed.window_adam_quasi_newton import ADAM_BETA
    from l2o_gym.features import MOMENTUM_BETAS

    assert ADAM_BETA in MOMENTUM_BETAS


def test_the_written_hyperparameters_parse_back(tmp_path):
    import yaml

    config = load_training_config("l2o/RobustLinearRegression-v0", "ppo")
    again = TrainingConfig.parse(yaml.safe_load(yaml.safe_dump(config.to_dict())), "again")
    assert dataclasses.replace(again, source=config.source) == config
