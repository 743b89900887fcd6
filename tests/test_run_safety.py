"""Nothing lost, nothing run: run folders, verified checkpoints, resume, output paths."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

import agents.rl.sb3_training
import train_agent
from agents.rl.checkpoints import CheckpointError, latest_checkpoint
from agents.rl.run_folder import RunFolderError, check_run_folder, clear_run
from tests.tiny_training import train_tiny

CONFIG = "eval_freq: 200\nalgo: {n_steps: 8, batch_size: 48, n_epochs: 1}\nenv: {dim: 3, horizon: 8}\n"


def no_work(*args, **kwargs):
    raise AssertionError("work started although the run cannot go on")


def tiny_run(tmp_path, timesteps=400, **kwargs):
    result = train_tiny(tmp_path, CONFIG, timesteps=timesteps, tiny_env=False, **kwargs)
    return result, tmp_path / "run.yaml"


def resume_argv(tmp_path, config):
    return ["--env", "l2o/Quadratic-v0", "--config", str(config), "--num-envs", "2", "--timesteps", "800"] + [
        "--out",
        str(tmp_path / "run"),
        "--resume",
        "--no-progress",
    ]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    return line


def snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run (two checkpoints kept) to copy."""
    folder = tmp_path_factory.mktemp("finished")
    tiny_run(folder)
    return folder


@pytest.fixture
def run_copy(finished_run, tmp_path):
    import shutil

    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(run_copy, monkeypatch, capsys):
    monkeypatch.setattr(agents.rl.sb3_training, "train_sb3", no_work)
    before = snapshot(run_copy / "run")
    argv = ["--env", "l2o/Quadratic-v0", "--algo", "ppo", "--timesteps", "1000", "--out", str(run_copy / "run")]
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(argv)
    line = error_line(capsys)
    assert exit_info.value.code == 2 and "--resume" in line and "--overwrite" in line
    assert snapshot(run_copy / "run") == before
    with pytest.raises(RunFolderError, match="--overwrite"):
        tiny_run(run_copy)


def test_overwrite_replaces_the_run_on_purpose(run_copy):
    (run_copy / "run" / "notes.txt").write_text("mine")
    result, _ = tiny_run(run_copy, timesteps=200, overwrite=True)
    assert result.timesteps < 400 and (run_copy / "run" / "notes.txt").read_text() == "mine"
    assert latest_checkpoint(result.out_dir).timesteps == result.timesteps


def test_clear_run_removes_only_what_a_run_wrote(tmp_path):
    (tmp_path / "best_model").mkdir()
    (tmp_path / "hyperparams.yaml").write_text("x")
    (tmp_path / "report_T40").mkdir()
    (tmp_path / "data.csv").write_text("keep")
    clear_run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]
    with pytest.raises(RunFolderError, match="exclude each other"):
        check_run_folder(tmp_path, resume=True, overwrite=True)


def test_two_checkpoints_are_kept_and_resume_continues(run_copy):
    names = sorted(p.name for p in (run_copy / "run" / "checkpoint").iterdir())
    assert len([n for n in names if n.endswith(".zip")]) == 2 and len([n for n in names if n.endswith(".json")]) == 2
    before = latest_checkpoint(run_copy / "run").timesteps
    result, _ = tiny_run(run_copy, timesteps=before + 200, resume=True)
    assert result.timesteps >= before + 200


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),  # truncated
        lambda path: path.write_bytes(os.urandom(2000)),
        lambda path: path.write_bytes(b""),
        lambda path: path.write_text("not a checkpoint\n"),
    ],
    ids=["truncated", "random", "empty", "text"],
)
def test_a_damaged_checkpoint_is_one_line_naming_it_and_the_previous_good_one(run_copy, monkeypatch, capsys, damage):
    newest = latest_checkpoint(run_copy / "run")
    damage(newest.path)
    monkeypatch.setattr(agents.rl.sb3_training, "train_sb3", no_work)
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(resume_argv(run_copy, run_copy / "run.yaml"))
    line = error_line(capsys)
    assert exit_info.value.code == 2 and newest.path.name in line and "previous checkpoint" in line
    newest.path.with_suffix(".json").unlink()  # moved away as the message says: the previous one resumes
    assert latest_checkpoint(run_copy / "run").timesteps < newest.timesteps


def test_a_damaged_record_is_refused(run_copy):
    newest = latest_checkpoint(run_copy / "run")
    newest.path.with_suffix(".json").write_bytes(bytes(range(256)))
    with pytest.raises(CheckpointError, match="damaged"):
        latest_checkpoint(run_copy / "run")


