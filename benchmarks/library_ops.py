"""What a wrapped library transform costs against a native batched op (simclr_core.library_ops, issue 27).

The same augmentation three ways on a training batch (256 CIFAR-sized images, one thread): BYOL's
solarisation as a native batched op (examples/solarize_ops.py), torchvision's `RandomSolarize` wrapped
image by image (each image seeded from the op's stream under fork_rng: a v2 transform on a batch draws one
decision for the whole batch), and Kornia's `RandomSolarize` wrapped batched where Kornia is installed.
Also the crop: the built-in batched crop against torchvision's `RandomResizedCrop` wrapped per image.
The variants are interleaved over rounds (one call of each per round, the order rotating), so load on the
machine falls on all of them alike; each figure is a median over rounds, and each ratio is taken within a
round, then its median and range given.

    python benchmarks/library_ops.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "examples"))
from machine import cpu_flags  # noqa: E402
from solarize_ops import solarize  # noqa: E402

from simclr_core.augmentations import crop  # noqa: E402
from simclr_core.library_ops import kornia_augmentation, kornia_op, torchvision_op, torchvision_transform  # noqa: E402


def variants() -> dict[str, dict[str, object]]:
    """Per augmentation, the native op first (the ratios' denominator), then its wrapped library forms."""
    found = {
        "solarize": {
            "native (examples/solarize_ops.py)": functools.partial(solarize, p=0.5),
            "tv:RandomSolarize, per image": functools.partial(
                torchvision_op(torchvision_transform("RandomSolarize")), threshold=0.5, p=0.5),
        },
        "crop": {
            "native (simclr_core crop)": crop,
            "tv:RandomResizedCrop, per image": functools.partial(
                torchvision_op(torchvision_transform("RandomResizedCrop")), size=[32, 32], antialias=False),
        },
    }
    try:
        found["solarize"]["kornia:RandomSolarize, batched"] = functools.partial(
            kornia_op(kornia_augmentation("RandomSolarize")), thresholds=0.0, additions=0.0, p=0.5)
    except ValueError as missing:  # the kornia extra is optional
        print(f"# kornia left out: {missing}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = torch.rand(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    print(f"# library ops against native batched ops: torch {torch.__version__}, 1 thread, batch {args.batch} "
          f"x 3 x 32 x 32, {args.rounds} interleaved rounds; CPU flags: {cpu_flags()}")
    for augmentation, ops in variants().items():
        names = list(ops)
        times: dict[str, list[float]] = {name: [] for name in names}
        for name in names:  # warm-up: first calls build the transforms and allocate
            ops[name](images, torch.Generator().manual_seed(0))
        for round_index in range(args.rounds):
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in order:
                generator = torch.Generator().manual_seed(round_index)
                started = time.perf_counter()
                ops[name](images, generator)
                times[name].append(time.perf_counter() - started)
        native = names[0]
        for name in names:
            ratios = [mine / base for mine, base in zip(times[name], times[native])]
            print(f"{augmentation:<9} {name:<36} median {statistics.median(times[name]) * 1e3:8.2f} ms "
                  f"({min(times[name]) * 1e3:.2f}-{max(times[name]) * 1e3:.2f}); x native: median "
                  f"{statistics.median(ratios):6.1f} (range {min(ratios):.1f}-{max(ratios):.1f}); "
                  f"{args.batch / statistics.median(times[name]):,.0f} images/s")


if __name__ == "__main__":
    main()
