"""Tasks register their own ids: l2o_gym finds them through the ``l2o_gym.envs`` entry-point group,
names no task, and importing it imports no task module; the version is written once."""

import subprocess
import sys
import warnings
from importlib.metadata import EntryPoint
from pathlib import Path

import gymnasium as gym
import pytest

import l2o_gym
from l2o_gym import registry
from tasks.registration import BUILTIN_TASKS, register_envs

ROOT = Path(__file__).resolve().parents[1]
DEMO_ID = "test/EntryPointSphere-v0"


def register_demo() -> None:
    """A registration function as a package of new tasks would declare it."""
    if DEMO_ID not in gym.registry:
        registry.register_family(DEMO_ID, "tests.plugin_objectives:ShiftedSphereFamily")


def fail_to_register() -> None:
    raise RuntimeError("broken plug-in")


def test_importing_l2o_gym_registers_the_builtin_ids_and_imports_no_task_module():
    code = (
        "import sys, l2o_gym, gymnasium as gym\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('tasks.'))\n"
        "assert loaded == ['tasks.heldout_suite', 'tasks.registration'], loaded  # id lists only\n"
        "assert set(l2o_gym.l2o_env_ids()) >= {'l2o/Quadratic-v0', 'l2o/HyperNetDigits-v0'}\n"
        "gym.make('l2o/Quadratic-v0').reset(seed=0)\n"
        "assert 'tasks.quadratic' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_l2o_gym_names_no_task():
    source = "\n".join(p.read_text() for p in (ROOT / "l2o_gym").rglob("*.py"))
    for env_id, entry_point in BUILTIN_TASKS.items():
        assert env_id not in source and entry_point.split(":")[0] not in source


def test_every_builtin_id_is_registered_and_registering_again_changes_nothing():
    assert set(BUILTIN_TASKS) <= set(l2o_gym.l2o_env_ids())
    before = {env_id: gym.spec(env_id) for env_id in BUILTIN_TASKS}
    register_envs()
    assert all(gym.spec(env_id) is spec for env_id, spec in before.items())


def test_declared_entry_points_are_called_and_a_broken_one_only_warns(monkeypatch):
    group = registry.ENTRY_POINT_GROUP
    declared = [
        EntryPoint("broken", "tests.test_registration:fail_to_register", group),
        EntryPoint("demo", "tests.test_registration:register_demo", group),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: declared)
    found = registry.registration_entry_points()
    assert found == [*declared, registry.PROJECT_REGISTRATIONS]  # the project's own, not declared here
    try:
        with pytest.warns(RuntimeWarning, match="entry point broken = 'tests.test_registration:fail_to_register'"):
            registry.register_envs_from_entry_points()
        assert DEMO_ID in l2o_gym.l2o_env_ids()
        obs, _ = gym.make(DEMO_ID).reset(seed=0)
        assert obs["location"].shape == (3,)
    finally:
        gym.registry.pop(DEMO_ID, None)


def test_the_projects_own_entry_point_is_not_added_twice(monkeypatch):
    own = EntryPoint("builtin", registry.PROJECT_REGISTRATIONS.value, registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [own])
    assert registry.registration_entry_points() == [own]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.register_envs_from_entry_points()


def test_pyproject_declares_the_entry_point_and_reads_the_one_version():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"][registry.ENTRY_POINT_GROUP]
    assert declared == {"builtin": "tasks.registration:register_envs"}
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "l2o_gym.__version__"}
    assert l2o_gym.__version__.count(".") == 2
