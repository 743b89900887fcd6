"""What an environment step costs beyond the loss and gradient it wraps: every env form against a
bare batched torch loop, measured in one run, one torch thread.

The bare loop is what any optimizer must pay: f = loss(x), ∇f by autograd, x -= lr · ∇f, on the
same B instances. Each env form steps B instances with fixed random actions (autoresets
included) and its per-step time is divided by the bare loop's:

* the Quadratic (d = 10, B = 1024): ``gymnasium.make_vec`` (dict observation; also with
  ``copy=False``, its arrays views of the env's windows), the SB3 VecEnv in the dict and the
  coordinatewise form (`l2o_gym.make_sb3_vec_env`); each also against a second baseline, the
  same loop with the family's own analytic ``problem.loss_and_grad(x)`` (what the envs call);
  then SB3's contract floor for the coordinatewise form (`benchmarks.contract_floors`: the
  B·d info dicts, one fresh array of rows, the ended envs' own dicts once per horizon);
* an O(d) objective (Rosenbrock) at d = 10, 100, 1,000, 10,000 (B = 64, ``make_vec``, with and
  without ``copy=False``);
* the history length H = 5, 25, 100 (Quadratic, ``make_vec``: dict, dict with ``copy=False``,
  coordinatewise), also as a ratio to the same form at H = 25; and the fresh observation arrays
  alone at H = 25 and 100 (the dict's windows, the coordinatewise rows) as the floor of that ratio;
* each meta-learning family (B = 16, coordinatewise ``make_vec``) against its own bare loop; the
  MAML families also with ``copy=False, task_metrics=False`` (rows written into one array, no
  query-set metric in the info), and their rows alone written into a fresh array and in place;
* PPO end to end with the logistic-regression training configuration (agents/rl/hyperparams.yaml,
  built as a training run builds it, no warm start, no validation; `benchmarks.ppo_throughput`):
  problem-steps/s (instance steps, one per B instances and step, whatever d) and the share of
  the CPU time spent in the update, against the bare loop's problem-steps/s on the same
  instances; then the same with agents/rl/ppo_logistic_previous.yaml over it (the settings
  before docs/ppo_speed.md's).

Where a C compiler is found the env steps use the compiled kernels of `l2o_gym.native_kernel`
(the header says so); ``L2O_GYM_NO_KERNEL=1`` measures the torch code alone. Times are CPU time
of this process by default (``--clock cpu``; one torch thread, so the same as
wall time on an idle machine): on a machine shared with other jobs they move far less between
runs than wall-clock times. ``--clock wall`` measures wall time; a ``--device`` run always does
(work on the device is not this process's CPU time).

Prints a markdown table and writes it to docs/speed.md (``--out``; notes below the file's
keep-marker survive the rewrite). ``--quick`` runs tiny sizes (a smoke test, its figures mean
nothing). ``--device cuda`` adds the Quadratic forms on that device at ``--device-batch``
instances (default 65,536).

    python -m benchmarks.env_overhead [--quick] [--out docs/speed.md] [--seconds 0.6] [--clock cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import l2o_gym
from benchmarks import contract_floors as floors
from l2o_gym import native_kernel
from l2o_gym.atomic_io import atomic_write_text
from l2o_gym.registry import make_family

QUAD = "l2o/Quadratic-v0"
KEEP_MARKER = "<!-- notes below are kept when the benchmark rewrites this file -->"
META_FAMILIES = ("l2o/MAMLSinusoid-v0", "l2o/MAMLDigits-v0", "l2o/MANNDigits-v0", "l2o/HyperNetDigits-v0")
PPO_ENV = "l2o/LogisticRegression-v0"
PPO_PREVIOUS = "agents/rl/ppo_logistic_previous.yaml"  # the PPO settings before docs/ppo_speed.md
OWN_NOTE = "the Quadratic's analytic gradient, as the envs call it"
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]  # what every measurement reads; set by main (--clock)


def per_call(fn: Callable[[], object], seconds: float, rounds: int = 3) -> float:
    """Seconds per call of fn: the best of `rounds` rounds, each as many calls as fit `seconds`."""
    fn()  # warm up
    start = clock()
    fn()
    calls = max(1, int(seconds / rounds / max(clock() - start, 1e-9)))
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        for _ in range(calls):
            fn()
        best = min(best, (clock() - start) / calls)
    return best


def instances(env_id: str, batch: int, device: str = "cpu", **family_kwargs):
    """`batch` instances of the id's family (seed 0) and their starting points x [B, d]."""
    problem = make_family(env_id, **family_kwargs).sample(batch, torch.Generator().manual_seed(0), device=device)
    return problem, problem.init()


