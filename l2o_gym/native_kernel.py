"""Optional compiled CPU kernels for the environment step (`native_kernels.c`), with the eager
torch code as the fallback.

A step is many narrow pieces: the transition's checks and window pushes on [B] and [B, d]
tensors, a coordinatewise row's two windows and nine features; in torch each piece is one
operation whose dispatch and short inner loops (d floats per instance) cost more than its
arithmetic. The kernels do them in a few passes: `scaled_actions`, `transition_start` and
`transition_finish` around the loss (`OptimizationState.advance`), `coordinatewise_rows`, and
the log-suboptimality reward with the episode ends (`log_suboptimality_outcome`), the decayed
window sums' push and total (`decayed_push`, `decayed_total`). They are
compiled on first use with the C compiler (``$CC``, else ``cc``; ``-O3 -march=native``) into
the cache folder (``$L2O_GYM_CACHE/kernels``, else ``~/.cache/l2o_gym/kernels``), named by a
hash of the source, the flags, the compiler and the CPU's feature flags, and loaded from there
later (a build takes about a second; nothing is built at import). ``L2O_GYM_NO_KERNEL=1``, a
missing compiler or a failed build leave the eager code in
place (a failed build warns once). `tests/test_native_kernel.py` checks that both agree within
1e-6. All tensors passed are CPU, contiguous, float32 unless said otherwise.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("native_kernels.c")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", "-std=c11")
DISABLE_VAR = "L2O_GYM_NO_KERNEL"
LAYOUT_CODES = {"time_first": 0, "batch_first": 1, "time_last": 2}  # as native_kernels.c reads them
MAX_BETAS = 8  # native_kernels.c's MAX_BETAS: the most window averages a row may hold
_I64, _PTR, _F32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
_ROWS_ARGTYPES = [_PTR, _I64, _I64, _I64, _I64, _PTR, _I64, _PTR, _I64, _PTR, _PTR, _I64]
_ROWS_ARGTYPES += [_PTR, _PTR, _PTR, _PTR, _F32, _F32]
_library: ctypes.CDLL | None = None
_tried = False


def kernel_cache_dir() -> Path:
    """Where built kernels are kept: $L2O_GYM_CACHE/kernels, else ~/.cache/l2o_gym/kernels."""
    root = os.environ.get("L2O_GYM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "l2o_gym") / "kernels"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return ""


def build(compiler: str) -> Path:
    """The shared library for this source, flags, compiler and CPU (built once, atomically)."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), version.encode(), _cpu_flags().encode()]))
    target = kernel_cache_dir() / f"native_kernels-{key.hexdigest()[:16]}.so"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            built = Path(scratch) / target.name
            subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"], capture_output=True, check=True)
            os.replace(built, target)
    return target


def compiler() -> str | None:
    """The C compiler: $CC, else cc, where it is on the PATH; else None."""
    return shutil.which(os.environ.get("CC", "cc"))


def library() -> ctypes.CDLL | None:
    """The loaded kernel, or None (disabled, no compiler, or the build failed); built on first use."""
    global _library, _tried
    if os.environ.get(DISABLE_VAR, "") not in ("", "0"):
        return None
    if not _tried:
        _tried = True
        found = compiler()
        if found is not None:
            try:
                lib = ctypes.CDLL(str(build(found)))
                _declare(lib)
                _library = lib
            except (OSError, subprocess.CalledProcessError) as err:
                warnings.warn(f"the native rows kernel did not build ({err}); using the torch code", stacklevel=2)
    return _library


def _declare(lib: ctypes.CDLL) -> None:
    """The kernels' argument and result types."""
    lib.coordinatewise_rows.argtypes, lib.coordinatewise_rows.restype = _ROWS_ARGTYPES, None
    lib.transition_start.argtypes, lib.transition_start.restype = [_I64, _I64, *[_PTR] * 5], None
    lib.transition_finish.argtypes = [_I64, _I64, _I64, *[_PTR] * 5, _F32, *[_PTR] * 12, _F32]
    lib.transition_finish.restype = _I64
    lib.scaled_actions.argtypes, lib.scaled_actions.restype = [_I64, _PTR, _F32, _PTR], None
    lib.log_gap_arguments.argtypes, lib.log_gap_arguments.restype = [_I64, *[_PTR] * 4, _F32, _PTR], None
    lib.step_outcome.argtypes, lib.step_outcome.restype = [_I64, *[_PTR] * 5, _F32, *[_PTR] * 3], None
    lib.decayed_push.argtypes, lib.decayed_push.restype = [_I64, _I64, _PTR, _PTR, _PTR, _I64], None
    lib.decayed_total.argtypes, lib.decayed_total.restype = [_I64, _I64, *[_PTR] * 4], None


