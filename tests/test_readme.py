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
