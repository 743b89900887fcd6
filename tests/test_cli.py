"""The command line, run in-process through train_agent.main(argv)."""

import json

import pytest

import train_agent
from agents.runtime import saved_rules
from agents.runtime.saved_rules import write_meta

TEST_META = {"kind": "test", "env_id": "l2o/Quadratic-v0", "observation": "dict", "history": 25, "action_scale": 0.1}


def load_test_rule(folder, meta, device):
    from agents.hand_designed import make_optimizer

    return make_optimizer("gd", lr=0.01)


def no_work(*args, **kwargs):
    raise AssertionError("work started although the arguments are bad")


def test_list_prints_every_id_with_dimension_and_description(capsys):
    assert train_agent.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "l2o/Quadratic-v0" in lines and "l2o/Rosenbrock-v0" in lines
    assert lines["l2o/Quadratic-v0"].split()[1] == "10"
    assert "Andrychowicz" in lines["l2o/Quadratic-v0"]
    for env_id in ("l2o/LogisticRegression-v0", "l2o/RobustLinearRegression-v0", "l2o/TwoLayerNet-v0"):
        if env_id in train_agent.l2o_env_ids():
            assert env_id in lines and "cannot build" not in lines[env_id]


def test_evaluate_on_a_tiny_setting_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["evaluate", "--env", "l2o/Quadratic-v0", "--optimizers", "gd,momentum", "--instances", "5"]
    argv += ["--horizon", "6", "--tune-instances", "4", "--cache", str(tmp_path / "tuned.json"), "--out", str(out)]
    assert train_agent.main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["results"]
    assert (
        entry["method_order"] == ["gd", "momentum", "adam"] and len(entry["methods"]) == 3
    )  # tuned adam added as the reference
    assert entry["instances"] == 5 and entry["horizon"] == 6 and entry["split"] == "test"
    for name in ("gd", "momentum", "adam"):
        assert f"| {name} |" in printed
    assert (out / "report.md").exists() and (out / entry["plot"]).exists()
    assert (tmp_path / "tuned.json").exists()  # the tuned settings were cached


def test_evaluate_several_families_with_a_variation(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["evaluate", "--env", "l2o/Quadratic-v0,l2o/Rosenbrock-v0", "--family-kwarg", "dim=3"]
    argv += ["--optimizers", "gd", "--instances", "4", "--horizon", "5", "--tune-instances", "3"]
    argv += ["--cache", str(tmp_path / "tuned.json"), "--out", str(out)]
    assert train_agent.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["env_id"] for r in report["results"]] == ["l2o/Quadratic-v0", "l2o/Rosenbrock-v0"]
    assert all(r["dim"] == 3 and r["family_kwargs"] == {"dim": 3} for r in report["results"])
    assert (out / "all_families.png").exists()
    assert capsys.readouterr().out.count("| gd |") == 2


def test_tune_prints_and_caches_the_settings(tmp_path, capsys):
    cache = tmp_path / "tuned.json"
    argv = ["tune", "--env", "l2o/Quadratic-v0", "--optimizers", "gd,adam", "--horizon", "5"]
    argv += ["--tune-instances", "3", "--cache", str(cache)]
    assert train_agent.main(argv) == 0
    printed = capsys.readouterr().out
    assert "gd" in printed and "lr=" in printed and str(cache) in printed
    entries = json.loads(cache.read_text())["settings"]
    assert sorted(e["name"] for e in entries) == ["adam", "gd"]


