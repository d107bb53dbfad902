"""Run a study: `python -m ablations.run studies/aug_pairs.yaml`.

Parses the study file (strictly), plans its trials, runs them through Optuna (one study per file,
resumable, safe for several workers and machines on one storage) and records every trial in MLflow.
Run the same command again to continue a study; `mlflow ui --backend-store-uri sqlite:///mlflow.db`
shows the runs. `--dry-run` prints the trials and an estimate of their cost without training.

The light path first: the flags and the study file are checked with nothing heavy imported (this module
and what it imports at the top load no torch, MLflow or Optuna), so a bad input is refused in a fraction
of a second; the rest loads in `run_study` once the input is known good.

Bad input (study file, --set, data set, storage or tracking URL) exits with status 2 and one line
`error: ...`; a store lost for longer than --retry-for exits with 75 (its trial runs again elsewhere);
a study whose every trial failed exits with 1, naming the first error; Ctrl-C, at any moment, exits
with 130 and one line, after marking a running trial failed (Optuna) and KILLED (MLflow).

This module parses and reports; the work is in the package's other modules (session, runner,
workers, console, estimate, race_estimate (a race's dry run), signals), which know nothing of argv beyond the parsed options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ablations.messages import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_STORE_LOST, run_command

# Every trial of the study failed: nothing to report (the failures are recorded, as results).
EXIT_ALL_FAILED = 1
from ablations.design.plan import StudySpec
from ablations.stores.errors import DEFAULT_RETRY_FOR_S, SearchError, StoreUnavailable, check_storage
from ablations.run.study_file import load_study
from ablations.design.keys import StudyError
from ablations.stores.tracking_store import TrackingError, resolve_tracking_uri
from simclr_core.config import ConfigError, DataConfig
from simclr_core.data_sources import DatasetError

# Errors that are the user's to fix, each one line and a status; OSError last: a folder that cannot be
# written (read-only runs/, a full disk) names its path in the message.
EXITS = {StudyError: EXIT_BAD_INPUT, ConfigError: EXIT_BAD_INPUT, DatasetError: EXIT_BAD_INPUT,
         SearchError: EXIT_BAD_INPUT, TrackingError: EXIT_BAD_INPUT, StoreUnavailable: EXIT_STORE_LOST,
         OSError: EXIT_BAD_INPUT}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ablations.run",
        description="Run (or resume) a SimCLR ablation study: Optuna schedules the trials, MLflow records them.",
        epilog="Finding the data: a study that leaves data.root unset reads it from $SIMCLR_DATA, a folder "
               "holding cifar10/{train,test}.parquet (python -m ablations.run studies/quickstart.yaml with "
               "SIMCLR_DATA=../shared/datasets); without one, --set data.download=true lets torchvision download "
               "CIFAR-10 into data.root (default ./data). "
               "Rerun the same command to resume: finished trials are kept, dead ones run again.",
    )
    parser.add_argument("study", help="study file, e.g. studies/quickstart.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base value, validated like the file; repeatable "
                             "(--set data.dataset=synthetic --set train.epochs=1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="trials run at once on this machine, each in its own process with "
                             "cores/N torch threads. Small CPU models run faster as 2 workers x 1 thread "
                             "than 1 x 2; on a GPU, more workers pay off while it has spare capacity")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage: a path ending in .journal (default runs/<study>/optuna.journal), "
                             "sqlite:///optuna.db, or postgresql://user:password@host/db to share a study "
                             "between machines (start the same command on each)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db); "
                             "http://host:5000 for an `mlflow server` shared between machines")
    parser.add_argument("--retry-for", type=float, default=DEFAULT_RETRY_FOR_S, metavar="S",
                        help="seconds to keep retrying a storage or tracking server that stopped answering "
                             f"(a restart) before this worker stops with status 75 (default {DEFAULT_RETRY_FOR_S:g}); "
                             "keep it above the longest restart you expect")
    parser.add_argument("--runs-dir", default="runs",
                        help="folder for the default journal, per-trial checkpoints and worker logs (default runs)")
    parser.add_argument("--heartbeat-interval", type=int, default=30,
                        help="seconds between a running trial's heartbeats; a trial silent for twice this "
                             "is declared dead and its cell runs again (default 30). On a shared database keep "
                             "twice this above its longest restart, or live trials are taken for dead")
    parser.add_argument("--retry-failed", action="store_true",
                        help="also rerun trials that failed with an error (out of memory, non-finite loss)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the trials and an estimate of their cost; train nothing")
    parser.add_argument("--top", type=int, default=10, help="rows of the final table of best trials (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (summary lines only)")
    parser.add_argument("--no-report", action="store_true",
                        help="do not build the report (python -m ablations.report) when the study finishes")
    # Internal: set by the parent process for the worker processes it spawns.
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-count", type=int, default=1, help=argparse.SUPPRESS)
    return parser


# Third-party notices that are no news to the user and land in the middle of the progress bars: torch's
# Inductor, when it compiles the colour kernel on a CPU machine that has nvcc, warns "No CUDA runtime is
# found, using CUDA_HOME=..." once per process.
QUIET_LOGGERS = ("torch.utils.cpp_extension",)


def main(argv: list[str] | None = None) -> int:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        return run_command(build_parser(), argv, _main, EXITS)
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume the study", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(args: argparse.Namespace) -> int:
    """The light path: the flags and the study file, checked before anything heavy is imported."""
    for flag, value, ok, allowed in (("--workers", args.workers, args.workers >= 1, "an integer >= 1"),
                                     ("--retry-for", args.retry_for, args.retry_for >= 0, "seconds >= 0"),
                                     ("--heartbeat-interval", args.heartbeat_interval, args.heartbeat_interval >= 1,
                                      "seconds >= 1"),
                                     # -1 dropped the last row (a Python slice)
                                     ("--top", args.top, args.top >= 0, "a number of rows >= 0")):
        if not ok:  # `not >=` also refuses a NaN --retry-for
            raise StudyError(flag, "", f"{value} is not allowed; expected {allowed}")
    resolve_tracking_uri(args.tracking_uri)  # its scheme; the store itself is opened later
    check_storage(args.storage)  # its shape, likewise
    spec = load_study(args.study, args.overrides, data_root=os.environ.get("SIMCLR_DATA"))
    if args.dry_run:  # a race's dry run prints its rungs and its worst-case and expected costs
        from ablations.run.estimate import dry_run
        from ablations.run.race_estimate import dry_run as dry_run_race

        return (dry_run_race if spec.race is not None else dry_run)(spec, args)
    return run_study(spec, args)


def run_study(spec: StudySpec, args: argparse.Namespace) -> int:
    """The study, once its input is known good: the heavy modules (torch, Optuna, MLflow) load here."""
    from ablations.run import console, final_report
    from ablations.run.op_loading import load_ops
    from ablations.run.runner import DataCache
    from ablations.run.session import finalize, open_session
    from ablations.run.workers import run_here, run_workers, worker_main
    from simclr_core.trainer import select_device

    select_device(spec.base.train.device)  # a CUDA device asked for on a machine without one: fail now
    load_ops(spec)  # every process, workers too: each imports the study's own ops and checks their contract
    if args.worker_index is not None:
        return worker_main(spec, args)

    # Load the data set before touching any storage: a missing data set is one clear error (exit 2), not
    # a failure of every trial, and the decoded-array cache is warm before several workers read it at
    # once. A grid that varies data.* has each of its data sets checked so, the last one kept loaded.
    data = DataCache()
    for data_config in data_configs(spec):
        data.get(data_config)
    session = open_session(spec, args, setup=True)
    console.print_header(session)
    stopped: list[str] = []  # workers that ended with an error or a signal
    if args.workers == 1:
        status = run_here(session, data, args)
    else:
        data.clear()
        status, stopped = run_workers(session, args)
    finished = finalize(session, interrupted=status == EXIT_INTERRUPTED)
    console.print_summary(session, args.top)
    report = final_report.write_report(session) if finished and not args.no_report else None
    console.print_locations(session, report)
    if status == EXIT_INTERRUPTED:
        print("interrupted: the running trial is marked failed in Optuna and KILLED in MLflow; "
              "rerun the same command to resume", file=sys.stderr)
    elif stopped:
        # A worker killed while the others ran its units is no failure of the study: the status says
        # whether the study is complete.
        console.print_stopped_workers(stopped, finished)
        status = 0 if finished else 1
    failed_line = console.all_failed(session) if finished and status == 0 else None
    if failed_line is not None:
        print(f"error: {failed_line}", file=sys.stderr)
        status = EXIT_ALL_FAILED
    return status


def data_configs(spec: StudySpec) -> list[DataConfig]:
    """The distinct data configurations a study's planned trials use (the base's, for sampled studies)."""
    if spec.search.sampler != "grid" or not any(key.startswith("data.") for key in spec.search.varied_keys):
        return [spec.base.data]
    distinct: dict[str, DataConfig] = {}
    for trial in spec.trials():
        distinct.setdefault(repr(trial.config.data), trial.config.data)
    return list(distinct.values())
