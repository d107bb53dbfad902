"""What one random stream per op costs a training step (augmentations.OpStreams).

Since each op of a pipeline draws from a stream of its own, made afresh at every step from
(seed, op, occurrence, view, step), a step makes one seeded generator per op and view. This times
make_views on a training batch (256 CIFAR-sized images, the aug_pairs crop->color pipeline under the
asymmetric protocol with its base crop, and the symmetric default recipe) with one plain generator
and with OpStreams, alternating the two, and the stream-making alone, on one thread.

    python benchmarks/op_streams.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_flags  # noqa: E402

from simclr_core.augmentations import OpStreams, make_views  # noqa: E402
from simclr_core.config import AugmentConfig, OpSpec  # noqa: E402

REPEATS = 40


def main() -> None:
    torch.set_num_threads(1)
    images = torch.rand(256, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    recipes = {
        "crop->color (asymmetric, base crop)": AugmentConfig(
            protocol="asymmetric", base_crop=True, pipeline=[OpSpec("crop"), OpSpec("color")]),
        "symmetric default (crop, hflip, color)": AugmentConfig(),
    }
    print(f"# op streams, torch {torch.__version__}, 1 thread, CPU flags: {cpu_flags()}")
    for name, config in recipes.items():
        plain, streams = torch.Generator().manual_seed(0), OpStreams(0)
        make_views(images, config, plain)  # the colour kernel compiles on its first batch
        times = {"one generator": [], "OpStreams": []}
        for step in range(REPEATS):
            for label, source in (("one generator", plain), ("OpStreams", streams.at(step))):
                started = time.perf_counter()
                make_views(images, config, source)
                times[label].append(time.perf_counter() - started)
        a, b = (statistics.median(times[k]) * 1e3 for k in ("one generator", "OpStreams"))
        ops = len(config.pipeline) * (1 if config.protocol == "asymmetric" else 2) + config.base_crop
        started = time.perf_counter()
        for step in range(1000):
            for op in range(ops):
                streams.at(step)(f"op{op}", 0, 0)
        making = (time.perf_counter() - started) / 1000 * 1e6
        print(f"{name}: make_views {a:.2f} ms with one generator, {b:.2f} ms with OpStreams "
              f"(median of {REPEATS}); making its {ops} streams alone {making:.0f} us per step")


if __name__ == "__main__":
    main()
