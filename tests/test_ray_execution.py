"""Cells run by l2o_gym.execution in-process (no Ray needed): order, retries, failures, resume; the
evaluation and tuning sweeps built on it give the numbers of evaluate() and tune()."""

import json
import sys
from pathlib import Path

import pytest
import torch

import train_agent
from agents.hand_designed import make_optimizer, tuning
from agents.hand_designed.tuning import ensure_tuned, load_tuned, tune
from l2o_gym.evaluation import evaluate
from l2o_gym.evaluation_sweep import EvaluationSpec, decode_curves, encode_curves, evaluate_many
from l2o_gym.execution import FAILURES_JSON, CellsFailed, cell_file, check_backend, run_cells, save_cell
from l2o_gym.report import write_report
from l2o_gym.unroll import Curves

ENV = "l2o/Quadratic-v0"


def square(x):
    return x * x


def fail_on_odd(x):
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def fail_first_call(path):
    """Fails the first time (counted in the file at `path`), then returns the number of calls."""
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls == 1:
        raise RuntimeError("flaky")
    return calls


def count_calls(path):
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    raise RuntimeError(f"call {calls}")


def never_called(x):
    raise AssertionError("a finished cell ran again")


def test_results_come_back_in_the_order_of_the_cells():
    cells = {f"c{i}": i for i in (3, 1, 2)}
    assert list(run_cells(square, cells, progress=False).items()) == [("c3", 9), ("c1", 1), ("c2", 4)]


def test_a_flaky_cell_is_retried_once(tmp_path):
    assert run_cells(fail_first_call, {"flaky": tmp_path / "n"}, progress=False) == {"flaky": 2}


def test_a_failing_cell_is_reported_after_one_retry_and_the_others_are_kept(tmp_path):
    counter = tmp_path / "calls"
    cells = {"ok": 2, "bad": counter}
    with pytest.raises(CellsFailed) as caught:
        run_cells(
            lambda a: 2 * a if isinstance(a, int) else count_calls(a),
            cells,
            progress=False,
            results_dir=tmp_path / "cells",
        )
    assert counter.read_text() == "2"  # run, then retried once
    assert caught.value.failures == {"bad": "RuntimeError: call 2"} and caught.value.finished == 1
    assert "bad" in str(caught.value)
    assert json.loads((tmp_path / "cells" / FAILURES_JSON).read_text()) == {"bad": "RuntimeError: call 2"}
    assert cell_file(tmp_path / "cells", "ok").exists() and not cell_file(tmp_path / "cells", "bad").exists()


def test_no_retry_when_retries_is_zero(tmp_path):
    with pytest.raises(CellsFailed):
        run_cells(fail_first_call, {"flaky": tmp_path / "n"}, progress=False, retries=0)
    assert (tmp_path / "n").read_text() == "1"


def test_an_interrupted_sweep_resumes_from_its_finished_cells(tmp_path):
    cells = {f"c{i}": i for i in range(4)}
    with pytest.raises(CellsFailed):
        run_cells(fail_on_odd, cells, progress=False, results_dir=tmp_path)
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("c*.json")) == ["c0", "c2"]
    # the finished cells are loaded, the others run: a function that fails on finished ones proves it
    rest = run_cells(lambda x: x if x % 2 else never_called(x), cells, progress=False, results_dir=tmp_path)
    assert rest == {"c0": 0, "c1": 1, "c2": 2, "c3": 3}
    assert not (tmp_path / FAILURES_JSON).exists()
    assert run_cells(never_called, cells, progress=False, results_dir=tmp_path) == rest


def test_a_cell_file_of_another_key_or_kind_is_refused(tmp_path):
    save_cell(tmp_path, "a", 1, lambda v: v)
    cell_file(tmp_path, "a").rename(cell_file(tmp_path, "b"))
    with pytest.raises(ValueError, match="holds cell 'a', not 'b'"):
        run_cells(square, {"b": 2}, progress=False, results_dir=tmp_path)
    cell_file(tmp_path, "b").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a cell result"):
        run_cells(square, {"b": 2}, progress=False, results_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "dask"}, "backend must be one of local, ray"),
        ({"address": "ray://head:10001"}, "address applies to backend 'ray' only"),
        ({"retries": -1}, "retries must be an int >= 0"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_cells(square, {"a": 1}, progress=False, **kwargs)


def test_ray_asked_without_ray_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ValueError, match=r"needs Ray, which is not installed: pip install 'l2o-gym\[ray\]'"):
        check_backend("ray")


