"""Leave-one-family-out: the mixture's leave_out keyword, the evaluate check, the benchmark's protocol."""

import pytest
import torch
import yaml

import train_agent
from agents.runtime import saved_rules
from agents.runtime.saved_rules import write_meta
from l2o_gym.registry import make_family
from tasks.heldout_suite import TRAINING_MIXTURE, TRAINING_MIXTURE_ID, check_unseen
from tasks.leave_one_out import left_out_families, trained_families

MEMBERS = TRAINING_MIXTURE[1]["members"]
NET = "l2o/TwoLayerNet-v0"
META = {
    "kind": "lofo_test",
    "env_id": TRAINING_MIXTURE_ID,
    "env_kwargs": {"leave_out": NET, "action_scale": 1.0},
    "observation": "dict",
    "history": 25,
    "action_scale": 0.1,
}


def load_lofo_rule(folder, meta, device):
    from agents.hand_designed import make_optimizer

    rule = make_optimizer("gd", lr=0.01)
    rule.meta = meta
    return rule


def test_leave_out_drops_the_member_and_it_is_never_sampled():
    family = make_family(TRAINING_MIXTURE_ID, leave_out=NET)
    assert family.member_ids == [m for m in MEMBERS if m != NET]
    assert NET not in family.description
    problem = family.sample(300, torch.Generator().manual_seed(0), "train", torch.device("cpu"))
    assert set(problem.member_of.tolist()) == {0, 1, 2}
    assert not any("TwoLayerNet" in type(m).__name__ for m in [*problem.members, *family.families])
    two = make_family(TRAINING_MIXTURE_ID, leave_out=[NET, "l2o/Quadratic-v0"])
    assert len(two.families) == 2


@pytest.mark.parametrize(
    "leave_out, message",
    [("l2o/Rosenbrock-v0", "not a member id: allowed l2o/LogisticRegression-v0"), (MEMBERS, "leaves no member")],
)
def test_leave_out_is_validated_in_one_line(leave_out, message):
    with pytest.raises(ValueError, match=message) as err:
        make_family(TRAINING_MIXTURE_ID, leave_out=leave_out)
    assert "\n" not in str(err.value)


def test_trained_families_read_from_the_metadata():
    kept = set(MEMBERS) - {NET}
    assert trained_families(META) == {TRAINING_MIXTURE_ID, *kept}
    assert left_out_families(META) == [NET]
    assert trained_families({"env_id": TRAINING_MIXTURE_ID}) == {TRAINING_MIXTURE_ID, *MEMBERS}
    assert trained_families({"env_id": "l2o/Quadratic-v0"}) == {"l2o/Quadratic-v0"}

    class Trained:
        meta = META

    check_unseen({"p": Trained()}, [NET])
    with pytest.raises(ValueError, match="trained on l2o/Quadratic-v0"):
        check_unseen({"p": Trained()}, [NET, "l2o/Quadratic-v0"])


def test_evaluate_leave_one_out_refuses_a_trained_family_and_runs_the_left_out_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(saved_rules.LOADERS, "lofo_test", "tests.test_leave_one_out:load_lofo_rule")
    write_meta(tmp_path / "mix_policy", META)
    argv = ["evaluate", "--optimizers", "adam", "--policy", str(tmp_path / "mix_policy"), "--leave-one-out"]
    argv += ["--instances", "3", "--horizon", "3", "--tune-instances", "3", "--cache", str(tmp_path / "t.json")]
    for env_id in ("l2o/Quadratic-v0", TRAINING_MIXTURE_ID):
        with pytest.raises(SystemExit) as exit_info:
            train_agent.main([*argv, "--env", env_id, "--out", str(tmp_path / "refused")])
        assert exit_info.value.code == 2
        assert f"trained on {env_id}" in capsys.readouterr().err
        assert not (tmp_path / "refused").exists()
    assert train_agent.main([*argv, "--env", NET, "--out", str(tmp_path / "report")]) == 0
    assert "| mix_policy |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["evaluate", "--env", NET, "--leave-one-out", "--out", str(tmp_path / "none")])
    assert exit_info.value.code == 2 and "--leave-one-out" in capsys.readouterr().err


def test_benchmark_trains_without_the_family_and_checks_the_policy(tmp_path, monkeypatch):
    from benchmarks import leave_one_family_out as bench

    args = bench.parse_args(["--timesteps", "64", "--families", NET, "--runs", str(tmp_path)])
    command = bench.train_command(NET, tmp_path / "without_TwoLayerNet", args)
    assert command[command.index("--env") + 1] == TRAINING_MIXTURE_ID
    assert command[command.index("--timesteps") + 1] == "64"
    config = command[command.index("--config") + 1]
    assert yaml.safe_load(open(config)) == {"env": {"leave_out": NET}}
    monkeypatch.setitem(saved_rules.LOADERS, "lofo_test", "tests.test_leave_one_out:load_lofo_rule")
    write_meta(tmp_path / "run" / "best_model", META)
    _, meta = bench.load_left_out_policy(NET, tmp_path / "run")
    assert meta["env_kwargs"]["leave_out"] == NET
    with pytest.raises(ValueError, match="trained on l2o/Quadratic-v0"):
        bench.load_left_out_policy("l2o/Quadratic-v0", tmp_path / "run")
    with pytest.raises(SystemExit):
        bench.parse_args(["--families", "l2o/Rosenbrock-v0"])
