"""benchmarks/ppo_speed_check.py: its throughput table at tiny sizes (a smoke test: nothing is
timed) and its one-line refusals."""

from __future__ import annotations

import pytest

from benchmarks.ppo_speed_check import label, main


def test_throughput_table_at_tiny_sizes(capsys):
    assert main(["--throughput-only", "--quick", "--rounds", "1", "--candidates", "agents/rl/ppo_fast.yaml"]) == 0
    out = capsys.readouterr().out
    assert "| default | 2 × 4 |" in out and "| fast | 2 × 4 |" in out and "1.00×" in out


def test_labels_and_bad_arguments(capsys):
    assert label(None) == "default" and label("agents/rl/ppo_fast_subsampled.yaml") == "fast_subsampled"
    for argv, message in (
        (["--candidates", "missing.yaml"], "--candidates must name existing config files"),
        (["--seeds", "a"], "--seeds must be comma-separated integers"),
        (["--instances", "0"], "--instances must be a positive integer"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
