"""The held-out query set as the objective: env reward, meta-loss, evaluation curves."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch

from agents.hand_designed import make_optimizer
from agents.meta.l2l_lstm import L2LOptimizer
from agents.meta.meta_training import make_rule, meta_train_iteration, train_meta_optimizer
from agents.rl.config import ConfigError, MetaTrainingConfig, TrainingConfig
from agents.rl.config_loading import check_training_config
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.evaluation import evaluate
from l2o_gym.registry import make_family
from l2o_gym.report import markdown_report
from l2o_gym.rewards import QueryReward, make_reward
from tasks.maml_sinusoid import MAMLSinusoidFamily

# small settings of every family with a held-out part (no cached MAML initialisation needed)
QUERY_FAMILIES = {
    "l2o/MAMLSinusoid-v0": {"init": "random", "n_query": 20},
    "l2o/MAMLDigits-v0": {"init": "random"},
    "l2o/MANNDigits-v0": {"per_class": 2, "episodes_per_batch": 1, "eval_episodes": 2, "memory_slots": 8},
    "l2o/HyperNetDigits-v0": {"train_per_class": 5, "test_per_class": 5, "channels": 4},
}


def sine_family() -> MAMLSinusoidFamily:
    return MAMLSinusoidFamily(init="random", n_query=20)


@pytest.mark.parametrize("env_id", sorted(QUERY_FAMILIES))
def test_families_with_a_held_out_part_give_a_batched_query_loss(env_id):
    family = make_family(env_id, **QUERY_FAMILIES[env_id])
    problem = family.sample(3, torch.Generator().manual_seed(0))
    assert family.has_query and problem.has_query
    query = problem.query_loss(problem.init())
    assert query.shape == (3,) and torch.isfinite(query).all()
    first_row = problem.select_rows(torch.tensor([0]))
    torch.testing.assert_close(first_row.query_loss(problem.init()[:1]), query[:1])


@pytest.mark.parametrize("env_id", ["l2o/Quadratic-v0", "l2o/Rosenbrock-v0", "l2o/LogisticRegression-v0"])
def test_families_without_a_query_set_refuse_the_option_in_one_line(env_id):
    family = make_family(env_id)
    assert not family.has_query
    with pytest.raises(ValueError, match="objective 'query' needs a family with a held-out query set") as err:
        EpisodeBatch(family, 2, objective="query")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="objective 'query'"):
        gym.make(env_id, objective="query")


def test_objective_and_reward_are_checked():
    family = sine_family()
    with pytest.raises(ValueError, match=r"objective must be one of \('train', 'query'\), got 'support'"):
        EpisodeBatch(family, 2, objective="support")
    with pytest.raises(ValueError, match="needs the optimum of the query loss"):
        EpisodeBatch(family, 2, objective="query", reward="log_suboptimality")
    assert isinstance(make_reward("auto", True, objective="query", has_query=True), QueryReward)


def _state_tensors(batch: EpisodeBatch) -> dict[str, torch.Tensor]:
    state = batch.state
    return {name: value.clone() for name, value in vars(state).items() if isinstance(value, torch.Tensor)}


@pytest.mark.parametrize("coordinatewise", [True, False])
def test_query_objective_changes_the_reward_and_nothing_else(coordinatewise):
    family = sine_family()
    # a low explosion limit and large steps, so that some episodes diverge and are restarted
    options = {"horizon": (3, 6), "coordinatewise": coordinatewise, "explode_ratio": 0.5, "action_scale": 0.5}
    batches = {name: EpisodeBatch(family, 6, objective=name, **options) for name in ("train", "query")}
    generators = {name: torch.Generator().manual_seed(3) for name in batches}
    for name, batch in batches.items():
        batch.reset(generators[name])
    actions = torch.Generator().manual_seed(4)
    diverged_any, rewards_differ = False, False
    for _ in range(20):
        action = 2 * torch.rand(6, family.dim, generator=actions) - 1
        query_before = batches["query"].reward_fn.query_f.clone()
        outcome = {name: batch.step(action) for name, batch in batches.items()}
        (r_train, term_train, trunc_train), (r_query, term_query, trunc_query) = outcome["train"], outcome["query"]
        assert torch.equal(term_train, term_query) and torch.equal(trunc_train, trunc_query)
        diverged_any |= bool(term_train.any())
        # the query reward is the cost form on the query loss: -f_q(x_t) / |f_q(x_0)|
        query_batch = batches["query"]
        expected = -query_batch.state.problem.query_loss(query_batch.state.x) / query_batch.reward_fn.query_f0.abs()
        ok = ~term_query
        torch.testing.assert_close(r_query[ok], expected[ok])
        assert not torch.equal(query_before[ok], query_batch.reward_fn.query_f[ok]) or not ok.any()
        rewards_differ |= not torch.allclose(r_train[ok], r_query[ok])
        torch.testing.assert_close(r_train[term_train], r_query[term_query])  # the same divergence penalty
        train_state, query_state = _state_tensors(batches["train"]), _state_tensors(batches["query"])
        for key, value in train_state.items():
            assert torch.equal(value, query_state[key]), key
        observations = [batch.observe() for batch in batches.values()]
        if coordinatewise:
            assert torch.equal(*observations)
        else:
            for key in observations[0]:
                assert torch.equal(observations[0][key], observations[1][key]), key
        done = term_train | trunc_train
        for name, batch in batches.items():
            batch.reset_rows(done, generators[name])
        if done.any():  # restarted rows pay relative to their new instance's query loss
            fresh = batches["query"]
            rows = done.nonzero().squeeze(1)
            torch.testing.assert_close(
                fresh.reward_fn.query_f0[rows],
                fresh.state.problem.select_rows(rows).query_loss(fresh.state.x[rows]),
            )
    assert diverged_any and rewards_differ


def test_the_query_option_reaches_the_gymnasium_envs():
    env = gym.make("l2o/MAMLSinusoid-v0", init="random", objective="query", horizon=2)
    env.reset(seed=0)
    _, reward, _, _, _ = env.step(env.action_space.sample())
    inner = env.unwrapped.episodes
    state = inner.state
    expected = -state.problem.query_loss(state.x) / inner.reward_fn.query_f0.abs()
    assert reward == pytest.approx(float(expected[0]), rel=1e-5)


def _meta_gradient(algo: str, meta_objective: str) -> list[torch.Tensor]:
    family = sine_family()
    problem = family.sample(3, torch.Generator().manual_seed(1))
    rule = make_rule(algo, family, torch.Generator().manual_seed(2))
    params = list(rule.net.parameters())
    frozen = torch.optim.SGD(params, lr=0.0)  # the gradient stays in .grad, the weights unchanged
    stats = meta_train_iteration(
        rule, problem, frozen, horizon=3, truncation=3, grad_clip=1e9, meta_objective=meta_objective
    )
    assert stats.applied == 1
    return [p.grad.clone() for p in params]


@pytest.mark.parametrize("algo", ["l2l", "meta_lstm"])
def test_the_query_meta_objective_changes_the_meta_gradient(algo):
    train, query = _meta_gradient(algo, "train"), _meta_gradient(algo, "query")
    assert all(torch.isfinite(g).all() for g in train + query)
    assert any(g.abs().sum() > 0 for g in query)
    assert not all(torch.allclose(a, b) for a, b in zip(train, query, strict=True))


def test_the_query_meta_objective_is_refused_without_a_query_set(tmp_path):
    problem = make_family("l2o/Quadratic-v0").sample(2, torch.Generator().manual_seed(0))
    rule = L2LOptimizer()
    optimizer = torch.optim.SGD(rule.net.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="meta_objective 'query' needs a family with a held-out query set"):
        meta_train_iteration(rule, problem, optimizer, horizon=2, truncation=2, grad_clip=1.0, meta_objective="query")
    with pytest.raises(ValueError, match="meta_objective 'query'"):
        train_meta_optimizer("l2o/Quadratic-v0", "l2l", 4, 0, tmp_path / "run", meta_objective="query")
    assert not (tmp_path / "run").exists()


def test_meta_training_on_the_query_loss_end_to_end(tmp_path):
    out = train_meta_optimizer(
        "l2o/MAMLSinusoid-v0",
        "l2l",
        8,
        0,
        tmp_path / "run",
        horizon=2,
        truncation=2,
        batch_size=2,
        progress=False,
        env_kwargs={"init": "random", "n_query": 10},
        validation_instances=2,
        validation_every=1,
        meta_objective="query",
    )
    summary = json.loads((tmp_path / "run" / "training.json").read_text())
    assert summary["meta_objective"] == "query" and summary["timesteps"] == 8
    assert out.is_dir()


def test_configuration_takes_the_objective():
    assert MetaTrainingConfig.parse({"meta_objective": "query"}, "x.yaml").options.meta_objective == "query"
    with pytest.raises(ConfigError, match="meta_objective must be one of train, query"):
        MetaTrainingConfig.parse({"meta_objective": "support"}, "x.yaml")
    config = TrainingConfig.parse(
        {"timesteps": 8, "num_envs": 2, "coordinatewise": True, "eval_freq": 4, "env": {"objective": "query"}},
        "x.yaml",
    )
    with pytest.raises(ConfigError, match="objective 'query' needs a family with a held-out query set"):
        check_training_config(config, "l2o/Quadratic-v0", "ppo")
    run_family = check_training_config(
        TrainingConfig.parse({**config.to_dict(), "env": {"objective": "query", "init": "random"}}, "x.yaml"),
        "l2o/MAMLSinusoid-v0",
        "ppo",
    )
    assert run_family.episode_options["objective"] == "query"


def test_evaluation_records_the_query_curves_per_step():
    family = sine_family()
    rules = {"gd": make_optimizer("gd", lr=0.01), "adam": make_optimizer("adam", lr=0.01)}
    result = evaluate(rules, family, instances=4, horizon=3, reference="adam")
    for curves in result.curves.values():
        assert curves.query.shape == (4, 4)
        torch.testing.assert_close(curves.query, curves.metric_curves["query_mse"])
        torch.testing.assert_close(curves.query[-1], curves.metrics["query_mse"])
    assert not torch.equal(result.curves["gd"].query, result.curves["adam"].query)
    report = markdown_report(result)
    assert "| gd | query_mse |" in report and "t = 3" in report
    plain = evaluate(rules, "l2o/Quadratic-v0", instances=2, horizon=2)
    assert plain.curves["gd"].query is None and plain.curves["gd"].metric_curves == {}
    assert "held-out metric" not in markdown_report(plain)


def test_the_benchmark_ppo_configuration_trains_on_the_query_objective():
    from agents.rl.config_loading import load_training_config

    config = load_training_config("l2o/MAMLSinusoid-v0", "ppo", "benchmarks/maml_inner_ppo.yaml")
    run_family = check_training_config(config, "l2o/MAMLSinusoid-v0", "ppo")
    assert run_family.episode_options["objective"] == "query"
