"""Run folders: never replace a run without being asked, and check an output path before work.

A run folder holds what a training run writes (`RUN_ENTRIES`: hyperparams.yaml, checkpoints,
best_model/, model/, tb/, reports). `check_run_folder` refuses a folder that holds a run unless
the run is resumed or replacing it was asked for (`clear_run` then removes those entries only),
and refuses to resume a folder without one. Nothing here writes (a writability probe is
removed at once).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RUN_ENTRIES = (
    "hyperparams.yaml",
    "checkpoint",
    "checkpoints",
    "best_model",
    "model",
    "tb",
    "warm_start",
    "training.json",
    "backprop_warm_start.json",
    "best",  # guided policy search: best/, final/, checkpoint.pt, gps_options.json
    "final",
    "checkpoint.pt",
    "gps_options.json",
)
REPORT_PREFIX = "report_T"


class RunFolderError(ValueError):
    """An output folder that cannot be used as asked: one line, before any work."""


def check_writable(path: str | Path, what: str = "--out") -> Path:
    """`path` is a folder we may write into, or can be made one (its nearest existing ancestor is a
    writable folder); else a one-line RunFolderError naming `what`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{what}: {str(path)!r} exists and is not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != path and (existing.exists() and not existing.is_dir()):
        raise RunFolderError(f"{what}: {str(path)!r} cannot be made: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_make_folder_in(existing):
        raise RunFolderError(f"{what}: {str(path)!r} is not writable (no write permission on {str(existing)!r})")
    return path


def _can_make_folder_in(folder: Path) -> bool:
    """Whether a folder can really be made in `folder` (a probe, removed at once: permission bits
    say yes for root on file systems such as /proc that refuse every new entry)."""
    try:
        probe = tempfile.mkdtemp(prefix=".l2o_probe_", dir=folder)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def run_entries(folder: str | Path) -> list[str]:
    """The names in `folder` that a training run wrote."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name in RUN_ENTRIES or p.name.startswith(REPORT_PREFIX))


def check_run_folder(folder: str | Path, *, resume: bool, overwrite: bool) -> Path:
    """Check (not write) that a run may go into `folder`: writable; a run already there is resumed
    or replaced only when asked (--resume / --overwrite)."""
    folder = check_writable(folder, "--out")
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite exclude each other: continue the run or replace it")
    held = run_entries(folder)
    if resume and not held:
        raise RunFolderError(f"--resume: {str(folder)!r} holds no run to resume")
    if held and not (resume or overwrite):
        raise RunFolderError(
            f"--out: {str(folder)!r} already holds a run ({', '.join(held)}); continue it with --resume "
            "or replace it with --overwrite"
        )
    return folder


def clear_run(folder: str | Path) -> None:
    """Remove what a previous run wrote in `folder` (only `RUN_ENTRIES` and reports)."""
    folder = Path(folder)
    for name in run_entries(folder):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
