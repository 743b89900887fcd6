"""benchmarks/ppo_against_commit.py: its one-line refusals, the commit's tree as `git archive` gives
it, ratios taken round by round, the page block it rewrites in place, and (slow) one whole run
against d3f495a at tiny sizes. Nothing here is timed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import ppo_against_commit as bench
from benchmarks.ppo_throughput import PPOThroughput


def commit_or_skip(commit: str) -> tuple[str, str]:
    resolved = bench.resolve_commit(commit)
    if isinstance(resolved, str):
        pytest.skip(resolved)  # a source tree without git history
    return resolved


def test_bad_arguments_are_refused_in_one_line(capsys, monkeypatch):
    for argv, message in (
        (["--configs", "missing.yaml"], "--configs must name existing config files or 'default'"),
        (["--rounds", "0"], "--rounds must be a positive integer"),
        (["--commit", "no-such-commit"], "--commit must name a commit of the repository"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            bench.parse_args(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args([])
    assert exit_info.value.code == 2 and "git is not on PATH" in capsys.readouterr().err


def test_the_commit_tree_and_its_cases(tmp_path):
    sha, subject = commit_or_skip(bench.DEFAULT_COMMIT)
    assert sha.startswith(bench.DEFAULT_COMMIT) and subject
    tree = bench.materialise(sha, tmp_path)
    # the API the driver uses, as it was there; the files of later work absent
    assert "def load_hyperparams" in (tree / "agents/rl/hyperparams.py").read_text()
    assert "def step_form_from_config" in (tree / "agents/rl/sb3_training.py").read_text()
    assert not (tree / "agents/rl/fast_tanh.py").exists() and not (tree / "benchmarks/ppo_throughput.py").exists()
    old, *current = bench.cases(tree, sha[:7], [None, bench.PREVIOUS], 2, tmp_path / "cache")
    assert old.cwd == tree and old.env["PYTHONPATH"] == str(tree) and old.command[-3:] == (bench.PPO_ENV, "2", "0")
    assert [c.cwd for c in current] == [bench.ROOT, bench.ROOT] and current[1].command[-2] == "--config"
    assert all(c.env["OMP_NUM_THREADS"] == "1" for c in (old, *current))


def measured(label: str, cpu_s: list[float]) -> list[PPOThroughput]:
    return [PPOThroughput(label, 32, 4, 3200, s, 2 * s, s / 2) for s in cpu_s]


def test_ratios_are_taken_round_by_round():
    rows = bench.table({"old": measured("old", [1.0, 2.0, 1.0]), "new": measured("new", [0.25, 0.25, 0.5])})
    assert rows[2].startswith("| old | 32 × 4 | 3,200 | 1.00× [1.00–1.00] | 4.00× [2.00–8.00] | 1,600 |")
    # per round 4×, 8×, 2×: the median of the ratios (4×), not the ratio of the medians (3,200 / 12,800)
    assert "| 12,800 | 4.00× [2.00–8.00] | 1.00× [1.00–1.00] | 6,400 | 4.00× [2.00–8.00] | 50% |" in rows[3]


def test_the_page_block_is_replaced_in_place(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# title\n\nnotes\n")
    bench.write_block(page, f"{bench.BLOCK_BEGIN}\nfirst\n{bench.BLOCK_END}")
    assert page.read_text() == f"# title\n\nnotes\n\n{bench.BLOCK_BEGIN}\nfirst\n{bench.BLOCK_END}\n"
    page.write_text(page.read_text() + "more notes\n")
    bench.write_block(page, f"{bench.BLOCK_BEGIN}\nsecond\n{bench.BLOCK_END}")
    text = page.read_text()
    assert "first" not in text and text.endswith(f"{bench.BLOCK_BEGIN}\nsecond\n{bench.BLOCK_END}\nmore notes\n")


def test_the_current_code_prints_its_record():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ppo_throughput", "--rollouts", "0"], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].endswith("got 0 and 0")


@pytest.mark.slow
def test_one_run_against_the_commit(tmp_path, capsys):
    commit_or_skip(bench.DEFAULT_COMMIT)
    page = tmp_path / "page.md"
    assert bench.main(["--rounds", "1", "--rollouts", "1", "--configs", "default", "--docs", str(page)]) == 0
    out = capsys.readouterr().out
    assert "| d3f495a (its own training configuration) | 32 × 4 |" in out and "| current code, default |" in out
    assert bench.BLOCK_BEGIN in page.read_text()
    record = subprocess.run(
        [sys.executable, "-m", "benchmarks.ppo_throughput", "--rollouts", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(json.loads(record.stdout.strip().splitlines()[-1])) == set(bench.MEASURED)