@pytest.mark.parametrize("command", ["evaluate", "tune"])
def test_the_cli_exits_2_with_one_line_when_ray_is_missing(command, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(train_agent, "tuned_rules", lambda *a, **k: pytest.fail("work started"))
    argv = [command, "--env", ENV, "--optimizers", "adam", "--backend", "ray", "--cache", str(tmp_path / "t.json")]
    with pytest.raises(SystemExit) as caught:
        train_agent.main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--backend: backend 'ray' needs Ray" in err[-1] and "Traceback" not in "\n".join(err)


def test_curves_survive_their_json_form_bit_for_bit():
    curves = Curves(
        objectives=torch.tensor([[1.0, float("nan")], [0.5, float("inf")]]),
        diverged=torch.tensor([False, True]),
        diverged_at=torch.tensor([-1, 1]),
        f_star=torch.tensor([0.1, 0.2], dtype=torch.float64),
        metrics={"accuracy": torch.tensor([0.25, 1.0])},
    )
    back = decode_curves(json.loads(json.dumps(encode_curves(curves))))
    assert torch.equal(back.objectives.isnan(), curves.objectives.isnan())
    assert torch.equal(back.objectives.nan_to_num(), curves.objectives.nan_to_num())
    assert back.objectives.dtype == torch.float32 and back.f_star.dtype == torch.float64
    assert torch.equal(back.diverged, curves.diverged) and torch.equal(back.diverged_at, curves.diverged_at)
    assert torch.equal(back.metrics["accuracy"], curves.metrics["accuracy"])


def rules():
    return {"adam": make_optimizer("adam", lr=0.05), "momentum": make_optimizer("momentum", lr=0.01)}


def test_the_evaluation_cells_give_the_numbers_of_evaluate(tmp_path):
    env = "l2o/LogisticRegression-v0"  # f* known: the optimum cell's result is used
    expected = evaluate(rules(), env, instances=6, horizon=8, seed=3)
    (got,) = evaluate_many(
        [EvaluationSpec(env, rules(), instances=6, horizon=8, seed=3)], progress=False, results_dir=tmp_path / "c"
    )
    assert got.methods == expected.methods and got.metrics == expected.metrics
    for method in expected.methods:
        assert torch.equal(got.curves[method].objectives, expected.curves[method].objectives)
        assert torch.equal(got.curves[method].f_star, expected.curves[method].f_star)
    assert torch.equal(got.reference_long.objectives, expected.reference_long.objectives)
    assert (got.description, got.dim) == (expected.description, expected.dim)


def test_an_evaluation_resumed_from_its_cells_writes_the_same_report(tmp_path):
    specs = [EvaluationSpec(ENV, rules(), instances=5, horizon=6), EvaluationSpec(ENV, rules(), instances=5, horizon=9)]
    first = evaluate_many(specs, progress=False, results_dir=tmp_path / "cells")
    assert len(list((tmp_path / "cells").glob("unroll*.json"))) == 4
    assert len(list((tmp_path / "cells").glob("optimum*.json"))) == 1  # the same instances: one optimum cell
    write_report(first, tmp_path / "a")
    specs = [EvaluationSpec(ENV, rules(), instances=5, horizon=6), EvaluationSpec(ENV, rules(), instances=5, horizon=9)]
    again = evaluate_many(specs, progress=False, results_dir=tmp_path / "cells")
    write_report(again, tmp_path / "b")
    for name in ("report.md", "report.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_changed_hyperparameters_are_not_read_from_the_finished_cells(tmp_path):
    (first,) = evaluate_many([EvaluationSpec(ENV, rules(), instances=4, horizon=5)], results_dir=tmp_path)
    other = {"adam": make_optimizer("adam", lr=0.2), "momentum": make_optimizer("momentum", lr=0.01)}
    (second,) = evaluate_many([EvaluationSpec(ENV, other, instances=4, horizon=5)], results_dir=tmp_path)
    assert not torch.equal(first.curves["adam"].objectives, second.curves["adam"].objectives)
    assert torch.equal(first.curves["momentum"].objectives, second.curves["momentum"].objectives)


def test_a_bad_spec_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="reference 'adam' is not among the rules"):
        evaluate_many([EvaluationSpec(ENV, {"gd": make_optimizer("gd")})], results_dir=tmp_path)
    with pytest.raises(ValueError, match="horizon"):
        evaluate_many([EvaluationSpec(ENV, rules(), horizon=0)], results_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_ensure_tuned_tunes_the_missing_settings_once_and_caches_them(tmp_path, monkeypatch):
    cache = tmp_path / "tuned.json"
    requests = [("gd", ENV, 5, None), ("adam", ENV, 5, {"dim": 3})]
    settings = ensure_tuned(requests, cache, instances=3, seed=1, progress=False)
    expected = tune("adam", ENV, horizon=5, instances=3, seed=1, family_kwargs={"dim": 3})
    assert settings[1] == expected and [s.name for s in settings] == ["gd", "adam"]
    assert len(load_tuned(cache)) == 2
    monkeypatch.setattr(tuning, "tune", lambda *a, **k: pytest.fail("a cached setting was tuned again"))
    assert ensure_tuned(requests, cache, progress=False) == settings


def test_ensure_tuned_checks_its_requests_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown optimizer|sgd9"):
        ensure_tuned([("sgd9", ENV, 5, None)], tmp_path / "t.json")
    with pytest.raises(ValueError, match="horizon"):
        ensure_tuned([("adam", ENV, 0, None)], tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def fake_train_sb3(env_id, algo, *, out_dir, timesteps, seed, **options):
    """Stands in for SB3 training: saves a 'best model' whose step is the seed."""
    from types import SimpleNamespace

    from agents.runtime.saved_rules import write_meta
    from tests.test_cli import TEST_META

    best = write_meta(Path(out_dir) / "best_model", {**TEST_META, "timesteps": seed}).parent
    return SimpleNamespace(best=best, timesteps=timesteps or 100)


def test_training_runs_over_seeds_each_in_its_folder_and_resume(tmp_path, monkeypatch):
    from agents.rl import sb3_training
    from agents.rl.training_runs import TrainingRun, train_runs

    monkeypatch.setattr(sb3_training, "train_sb3", fake_train_sb3)
    runs = [TrainingRun(ENV, "ppo", seed, tmp_path / f"s{seed}", timesteps=50) for seed in (0, 1, 2)]
    done = train_runs(runs, progress=False, results_dir=tmp_path / "cells")
    assert [done[r.key()]["best_step"] for r in runs] == [0, 1, 2]
    assert all(
        done[r.key()]["best"] == str(r.out_dir / "best_model") and done[r.key()]["timesteps"] == 50 for r in runs
    )
    monkeypatch.setattr(sb3_training, "train_sb3", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert train_runs(runs, progress=False, results_dir=tmp_path / "cells") == done


@pytest.mark.parametrize(
    "change, message",
    [
        ({"algo": "dqn9"}, "algo must be one of"),
        ({"env_id": "l2o/Nothing-v0"}, "not registered"),
        ({"seed": -1}, "seed must be an int >= 0"),
    ],
)
def test_bad_training_runs_fail_before_any_work(change, message, tmp_path):
    from agents.rl.training_runs import TrainingRun, train_runs

    run = TrainingRun(**{**dict(env_id=ENV, algo="ppo", seed=0, out_dir=tmp_path / "a"), **change})
    with pytest.raises(ValueError, match=message):
        train_runs([run], progress=False)
    with pytest.raises(ValueError, match="same folder"):
        train_runs([TrainingRun(ENV, "ppo", 0, tmp_path / "a"), TrainingRun(ENV, "ppo", 1, tmp_path / "a")])


def test_an_address_without_ray_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        train_agent.main(["tune", "--env", ENV, "--address", "head:6379"])
    assert caught.value.code == 2
    assert "--address: address applies to backend 'ray' only" in capsys.readouterr().err