class Payload:
    """Pickled, it creates a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_zip(path, marker):
    payload = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    data = {"policy_class": {":type:": "<class 'type'>", ":serialized:": payload}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))


def test_a_crafted_legacy_checkpoint_is_refused_and_never_unpickled(run_copy, capsys):
    folder = run_copy / "run" / "checkpoint"
    for path in folder.iterdir():
        path.unlink()
    marker = run_copy / "pwned"
    crafted_zip(folder / "model.zip", marker)
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(resume_argv(run_copy, run_copy / "run.yaml"))
    assert exit_info.value.code == 2 and "checksum record" in error_line(capsys)
    assert not marker.exists()


def test_a_crafted_checkpoint_with_a_forged_record_is_not_unpickled(run_copy):
    from agents.rl.checkpoints import sha256_of

    newest = latest_checkpoint(run_copy / "run")
    marker = run_copy / "pwned"
    crafted_zip(newest.path, marker)
    record_path = newest.path.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "sha256": sha256_of(newest.path)}))
    with pytest.raises(CheckpointError, match="does not match"):
        tiny_run(run_copy, timesteps=800, resume=True)
    assert not marker.exists()


def test_resume_with_other_settings_is_refused(run_copy, capsys):
    config = run_copy / "other.yaml"
    config.write_text(CONFIG.replace("n_epochs: 1", "n_epochs: 2"))
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(resume_argv(run_copy, config))
    assert exit_info.value.code == 2 and "algo" in error_line(capsys)


@pytest.mark.parametrize("contents", [[], ["hyperparams.yaml"], ["notes.txt"]])
def test_resume_without_a_checkpoint_writes_nothing(tmp_path, monkeypatch, capsys, contents):
    monkeypatch.setattr(agents.rl.sb3_training, "train_sb3", no_work)
    run = tmp_path / "run"
    run.mkdir()
    for name in contents:
        (run / name).write_text("x")
    before = snapshot(run)
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG)
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(resume_argv(tmp_path, config))
    line = error_line(capsys)
    assert exit_info.value.code == 2 and "resume" in line and str(run) in line
    assert snapshot(run) == before


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(agents.rl.sb3_training, "train_sb3", no_work)
    monkeypatch.setattr(train_agent, "tuned_rules", no_work)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for argv in (
        ["train", "--env", "l2o/Quadratic-v0", "--out", str(a_file / "run")],
        ["train", "--env", "l2o/Quadratic-v0", "--out", str(a_file)],
        ["evaluate", "--env", "l2o/Quadratic-v0", "--out", str(a_file / "report")],
        ["evaluate", "--env", "l2o/Quadratic-v0", "--out", str(tmp_path / "r"), "--cache", str(a_file / "t.json")],
    ):
        with pytest.raises(SystemExit) as exit_info:
            train_agent.main(argv)
        assert exit_info.value.code == 2 and str(a_file) in error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_output_folder_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["evaluate", "--env", "l2o/Quadratic-v0", "--out", str(locked / "report")])
    assert exit_info.value.code == 2 and "not writable" in error_line(capsys)


def test_a_dict_policy_on_another_dimension_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    config_text = "coordinatewise: false\nalgo: {n_steps: 8, batch_size: 16, n_epochs: 1}\n"
    with pytest.warns(UserWarning):
        result = train_tiny(tmp_path, config_text, timesteps=16, validation_instances=2)
    monkeypatch.setattr(train_agent, "tuned_rules", no_work)
    monkeypatch.setattr(train_agent, "evaluate_and_report", no_work)
    for envs in ("l2o/LogisticRegression-v0", "l2o/Quadratic-v0,l2o/Rosenbrock-v0"):
        argv = ["evaluate", "--env", envs, "--policy", str(result.final), "--out", str(tmp_path / "report")]
        with pytest.raises(SystemExit) as exit_info:
            train_agent.main(argv)
        line = error_line(capsys)
        assert exit_info.value.code == 2 and "dimension 3" in line


def test_a_damaged_meta_training_checkpoint_is_one_line(tmp_path, capsys):
    from agents.meta.meta_checkpoints import CHECKPOINT_DIR

    folder = tmp_path / "run" / CHECKPOINT_DIR
    folder.mkdir(parents=True)
    (folder / "meta_100.pt").write_bytes(os.urandom(300))
    argv = ["--env", "l2o/Quadratic-v0", "--algo", "l2l", "--out", str(tmp_path / "run"), "--resume"]
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(argv)
    assert exit_info.value.code == 2 and "meta_100.pt is damaged" in error_line(capsys)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a /proc file system")
def test_an_output_folder_where_nothing_can_be_made_is_refused_before_any_work():
    from agents.rl.run_folder import check_writable

    with pytest.raises(RunFolderError, match="is not writable"):
        check_writable(Path("/proc/l2o_gym_run"), "--out")