def bare_loop(env_id: str, batch: int, seconds: float, device: str = "cpu", **family_kwargs) -> float:
    """Seconds per step of loss, autograd gradient and x -= lr · g on `batch` instances."""
    problem, x = instances(env_id, batch, device, **family_kwargs)

    def step() -> None:
        nonlocal x
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(problem.loss(leaf).sum(), leaf)
        x = leaf.detach() - 1e-4 * grad
        if x.is_cuda:
            torch.cuda.synchronize()

    return per_call(step, seconds)


def own_gradient_loop(env_id: str, batch: int, seconds: float, device: str = "cpu", **family_kwargs) -> float:
    """Seconds per step of the family's own ``problem.loss_and_grad(x)`` (analytic where the
    family has one, as the envs call it) and x -= lr · g on `batch` instances."""
    problem, x = instances(env_id, batch, device, **family_kwargs)

    def step() -> None:
        nonlocal x
        _, grad = problem.loss_and_grad(x)
        x = x - 1e-4 * grad
        if x.is_cuda:
            torch.cuda.synchronize()

    return per_call(step, seconds)


def actions_for(space: gym.spaces.Box, scale: float = 0.3) -> np.ndarray:
    """Fixed random actions in [-scale, scale] of the space's shape."""
    rng = np.random.default_rng(0)
    return (scale * rng.uniform(-1.0, 1.0, space.shape)).astype(np.float32)


def vector_env_step(env_id: str, batch: int, seconds: float, **kwargs) -> float:
    env = gym.make_vec(env_id, num_envs=batch, vectorization_mode="vector_entry_point", **kwargs)
    env.reset(seed=0)
    actions = actions_for(env.action_space)
    if kwargs.get("output") != "torch":
        return per_call(lambda: env.step(actions), seconds)
    on_device = torch.from_numpy(actions).to(kwargs.get("device", "cpu"))

    def step() -> None:  # tensors stay on the device: wait for its work like the bare loop does
        env.step(on_device)
        if on_device.is_cuda:
            torch.cuda.synchronize()

    return per_call(step, seconds)


def sb3_step(env_id: str, batch: int, seconds: float, coordinatewise: bool, device: str = "cpu") -> float:
    venv = l2o_gym.make_sb3_vec_env(env_id, batch, seed=0, coordinatewise=coordinatewise, device=device)
    venv.reset()
    actions = actions_for(gym.spaces.Box(-1.0, 1.0, (venv.num_envs, *venv.action_space.shape)))

    def step() -> None:
        venv.step_async(actions)
        venv.step_wait()

    return per_call(step, seconds)


class Table:
    """Rows of (what, bare ms, env ms, ratio, note), printed as they come."""

    def __init__(self) -> None:
        self.lines = ["| what | bare loop (ms/step) | env (ms/step) | ratio | note |", "|---|---|---|---|---|"]
        print("\n".join(self.lines), flush=True)

    def add(self, what: str, bare: float, env: float, note: str = "") -> float:
        ratio = env / bare
        line = f"| {what} | {1e3 * bare:.3f} | {1e3 * env:.3f} | {ratio:.2f}× | {note} |"
        self.lines.append(line)
        print(line, flush=True)
        return ratio


