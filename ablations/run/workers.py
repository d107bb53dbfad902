"""Where the trials run: in this process (one worker), or in N worker processes that each run the
claim loop, with the parent showing their progress by polling the study's storage.

Worker processes are this same command (`python -m ablations.run ... --worker-index i`), so a worker
on another machine and one spawned here do the same thing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import torch
from tqdm import tqdm

from ablations.stats import race
from ablations.stores import confirm, resume
from ablations.stores import race as race_store
from ablations.messages import EXIT_INTERRUPTED
from ablations.run import console
from ablations.run.runner import DataCache, Runner
from ablations.run.session import Session, open_session, tracking_uri
from ablations.run.signals import interrupts
from ablations.design.plan import StudySpec

# Seconds the parent waits, after a Ctrl-C, for workers that got it too to end their trials on their
# own, then for each worker it interrupted itself.
GRACE_S = 10
STOP_TIMEOUT_S = 120


def run_here(session: Session, data: DataCache, args: argparse.Namespace) -> int:
    """One worker, in this process, with a progress bar over trials and one over epochs."""
    runner = Runner(session, data, show_progress=not args.no_progress)
    if not args.no_progress:
        runner.outer = console.trials_bar(session)
    try:
        return _claim_until_done(runner, args)
    finally:
        if runner.outer is not None:
            runner.outer.close()


def worker_main(spec: StudySpec, args: argparse.Namespace) -> int:
    """A spawned worker: the claim loop, no setup, no bars; its output goes to its log file."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.worker_count))
    session = open_session(spec, args, setup=False)
    return _claim_until_done(Runner(session, DataCache(), show_progress=False), args)


def _claim_until_done(runner: Runner, args: argparse.Namespace) -> int:
    try:
        with interrupts():
            runner.loop(poll_s=min(5.0, args.heartbeat_interval))
        return 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def run_workers(session: Session, args: argparse.Namespace) -> tuple[int, list[str]]:
    """Spawn N worker processes running the claim loop; show progress by polling the storage.

    Returns 130 if interrupted, else 0, and a line for each worker that ended with an error or a signal:
    whether that fails the command depends on whether the others finished the study, which the caller
    knows once it has brought the stores in line (session.finalize)."""
    session.runs_dir.mkdir(parents=True, exist_ok=True)
    argv = _worker_argv(args)
    processes: list[subprocess.Popen] = []
    logs: list[tuple[Path, IO[str]]] = []
    for index in range(args.workers):
        log_path = session.runs_dir / f"worker-{index}.log"
        log = open(log_path, "a")
        logs.append((log_path, log))
        processes.append(subprocess.Popen([sys.executable, "-m", "ablations.run", *argv, "--worker-index", str(index)],
                                          stdout=log, stderr=subprocess.STDOUT))
    trials = session.study.get_trials(deepcopy=False)
    seen = {t.number for t in trials if t.state.is_finished()}
    announced = {t.number for t in trials if t.user_attrs.get("confirm")  # counted in the bar's total
                 or t.user_attrs.get("race")}
    bar = None if args.no_progress else console.trials_bar(session)
    interrupted = False
    try:
        with interrupts():
            _poll_workers(session, processes, seen, announced, bar)
    except KeyboardInterrupt:
        interrupted = True
        _stop_workers(processes)
    finally:
        if bar is not None:
            bar.close()
        for _, log in logs:
            log.close()
    codes = [p.returncode for p in processes]
    if interrupted or EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED, []
    if session.spec.race is not None:  # what the race decided, as the workers' logs say it
        for line in race.describe(race_store.state_of(session.spec, session.study.get_trials(deepcopy=False))):
            print(line, flush=True)
    if session.spec.confirm is not None:  # the workers' own lines went to their logs: what is left open, and why
        for line in confirm.plan_round(session.spec, session.study.get_trials(deepcopy=False)).lines:
            print(line, flush=True)
    return 0, [console.worker_ended(index, code, logs[index][0]) for index, code in enumerate(codes) if code]


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The parent's command line for its workers: the same study, stores and overrides."""
    argv = [args.study, "--runs-dir", args.runs_dir, "--heartbeat-interval", str(args.heartbeat_interval),
            "--tracking-uri", tracking_uri(args), "--retry-for", str(args.retry_for),
            "--worker-count", str(args.workers)]
    if args.storage:
        argv += ["--storage", args.storage]
    for override in args.overrides:
        argv += ["--set", override]
    return argv


def _stop_workers(processes: list[subprocess.Popen]) -> None:
    # From a terminal the workers got the SIGINT too and are ending their trials; give them a
    # moment before interrupting the ones that did not (the parent alone got a `kill`).
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.2)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()


def _poll_workers(session: Session, processes: list[subprocess.Popen], seen: set[int], announced: set[int],
                  bar: tqdm | None) -> None:
    """Until every worker has exited: one line per newly finished trial (`seen`: those told) and per
    confirmation round (`announced`: its trials told), the bar (its total grown by the rounds), running
    epochs."""
    while True:
        finished = [p.poll() is not None for p in processes]
        trials = session.study.get_trials(deepcopy=False)
        added = console.new_confirmations(trials, announced)
        if added:
            console.write(console.confirmation_line(len(added), (int(t.user_attrs["seed"]) for t in added)), bar)
            if bar is not None:
                bar.total += len(added)
        if session.spec.race is not None:  # a worker enqueued a rung (its lines went to its log): say so here
            raced = console.new_rung_units(trials, announced, session.spec.race.rungs[0])
            for line in console.rung_lines(raced):
                console.write(line, bar)
            if bar is not None:
                bar.total = max(bar.total, resume.units_known(session.study))
        for trial in trials:
            if trial.state.is_finished() and trial.number not in seen:
                seen.add(trial.number)
                if "duplicate_of" not in trial.user_attrs:
                    console.write(console.trial_line(trial), bar)
        if bar is not None:
            bar.n = resume.units_done(session.study)
            bar.set_postfix_str(console.running_epochs(trials))
            bar.refresh()
        if all(finished):
            return
        time.sleep(1.0)
