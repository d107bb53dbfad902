"""Training throughput: simclr_core's batched pipeline against the conventional one, in one run.

The conventional pipeline is what lightly, sthalles/SimCLR and the UvA tutorial do: a Dataset of
PIL images, torchvision transforms drawn per image, two views per item, a DataLoader with worker
processes. Both pipelines feed the same model, batch size, precision and memory format, so the
ratio isolates the data pipeline. Figures are views per second (two views per image).

    python benchmarks/throughput.py [--batches 6] [--batch-size 256] [--encoder small_cnn] [--compile auto|off]
                                    [--device cpu|cuda]

The last line reads `augment_speedup=<x> train_speedup=<y> model_fraction=<z>`: model_fraction is
our full training step's rate over the rate of the same step on views made beforehand (the model
step alone), i.e. the share of a step's time that the model takes.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import torchvision
from machine import cpu_flags
from PIL import Image
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
from simclr_core.trainer import build, keep_freed_memory, training_step

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


def load_images(n: int) -> tuple[torch.Tensor, str]:
    if (SHARED / "cifar10").exists():
        data = load_dataset(DataConfig(dataset="cifar10", root=str(SHARED), train_subset=n, test_subset=16))
    else:
        data = load_dataset(DataConfig(dataset="synthetic", synthetic_per_class=n // 4, synthetic_classes=4))
    return data.train_images[:n], data.source


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
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
    return parser.parse_args()


def sync(device: torch.device) -> None:
    """CUDA runs asynchronously: time only finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(next_batch, args: argparse.Namespace, device: torch.device, warmup: int = 1) -> float:
    """Views per second of next_batch() over args.batches calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        next_batch()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.batches):
        next_batch()
    sync(device)
    return args.batches * 2 * args.batch_size / (time.perf_counter() - start)


def train_rate(config: RunConfig, next_views, args: argparse.Namespace, device: torch.device) -> float:
    """Views per second of the full training step (views, forward, NT-Xent, backward, optimiser step:
    the trainer's own) on a fresh model, views from next_views()."""
    setup = build(config)
    return rate(lambda: training_step(setup, next_views(), config.train.temperature), args, device)


def measure_ours(args: argparse.Namespace, device: torch.device, config: RunConfig,
                 images: torch.Tensor) -> tuple[float, float, float]:
    """Views/s of make_views alone, of the full step with views made on the fly, and of the same step
    on views made beforehand (the model step alone)."""
    augment = AugmentConfig(compile=args.compile)
    generator = torch.Generator(device=device).manual_seed(0)

    def batched_views(batch_index: int) -> list[torch.Tensor]:
        start = (batch_index % (args.batches + 2)) * args.batch_size
        batch = images[start : start + args.batch_size].float().div_(255)
        return make_views(batch, augment, generator)

    counter = iter(range(10**9))
    # The first batch compiles the colour kernel (augment.compile auto): a one-off cost, reported
    # apart from the steady rate (Inductor caches the compiled code on disk for later processes).
    start = time.perf_counter()
    batched_views(next(counter))
    print(f"# ours: first batch {time.perf_counter() - start:.1f} s (includes compiling, once per process)")
    augment_rate = rate(lambda: batched_views(next(counter)), args, device)
    full = train_rate(config, lambda: batched_views(next(counter)), args, device)
    premade = [batched_views(index) for index in range(args.batches + 2)]
    model_only = train_rate(config, lambda: premade[next(counter) % len(premade)], args, device)
    return augment_rate, full, model_only


def measure_conventional(args: argparse.Namespace, device: torch.device, config: RunConfig,
                         images: torch.Tensor) -> tuple[float, float]:
    """Views/s of the DataLoader pipeline alone and of the full step fed by it."""
    loader = torch.utils.data.DataLoader(
        TwoViewDataset(images), batch_size=args.batch_size, shuffle=True, drop_last=True,
        num_workers=args.workers, persistent_workers=args.workers > 0, pin_memory=device.type == "cuda",
        multiprocessing_context="spawn" if args.workers > 0 else None,
    )

    def loader_views():
        while True:
            for view1, view2 in loader:
                yield [view1.to(device, non_blocking=True), view2.to(device, non_blocking=True)]

    stream = loader_views()
    # Drain what the workers prefetched while starting (prefetch_factor 2 per worker), so the
    # timed batches are produced at the workers' steady rate.
    augment_rate = rate(lambda: next(stream), args, device, warmup=2 * args.workers + 2)
    return augment_rate, train_rate(config, lambda: next(stream), args, device)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images, source = load_images(args.batch_size * (args.batches + 2))
    config = RunConfig(model=ModelConfig(encoder=args.encoder, width=args.width),
                       train=TrainConfig(batch_size=args.batch_size, device=args.device))
    # Same model settings for both pipelines, those our trainer picks on this machine (trainer.build):
    # channels_last, and bf16 autocast where the CPU has native bf16.
    bf16 = build(config).autocast_dtype is not None
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU flags {cpu_flags()}, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}; data: {source}; encoder {args.encoder} "
          f"(width {args.width}), batch {args.batch_size}, {args.batches} timed batches, {args.workers} DataLoader "
          f"workers, bf16 autocast {bf16}, {torch.get_num_threads()} torch threads, allocator {args.allocator}, "
          f"augment.compile {args.compile}")

    # Each pipeline as it ships: ours under the trainer's allocator setting (train() applies it);
    # the conventional DataLoader's workers are started by spawn, so they run with glibc's defaults,
    # or (--allocator same) with the same setting passed through glibc's environment variables.
    keep_freed_memory()
    if args.allocator == "same":
        os.environ.update(MALLOC_MMAP_THRESHOLD_=str(256 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_=str(1024**3))
    # Ours first, before the DataLoader's workers exist: once started they prefetch in the
    # background and would take cores from whatever is measured beside them.
    ours_augment, ours_train, model_only = measure_ours(args, device, config, images.to(device))
    theirs_augment, theirs_train = measure_conventional(args, device, config, images)

    print(f"{'':24}{'simclr_core':>14}{'conventional':>14}{'ratio':>8}")
    print(f"{'augment views/s':24}{ours_augment:14.0f}{theirs_augment:14.0f}{ours_augment / theirs_augment:8.2f}")
    print(f"{'train step views/s':24}{ours_train:14.0f}{theirs_train:14.0f}{ours_train / theirs_train:8.2f}")
    print(f"{'model step views/s':24}{model_only:14.0f}")
    print(f"augment_speedup={ours_augment / theirs_augment:.2f} train_speedup={ours_train / theirs_train:.2f} "
          f"model_fraction={ours_train / model_only:.2f}")


if __name__ == "__main__":
    main()