def quadratic_forms(table: Table, batch: int, seconds: float, device: str = "cpu") -> None:
    bare = bare_loop(QUAD, batch, seconds, device)
    at = f"Quadratic d=10 B={batch}" + ("" if device == "cpu" else f" on {device}")
    steps = {"make_vec (dict)": vector_env_step(QUAD, batch, seconds, device=device)}
    steps["make_vec (dict), copy=False"] = vector_env_step(QUAD, batch, seconds, device=device, copy=False)
    if device != "cpu":  # on a GPU the host copies dominate: also with tensors kept on the device
        steps["make_vec (dict), output=torch"] = vector_env_step(QUAD, batch, seconds, device=device, output="torch")
    for form, coordinatewise in (("dict", False), ("coordinatewise", True)):
        steps[f"SB3 {form} VecEnv"] = sb3_step(QUAD, batch, seconds, coordinatewise, device)
    for form, env in steps.items():
        table.add(f"{at}: {form}", bare, env)
    own = own_gradient_loop(QUAD, batch, seconds, device)
    table.add(f"{at}: second baseline, the family's own loss_and_grad + x -= lr·g", bare, own, OWN_NOTE)
    for form, env in steps.items():
        table.add(f"{at}: {form}, against the second baseline", own, env, "bare loop column: the second baseline")
    if device == "cpu":
        sb3_contract_floor(table, batch, seconds, (bare, own, steps["SB3 coordinatewise VecEnv"]))


def sb3_contract_floor(table: Table, batch: int, seconds: float, measured: tuple[float, float, float]) -> None:
    """What SB3's VecEnv contract costs by itself for the coordinatewise Quadratic (B · d envs):
    (a) the info dicts, (b) one fresh observation array of rows, (c) the ended envs' own dicts,
    all B · d every horizon steps, amortised; their sum against the bare loop (measured: the bare
    loop, the second baseline and the SB3 coordinatewise step, seconds per step)."""
    bare, own, env = measured
    venv = l2o_gym.make_sb3_vec_env(QUAD, batch, seed=0, coordinatewise=True)
    dim, width, horizon = venv.dim, venv.observation_space.shape[0], sum(venv.episodes.horizon_range) / 2
    envs = batch * dim
    timer = partial(per_call, seconds=seconds)
    at = f"Quadratic d=10 B={batch}: SB3 coordinatewise contract floor"
    parts = (
        (f"(a) {envs:,} info dicts ({batch:,} shared over d)", floors.info_dicts(timer, batch, dim)),
        (f"(b) one fresh [{envs:,}, {width}] float32 array of rows", floors.fresh_copies(timer, [(envs, width)])),
        (
            f"(c) {envs:,} terminal dicts with a row view each, ÷ horizon {horizon:g}",
            floors.terminal_dicts(timer, batch, dim, width) / horizon,
        ),
    )
    for what, spent in parts:
        table.add(f"{at} {what}", bare, spent)
    floor = sum(spent for _, spent in parts)
    note = (
        f"SB3 coordinatewise step {env / bare:.2f}×; own loss_and_grad + floor {(own + floor) / bare:.2f}× "
        f"(a floor for the step); floor + bare loop {1 + floor / bare:.2f}×"
    )
    table.add(f"{at}: (a) + (b) + (c)", bare, floor, note)


def dimensions(table: Table, dims: tuple[int, ...], batch: int, seconds: float) -> None:
    for dim in dims:
        bare = bare_loop("l2o/Rosenbrock-v0", batch, seconds, dim=dim)
        env = vector_env_step("l2o/Rosenbrock-v0", batch, seconds, dim=dim)
        table.add(f"Rosenbrock d={dim} B={batch}: make_vec (dict)", bare, env)
        env = vector_env_step("l2o/Rosenbrock-v0", batch, seconds, dim=dim, copy=False)
        table.add(f"Rosenbrock d={dim} B={batch}: make_vec (dict), copy=False", bare, env)


def histories(table: Table, lengths: tuple[int, ...], batch: int, seconds: float) -> None:
    """make_vec at each history length H (dict with and without copies, coordinatewise), each
    also as a ratio to its own form at H = 25; then what grows with H in the contract itself."""
    bare = bare_loop(QUAD, batch, seconds)
    forms = (("dict", {}), ("dict, copy=False", {"copy": False}), ("coordinatewise", {"coordinatewise": True}))
    by_form = {}  # each form's measured steps at H = 25 and the longest H
    for form, options in forms:
        steps = {h: vector_env_step(QUAD, batch, seconds, history=h, **options) for h in lengths}
        for h, env in steps.items():
            note = f"{env / steps[25]:.2f}× H=25" if 25 in steps else ""
            table.add(f"Quadratic d=10 B={batch} H={h}: make_vec ({form})", bare, env, note)
        by_form[form] = (steps.get(25), steps.get(max(lengths)))
    history_floors(table, (25, max(lengths)), batch, seconds, bare, by_form)