def test_evaluate_includes_a_saved_policy(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(saved_rules.LOADERS, "test", "tests.test_cli:load_test_rule")
    write_meta(tmp_path / "my_policy", TEST_META)
    out = tmp_path / "report"
    argv = ["evaluate", "--env", "l2o/Quadratic-v0", "--optimizers", "adam", "--policy", str(tmp_path / "my_policy")]
    argv += ["--instances", "4", "--horizon", "5", "--tune-instances", "3", "--cache", str(tmp_path / "t.json")]
    assert train_agent.main([*argv, "--out", str(out)]) == 0
    (entry,) = json.loads((out / "report.json").read_text())["results"]
    assert entry["method_order"] == ["adam", "my_policy"]
    assert entry["methods"]["my_policy"]["win_rate"] is not None
    assert "| my_policy |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--optimizers", "adam,sgd9"], "unknown optimizer"),
        (["--optimizers", ","], "empty"),
        (["--optimizers", "gd,gd"], "twice"),
        (["--horizon", "0"], "positive"),
        (["--instances", "-3"], "positive"),
        (["--split", "holdout"], "invalid choice"),
        (["--policy", "no/such/folder"], "does not exist"),
        (["--policy", "FOREIGN"], "not a saved l2o_gym optimizer"),
        (["--out", "A_FILE"], "not a folder"),
        (["--policy", "SAVED_ADAM"], "also a hand-designed optimizer"),
        (["--env", "l2o/Nothing-v0"], "unknown environment"),
        (["--env", "l2o/Quadratic-v0,l2o/Quadratic-v0"], "twice"),
        (["--family-kwarg", "colour=3"], "unknown keyword"),
        (["--family-kwarg", "dim=0"], "dim"),
        (["--family-kwarg", "dim"], "KEY=VALUE"),
    ],
)
def test_bad_evaluate_arguments_fail_before_any_work(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_agent, "tuned_rules", no_work)
    monkeypatch.setattr(train_agent, "evaluate_and_report", no_work)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.bin").write_bytes(b"\0")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    saved_adam = tmp_path / "adam"  # a valid saved optimizer whose name clashes with tuned adam
    write_meta(saved_adam, TEST_META)
    monkeypatch.setitem(saved_rules.LOADERS, "test", "tests.test_cli:load_test_rule")
    paths = {"FOREIGN": str(foreign), "A_FILE": str(a_file), "SAVED_ADAM": str(saved_adam)}
    extra = [paths.get(e, e) for e in extra]
    argv = ["evaluate", "--env", "l2o/Quadratic-v0", "--out", str(tmp_path / "out"), *extra]
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_tune_arguments_fail_before_any_work(monkeypatch, capsys):
    import agents.hand_designed.tuning

    monkeypatch.setattr(agents.hand_designed.tuning, "tuned_optimizer", no_work)
    for argv, message in [
        (["tune", "--env", "l2o/Quadratic-v0", "--optimizers", "nope"], "unknown optimizer"),
        (["tune", "--env", "l2o/Quadratic-v0", "--horizon", "0"], "positive"),
        (["tune"], "--env"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            train_agent.main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_no_arguments_runs_the_default_job(monkeypatch):
    seen = {}

    def record(args):
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(train_agent, "run_train", record)
    assert train_agent.main([]) == 0
    assert seen["env"] == "l2o/LogisticRegression-v0" and seen["algo"] == "ppo"


def test_leading_options_mean_train(monkeypatch):
    seen = {}
    monkeypatch.setattr(train_agent, "run_train", lambda args: seen.update(vars(args)) or 0)
    assert train_agent.main(["--env", "l2o/Quadratic-v0", "--algo", "sac", "--timesteps", "10"]) == 0
    assert seen["algo"] == "sac" and seen["timesteps"] == 10


def test_every_subcommand_is_one_function():
    parser = train_agent.build_parser()
    for command in ("list", "tune", "evaluate"):
        args = parser.parse_args([command] + (["--env", "l2o/Quadratic-v0"] if command != "list" else []))
        assert callable(args.run)


@pytest.mark.slow
def test_the_default_job_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("L2O_GYM_CACHE", str(tmp_path / "cache"))
    assert train_agent.main([]) == 0
    report = json.loads((tmp_path / "runs" / "default" / "report_T40" / "report.json").read_text())
    (entry,) = report["results"]
    assert entry["env_id"] == "l2o/LogisticRegression-v0" and entry["split"] == "test"
    assert "ppo" in entry["method_order"]
    assert "| ppo |" in capsys.readouterr().out
