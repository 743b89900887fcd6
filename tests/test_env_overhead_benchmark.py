"""benchmarks/env_overhead.py runs end to end at tiny sizes (a smoke test: nothing is timed)."""

from __future__ import annotations

import pytest

from benchmarks.env_overhead import main


def test_quick_run_writes_every_row(tmp_path, capsys):
    out = tmp_path / "speed.md"
    assert main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    for what in (
        "make_vec (dict)",
        "make_vec (dict), copy=False",
        "SB3 dict VecEnv",
        "SB3 coordinatewise VecEnv",
        "Rosenbrock d=100",
        "H=100",
        "l2o/MAMLSinusoid-v0",
        "problem-steps/s",
        "second baseline, the family's own loss_and_grad",
        "SB3 coordinatewise VecEnv, against the second baseline",
        "contract floor (a) ",
        "contract floor: (a) + (b) + (c)",
        "H=100: floor, fresh dict observation",
        "H=100: floor, fresh coordinatewise observation",
        "floor, rows written into one",
    ):
        assert what in text, what
    assert "×" in capsys.readouterr().out


def test_bad_seconds_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--seconds", "0"])
    assert exit_info.value.code == 2 and "--seconds must be > 0" in capsys.readouterr().err
