"""The observation spec: validation, its saved form, the observations it builds (the same numbers
as the computation classes give directly), and a policy saved by l2o_gym 0.4.0 that still loads
and acts exactly as it did."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import l2o_gym
import l2o_gym.observation_spec as observation_spec_module
from agents.runtime.learned_optimizer import LearnedOptimizer
from agents.runtime.saved_rules import META_FILE, load_rule, read_meta, write_meta
from l2o_gym.episode_batch import EpisodeBatch
from l2o_gym.features import CoordinatewiseObservation, DictObservation, make_observation
from l2o_gym.observation_spec import LAYOUT_VERSION, ObservationSpec
from l2o_gym.state import OptimizationState
from l2o_gym.unroll import unroll

FIXTURE = Path(__file__).parent / "fixtures" / "ppo_coordinatewise_0_4_0"
SPECS = [
    ObservationSpec(),
    ObservationSpec("dict", 3, 0.02),
    ObservationSpec("coordinatewise", 6, 0.1),
    ObservationSpec("coordinatewise", 8, 2.0, quasi_newton_pairs=5),
    ObservationSpec("coordinatewise", 8, 10.0, quasi_newton_pairs=3, time_features=True),
]


def advanced_state(dim: int = 4, history: int = 8, steps: int = 5) -> OptimizationState:
    """A state some steps into an episode (histories partly filled, quasi-Newton pairs present)."""
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=dim).sample(3, torch.Generator().manual_seed(7), "train")
    state = OptimizationState.start(problem, history=history)
    for _ in range(steps):
        state.advance(-0.05 * state.grad)
    return state


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_a_spec_round_trips_through_its_metadata(spec):
    data = json.loads(json.dumps(spec.to_meta()))  # as written to l2o_meta.json
    assert data["layout_version"] == LAYOUT_VERSION
    assert ObservationSpec.from_meta(data) == spec
    assert ObservationSpec.from_saved_meta({"observation": data}) == spec


def test_a_missing_feature_group_key_takes_its_default_and_an_unknown_key_is_refused():
    older = {"layout_version": LAYOUT_VERSION, "layout": "coordinatewise", "history": 6, "action_scale": 0.1}
    assert ObservationSpec.from_meta(older) == ObservationSpec("coordinatewise", 6, 0.1)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['curvature_features'\].*retrain"):
        ObservationSpec.from_meta({**older, "curvature_features": True})


@pytest.mark.parametrize("version", [0, 2, None, "1"])
def test_a_changed_layout_version_is_refused_with_how_to_retrain(version):
    data = {**SPECS[2].to_meta(), "layout_version": version}
    with pytest.raises(ValueError, match=rf"layout_version {version!r} is not this library's \(1\).*retrain"):
        ObservationSpec.from_meta(data)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layout": "rows"}, "observation layout must be one of dict, coordinatewise, got 'rows'"),
        ({"history": 0}, "observation history must be a positive int, got 0"),
        ({"history": 2.5}, "observation history must be a positive int, got 2.5"),
        ({"history": True}, "observation history must be a positive int, got True"),
        ({"action_scale": 0.0}, r"observation action_scale must be a finite number in \(0, 1e\+06\], got 0.0"),
        ({"action_scale": float("nan")}, "observation action_scale must be a finite number .*, got nan"),
        ({"action_scale": float("inf")}, "observation action_scale must be a finite number .*, got inf"),
        ({"action_scale": 1e9}, "observation action_scale must be a finite number .*, got 1000000000.0"),
        ({"action_scale": "0.1"}, "observation action_scale must be a finite number .*, got '0.1'"),
        ({"quasi_newton_pairs": 8}, r"observation quasi_newton_pairs must be an int in \[0, 7\] \(history 8\), got 8"),
        ({"quasi_newton_pairs": -1}, r"quasi_newton_pairs must be an int in \[0, 7\] .*, got -1"),
        ({"time_features": 1}, "observation time_features must be true or false, got 1"),
        ({"layout": "dict", "quasi_newton_pairs": 2}, "quasi_newton_pairs must be off .* in the dict layout"),
        ({"layout": "dict", "time_features": True}, "time_features must be off .* in the dict layout"),
    ],
)
def test_every_field_is_checked_on_construction_and_in_from_meta(fields, message):
    good = {"layout": "coordinatewise", "history": 8, "action_scale": 0.1}
    with pytest.raises(ValueError, match=message) as raised:
        ObservationSpec(**{**good, **fields})
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match=message):
        ObservationSpec.from_meta({"layout_version": LAYOUT_VERSION, **good, **fields})


@pytest.mark.parametrize("spec", SPECS[2:], ids=repr)
def test_rows_built_through_the_spec_are_those_of_the_computation_class(spec):
    state = advanced_state(history=spec.history)
    direct = CoordinatewiseObservation(4, spec.history, spec.action_scale, spec.quasi_newton_pairs, spec.time_features)
    rows = spec.observe(state)
    assert torch.equal(rows, direct(state))
    assert torch.equal(spec.policy_input(state), direct(state).reshape(12, -1))
    assert len(spec.column_names) == spec.num_features == direct.num_features == rows.shape[2]
    assert spec.space(4) == direct.space() and spec.row_space() == direct.row_space()
    assert spec.policy_space(4) == direct.row_space()
    # the columns are where the table says: the squashed gradient and the previous action
    squashed = rows[..., spec.column_names.index("squashed_gradient")]
    assert torch.allclose(squashed, state.grad / (1 + state.grad.abs()))
    previous = rows[..., spec.column_names.index("previous_action")]
    assert torch.allclose(previous, (state.last_step / spec.action_scale).clamp(-1, 1))


def test_the_dict_layout_through_the_spec_is_li_and_maliks():
    spec = ObservationSpec("dict", 8, 0.1)
    state = advanced_state()
    obs, direct = spec.observe(state), DictObservation(4, 8)(state)
    assert spec.keys == tuple(obs) == tuple(direct)
    assert all(torch.equal(obs[k], direct[k]) for k in obs)
    assert spec.space(4) == DictObservation(4, 8).space() == spec.policy_space(4)
    for what in (lambda: spec.row_space(), lambda: spec.column_names):
        with pytest.raises(ValueError, match="needs the coordinatewise layout"):
            what()


@pytest.mark.parametrize("coordinatewise", [False, True])
def test_episodes_take_the_spec_or_the_options_that_describe_it(coordinatewise):
    family = l2o_gym.make_family("l2o/Quadratic-v0", dim=4)
    options = {"history": 6, "action_scale": 0.2, "quasi_newton_pairs": 2 if coordinatewise else 0}
    spec = ObservationSpec("coordinatewise" if coordinatewise else "dict", **options)
    by_spec = EpisodeBatch(family, 3, observation=spec)
    by_options = EpisodeBatch(family, 3, coordinatewise=coordinatewise, **options)
    assert by_options.observation_spec == spec
    for batch in (by_spec, by_options):
        batch.reset(torch.Generator().manual_seed(0))
        batch.step(torch.full((3, 4), 0.5))
    a, b = by_spec.observe(), by_options.observe()
    old = make_observation(coordinatewise, 4, 6, 0.2, options["quasi_newton_pairs"])(by_spec.require_state())
    if coordinatewise:
        assert torch.equal(a, b) and torch.equal(a, old)
    else:
        assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], old[k]) for k in a)
    assert torch.equal(by_spec.require_state().x, by_options.require_state().x)  # steps of 0.2 · 0.5
    assert EpisodeBatch(family, 1).observation_spec == ObservationSpec("dict", 25, family.default_action_scale)
    with pytest.raises(ValueError, match=r"or as options, not both; got \['history'\] too"):
        EpisodeBatch(family, 3, observation=spec, history=6)


def test_every_env_form_takes_the_spec():
    spec = ObservationSpec("coordinatewise", 6, 0.1, quasi_newton_pairs=2, time_features=True)
    env = l2o_gym.registry.gym.make("l2o/Quadratic-v0", dim=3, observation=spec)
    assert env.observation_space == spec.space(3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    vec = l2o_gym.registry.gym.make_vec("l2o/Quadratic-v0", num_envs=2, dim=3, observation=spec)
    assert vec.single_observation_space == spec.space(3)
    sb3 = l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, seed=0, dim=3, observation=spec)
    assert sb3.observation_space == spec.row_space() and sb3.num_envs == 6 and sb3.observation_spec is spec
    rows = sb3.reset()
    assert rows.shape == (6, spec.num_features) and np.isfinite(rows).all()
    with pytest.raises(ValueError, match="not both"):
        l2o_gym.make_sb3_vec_env("l2o/Quadratic-v0", 2, dim=3, observation=spec, coordinatewise=True)


def test_a_learned_optimizer_builds_its_observation_once(monkeypatch):
    built = []
    real = observation_spec_module.make_observation
    monkeypatch.setattr(observation_spec_module, "make_observation", lambda *a: built.append(a) or real(*a))
    rule = load_rule(FIXTURE)
    problem = l2o_gym.make_family("l2o/Quadratic-v0", dim=3).sample(2, torch.Generator().manual_seed(0), "test")
    unroll(rule, problem, 6, history=6)
    assert len([args for args in built if args[1] == 3]) == 1  # one computation object for dimension 3


def test_a_policy_saved_by_l2o_gym_0_4_0_loads_and_acts_as_it_did():
    """tests/fixtures/ppo_coordinatewise_0_4_0 was trained and saved by l2o_gym 0.4.0 (flat layout
    keys in its metadata); expected.json holds its first steps and curve on fixed test instances."""
    meta = read_meta(FIXTURE)
    assert meta["library_version"] == "0.4.0" and meta["observation"] == "coordinatewise"
    expected = json.loads((FIXTURE / "expected.json").read_text())
    rule = load_rule(FIXTURE)
    assert isinstance(rule, LearnedOptimizer)
    assert rule.observation_spec == ObservationSpec("coordinatewise", 6, 0.1, quasi_newton_pairs=2, time_features=True)
    steps, curve = _evaluate(rule, expected)
    torch.testing.assert_close(steps, torch.tensor(expected["first_steps"]), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(curve, torch.tensor(expected["objectives"]), rtol=1e-5, atol=1e-7)


def test_a_policy_resaved_with_its_spec_loads_under_any_library_version(tmp_path):
    """The new metadata form: the layout under "observation" with its own version; the library
    version is only recorded."""
    legacy = read_meta(FIXTURE)
    folder = tmp_path / "resaved"
    shutil.copytree(FIXTURE, folder)
    layout_keys = ("history", "action_scale", "quasi_newton_pairs", "time_features", "library_version")
    meta = {k: v for k, v in legacy.items() if k not in layout_keys}
    meta["observation"] = ObservationSpec.from_saved_meta(legacy).to_meta()
    write_meta(folder, {**meta, "library_version": "9.9.9"})
    expected = json.loads((FIXTURE / "expected.json").read_text())
    steps, curve = _evaluate(load_rule(folder), expected)
    torch.testing.assert_close(curve, torch.tensor(expected["objectives"]), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(steps, torch.tensor(expected["first_steps"]), rtol=1e-5, atol=1e-7)
    written = json.loads((folder / META_FILE).read_text())
    assert not set(layout_keys[:-1]) & set(written)  # nothing but the spec holds the layout


def test_other_saved_forms_are_refused_with_how_to_retrain(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE, folder)
    legacy = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**legacy, "library_version": "0.3.0"}))
    with pytest.raises(ValueError, match=r"old'.*saved by l2o_gym 0.3.0\): retrain it with this version"):
        load_rule(folder)
    (folder / META_FILE).write_text(json.dumps({**legacy, "weights_format": 2}))
    with pytest.raises(ValueError, match="weights_format 2 is not this library's SB3 weights format"):
        load_rule(folder)
    new = {**legacy, "observation": {**ObservationSpec.from_saved_meta(legacy).to_meta(), "layout_version": 2}}
    (folder / META_FILE).write_text(json.dumps(new))
    with pytest.raises(ValueError, match=r"l2o_meta.json: observation layout_version 2 is not this library's"):
        read_meta(folder)
    with pytest.raises(ValueError, match="layout_version 2"):
        write_meta(tmp_path / "never", new)
    assert not (tmp_path / "never").exists()


def _evaluate(rule: LearnedOptimizer, expected: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The rule's first steps and its curve on the fixture's test instances, as recorded."""
    family = l2o_gym.make_family(expected["env_id"], **expected["family_kwargs"])
    generator = torch.Generator().manual_seed(expected["seed"])
    problem = family.sample(expected["instances"], generator, expected["split"])
    curve = unroll(rule, copy.deepcopy(problem), expected["horizon"], history=expected["history"])
    state = OptimizationState.start(copy.deepcopy(problem), history=expected["history"])
    rule.reset(state)
    steps = []
    for _ in range(len(expected["first_steps"])):
        step = rule.step(state)
        steps.append(step)
        state.advance(step)
    return torch.stack(steps), curve.objectives


def test_the_torch_optimizer_keeps_the_history_of_the_saved_policy():
    from agents.runtime.torch_optimizer import LearnedTorchOptimizer

    weights = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    optimizer = LearnedTorchOptimizer([weights], FIXTURE)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (weights**2).sum()
        loss.backward()
        return loss

    first = float(closure())
    for _ in range(5):
        optimizer.step(closure)
    assert optimizer.optimization_state.history == 6 and float(closure()) < first
