"""GPS options per family (agents/gps/family_options.py) and the benchmark's checks before any work."""

from __future__ import annotations

import pytest

from agents.gps.family_options import FamilyOptions, family_options_from_config
from agents.gps.options import GPSOptions
from agents.gps.training import OPTIONS_FILE
from benchmarks.gps_vs_tuned import DEFAULT_CONFIG, FAMILIES, family_runs, main
from l2o_gym.atomic_io import atomic_write_json

LOGISTIC, ROBUST, NET = FAMILIES

SECTIONED = f"""
shared:
  iterations: 20
  init_std: 0.6
families:
  {LOGISTIC}:
    init_std: 0.3
  {NET}:
    iterations: 30
    instances: 50
"""


def test_layers_base_shared_family_seed(tmp_path) -> None:
    config = tmp_path / "gps.yaml"
    config.write_text(SECTIONED)
    options = family_options_from_config(config)
    logistic = options.options_for(LOGISTIC, seed=3, base={"instances": 90})
    assert (logistic.init_std, logistic.iterations, logistic.instances, logistic.seed) == (0.3, 20, 90, 3)
    net = options.options_for(NET, seed=0, base={"instances": 80})
    assert (net.init_std, net.iterations, net.instances) == (0.6, 30, 50)  # the family's own beats the base
    robust = options.options_for(ROBUST, seed=0)  # no overrides: shared over the defaults
    assert robust == GPSOptions(iterations=20, init_std=0.6)
    assert options.options_for(None, seed=0) == robust


def test_a_flat_file_sets_every_family_and_none_gives_the_defaults(tmp_path) -> None:
    config = tmp_path / "gps.yaml"
    config.write_text("kl_step: 0.6\npolicy_form: additive\n")
    options = family_options_from_config(config)
    for env_id in FAMILIES:
        assert options.options_for(env_id, seed=0) == GPSOptions(kl_step=0.6, policy_form="additive")
    assert family_options_from_config(None).options_for(NET, seed=1) == GPSOptions(seed=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shared:\n  kl_stepp: 0.1\n", "shared: unknown GPS option(s) ['kl_stepp']"),
        (f"families:\n  {NET}:\n    init_std: -1\n", f"families['{NET}']: init_std must be a finite number > 0"),
        (f"shared:\n  init_std: -1\nfamilies:\n  {NET}:\n    kl_step: 1\n", "shared: init_std must be"),
        ("famlies:\n  x: 1\n", "unknown GPS option(s) ['famlies']"),
        ("shared: {}\nextra: 1\n", "unknown section(s) ['extra']"),
        ("families:\n  l2o/NoSuch-v0:\n    kl_step: 1\n", "'l2o/NoSuch-v0' is not a registered l2o environment id"),
        (f"families:\n  {NET}: 0.5\n", f"families['{NET}'] must be a mapping"),
        ("shared: [1, 2]\n", "shared must be a mapping"),
        ("- 1\n", "must hold a mapping"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_place(tmp_path, text: str, message: str) -> None:
    config = tmp_path / "gps.yaml"
    config.write_text(text)
    with pytest.raises(ValueError) as error:
        family_options_from_config(config, known_envs=list(FAMILIES))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_family_is_checked_when_read_not_when_its_turn_comes() -> None:
    with pytest.raises(ValueError, match="families\\['l2o/TwoLayerNet-v0'\\]: kl_step"):
        FamilyOptions.from_mapping({"shared": {"iterations": 2}, "families": {NET: {"kl_step": 0}}})


def test_the_benchmark_config_parses_for_every_family(tmp_path) -> None:
    runs = family_runs(",".join(FAMILIES), DEFAULT_CONFIG, 0, tmp_path)
    assert list(runs) == list(FAMILIES)
    names = {run.folder.name for run in runs.values()}
    assert names == {"LogisticRegression", "RobustLinearRegression", "TwoLayerNet"}
    assert all(run.options.policy_form == "gains" and run.restarts >= 1 for run in runs.values())


def test_a_reused_run_with_other_options_is_refused_before_any_work(tmp_path, capsys) -> None:
    config = tmp_path / "gps.yaml"
    config.write_text(SECTIONED)
    options, folder, _ = family_runs(NET, config, 0, tmp_path / "out")[NET]
    folder.mkdir(parents=True)
    atomic_write_json(folder / "timing.json", {"wall_s": 1.0, "cpu_s": 1.0})
    atomic_write_json(folder / OPTIONS_FILE, {**options.to_dict(), "init_std": 0.9})
    with pytest.raises(ValueError, match=r"trained with other \['init_std'\]"):
        family_runs(NET, config, 0, tmp_path / "out")
    atomic_write_json(folder / OPTIONS_FILE, options.to_dict())
    assert family_runs(NET, config, 0, tmp_path / "out")[NET] == (options, folder, 1)  # the same options: reused
    with pytest.raises(SystemExit) as exit_info:
        main(["--envs", NET, "--config", str(config), "--seed", "1", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "trained with other ['seed']" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--envs", "l2o/Nope-v0"], "--envs: 'l2o/Nope-v0' is not a registered l2o environment id"),
        (["--horizons", "40,x"], "--horizons must be comma-separated integers"),
        (["--instances", "0"], "--instances and --horizons must be positive"),
        (["--config", "missing.yaml"], "'missing.yaml' does not exist"),
    ],
)
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out"), "--doc", str(tmp_path / "gps.md")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "gps.md").exists()
