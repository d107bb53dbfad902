"""Training throughput: simclr_core's batched pipeline against the conventional one, in one run.

The conventional pipeline is what lightly, sthalles/SimCLR and the UvA tutorial do: a Dataset of
PIL images, torchvision transforms drawn per image, two views per item, a DataLoader with worker
processes. Both pipelines feed the same model, batch size, precision and memory format, so the
ratio isolates the data pipeline. Figures are views per second (two views per image).

    python benchmarks/throughput.py [--rounds 5] [--batches 6] [--batch-size 256] [--encoder small_cnn]
                                    [--compile auto|off] [--device cpu|cuda] [--matmul-size 2048]

Every round times each variant once, in the same order (ours: augmentation, full step, model step on views
made beforehand; a torch.matmul; the conventional pipeline: augmentation, full step), so that load from
other processes hits all variants alike, as benchmarks/model_step.py does. The conventional DataLoader's
workers are started for their part of each round and shut down after it, so they prefetch beside nothing
else. Rates are medians over rounds, with their range; ratios are taken within each round, then their
median and range.

The model step's floating-point work is counted once with torch.utils.flop_counter.FlopCounterMode
(convolutions and matrix products, forward and backward; batch norm, ReLU and the optimiser's elementwise
work are not counted), and its achieved FLOP rate is set against a square torch.matmul in the step's
precision (bf16 where it runs bf16 autocast, else fp32) on the same thread count: how far the step is from
what this machine's matrix units deliver.

The last line reads `augment_speedup=<x> train_speedup=<y> model_fraction=<z> flop_fraction=<w>`:
model_fraction is our full training step's rate over the rate of the same step on views made beforehand
(the model step alone), i.e. the share of a step's time that the model takes; flop_fraction is the model
step's achieved FLOP rate over the matmul's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torchvision
from machine import cpu_flags
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from simclr_core.augmentations import make_views
from simclr_core.config import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from simclr_core.data import load_dataset
from simclr_core.trainer import Setup, build, keep_freed_memory, training_step

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def conventional_transform(strength: float = 0.5) -> transforms.Compose:
    """The per-image SimCLR CIFAR-10 recipe with the same parameters as our default pipeline."""
    jitter = transforms.ColorJitter(0.8 * strength, 0.8 * strength, 0.8 * strength, 0.2 * strength)
    return transforms.Compose([
        transforms.RandomResizedCrop(32, scale=(0.08, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([jitter], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.ToTensor(),
    ])


class TwoViewDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]
        self.transform = conventional_transform()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return self.transform(image), self.transform(image)


def load_images(n: int, root: Path) -> tuple[torch.Tensor, str]:
    if (root / "cifar10").exists():
        data = load_dataset(DataConfig(dataset="cifar10", root=str(root), train_subset=n, test_subset=16))
    else:
        data = load_dataset(DataConfig(dataset="synthetic", synthetic_per_class=n // 4, synthetic_classes=4))
    return data.train_images[:n], data.source


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; figures are medians over them")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per variant per round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--encoder", default="small_cnn")
    parser.add_argument("--width", type=int, default=16, help="small_cnn width (16: the CPU studies' model)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="DataLoader workers of the conventional pipeline (default: one per core)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of the main process (default: one per core)")
    parser.add_argument("--allocator", choices=["shipped", "same"], default="shipped",
                        help="shipped: each pipeline as it ships, ours under the trainer's malloc setting "
                             "(trainer.keep_freed_memory), the conventional one with glibc's defaults; "
                             "same: both under the trainer's setting")
    parser.add_argument("--compile", choices=["auto", "off"], default="auto",
                        help="augment.compile for ours: auto (the default, colour ops as one compiled kernel "
                             "on CPU) or off (eager ops)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda: both pipelines feed the model on the GPU (the conventional views are "
                             "copied from pinned host memory, ours are made on the device)")
    parser.add_argument("--data-root", type=Path, default=SHARED,
                        help="folder holding cifar10/ (default: ../shared/datasets beside the checkout; "
                             "synthetic images where it has none)")
    parser.add_argument("--matmul-size", type=int, default=2048,
                        help="n of the n x n x n torch.matmul that gives the machine's reference FLOP rate")
    return parser.parse_args()


def sync(device: torch.device) -> None:
    """CUDA runs asynchronously: time only finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(call, calls: int, device: torch.device, warmup: int = 1) -> float:
    """Mean wall seconds of call() over `calls` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    sync(device)
    return (time.perf_counter() - start) / calls


class Ours:
    """simclr_core's pipeline: make_views on the in-memory batch, as train() runs it."""

    def __init__(self, args: argparse.Namespace, device: torch.device, config: RunConfig, images: torch.Tensor):
        self.args, self.device, self.config, self.images = args, device, config, images
        self.augment = AugmentConfig(compile=args.compile)
        self.generator = torch.Generator(device=device).manual_seed(0)
        self.counter = iter(range(10**9))
        # The first batch compiles the colour kernel (augment.compile auto): a one-off cost, reported
        # apart from the steady rate (Inductor caches the compiled code on disk for later processes).
        start = time.perf_counter()
        self.views()
        print(f"# ours: first batch {time.perf_counter() - start:.1f} s (includes compiling, once per process)")
        self.premade = [self.views() for _ in range(args.batches + 2)]
        self.full, self.model_only = build(config), build(config)  # one model each, kept over the rounds

    def views(self) -> list[torch.Tensor]:
        index = next(self.counter)
        start = (index % (self.args.batches + 2)) * self.args.batch_size
        batch = self.images[start : start + self.args.batch_size].float().div_(255)
        return make_views(batch, self.augment, self.generator)

    def round(self) -> dict[str, float]:
        """Seconds per batch of make_views alone, of the full step with views made on the fly, and of the
        same step on views made beforehand (the model step alone)."""
        batches, temperature = self.args.batches, self.config.train.temperature
        premade = lambda: self.premade[next(self.counter) % len(self.premade)]  # noqa: E731
        return {
            "augment: ours": seconds_per_call(self.views, batches, self.device),
            "train step: ours": seconds_per_call(lambda: training_step(self.full, self.views(), temperature),
                                                 batches, self.device),
            "model step": seconds_per_call(lambda: training_step(self.model_only, premade(), temperature),
                                           batches, self.device),
        }


