"""The meta-LSTM with a learned initialisation θ_0 on few-shot episodes: meta-training moves θ_0,
the saved rule carries it, loading restores it and evaluation starts there; the few-shot baselines."""

import json

import pytest
import torch

from agents.meta.few_shot_baselines import embed, fine_tune, pretrain_classifier, prototype_accuracy
from agents.meta.learned_init_training import LearnedInitOptions, adapt, adapt_saved, new_learner, train_learned_init
from agents.meta.meta_lstm import MetaLearnerLSTM, MetaLSTMOptimizer
from agents.runtime.saved_rules import load_rule
from l2o_gym.registry import make_family
from l2o_gym.unroll import unroll
from tasks.batched_mlp import BatchedMLP
from tasks.maml_digits import MAMLDigitsFamily, MAMLDigitsProblem

ENV_ID = "l2o/MAMLDigits-v0"


def _options(**kw):
    settings = dict(inner_steps=3, meta_batch=4, iterations=3, validation_episodes=6, validation_every=2)
    return LearnedInitOptions(**{**settings, **kw})


def _episodes(n=6, k_shot=1, seed=3, split="test"):
    return MAMLDigitsFamily(k_shot=k_shot, init="random").sample_tasks(n, torch.Generator().manual_seed(seed), split)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("learned_init") / "run"
    best, summary = train_learned_init(ENV_ID, _options(), out, progress=False)
    return out, best, summary


def test_training_moves_theta0_and_saves_it(trained):
    out, best, summary = trained
    start = new_learner(make_family(ENV_ID, init="random"), _options()).net.theta0.detach()
    saved = torch.load(out / "model" / "weights.pt", weights_only=True)["theta0"]
    assert saved.shape == start.shape and not torch.equal(saved, start)  # meta-gradient reached θ_0
    meta = json.loads((best / "l2o_meta.json").read_text())
    assert meta["kind"] == "meta_lstm" and meta["architecture"]["learn_init"] is True
    assert meta["training"]["inner_steps"] == 3 and summary["iterations"] == 3 and summary["cpu_s"] > 0
    assert (out / "training.json").is_file()


def test_loaded_rule_restores_theta0_and_starts_there(trained):
    out, _, _ = trained
    rule = load_rule(out / "model")
    assert isinstance(rule, MetaLSTMOptimizer)
    saved = torch.load(out / "model" / "weights.pt", weights_only=True)
    assert torch.equal(rule.net.theta0.detach(), saved["theta0"])
    problem = _episodes()
    curves = adapt_saved(out / "model", problem)
    assert torch.equal(problem.x0, saved["theta0"].expand(6, -1))  # the instances start at θ_0
    # the gym's unroll of the loaded rule is the inner loop it was meta-trained with
    with torch.no_grad():
        expected = problem.query_loss(adapt(rule.net, problem, 3))
    torch.testing.assert_close(curves.query[-1], expected, rtol=1e-4, atol=1e-5)
    assert curves.objectives.shape[0] == 4
    # θ_0 is used: without it, from the problem's own (random) start, the same rule ends elsewhere
    rule.net.theta0 = None
    assert not torch.allclose(unroll(rule, _episodes(), 3).query[-1], expected)


def test_refusals(trained, tmp_path):
    out, _, _ = trained
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_learned_init(ENV_ID, _options(), out, progress=False)
    with pytest.raises(ValueError, match="no query set"):
        train_learned_init("l2o/Quadratic-v0", _options(), tmp_path / "q", progress=False)
    plain = MetaLSTMOptimizer(MetaLearnerLSTM())
    plain.save(tmp_path / "plain", ENV_ID, {"inner_steps": 3})
    with pytest.raises(ValueError, match="learned initialisation"):
        adapt_saved(tmp_path / "plain", _episodes())
    with pytest.raises(ValueError, match="inner_steps"):
        LearnedInitOptions(inner_steps=0)
    with pytest.raises(ValueError, match="lr"):
        LearnedInitOptions(lr=float("nan"))