def history_floors(
    table: Table, lengths: tuple[int, int], batch: int, seconds: float, bare: float, at: dict[str, tuple]
) -> None:
    """The copies a step at the longer H must make beyond one at the shorter: the dict's fresh
    arrays (the [B, H, d] window and the [B, H] improvements) and the coordinatewise rows [B·d,
    2H + 9], each from a same-sized source; `at` holds each form's measured steps at both H."""
    timer = partial(per_call, seconds=seconds)
    for form, coordinatewise in (("dict", False), ("coordinatewise", True)):
        spaces = {h: observation_space(QUAD, history=h, coordinatewise=coordinatewise) for h in lengths}
        if coordinatewise:  # one row per coordinate env
            shapes = {h: [(batch * space.shape[0], space.shape[1])] for h, space in spaces.items()}
        else:
            shapes = {h: [(batch, *box.shape) for box in space.values()] for h, space in spaces.items()}
        copies = {h: floors.fresh_copies(timer, shapes[h]) for h in lengths}
        short, long = lengths
        for h in lengths:
            sizes = " + ".join(f"[{', '.join(f'{n:,}' for n in shape)}]" for shape in shapes[h])
            note = ""
            if h == long and None not in at[form]:
                step_short, step_long = at[form]
                lowest = (step_short + copies[long] - copies[short]) / step_short
                note = (
                    f"{copies[long] / copies[short]:.2f}× H={short}; a {form} step at H={long} is at least "
                    f"{lowest:.2f}× its H={short} step (measured {step_long / step_short:.2f}×)"
                )
            table.add(f"Quadratic d=10 B={batch} H={h}: floor, fresh {form} observation {sizes}", bare, copies[h], note)


def observation_space(env_id: str, **kwargs) -> gym.Space:
    """One instance's observation space (Box(d, F) rows or the dict of Boxes)."""
    env = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
    space = env.single_observation_space
    env.close()
    return space


def meta_families(table: Table, families: tuple[str, ...], batch: int, seconds: float, meta_iterations: int) -> None:
    with tempfile.TemporaryDirectory() as cache:  # the MAML init's quality does not matter here
        for env_id in families:
            kwargs = {"meta_iterations": meta_iterations, "cache_dir": cache} if "MAML" in env_id else {}
            dim = make_family(env_id, **kwargs).dim
            bare = bare_loop(env_id, batch, seconds, **kwargs)
            env = vector_env_step(env_id, batch, seconds, coordinatewise=True, **kwargs)
            table.add(f"{env_id} d={dim} B={batch}: make_vec (coordinatewise)", bare, env)
            if "MAML" in env_id:  # as a learner that keeps no observation and reads no task metric
                lean = vector_env_step(
                    env_id, batch, seconds, coordinatewise=True, copy=False, task_metrics=False, **kwargs
                )
                table.add(f"{env_id} d={dim} B={batch}: the same, copy=False, task_metrics=False", bare, lean)
                rows_floor(table, f"{env_id} d={dim} B={batch}", (batch, seconds, bare), (env, lean), env_id, kwargs)


def rows_floor(table: Table, at: str, sizes: tuple, measured: tuple[float, float], env_id: str, kwargs: dict) -> None:
    """Writing a family's coordinatewise rows [B·d, F] alone, into a fresh array (copy=True) and in
    place (copy=False), from a same-sized source; `sizes` (B, seconds, bare loop), `measured` the
    env's steps in those two forms."""
    batch, seconds, bare = sizes
    space = observation_space(env_id, coordinatewise=True, **kwargs)
    shape = (batch * space.shape[0], space.shape[1])
    timer = partial(per_call, seconds=seconds)
    rows = f"[{shape[0]:,}, {shape[1]}]"
    for form, spent, env in (
        (f"a fresh {rows} array", floors.fresh_copies(timer, [shape]), measured[0]),
        (f"one {rows} array in place", floors.in_place_copy(timer, shape), measured[1]),
    ):
        note = f"env {env / bare:.2f}×; floor + bare loop {1 + spent / bare:.2f}×"
        table.add(f"{at}: floor, rows written into {form}", bare, spent, note)