class Conventional:
    """The DataLoader pipeline; its workers live for one round's measurement each."""

    def __init__(self, args: argparse.Namespace, device: torch.device, config: RunConfig, images: torch.Tensor):
        self.args, self.device, self.config = args, device, config
        self.warmup = 2 * args.workers + 2  # what the workers prefetched while starting (prefetch_factor 2)
        dataset = TwoViewDataset(images)
        per_round = self.warmup + 2 * (args.batches + 1) + 2
        sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=per_round * args.batch_size,
                                                 generator=torch.Generator().manual_seed(0))
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True, num_workers=args.workers,
            pin_memory=device.type == "cuda", multiprocessing_context="spawn" if args.workers > 0 else None,
        )
        self.setup = build(config)

    def round(self) -> dict[str, float]:
        """Seconds per batch of the DataLoader alone and of the full step fed by it. The iterator starts
        the workers and is dropped when measure() returns, which shuts them down: nothing of theirs runs
        beside the next round's other variants."""
        return self.measure(iter(self.loader))

    def measure(self, stream) -> dict[str, float]:
        def next_views() -> list[torch.Tensor]:
            view1, view2 = next(stream)
            return [view1.to(self.device, non_blocking=True), view2.to(self.device, non_blocking=True)]

        # Drain what the workers prefetched while starting, so the timed batches come at their steady rate.
        augment = seconds_per_call(next_views, self.args.batches, self.device, warmup=self.warmup)
        temperature = self.config.train.temperature
        train = seconds_per_call(lambda: training_step(self.setup, next_views(), temperature),
                                 self.args.batches, self.device)
        return {"augment: conventional": augment, "train step: conventional": train}


