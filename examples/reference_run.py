"""The reference run: SimCLR on all of CIFAR-10 on a 2-core CPU in at most 15 minutes, scored by the
linear probe on h (fitted on all 50,000 training images, scored on all 10,000 test images), beside the
same encoder untrained. Target (issue "Decided verdicts"): at least 60 %.

The recipe is the studies' base (benchmarks/recipe.py: AdamW lr 3e-3 at batch 256, the paper's CIFAR-10
augmentations: crop, flip, colour at s = 0.5 on both views) with the wider small CNN (width 32), which
learned more per minute there (57.2 % after 3 epochs against 55.4 % for width 16 after 6), trained for
EPOCHS epochs on both cores. Measured figures are in benchmarks/RESULTS.md.

    python examples/reference_run.py [path to the folder holding cifar10/] [--epochs N]
"""

import argparse
import os

from simclr_core import DataConfig, ModelConfig, ProbeConfig, RunConfig, TrainConfig, train

EPOCHS = 12

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("root", nargs="?", default=os.environ.get("SIMCLR_DATA", "../shared/datasets"))
parser.add_argument("--epochs", type=int, default=EPOCHS)
args = parser.parse_args()

config = RunConfig(
    data=DataConfig(dataset="cifar10", root=args.root),
    model=ModelConfig(encoder="small_cnn", width=32),
    train=TrainConfig(epochs=0, optimizer="adamw", lr=3e-3, weight_decay=1e-6, batch_size=256, warmup_epochs=1.0,
                      seed=0, device="cpu", num_threads=os.cpu_count() or 1),
    probe=ProbeConfig(knn_every=0),
)
untrained = train(config)
print(f"untrained: probe on h {untrained.probe_h:.4f} ({untrained.wall_time_s:.0f} s)", flush=True)
config.train.epochs = args.epochs
trained = train(config, callback=lambda m: print(
    f"epoch {m.epoch}: loss {m.loss:.3f}, {m.images_per_s:.0f} img/s", flush=True))
print(f"trained {args.epochs} epochs: probe on h {trained.probe_h:.4f}, on z {trained.probe_z:.4f} "
      f"({trained.wall_time_s:.0f} s, {trained.device}); untrained {untrained.probe_h:.4f}")
