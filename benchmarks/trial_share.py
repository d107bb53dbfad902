"""Where an aug_pairs trial's time goes, and how much of it is not training (issue "More evidence per
CPU-minute": at most 10 %).

Trains one cell of studies/aug_pairs.yaml as the study would (its base recipe: all 50,000 CIFAR-10
images, 6 epochs, one thread), prints train()'s phases (setup, training steps, kNN monitor, final
probe) and the share of everything but the training steps, then times the probe's L-BFGS fit against
the textbook form (nn.Linear with F.cross_entropy on (N, classes): the slow literal reference of
tests/test_probe.py) on the same features, interleaved, and prints the ratio. The default cell,
crop+noise, trains fastest of the cells measured, so its share is the largest.

    python benchmarks/trial_share.py [--cell crop+noise] [--seed 0] [--threads 1]

Last line: `nontraining_share=<x> probe_fit_speedup=<y>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import cpu_flags

from ablations.run.study_file import load_study
from simclr_core import probe, train
from simclr_core.data import load_dataset
from simclr_core.model import SimCLRModel
from simclr_core.trainer import numeric_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_probe import _reference_probe  # the baseline is the tested slow reference


def fit_ratio(features, labels, test_features, test_labels, rounds: int) -> tuple[float, float, float]:
    """Median seconds of the reference fit and of probe.linear_probe_accuracy, interleaved, and the
    largest difference in test accuracy between them."""
    reference, ours, gap = [], [], 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        expected = _reference_probe(features, labels, test_features, test_labels, 1e-4, 500)
        reference.append(time.perf_counter() - started)
        started = time.perf_counter()
        got, _ = probe.linear_probe_accuracy(features, labels, test_features, test_labels,
                                             weight_decay=1e-4, max_iter=500)
        ours.append(time.perf_counter() - started)
        gap = max(gap, abs(got - expected))
    return statistics.median(reference), statistics.median(ours), gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", default="crop+noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    spec = load_study(ROOT / "studies" / "aug_pairs.yaml", data_root=str(ROOT.parent / "shared" / "datasets"))
    planned = {t.run_name: t for t in spec.trials()}
    config = planned[f"{args.cell} seed={args.seed}"].config
    config.train.num_threads = args.threads
    torch.set_num_threads(args.threads)
    print(f"# {cpu_flags()}; torch {torch.__version__}; aug_pairs {args.cell} seed={args.seed}, "
          f"{args.threads} thread(s)", flush=True)

    started = time.perf_counter()
    dataset = load_dataset(config.data)  # once per worker process, shared by its trials
    print(f"data loading (once per worker): {time.perf_counter() - started:.1f} s", flush=True)
    result = train(config, dataset=dataset)
    phases = result.phase_seconds
    share = 1 - phases["train"] / result.wall_time_s
    print("train() phases, s: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items())
          + f"; wall {result.wall_time_s:.1f}; probe_h {result.probe_h:.4f}", flush=True)

    torch.manual_seed(args.seed)  # the probe fit's timing on an encoder's features (untrained: same sizes)
    model = SimCLRModel(config.model)
    autocast, _ = numeric_settings(config.train, torch.device("cpu"))  # as train() chose
    train_h, _ = probe.extract_features(model, dataset.train_images, batch_size=1024, autocast_dtype=autocast)
    test_h, _ = probe.extract_features(model, dataset.test_images, batch_size=1024, autocast_dtype=autocast)
    reference, ours, gap = fit_ratio(train_h, dataset.train_labels, test_h, dataset.test_labels, args.rounds)
    print(f"probe fit on h (50,000 x {train_h.shape[1]}): reference {reference:.1f} s, ours {ours:.1f} s; "
          f"largest accuracy difference {gap * 100:.2f} points", flush=True)
    print(f"nontraining_share={share:.3f} probe_fit_speedup={reference / ours:.2f}")


if __name__ == "__main__":
    main()
