"""The README's plug-in examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_plugin_examples_run():
    blocks = [b for b in _python_blocks() if "register_objective" in b or "register_family" in b]
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    env = namespace["gym"].make("my/Sphere-v0")
    obs, info = env.reset(seed=0)
    assert obs["location"].shape == (8,) and info["objective"] > 0
    vec = namespace["vec"]
    obs, info = vec.reset(seed=0)
    assert obs["location"].shape == (16, 5)


def test_quick_start_example_runs():
    (block,) = [b for b in _python_blocks() if "make_sb3_vec_env" in b]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert namespace["sb3_env"].num_envs == 32 * 12


def test_torch_optimizer_example_runs_with_a_hand_designed_rule():
    (block,) = [b for b in _python_blocks() if "LearnedTorchOptimizer" in b]
    block = block.replace('"runs/default/best_model"', 'make_optimizer("adam", lr=0.01)')
    block = block.replace("for _ in range(100):", "initial = float(closure())\nfor _ in range(100):")
    namespace: dict = {}
    exec("from agents.hand_designed import make_optimizer\n" + block, namespace)
    assert float(namespace["loss"]) < 0.9 * namespace["initial"]


README_LIMIT_BYTES = 15 * 1024
ROOT = README.parent


def _shell_commands() -> list[str]:
    """The README's command lines (indented blocks, split at &&, and inline `...` spans), backslash
    continuations joined, comments and optional [...] groups dropped; elided ones (…) left out."""
    text = README.read_text().replace("\\\n", " ")
    indented = [line for line in text.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    candidates = [part for line in indented for part in line.split("&&")] + re.findall(r"`([^`\n]+)`", text)
    starts = ("python3 train_agent.py", "l2o-gym", "python benchmarks/", "python3 benchmarks/")
    commands = []
    for line in candidates:
        line = re.sub(r"\s+#.*$", "", re.sub(r"\[[^\]]*\]", "", line)).strip()
        if line.startswith(starts) and "…" not in line:
            commands.append(line)
    return commands


def test_readme_stays_short_enough_to_read_in_ten_minutes():
    assert len(README.read_bytes()) <= README_LIMIT_BYTES


def test_readme_command_lines_parse_with_the_cli():
    import train_agent

    commands = _shell_commands()
    parsed = 0
    for command in commands:
        words = command.split()
        if words[0].startswith("python") and words[1].startswith("benchmarks/"):
            assert (ROOT / words[1]).is_file(), command
            continue
        argv = words[2:] if words[0].startswith("python") else words[1:]
        if not argv:
            argv = list(train_agent.DEFAULT_JOB)
        elif argv[0].startswith("--"):
            argv = ["train", *argv]
        train_agent.build_parser().parse_args(argv)  # argparse exits (SystemExit) on a stale option
        parsed += 1
    assert parsed >= 7  # the default job, training, l2l, list, tune, evaluate


def test_readme_names_only_files_that_exist():
    prefixes = ("docs/", "agents/", "tasks/", "l2o_gym/", "benchmarks/", "tests/", "scripts/", "NOTES.md")
    named = set(
        re.findall(
            r"[`(]((?:docs|agents|tasks|l2o_gym|benchmarks|tests|scripts)/[\w./-]+|NOTES\.md)", README.read_text()
        )
    )
    assert named and all(name.startswith(prefixes) for name in named)
    missing = sorted(name for name in named if not (ROOT / name.rstrip(".")).exists())
    assert not missing, f"README names files that do not exist: {missing}"
