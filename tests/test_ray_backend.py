"""The Ray backend gives what the in-process one gives (skipped without the ray extra)."""

import pytest

ray = pytest.importorskip("ray")

import train_agent  # noqa: E402
from agents.hand_designed.tuning import TunedSetting, load_tuned  # noqa: E402
from l2o_gym.execution import CellsFailed, run_cells, shutdown_backend, start_ray  # noqa: E402
from tests.test_ray_execution import count_calls, fail_first_call, square  # noqa: E402

ENV = "l2o/Quadratic-v0"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    start_ray(num_cpus=2)
    yield
    shutdown_backend()


def test_ray_cells_give_the_local_results_in_order():
    cells = {f"c{i}": i for i in (5, 0, 3, 2)}
    assert run_cells(square, cells, backend="ray", progress=False) == run_cells(square, cells, progress=False)


def test_a_flaky_ray_cell_is_retried_once_and_a_failing_one_reported(tmp_path):
    flaky, failing = tmp_path / "flaky", tmp_path / "failing"
    assert run_cells(fail_first_call, {"flaky": flaky}, backend="ray", progress=False) == {"flaky": 2}
    with pytest.raises(CellsFailed) as caught:
        run_cells(count_calls, {"failing": failing}, backend="ray", progress=False, results_dir=tmp_path / "c")
    assert failing.read_text() == "2" and caught.value.failures == {"failing": "RuntimeError: call 2"}


def run_cli(command, tmp_path, backend, *extra):
    argv = [command, "--env", f"{ENV},l2o/Rosenbrock-v0", "--optimizers", "gd,momentum", "--horizon", "6"]
    argv += ["--tune-instances", "4", "--cache", str(tmp_path / f"tuned_{backend}.json"), "--backend", backend]
    assert train_agent.main([*argv, *extra]) == 0


def test_evaluate_writes_the_same_report_with_either_backend(tmp_path):
    for backend in ("local", "ray"):
        run_cli("evaluate", tmp_path, backend, "--instances", "5", "--out", str(tmp_path / backend))
    for name in ("report.md", "report.json", "all_families.png"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    # the same settings, saved in the order the cells finished
    local, remote = (load_tuned(tmp_path / f"tuned_{b}.json") for b in ("local", "ray"))
    assert sorted(local, key=TunedSetting.key) == sorted(remote, key=TunedSetting.key) and len(local) == 6


def test_a_cluster_address_gets_the_project_shipped_as_py_modules():
    """address="local" takes the cluster path: workers import l2o_gym and tasks from the shipped packages."""
    from l2o_gym.evaluation_sweep import EvaluationSpec, optimum_cell
    from tests.test_ray_execution import rules

    spec = EvaluationSpec(ENV, rules(), instances=3, horizon=4).check()
    shutdown_backend()
    try:
        got = run_cells(optimum_cell, {"q": spec}, backend="ray", address="local", progress=False)["q"]
        assert ray.get_runtime_context().runtime_env.get("py_modules")
    finally:
        shutdown_backend()
        start_ray(num_cpus=2)
    assert got["dim"] == 10 and got["f_star"].shape == (3,)
