"""The held-out suite: test-only ids, disjoint data, known optima, stochastic minibatches, the CLI."""

import copy

import gymnasium as gym
import pytest
import torch

import l2o_gym
import train_agent
from tasks.heldout_suite import HELDOUT_IDS, SUITE_GROUPS, check_unseen
from tasks.sklearn_tables import LOADERS, split_rows
from tasks.table_models import TableModelFamily
from tasks.test_functions import STYBLINSKI_TANG_MIN_PER_DIM, ShiftedTestFunctionFamily


def test_every_heldout_id_is_registered_grouped_and_refuses_training():
    assert set(HELDOUT_IDS) <= set(l2o_gym.l2o_env_ids())
    assert sorted(e for ids in SUITE_GROUPS.values() for e in ids) == sorted(HELDOUT_IDS)
    for env_id in HELDOUT_IDS:
        family = l2o_gym.make_family(env_id)
        assert "held-out" in family.description
        with pytest.raises(ValueError, match="held-out"):
            family.sample(2, torch.Generator().manual_seed(0), split="train")
        problem = family.sample(2, torch.Generator().manual_seed(0), split="test")
        assert problem.x0.shape == (2, family.dim)


def test_a_heldout_env_serves_the_test_split_and_cannot_train():
    env = gym.make("l2o/HeldoutIrisSoftmax-v0")
    obs, info = env.reset(seed=0)
    assert info["objective"] > 0
    with pytest.raises(ValueError, match="held-out"):
        gym.make("l2o/HeldoutIrisSoftmax-v0", split="train").reset(seed=0)


@pytest.mark.parametrize("dataset", sorted(LOADERS))
def test_validation_and_test_rows_are_disjoint(dataset):
    validation, test = split_rows(dataset, "validation"), split_rows(dataset, "test")
    assert not set(validation.tolist()) & set(test.tolist())
    assert validation.numel() > 0 and test.numel() > validation.numel()


def test_instances_draw_distinct_rows_of_their_split():
    family = TableModelFamily("wine", n_points=50)
    problem = family.sample(3, torch.Generator().manual_seed(1), split="test")
    assert problem.a.shape == (3, 50, 13) and problem.y.shape == (3, 50)
    rows = problem.a.reshape(-1, 13)
    assert torch.unique(problem.a[0], dim=0).shape[0] == 50
    assert not torch.equal(problem.a[0], problem.a[1]) and torch.isfinite(rows).all()


def test_linear_models_know_their_optimum():
    for dataset in ("iris", "diabetes"):
        problem = TableModelFamily(dataset).sample(4, torch.Generator().manual_seed(0), split="test")
        f_star = problem.optimum()
        assert (f_star <= problem.loss(problem.x0)).all()
        assert torch.isfinite(problem.loss_and_grad(problem.x0)[1]).all()
    assert TableModelFamily("iris", hidden=4).sample(2, torch.Generator(), split="test").optimum() is None


def test_minibatch_tasks_are_stochastic_and_reproducible():
    problem = TableModelFamily("breast_cancer", batch_size=8).sample(3, torch.Generator().manual_seed(0), split="test")
    twin = copy.deepcopy(problem)
    first, second = problem.loss(problem.x0), problem.loss(problem.x0)
    assert problem.stochastic and not torch.equal(first, second)
    torch.testing.assert_close(twin.loss(twin.x0), first)
    full = problem.metrics(problem.x0)["full_objective"]
    full_problem = TableModelFamily("breast_cancer").sample(3, torch.Generator().manual_seed(0), split="test")
    torch.testing.assert_close(full, full_problem.loss(full_problem.x0))
    torch.testing.assert_close(problem.optimum(), full_problem.optimum())


@pytest.mark.parametrize(
    "kind, dim, at_optimum",
    [("rastrigin", 5, 0.0), ("styblinski_tang", 3, -2.903534), ("beale", 2, (3.0, 0.5))],
)
def test_test_functions_reach_their_known_optimum_at_the_shift(kind, dim, at_optimum):
    problem = ShiftedTestFunctionFamily(kind, dim).sample(4, torch.Generator().manual_seed(0), split="test")
    x_star = problem.shift + torch.as_tensor(at_optimum).expand(dim)
    torch.testing.assert_close(problem.loss(x_star), problem.optimum(), atol=1e-3, rtol=1e-4)
    assert (problem.loss(problem.x0) > problem.optimum()).all()
    if kind == "styblinski_tang":
        assert float(problem.optimum()[0]) == pytest.approx(STYBLINSKI_TANG_MIN_PER_DIM * dim)


def test_bad_family_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="dataset must be one of"):
        TableModelFamily("mnist")
    with pytest.raises(ValueError, match="batch_size"):
        TableModelFamily("iris", batch_size=-1)
    with pytest.raises(ValueError, match="Beale is 2-dimensional"):
        ShiftedTestFunctionFamily("beale", 3)


def test_check_unseen_refuses_a_policy_trained_on_an_evaluated_family():
    class Trained:
        meta = {"env_id": "l2o/HeldoutBeale-v0"}

    with pytest.raises(ValueError, match="never saw"):
        check_unseen({"p": Trained()}, ["l2o/HeldoutBeale-v0"])
    check_unseen({"p": Trained()}, ["l2o/HeldoutIrisSoftmax-v0"])


def test_evaluate_cli_on_a_heldout_id_and_its_usage_errors(tmp_path, capsys):
    argv = ["evaluate", "--env", "l2o/HeldoutIrisSoftmax-v0", "--optimizers", "adam", "--instances", "3"]
    argv += [
        "--horizon",
        "3",
        "--tune-instances",
        "3",
        "--cache",
        str(tmp_path / "t.json"),
        "--out",
        str(tmp_path / "r"),
    ]
    assert train_agent.main(argv) == 0
    assert "HeldoutIrisSoftmax" in capsys.readouterr().out
    for bad, message in [(["--split", "train"], "--split"), ([], None)]:
        args = [a for a in argv if a not in ("--env", "l2o/HeldoutIrisSoftmax-v0")] if message is None else argv + bad
        with pytest.raises(SystemExit) as exit_info:
            train_agent.main(args)
        assert exit_info.value.code == 2
        assert (message or "--env or --suite") in capsys.readouterr().err


def test_training_on_a_heldout_id_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["train", "--env", "l2o/HeldoutBeale-v0", "--timesteps", "10"])
    assert exit_info.value.code == 2 and "held-out" in capsys.readouterr().err


def test_training_from_python_refuses_a_heldout_family(tmp_path):
    from agents.rl.config import ConfigError
    from agents.rl.sb3_training import prepare_training

    env_id = sorted(HELDOUT_IDS)[0]
    with pytest.raises(ConfigError, match="held-out \\(test-only\\) task family"):
        prepare_training(env_id, "ppo", tmp_path / "run", resume=False, overwrite=False, timesteps=8, num_envs=1)
    assert not (tmp_path / "run").exists()
