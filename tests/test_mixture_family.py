"""Task mixtures: instances of several families and dimensions in one batch, in every env form."""

import copy

import numpy as np
import pytest
import torch

import l2o_gym
from agents.hand_designed import make_optimizer
from tasks.heldout_suite import TRAINING_MIXTURE_ID
from tasks.mixture_family import MixtureFamily, MixtureProblem

MEMBERS = ["l2o/LogisticRegression-v0", "l2o/Quadratic-v0"]


def _problem(n=9, seed=0):
    return MixtureFamily(MEMBERS).sample(n, torch.Generator().manual_seed(seed))


def test_each_row_is_its_members_instance_and_the_padding_is_inert():
    problem = _problem()
    x = problem.x0 + 0.1
    f, grad = problem.loss_and_grad(x)
    torch.testing.assert_close(f, problem.loss(x))
    for k, member in enumerate(problem.members):
        rows = (problem.member_of == k).nonzero().squeeze(1)
        d = problem.dims[k]
        torch.testing.assert_close(f[rows], member.loss(x[rows, :d]))
        assert torch.equal(grad[rows, d:], torch.zeros_like(grad[rows, d:]))
        assert torch.equal(problem.x0[rows, d:], torch.zeros_like(problem.x0[rows, d:]))
    assert set(problem.member_of.tolist()) == {0, 1} and problem.dim == 10


def test_rows_can_be_selected_joined_and_replaced():
    problem, other = _problem(seed=0), _problem(n=3, seed=1)
    problem.optimum()
    index = torch.tensor([4, 0, 7])
    torch.testing.assert_close(problem.select_rows(index).loss(problem.x0[index]), problem.loss(problem.x0)[index])
    joined = problem.cat_rows(other)
    torch.testing.assert_close(joined.loss(joined.x0), torch.cat([problem.loss(problem.x0), other.loss(other.x0)]))
    mask = torch.zeros(9, dtype=torch.bool)
    mask[[1, 5, 8]] = True
    before = problem.loss(problem.x0)
    problem.replace_rows(mask, other)
    after = problem.loss(problem.x0)
    torch.testing.assert_close(after[mask], other.loss(other.x0))
    torch.testing.assert_close(after[~mask], before[~mask])
    assert problem.f_star is not None and problem.f_star.shape == (9,)


def test_an_emptied_pool_is_refilled():
    problem, fresh = _problem(n=4, seed=0), _problem(n=3, seed=1)
    empty = problem.select_rows(torch.arange(4)[4:])
    assert empty.batch_size == 0 and empty.dim == 10
    refilled = empty.cat_rows(fresh)
    torch.testing.assert_close(refilled.loss(refilled.x0), fresh.loss(fresh.x0))


def test_evaluation_runs_rules_on_a_mixture():
    result = l2o_gym.evaluate({"adam": make_optimizer("adam", lr=0.05)}, MixtureFamily(MEMBERS), instances=6, horizon=5)
    assert result.has_optimum and result.curves["adam"].objectives.shape == (6, 6)


def test_the_sb3_vec_env_autoresets_rows_of_a_mixture():
    env = l2o_gym.make_sb3_vec_env(TRAINING_MIXTURE_ID, 6, seed=0, coordinatewise=True, horizon=3)
    obs = env.reset()
    assert obs.shape[0] == 6 * 12 and np.isfinite(obs).all()
    dones = 0
    for _ in range(7):
        obs, reward, done, _ = env.step(np.zeros((6 * 12, 1), dtype=np.float32))
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
        dones += int(done.sum())
    assert dones == 2 * 6 * 12  # every episode ended twice (steps 3 and 6) and restarted on new instances


def test_deep_copies_are_independent():
    problem = _problem()
    twin = copy.deepcopy(problem)
    twin.x0.add_(1.0)
    assert not torch.equal(twin.loss(twin.x0), problem.loss(problem.x0))


def test_bad_mixtures_are_one_line_errors():
    with pytest.raises(ValueError, match="non-empty list"):
        MixtureFamily([])
    with pytest.raises(ValueError, match="weights"):
        MixtureFamily(MEMBERS, weights=[1.0])
    with pytest.raises(TypeError, match="MixtureProblem"):
        _problem().cat_rows(l2o_gym.make_family("l2o/Quadratic-v0").sample(2, torch.Generator()))
    assert isinstance(_problem(), MixtureProblem)