def ppo_throughput(table: Table, seconds: float, quick: bool, config: str | None = None) -> None:
    """PPO with the logistic-regression configuration (and a --config file over it), built as a
    training run builds it (`benchmarks.ppo_throughput`): problem-steps/s and the update's share."""
    from benchmarks.ppo_throughput import measure_ppo

    measured = measure_ppo(config, env_id=PPO_ENV, rollouts=1 if quick else max(1, min(4, int(seconds))), quick=quick)
    spent = measured.cpu_s if clock is time.process_time else measured.wall_s
    bare = bare_loop(PPO_ENV, measured.num_envs, seconds)
    note = (
        f"{measured.problem_steps / spent:,.0f} problem-steps/s ({measured.num_envs} instances × d={measured.dim}); "
        f"update {100 * measured.update_share:.0f} % of the CPU time"
    )
    what = f"PPO on {PPO_ENV}, its training configuration" + (f" + {config}" if config else "")
    table.add(what, bare, spent * measured.num_envs / measured.problem_steps, note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--out", default="docs/speed.md", help="where the markdown table goes")
    parser.add_argument("--seconds", type=float, default=0.6, help="time per measurement")
    parser.add_argument("--device", default=None, help="also run the Quadratic forms on this device (e.g. cuda)")
    parser.add_argument("--device-batch", type=int, default=65536, help="instances on --device (default 65,536)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="CPU time of this process or wall time")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if args.device_batch < 1:
        parser.error(f"--device-batch must be a positive integer, got {args.device_batch}")
    if args.device is not None:
        try:
            torch.empty(0, device=args.device)
        except (RuntimeError, ValueError) as err:
            parser.error(f"--device {args.device!r} is not usable here: {str(err).splitlines()[0]}")
    torch.set_num_threads(1)
    global clock
    clock_name = "wall" if args.device is not None else args.clock
    clock = CLOCKS[clock_name]
    q = args.quick
    seconds = 0.01 if q else args.seconds
    started = time.perf_counter()
    print(f"env step vs bare loop (loss + autograd gradient + x -= lr·g), 1 torch thread{' (quick)' if q else ''}\n")
    table = Table()
    quadratic_forms(table, 8 if q else 1024, seconds)
    if args.device is not None:
        quadratic_forms(table, 8 if q else args.device_batch, seconds, args.device)
    dimensions(table, (10, 100) if q else (10, 100, 1000, 10000), 4 if q else 64, seconds)
    histories(table, (5, 25, 100), 8 if q else 1024, seconds)
    meta_families(table, META_FAMILIES[:1] if q else META_FAMILIES, 2 if q else 16, seconds, 1 if q else 20)
    ppo_throughput(table, 0.01 if q else 4.0, q)
    if Path(PPO_PREVIOUS).is_file():
        ppo_throughput(table, 0.01 if q else 4.0, q, PPO_PREVIOUS)
    elapsed = time.perf_counter() - started
    kernels = "compiled step kernels" if native_kernel.library() is not None else "torch only (no step kernels)"
    text = "\n".join(
        [
            "# Environment overhead",
            "",
            "Written by `python -m benchmarks.env_overhead`"
            + (" --quick (tiny sizes: not a measurement)" if q else "")
            + f" ({elapsed:.0f} s, torch {torch.__version__}, 1 thread, {clock_name} time, {kernels}).",
            "Each env form steps B instances with fixed random actions (autoresets included); the ratio is",
            "its time per step over a bare batched loop (loss, autograd gradient, x -= lr·g) on the same",
            "instances, measured in the same run. Meta-learning families: coordinatewise rows, H = 25.",
            'Rows "against the second baseline" divide by a loop with the family\'s own `loss_and_grad`',
            '(analytic for the Quadratic); "floor" rows time what a step\'s contract alone costs, without any',
            'env logic (`benchmarks/contract_floors.py`; see "Contract floors" below).',
            "",
            *table.lines,
            "",
        ]
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = out.read_text().partition(KEEP_MARKER)[2] if out.is_file() else ""
    atomic_write_text(out, text + "\n" + KEEP_MARKER + (kept or "\n"))
    print(f"\nwrote {out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
