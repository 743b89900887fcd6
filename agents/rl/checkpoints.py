"""SB3 training checkpoints that are verified before use and resumed without unpickling.

A checkpoint is a pair in ``checkpoint/``: ``model_<n>.zip`` (SB3's own save) and, written after
it, ``model_<n>.json`` — its SHA-256, the step and update counts, the algorithm and the run's
settings. Both are written atomically; the two newest complete pairs are kept, so a damaged
newest one leaves the previous one to resume from.

Resuming never hands the zip to SB3's ``load`` (whose ``data`` entry holds pickled objects):
the hash must match the record, the model is rebuilt from the run's settings, and only the
zip's ``.pth`` weights are read (``torch.load(weights_only=True)`` via SB3's
``load_from_zip_file(load_data=False)``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l2o_gym.atomic_io import atomic_write, atomic_write_json

CHECKPOINT_DIR = "checkpoint"
RECORD_FORMAT = "l2o_gym.sb3_checkpoint"
KEEP = 2
_NAME = re.compile(r"model_(\d+)\.(zip|json)")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: one line naming the file."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the zip, its step count and update count."""

    path: Path
    timesteps: int
    n_updates: int
    settings: dict[str, Any]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _numbered(folder: Path, suffix: str) -> dict[int, Path]:
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _NAME.fullmatch(path.name)
            if match and match.group(2) == suffix:
                found[int(match.group(1))] = path
    return found


def write_checkpoint(model: Any, out_dir: Path, algo: str, settings: dict[str, Any]) -> Path:
    """Save `model` as the next checkpoint of the run in `out_dir` (zip, then its record), keeping
    the newest `KEEP` complete ones; returns the zip's path."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    number = max([*_numbered(folder, "zip"), *_numbered(folder, "json"), 0]) + 1
    zip_path = atomic_write(folder / f"model_{number}.zip", lambda tmp: model.save(tmp))
    record = {
        "format": RECORD_FORMAT,
        "file": zip_path.name,
        "sha256": sha256_of(zip_path),
        "timesteps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "algo": algo,
        "settings": settings,
    }
    atomic_write_json(folder / f"model_{number}.json", record)
    records = _numbered(folder, "json")
    kept = sorted(records)[-KEEP:]
    for old, path in records.items():
        if old not in kept:
            path.unlink(missing_ok=True)
    for old, path in _numbered(folder, "zip").items():
        if old not in kept:
            path.unlink(missing_ok=True)  # older pairs and zips a crash left without a record
    return zip_path


def verify(record_path: Path) -> Checkpoint:
    """The checkpoint `record_path` describes, if its zip is there and matches its hash."""
    try:
        record = json.loads(record_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, OSError):
        raise CheckpointError(f"{record_path} is damaged (not a JSON checkpoint record)") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or "sha256" not in record:
        raise CheckpointError(f"{record_path} is not an l2o_gym checkpoint record")
    zip_path = record_path.with_suffix(".zip")
    if not zip_path.is_file():
        raise CheckpointError(f"{zip_path} is missing (its record {record_path.name} is there)")
    if sha256_of(zip_path) != record["sha256"]:
        raise CheckpointError(f"{zip_path} is damaged or was replaced: its SHA-256 differs from {record_path.name}")
    try:
        return Checkpoint(zip_path, int(record["timesteps"]), int(record["n_updates"]), dict(record["settings"]))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{record_path} is not a complete l2o_gym checkpoint record") from None


def latest_checkpoint(out_dir: Path) -> Checkpoint:
    """The newest checkpoint of the run in `out_dir`, verified; else a CheckpointError naming the
    file (and the previous intact checkpoint, if one is kept)."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    records = [path for _, path in sorted(_numbered(folder, "json").items(), reverse=True)]
    if not records:
        foreign = sorted(p.name for p in folder.glob("*.zip")) if folder.is_dir() else []
        if foreign:
            raise CheckpointError(
                f"{folder / foreign[-1]} has no l2o_gym checksum record (written by an older l2o_gym or not by "
                "l2o_gym); it is not loaded: start the run again with --overwrite"
            )
        raise CheckpointError(f"cannot resume: {folder} holds no checkpoint")
    try:
        return verify(records[0])
    except CheckpointError as err:
        for older in records[1:]:
            try:
                previous = verify(older)
            except CheckpointError:
                continue
            raise CheckpointError(
                f"{err}; the previous checkpoint {previous.path} ({previous.timesteps} steps) is intact: "
                f"move {records[0].name} and its zip away to resume from it"
            ) from None
        raise CheckpointError(f"{err}; no intact earlier checkpoint is kept") from None


def restore(model: Any, checkpoint: Checkpoint) -> Any:
    """Load a verified checkpoint's weights, optimizer states and step counts into `model` (built
    from the same settings); no pickled object is read."""
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        _, params, variables = load_from_zip_file(checkpoint.path, load_data=False, device=model.device)
        model.set_parameters(params, exact_match=True, device=model.device)
        for name in model._get_torch_save_params()[1]:
            target = model
            for part in name.split("."):
                target = getattr(target, part)
            target.data.copy_(variables[name].data)
    except Exception as err:
        raise CheckpointError(f"{checkpoint.path} does not match the run's settings: {err}") from None
    model.num_timesteps = checkpoint.timesteps
    model._n_updates = checkpoint.n_updates
    return model
