"""benchmarks/ppo_speed_check.py: its throughput table at tiny sizes (a smoke test: nothing is
timed) and its one-line refusals."""

from __future__ import annotations

import pytest

from benchmarks.ppo_speed_check import label, main, moved_lines, parse_args


def test_throughput_table_at_tiny_sizes(capsys):
    assert main(["--throughput-only", "--quick", "--rounds", "1"]) == 0  # the previous settings, then the default
    out = capsys.readouterr().out
    assert "| logistic_previous (SB3's own PPO, torch tanh) | 2 × 4 |" in out and "1.00×" in out
    assert "| logistic_previous | 2 × 4 |" in out and "| default | 2 × 4 |" in out


def test_labels_and_bad_arguments(capsys):
    assert label(None) == "default" and label("agents/rl/ppo_fast_subsampled.yaml") == "fast_subsampled"
    for argv, message in (
        (["--candidates", "missing.yaml"], "--baseline and --candidates must name distinct existing config files"),
        (["--baseline", "default", "--candidates", "default"], "--baseline and --candidates must name distinct"),
        (["--seeds", "a"], "--seeds must be comma-separated integers"),
        (["--instances", "0"], "--instances must be a positive integer"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(argv)  # refused before any work
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    args = parse_args(["--baseline", "default", "--candidates", "agents/rl/ppo_fast.yaml"])
    assert args.configs == [None, "agents/rl/ppo_fast.yaml"] and args.seeds == [0, 1, 2]


def test_moved_figures_name_their_direction():
    base = [[0.90, 0.95, 0.97], [0.40, 0.50, 0.60], [1.0, 1.1, 1.2]]  # wins vs adam, vs window_qn; mean cost
    assert moved_lines("c", [[0.91, 0.96, 0.97], [0.45, 0.5, 0.55], [1.05, 1.1, 1.1]], base, "default") == []
    lines = moved_lines("c", [[0.99, 0.99, 1.0], [0.2, 0.3, 0.3], [1.3, 1.4, 1.5]], base, "default")
    assert len(lines) == 3 and "adam" in lines[0] and lines[0].endswith("(better)")
    assert "window_qn" in lines[1] and lines[1].endswith("(worse)") and lines[2].endswith("(worse)")
    assert moved_lines("c", [[0.9], [0.5], [0.8]], base, "default") == [
        "- c mean cost: mean 0.8 outside default's range [1, 1.2] (better)"
    ]
