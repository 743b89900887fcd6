"""Pooling several GPS training runs of a family (agents/gps/restarts.py, the benchmark's train_pooled)."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmarks.gps_vs_tuned as benchmark
from agents.gps.family_options import FamilyOptions
from agents.gps.options import GPSOptions
from agents.gps.restarts import choice_file, choose_run, restart_runs, summed_seconds
from agents.gps.training import OPTIONS_FILE
from benchmarks.gps_vs_tuned import FAMILIES, FamilyRun, family_runs, main, train_pooled
from l2o_gym.atomic_io import atomic_write_json

LOGISTIC, ROBUST, NET = FAMILIES


def test_choose_run_picks_the_most_selection_wins_the_first_of_equals() -> None:
    assert choose_run([0.71, 0.80, 0.78]) == 1
    assert choose_run([0.5, 0.9, 0.9, 0.2]) == 1
    assert choose_run([0.3]) == 0
    with pytest.raises(ValueError, match="at least one"):
        choose_run([])


def test_restart_runs_seeds_and_folders(tmp_path) -> None:
    options = GPSOptions(seed=5, init_std=0.9)
    assert restart_runs(options, tmp_path, 1) == [(options, tmp_path)]
    runs = restart_runs(options, tmp_path, 3)
    assert [o.seed for o, _ in runs] == [5, 6, 7] and all(o.init_std == 0.9 for o, _ in runs)
    assert [f for _, f in runs] == [tmp_path / "run0", tmp_path / "run1", tmp_path / "run2"]


def test_restarts_per_family_layer_and_bad_values_are_one_line_errors() -> None:
    options = FamilyOptions.from_mapping({"shared": {"restarts": 2}, "families": {ROBUST: {"restarts": 4}}})
    assert (options.restarts_for(ROBUST), options.restarts_for(NET), FamilyOptions().restarts_for(NET)) == (4, 2, 1)
    assert options.options_for(ROBUST, seed=0) == GPSOptions()  # not a GPSOptions field
    for bad in (0, -1, 2.5, "3", True):
        with pytest.raises(ValueError) as err:
            FamilyOptions.from_mapping({"families": {ROBUST: {"restarts": bad}}})
        assert str(err.value) == f"families['{ROBUST}']: restarts must be a positive integer, got {bad!r}"
    with pytest.raises(ValueError, match="^restarts must be a positive integer, got 0 \\(or the sections"):
        FamilyOptions.from_mapping({"restarts": 0})


def test_a_bad_restarts_in_the_config_exits_2_before_any_work(tmp_path, capsys) -> None:
    config = tmp_path / "gps.yaml"
    config.write_text(f"families:\n  {ROBUST}:\n    restarts: zero\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--envs", ROBUST, "--config", str(config), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "restarts must be a positive integer, got 'zero'" in err
    assert not (tmp_path / "out").exists()


def test_summed_seconds() -> None:
    assert summed_seconds([(10.0, 4.0), (20.0, 6.5), (1.0, 0.5)]) == (31.0, 11.0)


def test_train_pooled_keeps_the_run_with_most_selection_wins_and_sums_the_cpu(tmp_path, monkeypatch) -> None:
    config = tmp_path / "gps.yaml"
    config.write_text(f"families:\n  {ROBUST}:\n    restarts: 3\n")
    run = family_runs(ROBUST, config, 0, tmp_path / "out")[ROBUST]
    assert run.restarts == 3
    trained: list[tuple[int, Path]] = []

    def fake_train(env_id: str, folder: Path, options: GPSOptions) -> tuple[Path, float, float]:
        trained.append((options.seed, folder))
        return folder / "best", 100.0 + options.seed, 10.0 * (options.seed + 1)

    def fake_scores(env_id, rules, options, horizons) -> list[float]:
        assert horizons == (40, 100) and options.seed == 0
        return [0.70, 0.81, 0.79][: len(rules)]

    monkeypatch.setattr(benchmark, "train_or_reuse", fake_train)
    monkeypatch.setattr(benchmark, "load_rule", lambda folder: folder)
    monkeypatch.setattr(benchmark, "selection_scores", fake_scores)
    best, wall, cpu, note, bests, chosen = train_pooled(ROBUST, run, (40, 100))
    assert trained == [(k, run.folder / f"run{k}") for k in range(3)]
    assert best == run.folder / "run1" / "best" and chosen == 1 and bests[2] == run.folder / "run2" / "best"
    selection = benchmark.json.loads(choice_file(run.folder, 3).read_text())
    assert selection["chosen"] == 1 and selection["scores"] == [0.70, 0.81, 0.79]
    assert cpu == pytest.approx(10 + 20 + 30 + selection["cpu_s"])
    assert wall == pytest.approx(100 + 101 + 102 + selection["wall_s"])
    assert "3 runs" in note and "kept run 1" in note
    single = train_pooled(ROBUST, FamilyRun(run.options, tmp_path / "single"), (40, 100))
    assert single == (tmp_path / "single" / "best", 100.0, 10.0, "", [tmp_path / "single" / "best"], 0)


def test_a_pooled_runs_folder_trained_with_other_options_is_refused(tmp_path) -> None:
    config = tmp_path / "gps.yaml"
    config.write_text(f"families:\n  {ROBUST}:\n    restarts: 2\n")
    run = family_runs(ROBUST, config, 0, tmp_path / "out")[ROBUST]
    second = run.folder / "run1"
    second.mkdir(parents=True)
    atomic_write_json(second / "timing.json", {"wall_s": 1.0, "cpu_s": 1.0})
    atomic_write_json(second / OPTIONS_FILE, run.options.to_dict())  # seed 0, but run 1 trains with seed 1
    with pytest.raises(ValueError, match=r"run1'.* trained with other \['seed'\]"):
        family_runs(ROBUST, config, 0, tmp_path / "out")
    atomic_write_json(second / OPTIONS_FILE, {**run.options.to_dict(), "seed": 1})
    assert family_runs(ROBUST, config, 0, tmp_path / "out")[ROBUST] == run
