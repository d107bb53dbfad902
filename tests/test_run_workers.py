"""ablations.run.workers: several worker processes on one storage run every cell exactly once, and
claims racing between processes never run a cell twice."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from ablations.stores import resume, search
from ablations.run import main
from ablations.run.cli import build_parser
from ablations.run.workers import _worker_argv
from ablations.run.study_file import load_study
from test_run_support import (  # noqa: F401 (workdir is a fixture)
    SAFETY_LIMIT_S, cli, complete_once_per_unit, enqueue_plan, mlflow_runs, optuna_trials, start, study_file, uri,
    wait_for_running_epoch, workdir,
)


def test_two_workers_never_run_the_same_cell(workdir):
    study = study_file(workdir, "shared", "search: {pairs: [crop, color]}\n", seeds=(0, 1), epochs=10, knn_every=5)
    assert main(cli(workdir, study, "--workers", "2")) == 0
    trials = optuna_trials(workdir, "shared")
    assert len(complete_once_per_unit(trials)) == 8
    assert len(trials) == 8
    _, parents, children = mlflow_runs(workdir, "shared")
    assert sorted(Counter(r.data.tags["ablations.unit"] for r in children).values()) == [1] * 8
    assert all(r.info.status == "FINISHED" for r in parents + children)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both did work
    # Each worker logged to its own file, which the parent names when a worker fails.
    assert sorted(p.name for p in (workdir / "runs" / "shared").glob("worker-*.log")) == ["worker-0.log", "worker-1.log"]


def test_a_worker_killed_while_the_others_finish_the_study_is_a_warning_not_a_failure(workdir):
    """Was exit status 1 and `worker 0 exited with status -9:  (log: ...)` for a complete study."""
    study = study_file(workdir, "survived", "search: {grid: {train.temperature: [0.2, 0.5]}}\n", seeds=(0, 1),
                       epochs=10, knn_every=5)
    parent = start(workdir, cli(workdir, study, "--workers", "2", "--heartbeat-interval", "1"))
    victim = wait_for_running_epoch(workdir, "survived", parent, epoch=2)
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    output, _ = parent.communicate(timeout=SAFETY_LIMIT_S)
    assert parent.returncode == 0, output[-3000:]
    assert len(complete_once_per_unit(optuna_trials(workdir, "survived"))) == 4
    warnings = [line for line in output.splitlines() if line.startswith("warning: worker")]
    assert len(warnings) == 1 and "was killed by SIGKILL" in warnings[0], output[-3000:]
    assert "the other workers finished the study" in warnings[0] and "worker-" in warnings[0]


def test_the_parent_prints_each_finished_trial_while_the_others_run(workdir):
    """Through a pipe, as from `| tee` or into a log: the line of the short trial comes while the long one
    still runs (the parent of three workers had shown 1 of 5 finished trials: held in its buffer)."""
    study = study_file(workdir, "told", "search: {grid: {train.epochs: [1, 100]}}\n", knn_every=0)
    # With progress bars asked for (the default), which off a terminal are silent but still write the lines.
    argv = [str(study), "--tracking-uri", uri(workdir), "--no-report", "--workers", "2"]
    # Python's own buffering, as in a user's shell, whatever this test's caller exported (PYTHONUNBUFFERED hid it).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    parent = subprocess.Popen([sys.executable, "-m", "ablations.run", *argv],
                              cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True, env=env)
    try:
        for line in parent.stdout:  # ends when a line comes or the parent exits
            if line.startswith("trial") and "epochs=1 " in line:
                break
        long_trial = [t for t in optuna_trials(workdir, "told") if t.user_attrs["unit"].startswith("train.epochs=100")]
        assert long_trial[0].state in (TrialState.RUNNING, TrialState.WAITING), "the line came only at the end"
    finally:
        os.killpg(parent.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the parent and its workers
        parent.communicate(timeout=SAFETY_LIMIT_S)
    assert parent.returncode == 130


def test_workers_are_started_on_the_parents_study_stores_and_overrides():
    args = build_parser().parse_args(["s.yaml", "--workers", "3", "--storage", "sqlite:///o.db", "--retry-for", "7",
                                      "--set", "train.epochs=1", "--set", "train.lr=0.1", "--runs-dir", "elsewhere",
                                      "--tracking-uri", "http://tracking:5000", "--heartbeat-interval", "4"])
    worker = build_parser().parse_args([*_worker_argv(args), "--worker-index", "1"])
    assert (worker.study, worker.storage, worker.overrides, worker.runs_dir) == \
        ("s.yaml", "sqlite:///o.db", ["train.epochs=1", "train.lr=0.1"], "elsewhere")
    assert (worker.tracking_uri, worker.retry_for, worker.heartbeat_interval) == ("http://tracking:5000", 7, 4)
    assert (worker.worker_index, worker.worker_count, worker.workers) == (1, 3, 1)


CLAIMER = """
import os, random, sys, time
import optuna
from optuna.trial import TrialState
from ablations.stores import search
from ablations.run.study_file import load_study

spec = load_study(sys.argv[1])
storage = search.open_storage(sys.argv[2], None, heartbeat_interval=30)
study, _ = search.open_study(spec, storage)
open(sys.argv[3] + "." + sys.argv[4], "w").close()  # ready
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
while True:
    claim = search.claim_next(study, spec)
    if claim is None:
        if search.work_left(study, spec)[0] == 0:
            break
        continue
    time.sleep(random.random() * 0.01)
    search.finish(study, claim, value=0.5, state=TrialState.COMPLETE)
"""


@pytest.mark.parametrize("storage", ["race.journal", "sqlite:///race.db"])
def test_concurrent_claims_are_exactly_once_even_with_duplicate_copies(workdir, storage):
    """Two processes race through 49 cells, 10 of them enqueued twice (as two processes re-enqueueing
    one dead cell at once would): every cell is completed once, every copy backs off."""
    study_path = study_file(workdir, "race", "search: {pairs: [crop, cutout, color, sobel, noise, blur, rotate]}\n")
    spec = load_study(study_path)
    storage_url = storage if storage.endswith(".journal") else f"sqlite:///{workdir}/race.db"
    study, created = search.open_study(spec, search.open_storage(storage_url, workdir / "unused", heartbeat_interval=30))
    assert created and enqueue_plan(study, spec) == 49
    for planned in spec.trials()[::5]:
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=resume.plan_attrs(planned)))
    go = workdir / "go"
    processes = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(study_path), str(storage_url), str(go), str(i)])
                 for i in range(2)]
    deadline = time.monotonic() + SAFETY_LIMIT_S
    while not all((workdir / f"go.{i}").exists() for i in range(2)):  # both imported, at the barrier
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.1)
    go.touch()
    assert [p.wait(timeout=SAFETY_LIMIT_S) for p in processes] == [0, 0]
    trials = study.get_trials()
    assert len(complete_once_per_unit(trials)) == 49
    duplicates = [t for t in trials if t.state != TrialState.COMPLETE]
    assert len(duplicates) == 10
    assert all(t.state == TrialState.FAIL and "duplicate_of" in t.user_attrs for t in duplicates)
    assert len({t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE}) == 2


# Several processes or servers per test: minutes in all (see conftest.py).
pytestmark = pytest.mark.slow
