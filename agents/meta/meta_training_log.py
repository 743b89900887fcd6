"""What a meta-training run shows while it runs: a progress bar (tqdm) and, when asked, TensorBoard
scalars (meta-loss, final f / |f0|, skipped pieces, validation objectives) and validation curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from l2o_gym.unroll import Curves


def validation_figure(curves: Curves, label: str):
    """Median and quartiles of the objective over the validation unroll (log scale), as a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = curves.objectives.clamp_min(1e-12)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    steps = torch.arange(objectives.shape[0])
    ax.fill_between(steps, objectives.quantile(0.25, dim=1), objectives.quantile(0.75, dim=1), alpha=0.3)
    ax.plot(steps, objectives.median(dim=1).values, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("objective (median, quartiles)")
    ax.legend()
    fig.tight_layout()
    return fig


class MetaTrainingLog:
    """The progress bar over `total` timesteps (from `initial`) and the TensorBoard writer (in
    ``tensorboard_log/<run_name>``, '/' replaced by '_'; none when tensorboard_log is None)."""

    def __init__(
        self, label: str, total: int, initial: int, progress: bool, tensorboard_log: Path | None, run_name: str
    ) -> None:
        from tqdm.auto import tqdm

        self.label = label
        self.writer = None
        if tensorboard_log is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(tensorboard_log) / run_name.replace("/", "_")))
        self.bar = tqdm(total=total, initial=min(initial, total), disable=not progress, unit="step", desc=label)

    def iteration(self, stats: Any, progress: Any) -> None:
        """After a meta-iteration: `stats` a PieceStats, `progress` the run's MetaProgress."""
        self.bar.update(stats.timesteps)
        self.bar.set_postfix(meta_loss=f"{stats.meta_loss:.4g}", skipped=progress.skipped)
        if self.writer is not None:
            self.writer.add_scalar("meta/loss", stats.meta_loss, progress.timesteps)
            self.writer.add_scalar("meta/final_over_f0", stats.final_ratio, progress.timesteps)
            self.writer.add_scalar("meta/skipped_pieces", progress.skipped, progress.timesteps)

    def validation(self, curves: Curves, timesteps: int) -> None:
        """After a validation unroll."""
        if self.writer is not None:
            self.writer.add_scalar("validation/mean_final_objective", float(curves.final.mean()), timesteps)
            self.writer.add_scalar("validation/median_final_objective", float(curves.final.median()), timesteps)
            self.writer.add_figure("validation/curves", validation_figure(curves, self.label), timesteps)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