def coordinatewise_rows(
    lib: ctypes.CDLL,
    out: Tensor,
    log_grad: tuple[Tensor, int],
    change: tuple[Tensor, int],
    last_step: Tensor,
    grad: Tensor,
    averages: tuple[Tensor, Tensor],
    squares: tuple[Tensor, Tensor],
    action_scale: float,
    signed_log_norm: float,
) -> None:
    """Write columns [0, 2H + 3 + 2n) of the rows out [B, d, F] (float32, contiguous).

    log_grad: (buffer [B, d, 2H] time last, head); change: (buffer [B, 2H], head); last_step,
    grad [B, d]; averages: (decayed sums [n, B, d], filled weights' sums [n, B]); squares: the same
    for the squared gradients ([1, B, d], [1, B]); float64 sums, float32 the rest, all contiguous."""
    batch, dim, width = out.shape
    (grad_buffer, grad_head), (change_buffer, change_head) = log_grad, change
    sums, totals = averages
    lib.coordinatewise_rows(
        _pointer(out), batch, dim, width, grad_buffer.shape[-1] // 2,
        _pointer(grad_buffer), grad_head, _pointer(change_buffer), change_head,
        _pointer(last_step), _pointer(grad), sums.shape[0], _pointer(sums), _pointer(totals),
        _pointer(squares[0]), _pointer(squares[1]), action_scale, signed_log_norm,
    )  # fmt: skip


def _pointer(tensor: Tensor) -> int:
    return tensor.data_ptr()


def scaled_actions(lib: ctypes.CDLL, action: Tensor, scale: float) -> Tensor:
    """clip(action, -1, 1) · scale [B, d], NaN where the action is not finite (float32, contiguous)."""
    step = torch.empty_like(action)
    lib.scaled_actions(action.numel(), _pointer(action), scale, _pointer(step))
    return step