def step_flops(setup: Setup, views: list[torch.Tensor], temperature: float) -> int:
    """Floating-point operations of one training step as FlopCounterMode counts them (convolutions and
    matrix products, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        training_step(setup, views, temperature)
    return counter.get_total_flops()


def median_and_range(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images, source = load_images(args.batch_size * (args.batches + 2), args.data_root)
    config = RunConfig(model=ModelConfig(encoder=args.encoder, width=args.width),
                       train=TrainConfig(batch_size=args.batch_size, device=args.device))
    # Same model settings for both pipelines, those our trainer picks on this machine (trainer.build):
    # channels_last, and bf16 autocast where the hardware computes bf16 natively.
    dtype = build(config).autocast_dtype or torch.float32
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU flags {cpu_flags()}, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}; data: {source}; encoder {args.encoder} "
          f"(width {args.width}), batch {args.batch_size}, {args.rounds} interleaved rounds of {args.batches} timed "
          f"batches, {args.workers} DataLoader workers, step precision {str(dtype).removeprefix('torch.')}, "
          f"{torch.get_num_threads()} torch threads, allocator {args.allocator}, augment.compile {args.compile}")

    # Each pipeline as it ships: ours under the trainer's allocator setting (train() applies it);
    # the conventional DataLoader's workers are started by spawn, so they run with glibc's defaults,
    # or (--allocator same) with the same setting passed through glibc's environment variables.
    keep_freed_memory()
    if args.allocator == "same":
        os.environ.update(MALLOC_MMAP_THRESHOLD_=str(256 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_=str(1024**3))
    ours = Ours(args, device, config, images.to(device))
    conventional = Conventional(args, device, config, images)
    flops = step_flops(build(config), ours.premade[0], config.train.temperature)
    n = args.matmul_size
    a, b = (torch.randn(n, n, device=device, generator=torch.Generator(device=device).manual_seed(i)).to(dtype)
            for i in (1, 2))

    seconds: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        measured = {**ours.round(), "matmul": seconds_per_call(lambda: torch.matmul(a, b), 3, device),
                    **conventional.round()}
        for name, value in measured.items():
            seconds.setdefault(name, []).append(value)

    views = 2 * args.batch_size  # per batch, both pipelines
    print(f"{'views/s, median [min, max]':34}{'simclr_core':>26}{'conventional':>26}")
    for what in ("augment", "train step"):
        ours_rates, theirs_rates = ([views / t for t in seconds[f"{what}: {who}"]] for who in ("ours", "conventional"))
        print(f"{what:34}{median_and_range(ours_rates, 0):>26}{median_and_range(theirs_rates, 0):>26}")
    print(f"{'model step':34}{median_and_range([views / t for t in seconds['model step']], 0):>26}")

    # Ratios within each round, then their median and range.
    per_round = {
        "augment_speedup": [c / o for o, c in zip(seconds["augment: ours"], seconds["augment: conventional"])],
        "train_speedup": [c / o for o, c in zip(seconds["train step: ours"], seconds["train step: conventional"])],
        "model_fraction": [m / f for f, m in zip(seconds["train step: ours"], seconds["model step"])],
        "flop_fraction": [(flops / s) / (2 * n**3 / m) for s, m in zip(seconds["model step"], seconds["matmul"])],
    }
    step_rates = [flops / t / 1e9 for t in seconds["model step"]]
    matmul_rates = [2 * n**3 / t / 1e9 for t in seconds["matmul"]]
    print(f"# FLOPs: model step {flops / 1e9:.2f} GFLOP per batch (FlopCounterMode: convolutions and matrix "
          f"products, forward and backward), achieved {median_and_range(step_rates, 1)} GFLOP/s; torch.matmul "
          f"{n}x{n} {str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} threads: "
          f"{median_and_range(matmul_rates, 1)} GFLOP/s")
    print("# per-round ratios, median [min, max]: "
          + ", ".join(f"{name} {median_and_range(values)}" for name, values in per_round.items()))
    print(" ".join(f"{name}={statistics.median(values):.2f}" for name, values in per_round.items()))


if __name__ == "__main__":
    main()
