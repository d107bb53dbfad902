"""SimCLR pre-training: one flat loop (paper Algorithm 1), then the linear probe.

sample batch -> views -> f and g -> NT-Xent -> backward -> step -> schedule -> report.
`train` is its steps in order: prepare the process, stage the data on the device, the schedule, build
the model, resume from a checkpoint, the epochs (`train_epoch`, the kNN monitor, the checkpoint, the
callback), the final probe.
The loss optimised is NT-Xent alone. Progress goes out through a callback once per epoch, so a
caller can log or prune (by raising) without the engine knowing who listens.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy
import torch
import torchvision

from simclr_core import checkpoint, cpu_isa
from simclr_core.augmentations import OpStreams, colour_path, make_views
from simclr_core.config import ConfigError, RunConfig, TrainConfig
from simclr_core.data import Dataset, load_dataset
from simclr_core.loss import contrastive_accuracy, nt_xent_multi
from simclr_core.model import SimCLRModel
from simclr_core.optim import build_optimizer, learning_rate
from simclr_core.probe import extract_features, knn_accuracy, linear_probe


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stops rather than optimising garbage."""

    def __init__(self, epoch: int, step: int, value: float):
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(
            f"non-finite loss {value} at epoch {epoch}, step {step} (global); "
            "lower train.lr, raise train.temperature, or use train.precision: fp32"
        )


@dataclass
class EpochMetrics:
    epoch: int  # epochs completed, 1-based
    step: int  # optimiser steps completed in the whole run
    loss: float  # mean NT-Xent over the epoch's steps
    contrastive_acc: float  # mean top-1 of the positive among the 2N-1 other views
    lr: float  # learning rate of the epoch's last step
    images_per_s: float  # source images per second of training (each gives n_views views)
    seconds: float  # wall time of the epoch's training steps (the kNN monitor excluded)
    knn_acc: float | None = None  # weighted kNN test top-1, when the monitor ran this epoch


@dataclass
class RunResult:
    config: dict
    history: list[EpochMetrics]
    probe_h: float | None  # linear-probe test top-1 on h
    probe_z: float | None  # linear-probe test top-1 on z
    knn_acc: float | None  # last kNN monitor value
    wall_time_s: float
    images_per_s: float  # over all training steps of this process
    device: str
    versions: dict[str, str]
    train_images: int
    test_images: int
    steps: int
    # How the colour ops ran (augmentations.colour_path): compiled, eager, or why not compiled.
    colour_ops: str = "none"
    # Where this process's wall time went, seconds (PHASES): set-up (data loading and placement, model
    # and optimiser, checkpoint), training steps (views, forward, loss, backward, step; the first
    # batch also compiles the colour kernel), the per-epoch kNN monitor, the final linear probe
    # (feature extraction and L-BFGS fits).
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Final scalar metrics, flat, for trackers and reports."""
        last = self.history[-1] if self.history else None
        values = {
            "probe_h": self.probe_h,
            "probe_z": self.probe_z,
            "knn_acc": self.knn_acc,
            "loss": last.loss if last else None,
            "contrastive_acc": last.contrastive_acc if last else None,
            "wall_time_s": self.wall_time_s,
            "images_per_s": self.images_per_s,
        }
        return {key: value for key, value in values.items() if value is not None}


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} asked for, but torch sees no CUDA device; use auto or cpu")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 autocast by default where the hardware computes bf16 natively: CUDA, and CPUs with
    AVX512-BF16 or AMX (cpu_isa.native_bf16). There it trains the small CNN 2.7x faster than fp32
    with the loss within seed noise; on AVX-512 without BF16 oneDNN emulates bf16 and the step is
    1.43x slower than fp32, on AVX2 5.8x slower (benchmarks/RESULTS.md), so those train in fp32."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_isa.native_bf16()


def numeric_settings(train_config: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, torch.memory_format]:
    """The autocast dtype (None: fp32) and memory format a run uses on `device`."""
    bf16 = train_config.precision == "bf16" or (train_config.precision == "auto" and bf16_is_fast(device))
    # channels_last suits cuDNN and oneDNN alike: 1.5x on this project's CPU (benchmarks/RESULTS.md).
    memory_format = torch.contiguous_format if train_config.channels_last == "off" else torch.channels_last
    return (torch.bfloat16 if bf16 else None), memory_format


def keep_freed_memory() -> None:
    """Tell glibc's malloc to keep freed blocks up to 256 MiB for reuse instead of handing them
    back to the OS. Batched augmentation allocates and frees multi-megabyte tensors many times
    per step; with glibc's defaults each one is a fresh mmap that page-faults anew, which made the
    augmentation pipeline 1.5-2.4x slower on this project's CPU (benchmarks/RESULTS.md). The cost:
    the process keeps up to 1 GiB of freed memory. A no-op where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 256 * 1024 * 1024)
    mallopt(m_trim_threshold, 1024 * 1024 * 1024)