def transition_start(lib: ctypes.CDLL, x: Tensor, step: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """safe_step [B, d] (step, 0 in rows that are not finite), x_new = x + safe_step, and
    step_finite [B] (bool), from x and step [B, d] (float32, contiguous)."""
    batch, dim = x.shape
    safe_step, x_new = torch.empty_like(x), torch.empty_like(x)
    step_finite = torch.empty(batch, dtype=torch.bool)
    lib.transition_start(
        batch, dim, x.data_ptr(), step.data_ptr(), safe_step.data_ptr(), x_new.data_ptr(), step_finite.data_ptr()
    )
    return safe_step, x_new, step_finite


class WindowPointers:
    """What the transition kernel needs of four `HistoryWindow`s (grad, log_grad, step: items
    [B, d]; change: items [B]): their buffers' addresses and layout codes, read once and kept
    while the windows write into the same buffers (`current`); their heads, read at each call."""

    def __init__(self, windows: tuple) -> None:
        self.windows = windows
        self.buffers = tuple(window.buffer for window in windows)
        self.addresses = [buffer.data_ptr() for buffer in self.buffers]
        self.layouts = (ctypes.c_int64 * 4)(*[LAYOUT_CODES[window.layout] for window in windows])
        self.heads = (ctypes.c_int64 * 4)()
        self.length = windows[0].length

    def __getstate__(self) -> dict:
        """Pickled (a state sent to another process): nothing, addresses mean nothing there."""
        return {}

    def __setstate__(self, state: dict) -> None:
        self.windows = self.buffers = ()  # read back: not current, made anew on first use

    def current(self, windows: tuple) -> bool:
        """Whether these are the same windows, writing into the same buffers."""
        if len(self.windows) != len(windows):
            return False
        for kept, window, buffer in zip(self.windows, windows, self.buffers, strict=True):
            if kept is not window or window.buffer is not buffer:
                return False
        return True

    def head_addresses(self) -> int:
        """The address of the heads array, filled with the windows' heads now."""
        heads = self.heads
        for k, window in enumerate(self.windows):
            heads[k] = window.head
        return ctypes.addressof(heads)


def transition_finish(
    lib: ctypes.CDLL,
    new: tuple[Tensor, Tensor, Tensor],
    before: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    explode_ratio: float,
    windows: WindowPointers,
    signed_log_norm: float,
) -> tuple[Tensor, Tensor, int]:
    """After the loss: moved [B] and diverged_now [B] (bool) of the step to new = (x_new, f_new,
    grad_new), and how many rows did not move; where every row moved, also the newest items pushed
    into the head slots of windows (the `WindowPointers` of grad, log_grad, step [.., d] and
    change [B], any `HistoryWindow` layout): grad_new, signed_log(grad_new), safe_step,
    and the relative change from f to f_new. before = (safe_step, step_finite, f, f0, diverged).
    The caller moves the windows' heads on (`HistoryWindow.commit_push`)."""
    x_new, f_new, grad_new = new
    safe_step, step_finite, f_old, f0, diverged = before
    batch, dim = x_new.shape
    flags = torch.empty(2, batch, dtype=torch.bool)  # moved, diverged_now
    scratch = grad_new.new_empty(batch * (dim + 1))
    at = flags.data_ptr()
    frozen = lib.transition_finish(
        batch, dim, windows.length, x_new.data_ptr(), f_new.data_ptr(), grad_new.data_ptr(),
        step_finite.data_ptr(), f0.data_ptr(), explode_ratio, diverged.data_ptr(), at, at + batch,
        safe_step.data_ptr(), f_old.data_ptr(), *windows.addresses, windows.head_addresses(),
        ctypes.addressof(windows.layouts), scratch.data_ptr(), signed_log_norm,
    )  # fmt: skip
    return flags[0], flags[1], int(frozen)


def log_suboptimality_outcome(
    lib: ctypes.CDLL,
    objectives: tuple[Tensor, Tensor, Tensor, Tensor],
    eps: float,
    steps: tuple[Tensor, Tensor, Tensor, Tensor],
    penalty: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The log-suboptimality reward [B] (float32) and terminated, truncated [B] (bool) of a step:
    objectives = (f_prev, f, f0, f_star) [B] float32; steps = (diverged_now [B] bool, t_before, t,
    horizon [B] int64); penalty: minus the divergence penalty per remaining step. The log is
    torch's (the same numbers as `l2o_gym.rewards`), the rest two passes in C."""
    batch = objectives[0].shape[0]
    floats, ends = torch.empty(3 * batch), torch.empty(2 * batch, dtype=torch.bool)  # [args, args, reward]
    args, reward = floats[: 2 * batch], floats[2 * batch :]
    f_prev, f, f0, f_star = (tensor.data_ptr() for tensor in objectives)
    lib.log_gap_arguments(batch, f_prev, f, f0, f_star, eps, args.data_ptr())
    args.log_()
    diverged_now, t_before, t, horizon = (tensor.data_ptr() for tensor in steps)
    ends_at = ends.data_ptr()
    lib.step_outcome(
        batch, args.data_ptr(), diverged_now, t_before, t, horizon, penalty, reward.data_ptr(), ends_at, ends_at + batch
    )
    return reward, ends[:batch], ends[batch:]


def decayed_push(lib: ctypes.CDLL, back: Tensor, beta: Tensor, item: Tensor, power: int) -> None:
    """back [n, ...] (float64) = beta [n] · back + item [...] (float32; squared with power 2), in
    place, in float64 (`l2o_gym.decayed_window_sums`)."""
    n = back.shape[0]
    lib.decayed_push(n, back.numel() // n, _pointer(beta), _pointer(back), _pointer(item), power)


def decayed_total(lib: ctypes.CDLL, back: Tensor, older: Tensor, weight: Tensor) -> Tensor:
    """back + older · weight [n, ...] (float64; weight [n], one per leading row), a new tensor."""
    total = torch.empty_like(back)
    n = back.shape[0]
    lib.decayed_total(n, back.numel() // n, *map(_pointer, (back, older, weight, total)))
    return total
