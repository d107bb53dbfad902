"""Can the small CNN's training step run faster on a CPU? An A/B of the options, in one run.

Times trainer.training_step (forward, NT-Xent, backward, optimiser step) of small_cnn on views made
beforehand, for each variant below, interleaved over several rounds so that load from other processes
hits all variants alike, and checks the loss each reaches after the same steps from the same start
(a variant must not change the optimisation beyond float noise):

  eager       trainer.build as shipped (precision auto, channels_last)
  compiled    the same with train.compile: true (torch.compile of the model, Inductor's C++ backend)
  fp32 / bf16 the other precision: fp32 when the rest run bf16 (what bf16 buys on a CPU with native bf16),
              bf16 when they run fp32 (--precision fp32: on an AVX2-only CPU, what auto avoids)
  width 3/4w, 3/2w   narrower and wider encoders, to show how the step's cost scales with width

    python benchmarks/model_step.py [--width 16] [--batch-size 256] [--rounds 5] [--threads 1] [--precision auto]

The last line reads `compiled_speedup=<x> other_precision_ratio=<y>` (rates relative to eager).
To see the AVX2-only kernels on a CPU that has more, cap the ISA that ATen and oneDNN dispatch to:
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` (oneDNN then has no bf16, and precision auto trains in
fp32, as on a real AVX2-only machine). To see oneDNN's bf16 emulation on an AVX-512 CPU with native bf16
(issue 28's AVX-512 machine without BF16), cap oneDNN alone: `ONEDNN_MAX_CPU_ISA=AVX512_CORE --precision
fp32`; torch's probes do not see that cap (simclr_core.cpu_isa), so auto would still pick bf16 here.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from machine import cpu_flags

from simclr_core.config import ModelConfig, RunConfig, TrainConfig
from simclr_core.trainer import build, training_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="train.precision of every variant but the other-precision one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    views = list(torch.rand(2, args.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(0)))

    def setup(width: int, **train_values):
        train_values.setdefault("precision", args.precision)
        config = RunConfig(model=ModelConfig(encoder="small_cnn", width=width),
                           train=TrainConfig(batch_size=args.batch_size, optimizer="adamw", lr=0.003, device="cpu",
                                             **train_values))
        return build(config)

    other = "bf16" if setup(args.width).autocast_dtype is None else "fp32"
    variants = {
        "eager": setup(args.width),
        "compiled": setup(args.width, compile=True),
        other: setup(args.width, precision=other),
        f"width {args.width * 3 // 4}": setup(args.width * 3 // 4),
        f"width {args.width * 3 // 2}": setup(args.width * 3 // 2),
    }
    started = time.perf_counter()
    for state in variants.values():  # warm-up: oneDNN primitives, and compiling for "compiled"
        training_step(state, views, 0.5)
    print(f"# warm-up (compiling included) {time.perf_counter() - started:.1f} s")
    seconds = {name: [] for name in variants}
    losses = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, state in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                loss, _ = training_step(state, views, 0.5)
            seconds[name].append((time.perf_counter() - start) / args.steps)
            losses[name].append(loss.item())
    print(f"# {platform.machine()}, CPU flags: {cpu_flags()}; torch {torch.__version__}; small_cnn width "
          f"{args.width}, batch {args.batch_size} (x2 views), {args.threads} thread(s), median of {args.rounds} "
          f"interleaved rounds of {args.steps} steps; autocast {variants['eager'].autocast_dtype}; "
          f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '-')} "
          f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '-')}")
    eager = statistics.median(seconds["eager"])
    print(f"{'variant':14}{'ms/step':>9}{'views/s':>10}{'vs eager':>10}{'loss after':>12}")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:14}{median * 1000:9.0f}{2 * args.batch_size / median:10.0f}{eager / median:10.2f}"
              f"{losses[name][-1]:12.5f}")
    print(f"compiled_speedup={eager / statistics.median(seconds['compiled']):.2f} "
          f"other_precision_ratio={eager / statistics.median(seconds[other]):.2f}")


if __name__ == "__main__":
    main()
