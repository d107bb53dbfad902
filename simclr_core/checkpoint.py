"""Checkpoints of a training run: what `train()` writes at every epoch end and reads to resume, and
the few things a harness needs to do with one (is it this configuration's, drop it, export the
trained weights), so no caller reads a checkpoint's keys itself.

A checkpoint carries the configuration that wrote it (nanoGPT's habit): resuming under another
configuration is refused, and exported weights say what made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from simclr_core.config import ConfigError, RunConfig

CHECKPOINT_NAME = "last.pt"
WEIGHTS_NAME = "encoder.pt"
# The random streams a run carries from step to step, whose states a checkpoint holds (the trainer's
# random_streams). A checkpoint with other streams was written by an engine that drew differently.
STREAMS = ("shuffle",)


@dataclass
class Checkpoint:
    model: dict[str, torch.Tensor]  # SimCLRModel.state_dict(): encoder.* and head.*
    optimizer: dict[str, Any]
    generators: dict[str, torch.Tensor]  # each carried random stream's state (STREAMS), by name
    config: dict[str, Any]  # RunConfig.to_plain() of the run that wrote it
    epoch: int  # epochs completed
    history: list[dict[str, Any]]  # asdict() of each EpochMetrics so far


def path_in(folder: str | Path) -> Path:
    return Path(folder) / CHECKPOINT_NAME


def save(folder: str | Path, checkpoint: Checkpoint) -> None:
    """Written atomically, so a crash mid-write leaves the previous checkpoint intact."""
    path = path_in(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    _write(dict(vars(checkpoint)), tmp)  # not asdict(): it would deep-copy every tensor
    tmp.replace(path)


def _write(state: dict[str, Any], path: Path) -> None:
    """torch.save through a Python file: given a path, torch reports a full disk as "unexpected pos 576
    vs 534"; through a file it is the OSError (ENOSPC), which this names with the path. A partial file is
    removed, so a failed write neither takes the disk's last space nor leaves a torn file behind."""
    try:
        with open(path, "wb") as file:
            torch.save(state, file)
    except OSError as error:
        path.unlink(missing_ok=True)
        if error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def load(folder: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint | None:
    """The folder's checkpoint, or None where there is none."""
    path = path_in(folder)
    if not path.exists():
        return None
    # weights_only=False: the optimiser state and history are plain Python objects we wrote ourselves.
    state = torch.load(path, map_location=map_location, weights_only=False)
    fields = set(Checkpoint.__dataclass_fields__)
    if (not isinstance(state, dict) or set(state) != fields or not isinstance(state["generators"], dict)
            or set(state["generators"]) != set(STREAMS)):
        raise ConfigError(f"checkpoint {path} was not written by this version of simclr_core; "
                          "delete it (or use a new checkpoint folder) to start the run over")
    return Checkpoint(**state)


def drop_if_foreign(folder: str | Path, config: RunConfig) -> bool:
    """Delete the folder's checkpoint if another configuration wrote it (another machine's data.root,
    say) or it cannot be read: it is not resumable, and the run should start over rather than fail.
    Returns whether one was dropped."""
    path = path_in(folder)
    if not path.exists():
        return False
    try:
        saved = load(folder).config
    except Exception:  # a torn or foreign file: torch raises many kinds
        saved = None
    if saved == config.to_plain():
        return False
    path.unlink()
    return True


def remove(folder: str | Path) -> None:
    path_in(folder).unlink(missing_ok=True)


def export_weights(folder: str | Path, out: str | Path | None = None) -> Path:
    """encoder.pt beside the checkpoint (or at `out`): the trained encoder f and head g weights, each
    loadable into `build_encoder`/`build_head` of the configuration stored with them."""
    checkpoint = load(folder)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {folder}")
    weights = checkpoint.model
    path = Path(out) if out else Path(folder) / WEIGHTS_NAME
    _write({
        "encoder": {k.removeprefix("encoder."): v for k, v in weights.items() if k.startswith("encoder.")},
        "head": {k.removeprefix("head."): v for k, v in weights.items() if k.startswith("head.")},
        "config": checkpoint.config,
    }, path)
    return path
