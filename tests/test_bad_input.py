"""Bad input gets a clear error naming the argument, or the documented bounded penalty."""

import gymnasium as gym
import numpy as np
import pytest

import l2o_gym


def test_wrong_action_shape_single_and_vector():
    env = gym.make("l2o/Quadratic-v0", disable_env_checker=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(10,\)"):
        env.step(np.zeros(3, np.float32))
    vec = gym.make_vec("l2o/Quadratic-v0", num_envs=2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 10\)"):
        vec.step(np.zeros((3, 10), np.float32))
    sb3 = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=0)
    sb3.reset()
    with pytest.raises(ValueError, match="actions must have shape"):
        sb3.step(np.zeros((2, 9), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_terminates_with_bounded_penalty(bad):
    env = gym.make("l2o/Quadratic-v0", horizon=40, disable_env_checker=True)
    env.reset(seed=0)
    action = np.zeros(10, np.float32)
    action[3] = bad
    obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    assert reward == pytest.approx(-2.0 * 40)
    assert info["diverged"]
    assert all(np.isfinite(v).all() for v in obs.values())


def test_exploding_objective_terminates_with_finite_observation():
    env = gym.make("l2o/Quadratic-v0", action_scale=1e4, explode_ratio=10.0, disable_env_checker=True)
    obs0, _ = env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(np.ones(10, np.float32))
    assert terminated and info["diverged"]
    assert -2.0 * 40 <= reward < 0
    np.testing.assert_array_equal(obs["location"], obs0["location"])
    assert all(np.isfinite(v).all() for v in obs.values())


def test_vector_env_keeps_going_after_one_instance_diverges():
    vec = gym.make_vec("l2o/Quadratic-v0", num_envs=3, action_scale=1e4, explode_ratio=10.0)
    vec.reset(seed=0)
    actions = np.zeros((3, 10), np.float32)
    actions[1] = 1.0
    obs, reward, term, trunc, _ = vec.step(actions)
    assert term.tolist() == [False, True, False]
    assert np.isfinite(obs["location"]).all()
    _, reward, term, _, info = vec.step(np.zeros((3, 10), np.float32))
    assert reward[1] == 0.0 and not term.any() and info["step"][1] == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"horizon": 0}, "horizon"),
        ({"horizon": -3}, "horizon"),
        ({"history": 0}, "history"),
        ({"dim": 0}, "dim"),
        ({"dim": -1}, "dim"),
        ({"reward": "bogus"}, "reward"),
        ({"split": "holdout"}, "split"),
        ({"action_scale": 0.0}, "action_scale"),
        ({"action_scale": float("nan")}, "action_scale"),
    ],
)
def test_bad_kwargs_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("l2o/Quadratic-v0", **kwargs)


def test_unknown_kwarg_names_it_and_the_allowed_ones():
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['learning_rate'\].*allowed.*horizon"):
        gym.make("l2o/Quadratic-v0", learning_rate=3)
    with pytest.raises(TypeError, match="learning_rate"):
        gym.make_vec("l2o/Quadratic-v0", num_envs=2, learning_rate=3)


def test_rosenbrock_dimension_too_small():
    with pytest.raises(ValueError, match="dim must be >= 2"):
        gym.make("l2o/Rosenbrock-v0", dim=1)


def test_step_before_reset_and_after_end():
    env = gym.make("l2o/Quadratic-v0", horizon=1, disable_env_checker=True).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(10, np.float32))
    env.reset(seed=0)
    env.step(np.zeros(10, np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(10, np.float32))


def test_log_suboptimality_needs_optimum():
    l2o_gym.register_objective("test/NoOpt-v0", lambda x: x.pow(2).sum(), dim=2)
    with pytest.raises(ValueError, match="optimum"):
        gym.make("test/NoOpt-v0", reward="log_suboptimality")


@pytest.mark.parametrize("seed", [-1, 3.5, "x", True])
def test_sb3_vec_env_refuses_a_bad_seed_at_once(seed):
    venv = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, coordinatewise=True, dim=3)
    with pytest.raises(ValueError, match="seed must be None or an integer >= 0"):
        venv.seed(seed)
    venv.seed(np.int64(4))
    venv.reset()


def test_complex_actions_are_refused_not_cast():
    env = gym.make("l2o/Quadratic-v0", dim=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="must be real"):
        env.step(np.array([1 + 2j, 0, 0]))
    venv = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, coordinatewise=True, dim=3)
    venv.reset()
    with pytest.raises(ValueError, match="must be real"):
        venv.step(np.full((6, 1), 0.1 + 0.1j))


def test_saved_metadata_that_is_binary_or_out_of_range_is_one_line(tmp_path):
    import json

    from agents.runtime.saved_rules import load_rule

    path = tmp_path / "policy" / "l2o_meta.json"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match="corrupt") as error:
        load_rule(path.parent)
    assert "\n" not in str(error.value)
    good = {"kind": "sb3", "library_version": l2o_gym.__version__, "env_id": "l2o/Quadratic-v0"}
    good |= {"observation": "dict", "history": 25, "action_scale": 0.1}
    for key, value in (("history", "abc"), ("history", 0), ("action_scale", -1), ("action_scale", 1e30)):
        path.write_text(json.dumps({**good, key: value}))
        with pytest.raises(ValueError, match=key) as error:
            load_rule(path.parent)
        assert "\n" not in str(error.value) and repr(value) in str(error.value)


def test_an_episode_option_given_as_a_family_keyword_says_where_it_belongs(capsys):
    import train_agent

    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(["evaluate", "--env", "l2o/Quadratic-v0", "--family-kwarg", "horizon=5"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "episode option" in err and "--horizon" in err and "unknown" not in err
