"""Seconds per SimCLR epoch on the training device: ResNet-18 (CIFAR stem) on all 50,000 CIFAR-10 images,
batch 512, the paper's CIFAR recipe (crop, flip, colour s = 0.5), bf16 autocast and channels_last as
`precision: auto` picks them, data and augmentation on the device, with and without torch.compile of the
model. The first epoch of each includes compiling; the second is the steady figure.

    python benchmarks/gpu_epoch.py [--epochs 2] [--encoder resnet18_cifar] [--batch-size 512]

Aim (issue "More evidence per CPU-minute"): at most 5 s per epoch on an H100/H200-class GPU (public
references: about 12 s on an A100 with a conventional DataLoader pipeline).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from simclr_core import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--encoder", default="resnet18_cifar")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    print(f"# {torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'}, torch {torch.__version__}")
    for compile_model in (False, True):
        config = RunConfig(
            data=DataConfig(dataset="cifar10", root=str(SHARED)),
            model=ModelConfig(encoder=args.encoder),
            train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="lars", lr=1.0,
                              device=args.device, compile=compile_model),
            probe=ProbeConfig(enabled=False, knn_every=0),
        )
        result = train(config, callback=lambda m: print(
            f"  compile={compile_model} epoch {m.epoch}: {m.seconds:.2f} s, {m.images_per_s:.0f} images/s, "
            f"loss {m.loss:.3f}", flush=True))
        steady = result.history[-1].seconds
        print(f"epoch_seconds compile={compile_model}: {steady:.2f} (colour ops {result.colour_ops}, "
              f"{result.device})")


if __name__ == "__main__":
    main()
