"""Which precision and memory format should the trainer use on a CPU? Measures one training step
(trainer.training_step: forward, NT-Xent, backward, SGD step) of the small CNN for fp32/bf16 autocast x contiguous/
channels_last, interleaved over several rounds so that load from other processes hits all variants
alike, and the loss each reaches after a few steps from the same start (bf16 must stay within noise).

    python benchmarks/cpu_formats.py [--width 16] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from simclr_core.config import ModelConfig, RunConfig, TrainConfig
from simclr_core.trainer import build, training_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    views = list(torch.rand(2, args.batch_size, 3, 32, 32, generator=generator))
    variants = [(bf16, layout) for bf16 in (False, True) for layout in (torch.contiguous_format, torch.channels_last)]
    setups = {}
    for bf16, layout in variants:
        # The trainer's own model, optimiser and precision (trainer.build), seed 0 for each variant.
        config = RunConfig(model=ModelConfig(encoder="small_cnn", width=args.width), train=TrainConfig(
            batch_size=args.batch_size, optimizer="sgd", lr=0.05, device="cpu", precision="bf16" if bf16 else "fp32",
            channels_last="on" if layout == torch.channels_last else "off"))
        setups[(bf16, layout)] = build(config)

    def step(variant) -> float:
        loss, _ = training_step(setups[variant], views, temperature=0.5)
        return loss.item()

    times = {variant: [] for variant in variants}
    losses = {variant: [] for variant in variants}
    for variant in variants:
        step(variant)  # warm-up (oneDNN primitive creation)
    for _ in range(args.rounds):
        for variant in variants:
            start = time.perf_counter()
            losses[variant].append(step(variant))
            times[variant].append(time.perf_counter() - start)
    print(f"# small_cnn width {args.width}, batch {args.batch_size} (x2 views), {args.threads} thread(s), "
          f"torch {torch.__version__}, median of {args.rounds} interleaved rounds")
    print(f"{'precision':10}{'layout':16}{'ms/step':>9}{'images/s':>10}{'loss after':>12}")
    for (bf16, layout), values in times.items():
        median = statistics.median(values)
        name = "channels_last" if layout == torch.channels_last else "contiguous"
        print(f"{'bf16' if bf16 else 'fp32':10}{name:16}{median * 1000:9.0f}{args.batch_size / median:10.0f}"
              f"{losses[(bf16, layout)][-1]:12.6f}")


if __name__ == "__main__":
    main()