def describe_device(device: torch.device) -> str:
    """The device as a run records it; a CPU with its instruction-set family, which decides `auto` precision
    and the speed (a study run on two machines shows it)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return (f"cpu ({platform.processor() or platform.machine()}, {cpu_isa.isa_family()}, "
            f"{torch.get_num_threads()} threads)")


def describe_numerics(autocast_dtype: torch.dtype | None) -> str:
    """What a run computed in: `auto` resolves per machine (bf16 where native, else fp32), so two machines
    of one study can differ, and the record must say which each run used."""
    names = {torch.bfloat16: "bf16", torch.float16: "fp16"}
    return "fp32" if autocast_dtype is None else f"{names.get(autocast_dtype, str(autocast_dtype))} autocast"


def recorded_numerics(device: str) -> str | None:
    """The numerics a run's device record ends with (`describe_numerics`), or None for a record made before
    runs said them."""
    tail = device.rsplit(", ", 1)[-1]
    return tail if tail == "fp32" or tail.endswith(" autocast") else None


def library_versions() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "none",
    }


# The random streams of training carried from step to step, saved in checkpoints (model
# initialisation uses torch's global seed; the views draw from augmentations.OpStreams, which are
# made afresh at every step from (seed, op, view, step) and need no saving).
STREAMS = checkpoint.STREAMS


def random_streams(seed: int, device: torch.device) -> dict[str, torch.Generator]:
    """Independent generators for the carried streams (the image order), each seeded from (seed, its
    purpose) through numpy's SeedSequence, so no stream overlaps another or the views' streams."""
    streams = {}
    for index, name in enumerate(STREAMS):
        stream_seed = int(numpy.random.SeedSequence([seed, index]).generate_state(1, dtype=numpy.uint64)[0])
        streams[name] = torch.Generator(device=device).manual_seed(stream_seed)
    return streams


@dataclass
class Setup:
    """What one training step needs: the model (f and g), the callable that runs it (compiled or
    not), its optimiser, and the numeric settings chosen for the device."""

    model: SimCLRModel
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    optimizer: torch.optim.Optimizer
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: fp32
    memory_format: torch.memory_format


def build(config: RunConfig, device: torch.device | None = None) -> Setup:
    """The model (initialised from train.seed), its optimiser and precision for `config` on `device`
    (default: train.device). train(), the dry-run estimate and the benchmarks all build through here."""
    device = device or select_device(config.train.device)
    autocast_dtype, memory_format = numeric_settings(config.train, device)
    torch.manual_seed(config.train.seed)  # model initialisation
    model = SimCLRModel(config.model).to(device, memory_format=memory_format)
    forward = torch.compile(model) if config.train.compile else model
    return Setup(model, forward, build_optimizer(model, config), device, autocast_dtype, memory_format)


def training_step(setup: Setup, views: list[torch.Tensor], temperature: float, *,
                  epoch: int = 0, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One SimCLR step (paper Algorithm 1): f and g on every view, NT-Xent, backward, optimiser step.

    views: V tensors (B, 3, H, W) in [0, 1], view v of image i at row i of views[v].
    Returns the loss (a 0-dim tensor, not synchronised) and z as (V, B, P) float32, detached.
    A non-finite loss raises NonFiniteLossError (naming epoch and step) before any weight changes.
    """
    n_views, batch_size = len(views), len(views[0])
    batch = torch.cat(views).contiguous(memory_format=setup.memory_format)  # (V*B, 3, H, W)
    with torch.autocast(setup.device.type, dtype=setup.autocast_dtype or torch.bfloat16,
                        enabled=setup.autocast_dtype is not None):
        _, z = setup.forward(batch)
    z = z.float().view(n_views, batch_size, -1)  # (V, B, P)
    loss = nt_xent_multi(z, temperature)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(epoch, step, loss.item())
    setup.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    setup.optimizer.step()
    return loss.detach(), z.detach()