def test_meta_gradient_reaches_theta0_through_the_gates_and_cell_state():
    family = make_family(ENV_ID, init="random")
    rule = new_learner(family, _options())
    problem = family.sample(4, torch.Generator().manual_seed(0), split="train")
    loss = problem.query_loss(adapt(rule.net, problem, 3)).mean()
    loss.backward()
    assert rule.net.theta0.grad is not None and rule.net.theta0.grad.abs().sum() > 0
    assert rule.net.b_I.grad is not None and rule.net.b_I.grad.abs() > 0


def test_prototype_accuracy_by_hand():
    support = torch.tensor([[[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0]]])  # class means (0, 1), (4, 1)
    support_y = torch.tensor([[0, 0, 1, 1]])
    query = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [1.9, 5.0]]])
    query_y = torch.tensor([[0, 1, 1]])
    assert torch.allclose(prototype_accuracy(support, support_y, query, query_y, 2), torch.tensor([2 / 3]))


def test_embed_is_the_last_hidden_layer():
    images = torch.rand(30, 64)
    labels = torch.arange(3).repeat(10)
    net = BatchedMLP((64, 8, 6, 3))
    params = pretrain_classifier(net, images, labels, 2, torch.Generator().manual_seed(0))
    layers = net.unflatten(params.unsqueeze(0))
    (w1, b1), (w2, b2) = layers[0], layers[1]
    expected = torch.relu(torch.relu(images @ w1[0] + b1[0]) @ w2[0] + b2[0])
    torch.testing.assert_close(embed(net, params, images.unsqueeze(0))[0], expected)


@pytest.mark.parametrize("head_only", [True, False])
def test_fine_tuning_fits_the_support_set(head_only):
    episodes = _episodes(n=4, k_shot=1)
    family = MAMLDigitsFamily(k_shot=1, init="random")
    pretrained = family.net.init(1, torch.Generator().manual_seed(1))[0]
    # query = support: fitting the support set shows as accuracy 1 on the "query"
    support = (episodes.support_x, episodes.support_y)
    same = MAMLDigitsProblem(family.net, *support, *support, episodes.x0)
    accuracy = fine_tune(pretrained, same, 0.1, (1, 100), head_only)
    assert set(accuracy) == {1, 100} and (accuracy[100] == 1.0).all()


@pytest.mark.slow
def test_few_shot_benchmark_end_to_end_tiny(tmp_path):
    from benchmarks.few_shot_digits import main

    common = ["--out", str(tmp_path / "runs"), "--test-episodes", "8", "--validation-episodes", "4"]
    common += ["--maml-iterations", "2", "--maml-cache", str(tmp_path / "cache"), "--pretrain-steps", "3"]
    doc = tmp_path / "few_shot.md"
    assert main([*common, "--iterations-scale", "0.001", "--doc", str(doc)]) == 0
    text = doc.read_text()
    for expected in ("5-way 1-shot", "5-way 5-shot", "meta-LSTM + learned θ_0", "first-order MAML", "prototype"):
        assert expected in text
    assert (tmp_path / "runs" / "5shot" / "best_model" / "weights.pt").is_file()
    assert main([*common, "--reuse", "--doc", str(tmp_path / "again.md")]) == 0  # loads the saved rules
    with pytest.raises(SystemExit) as exit_info:  # the runs exist: refused before any work
        main([*common, "--doc", str(tmp_path / "third.md")])
    assert exit_info.value.code == 2


def test_plain_unroll_and_evaluation_start_at_theta0(trained):
    out, _, _ = trained
    rule = load_rule(out / "model")
    theta0 = rule.net.theta0.detach()
    problem = _episodes(n=4)
    own_start = problem.x0.clone()
    curves = unroll(rule, problem, 2)
    assert torch.equal(problem.x0, own_start)  # the caller's problem keeps its x0
    expected = problem.loss(theta0.expand(4, -1))
    torch.testing.assert_close(curves.objectives[0], expected)
    assert not torch.allclose(curves.objectives[0], problem.loss(own_start))
