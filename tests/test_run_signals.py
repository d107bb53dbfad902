"""ablations.run.signals: Ctrl-C ends the running trial, which is marked for a rerun to resume; an
interrupt lost inside a finaliser is raised again."""

import os
import signal
import time

import pytest
from optuna.trial import TrialState

from ablations.run import main
from ablations.run.signals import interrupts
from test_run_support import (  # noqa: F401 (workdir is a fixture)
    SAFETY_LIMIT_S, cli, complete_once_per_unit, mlflow_runs, optuna_trials, start, study_file, wait_for_running_epoch,
    workdir,
)


def test_ctrl_c_marks_the_trial_and_a_rerun_resumes(workdir):
    study = study_file(workdir, "stopped", "", seeds=(0, 1), epochs=30, knn_every=5)
    args = cli(workdir, study)
    worker = start(workdir, args)
    victim = wait_for_running_epoch(workdir, "stopped", worker, epoch=2)
    worker.send_signal(signal.SIGINT)
    output, _ = worker.communicate(timeout=SAFETY_LIMIT_S)
    assert worker.returncode == 130, output
    assert "Traceback" not in output and "rerun the same command" in output
    interrupted = optuna_trials(workdir, "stopped")[victim.number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["outcome"] == "interrupted"
    _, parents, children = mlflow_runs(workdir, "stopped")
    assert [r.info.status for r in children] == ["KILLED"]
    assert children[0].data.tags["ablations.killed"].startswith("interrupted (Ctrl-C or SIGTERM); rerunning")
    assert parents[0].info.status == "KILLED"

    assert main(args) == 0
    trials = optuna_trials(workdir, "stopped")
    assert len(complete_once_per_unit(trials)) == 2
    _, parents, children = mlflow_runs(workdir, "stopped")
    assert parents[0].info.status == "FINISHED"
    assert sorted(r.info.status for r in children) == ["FINISHED", "FINISHED", "KILLED"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost one, on purpose
def test_a_ctrl_c_lost_in_a_finaliser_is_raised_again():
    # Python prints a KeyboardInterrupt raised inside __del__ or a weakref callback and carries on;
    # torch.compile's caches run such callbacks. The runner's handler raises it again until handled.
    class InterruptedWhileCollected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, inside __del__: this KeyboardInterrupt is lost

    before = signal.getsignal(signal.SIGINT)
    # The raise comes RAISE_AGAIN_AFTER_S later, or later still on a loaded machine: the loop ends on it
    # (pytest.raises fails the test if the safety limit ran out instead).
    with pytest.raises(KeyboardInterrupt), interrupts():
        InterruptedWhileCollected()  # collected at once
        deadline = time.monotonic() + SAFETY_LIMIT_S
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before  # restored, whatever the caller had in place


def test_a_ctrl_c_inside_a_store_call_waits_for_the_call_to_return():
    # MLflow's sessions roll back on Exception only: a KeyboardInterrupt inside one could leave SQLite's write
    # lock held (the worker's next write then waited 120 s). Inside a store call the interrupt is deferred and
    # raised when the call returns; the call itself completes.
    from ablations.stores.errors import retry

    done = []

    def write():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here: deferred, not raised inside the call
        done.append("written")
        return "result"

    with pytest.raises(KeyboardInterrupt), interrupts():
        retry(write)
        pytest.fail("the deferred interrupt was not raised when the call returned")
    assert done == ["written"]
    interrupts.handled()

    # Outside a store call the interrupt is raised at once, as before.
    with pytest.raises(KeyboardInterrupt), interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        pytest.fail("not raised")


def test_a_ctrl_c_a_library_turned_into_its_own_error_ends_the_trial_as_interrupted(tmp_path, monkeypatch):
    # torch.save's zip writer reports a KeyboardInterrupt raised in its write callback as a RuntimeError
    # ("unexpected pos"): the trial was recorded as failed and the worker went on to the next one, exit 0
    # (seen in test_ctrl_c_marks_the_trial_and_a_rerun_resumes). With an interrupt pending, it is an interruption.
    import contextlib
    from types import SimpleNamespace

    from ablations.run.runner import Runner

    interrupted = []
    runner = object.__new__(Runner)
    runner.session = SimpleNamespace(runs_dir=tmp_path)
    monkeypatch.setattr(Runner, "_interrupted", lambda self, attempt: interrupted.append(attempt.claim.number))
    monkeypatch.setattr(Runner, "_failed", lambda self, attempt, error: pytest.fail(f"recorded as failed: {error}"))

    def train_cut_by_a_ctrl_c(self, attempt):
        interrupts.pending = True  # what the handler sets before its KeyboardInterrupt is swallowed
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(Runner, "_train", train_cut_by_a_ctrl_c)
    claim = SimpleNamespace(number=7, attrs={"checkpoint": "t7"}, heartbeat=contextlib.nullcontext)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run_trial(claim)
    finally:
        interrupts.handled()
    assert interrupted == [7]