def prepare_process(train_config: TrainConfig) -> torch.device:
    """The process's settings for training (malloc's reuse of freed memory, torch's threads), and the
    device it trains on."""
    keep_freed_memory()
    if train_config.num_threads:
        torch.set_num_threads(train_config.num_threads)
    return select_device(train_config.device)


@dataclass
class StagedData:
    """The data set where training reads it. The whole set lives on the training device as uint8
    (airbench): no loader, no workers. A set that would take over half the free GPU memory stays on the
    CPU, pinned (`images_device`), and each batch is copied over; the labels are always on the device."""

    train_images: torch.Tensor  # (N, 3, H, W) uint8
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    images_device: torch.device


def stage_data(data: Dataset, device: torch.device) -> StagedData:
    images_device = device
    if device.type == "cuda":
        nbytes = data.train_images.nbytes + data.test_images.nbytes
        if nbytes > 0.5 * torch.cuda.mem_get_info(device)[0]:
            images_device = torch.device("cpu")
    train_images, test_images = data.train_images.to(images_device), data.test_images.to(images_device)
    if images_device != device:
        train_images, test_images = train_images.pin_memory(), test_images.pin_memory()
    return StagedData(train_images, data.train_labels.to(device), test_images, data.test_labels.to(device),
                      images_device)


