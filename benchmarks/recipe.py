"""Which CPU base recipe makes SimCLR learn within a study's per-trial budget? (issue "Decided verdicts")

Trains named candidates of the SYMMETRIC recipe (crop + flip + colour at s = 0.5 on both views, the
paper's CIFAR-10 recipe), never a cell a study compares, on the full CIFAR-10 training set, and scores
each with the final linear probe fitted on all 50,000 training images and scored on all 10,000 test
images; `floor_*` entries are the same encoder untrained (epochs 0) under the same probe. Each result
is appended as one JSON line to --out, and a rerun skips what is already there, so the measurement can
span sittings.

    python benchmarks/recipe.py [--only NAME ...] [--threads 1] [--out benchmarks/recipe.jsonl]

The budget a study can afford: aug_pairs (49 cells x 2 seeds, 2 workers of one thread each) must fit in
about 6 hours, so about 7 minutes per trial; the other studies have fewer cells and may spend more.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from machine import cpu_flags

from simclr_core import (
    DataConfig,
    ModelConfig,
    ProbeConfig,
    RunConfig,
    TrainConfig,
    train,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

# name -> (model, train) overrides; every candidate trains on all 50,000 images with AdamW, batch 256.
CANDIDATES: dict[str, tuple[dict, dict]] = {
    "floor_w16": ({"width": 16}, {"epochs": 0}),
    "w16_e6": ({"width": 16}, {"epochs": 6}),
    "w16_e6_lr1e-2": ({"width": 16}, {"epochs": 6, "lr": 0.01}),
    "floor_w32": ({"width": 32}, {"epochs": 0}),
    "w32_e3": ({"width": 32}, {"epochs": 3}),
    "w32_e6": ({"width": 32}, {"epochs": 6}),
    "w16_e12": ({"width": 16}, {"epochs": 12}),
    "w16_e30_2threads": ({"width": 16}, {"epochs": 30, "num_threads": 2}),
    "w32_e12_2threads": ({"width": 32}, {"epochs": 12, "num_threads": 2}),
}


def config_for(model: dict, train_values: dict, threads: int) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="cifar10", root=str(SHARED)),
        model=ModelConfig(encoder="small_cnn", **model),
        train=TrainConfig(**{"optimizer": "adamw", "lr": 0.003, "weight_decay": 1e-6, "batch_size": 256,
                             "warmup_epochs": 1.0, "seed": 0, "device": "cpu", "num_threads": threads,
                             **train_values}),
        probe=ProbeConfig(knn_every=0, probe_z=True),
    )




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="candidate names (default: all, in order)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/recipe.jsonl")
    args = parser.parse_args()
    out = Path(args.out)
    done = {json.loads(line)["name"] for line in out.read_text().splitlines()} if out.exists() else set()
    for name in args.only or list(CANDIDATES):
        if name in done:
            continue
        model, train_values = CANDIDATES[name]
        config = config_for(model, train_values, args.threads)
        started = time.perf_counter()
        result = train(config)
        record = {
            "name": name, "probe_h": result.probe_h, "probe_z": result.probe_z,
            "loss": result.history[-1].loss if result.history else None,
            "seconds": round(time.perf_counter() - started, 1),
            "train_seconds": round(sum(m.seconds for m in result.history), 1),
            "threads": config.train.num_threads, "cpu_flags": cpu_flags(),
            "cpu": platform.processor() or platform.machine(), "device": result.device,
            "torch": torch.__version__, "config": {"model": model, "train": train_values},
            "load_average": round(os.getloadavg()[0], 2),
        }
        with out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(f"{name:20} probe_h {result.probe_h:.3f} probe_z {result.probe_z:.3f} "
              f"{record['seconds']:.0f} s (training {record['train_seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
