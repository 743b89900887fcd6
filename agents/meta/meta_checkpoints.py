"""Checkpoints of a meta-training run: ``checkpoints/meta_<timesteps>.pt`` in the run folder, written
atomically and read with ``torch.load(weights_only=True)``, holding the configuration, the rule's
weights, the meta-optimizer's state, the training-instance generator and the progress counters, so
that a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from l2o_gym.atomic_io import atomic_write

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"meta_(\d+)\.pt$")


@dataclass
class MetaProgress:
    """How far a run has come: inner steps, meta-iterations, skipped pieces, wall time, best validation."""

    timesteps: int = 0
    iteration: int = 0
    skipped: int = 0
    wall_time_s: float = 0.0
    best_validation: float = float("inf")

    def advance(self, timesteps: int, skipped: int, wall_time_s: float) -> None:
        """Count one more meta-iteration."""
        self.timesteps += timesteps
        self.iteration += 1
        self.skipped += skipped
        self.wall_time_s += wall_time_s


def _checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    folder = out_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.search(p.name))]
    return sorted(found)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint with the most timesteps in out_dir, or None."""
    found = _checkpoints(Path(out_dir))
    return found[-1][1] if found else None


def save_checkpoint(
    out_dir: Path,
    config: dict[str, Any],
    rule: Any,
    meta_optimizer: torch.optim.Optimizer,
    sample_generator: torch.Generator,
    progress: MetaProgress,
) -> Path:
    """Write the run's checkpoint at `progress.timesteps` (atomically)."""
    payload = {
        "config": config,
        "net": rule.net.state_dict(),
        "meta_optimizer": meta_optimizer.state_dict(),
        "sample_generator": sample_generator.get_state(),
        **asdict(progress),
    }
    path = Path(out_dir) / CHECKPOINT_DIR / f"meta_{progress.timesteps:012d}.pt"
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def restore_checkpoint(
    path: Path,
    rule: Any,
    meta_optimizer: torch.optim.Optimizer,
    sample_generator: torch.Generator,
    env_id: str,
    algo: str,
) -> MetaProgress:
    """Load the checkpoint at `path` into the rule, optimizer and generator; return its progress.
    A checkpoint of another algorithm or environment is refused."""
    ckpt = torch.load(path, weights_only=True)
    if ckpt["config"]["algo"] != algo or ckpt["config"]["env_id"] != env_id:
        raise ValueError(f"{path} is a {ckpt['config']['algo']} run on {ckpt['config']['env_id']}")
    rule.net.load_state_dict(ckpt["net"])
    meta_optimizer.load_state_dict(ckpt["meta_optimizer"])
    sample_generator.set_state(ckpt["sample_generator"])
    return MetaProgress(**{name: ckpt[name] for name in MetaProgress.__dataclass_fields__})