@dataclass(frozen=True)
class Schedule:
    """The run's length in optimiser steps (an epoch is every whole batch of the training set once)."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def schedule_for(train_config: TrainConfig, n_train: int) -> Schedule:
    steps_per_epoch = n_train // train_config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(
            f"train.batch_size: {train_config.batch_size} is larger than the {n_train} training images; "
            "lower it or raise data.train_subset"
        )
    return Schedule(steps_per_epoch, train_config.epochs * steps_per_epoch,
                    round(train_config.warmup_epochs * steps_per_epoch))


def resume(checkpoint_dir: str | Path | None, config: RunConfig, setup: Setup,
           streams: dict[str, torch.Generator]) -> tuple[list[EpochMetrics], int]:
    """The history and the epochs done of the checkpoint in `checkpoint_dir`, its model, optimiser and
    carried streams loaded; ([], 0) where there is none. A checkpoint of another configuration is an error."""
    saved = checkpoint.load(checkpoint_dir, map_location=setup.device) if checkpoint_dir else None
    if saved is None:
        return [], 0
    if saved.config != config.to_plain():
        raise ConfigError(
            f"checkpoint {checkpoint.path_in(checkpoint_dir)} was written by a different configuration; "
            "use a new checkpoint folder or delete it"
        )
    setup.model.load_state_dict(saved.model)
    setup.optimizer.load_state_dict(saved.optimizer)
    for name, state in saved.generators.items():
        streams[name].set_state(state.to("cpu"))
    return [EpochMetrics(**m) for m in saved.history], saved.epoch


def train_epoch(config: RunConfig, setup: Setup, data: StagedData, schedule: Schedule, epoch: int,
                streams: dict[str, torch.Generator], view_streams: OpStreams,
                progress: Callable[[str, int, int], None] | None = None) -> EpochMetrics:
    """One epoch of SimCLR (paper Algorithm 1), `epoch` 0-based: for each batch of the epoch's image
    order, the step's learning rate, the views, one training step."""
    tc, device = config.train, setup.device
    epoch_start = time.perf_counter()
    # The schedule's peak: the optimiser's lr as built (its defaults). Not param_groups' lr, which holds
    # the last step's, also in a resumed optimiser.
    peak_lr = setup.optimizer.defaults["lr"]
    step = epoch * schedule.steps_per_epoch
    order = torch.randperm(len(data.train_images), generator=streams["shuffle"], device=device)
    loss_sum = torch.zeros((), device=device)
    accuracy_sum = torch.zeros((), device=device)
    for batch_index in range(schedule.steps_per_epoch):
        lr = learning_rate(step, peak_lr=peak_lr, warmup_steps=schedule.warmup_steps,
                           total_steps=schedule.total_steps)
        for group in setup.optimizer.param_groups:
            group["lr"] = lr
        indices = order[batch_index * tc.batch_size : (batch_index + 1) * tc.batch_size]
        images = data.train_images[indices.to(data.images_device)].to(device, non_blocking=True).float().div_(255)  # (B,3,H,W) in [0,1]
        views = make_views(images, config.augment, view_streams.at(step), n_views=tc.n_views)
        loss, z = training_step(setup, views, tc.temperature, epoch=epoch + 1, step=step)
        loss_sum += loss
        accuracy_sum += contrastive_accuracy(z)
        step += 1
        if progress:
            progress("train", step, schedule.total_steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - epoch_start
    return EpochMetrics(
        epoch=epoch + 1,
        step=step,
        loss=loss_sum.item() / schedule.steps_per_epoch,
        contrastive_acc=accuracy_sum.item() / schedule.steps_per_epoch,
        lr=lr,
        images_per_s=schedule.steps_per_epoch * tc.batch_size / seconds,
        seconds=seconds,
    )


def train(
    config: RunConfig,
    *,
    callback: Callable[[EpochMetrics], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RunResult:
    """Pre-train SimCLR as `config` says, probe it, and return the result.

    callback: called after every epoch with its metrics; raising from it stops training (the
        exception propagates, after the epoch's checkpoint is written).
    checkpoint_dir: when set, a checkpoint is written at every epoch end and, if one is already
        there, training resumes from it to the same result as an uninterrupted run.
    dataset: an already loaded data set, else `load_dataset(config.data)`.
    progress: called as progress(phase, done, total) for a live display: ("train", steps done, all steps)
        after every step, ("knn", epoch, epochs) before a kNN monitor, ("probe", 0, 1) before the probe.
    """
    config.validate()
    started = time.perf_counter()
    tc = config.train
    device = prepare_process(tc)
    data = stage_data(dataset or load_dataset(config.data), device)
    schedule = schedule_for(tc, len(data.train_images))
    setup = build(config, device)
    # Common random numbers: independent streams, each seeded from train.seed, so a seed means the same
    # image order in every epoch and, for every op, the same draws at every step in every cell of a
    # study, whatever the pipeline, temperature or strength: the shuffle stream is carried (its state
    # saved in the checkpoint), each op's stream is made per step (OpStreams). Resume is bit-identical
    # on CPU.
    streams = random_streams(tc.seed, device)
    view_streams = OpStreams(tc.seed, device)
    history, start_epoch = resume(checkpoint_dir, config, setup, streams)
    seconds = {"setup": time.perf_counter() - started, "train": 0.0, "knn": 0.0, "probe": 0.0}
    trained_images = 0

    setup.model.train()
    for epoch in range(start_epoch, tc.epochs):
        metrics = train_epoch(config, setup, data, schedule, epoch, streams, view_streams, progress)
        seconds["train"] += metrics.seconds
        trained_images += schedule.steps_per_epoch * tc.batch_size
        if knn_due(config, epoch + 1):
            if progress:
                progress("knn", epoch + 1, tc.epochs)
            knn_started = time.perf_counter()
            metrics.knn_acc = knn_monitor(config, setup, data)
            seconds["knn"] += time.perf_counter() - knn_started
        history.append(metrics)
        if checkpoint_dir:
            save_checkpoint(checkpoint_dir, config, setup, streams, history)
        if callback:
            callback(metrics)

    probe_started = time.perf_counter()
    probe = final_probe(config, setup, data, progress)
    seconds["probe"] = time.perf_counter() - probe_started
    knn_values = [m.knn_acc for m in history if m.knn_acc is not None]
    return RunResult(
        config=config.to_plain(),
        history=history,
        probe_h=probe.h_top1 if probe else None,
        probe_z=probe.z_top1 if probe else None,
        knn_acc=knn_values[-1] if knn_values else None,
        wall_time_s=time.perf_counter() - started,
        images_per_s=trained_images / seconds["train"] if seconds["train"] else 0.0,
        device=f"{describe_device(device)}, {describe_numerics(setup.autocast_dtype)}",
        versions=library_versions(),
        train_images=len(data.train_images),
        test_images=len(data.test_images),
        steps=max(start_epoch, tc.epochs) * schedule.steps_per_epoch,
        colour_ops=colour_path(config.augment, device),
        phase_seconds=seconds,
    )


def knn_due(config: RunConfig, epochs_done: int) -> bool:
    """The kNN monitor runs every probe.knn_every epochs and after the last (never where it is 0)."""
    every = config.probe.knn_every
    return bool(every) and (epochs_done % every == 0 or epochs_done == config.train.epochs)


def _feature_settings(setup: Setup) -> dict:
    """How the monitor and the probe run the encoder: the training's precision and memory format."""
    return dict(autocast_dtype=setup.autocast_dtype, channels_last=setup.memory_format == torch.channels_last)


def knn_monitor(config: RunConfig, setup: Setup, data: StagedData) -> float:
    """Weighted kNN test top-1 on h, on the first probe.knn_train_rows / knn_test_rows images."""
    knn_train, knn_test = slice(0, config.probe.knn_train_rows), slice(0, config.probe.knn_test_rows)
    settings = dict(batch_size=config.probe.batch_size, **_feature_settings(setup))
    bank, _ = extract_features(setup.model, data.train_images[knn_train], **settings)
    queries, _ = extract_features(setup.model, data.test_images[knn_test], **settings)
    return knn_accuracy(bank, data.train_labels[knn_train], queries, data.test_labels[knn_test],
                        k=config.probe.knn_k, temperature=config.probe.knn_temperature)


def save_checkpoint(checkpoint_dir: str | Path, config: RunConfig, setup: Setup,
                    streams: dict[str, torch.Generator], history: list[EpochMetrics]) -> None:
    """Everything a resume needs to reach the same result as an uninterrupted run."""
    checkpoint.save(checkpoint_dir, checkpoint.Checkpoint(
        model=setup.model.state_dict(), optimizer=setup.optimizer.state_dict(),
        generators={name: stream.get_state() for name, stream in streams.items()},
        config=config.to_plain(), epoch=history[-1].epoch, history=[asdict(m) for m in history]))


def final_probe(config: RunConfig, setup: Setup, data: StagedData,
                progress: Callable[[str, int, int], None] | None = None):
    """The linear probe on h and z (None where probe.enabled is off)."""
    if not config.probe.enabled:
        return None
    if progress:
        progress("probe", 0, 1)
    return linear_probe(setup.model, data.train_images, data.train_labels, data.test_images, data.test_labels,
                        config.probe, **_feature_settings(setup))
