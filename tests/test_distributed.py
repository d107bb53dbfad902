"""Many workers on one PostgreSQL database and one MLflow tracking server, with real servers that the
tests start, kill and restart: every cell runs exactly once under SIGKILL of a worker, a database
restart, a tracking-server restart and two workers starting a new study at the same instant; a load of
8 workers x 64 cells; bad URLs; passwords never shown.

The servers (a throwaway PostgreSQL cluster from initdb, and `mlflow server` backed by it, serving
artifacts) live for the session, on loopback and free ports; each test has its own database and study.
Each worker runs in its own folder, as on its own machine: nothing is shared but the two URLs.
Without PostgreSQL's binaries the module is skipped (CI=true: it fails), saying what to install.
"""

import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) and the psycopg driver are needed: "
                "apt-get install postgresql (Debian/Ubuntu) and pip install -e '.[dev]'")


def _postgres_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [str(Path(found).resolve().parent)] if found else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", p) or 0),
                         reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _missing() -> str | None:
    try:
        import psycopg  # noqa: F401  (SQLAlchemy's driver for postgresql:// URLs)
    except ImportError:
        return "psycopg is not installed"
    if _postgres_bin_dir() is None:
        return "no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0 and not _user_exists("postgres"):
        return "running as root and there is no 'postgres' user to run the server as"
    return None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


if (_reason := _missing()) is not None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the PostgreSQL tests: {_reason}. {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{_reason}. {INSTALL_HINT}", allow_module_level=True)

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from ablations.stores import search  # noqa: E402
from ablations.run import main  # noqa: E402

# Every wait here ends when what it awaits happens or the process under test exits; this limit only
# ends a hang, far above what any load makes of a wait that would succeed.
SAFETY_LIMIT_S = 900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# The servers


class Postgres:
    """A throwaway cluster in a temporary folder, on 127.0.0.1 and a free port, with a password.
    initdb and the server refuse to run as root, so as root they run as the `postgres` user."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        # In /tmp, whatever TMPDIR says: the postgres user must reach it, and the server's socket
        # path in it must stay under 108 characters.
        self.folder = Path(tempfile.mkdtemp(prefix="simclr-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = "simclr"
        self.password = "pw-" + secrets.token_hex(8)
        self.owner = "postgres" if os.geteuid() == 0 else None
        if self.owner:
            record = pwd.getpwnam(self.owner)
            os.chown(self.folder, record.pw_uid, record.pw_gid)
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if self.owner:
            os.chown(password_file, record.pw_uid, record.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
                  f"--pwfile={password_file}", "-E", "UTF8", "--locale=C", "--no-sync")
        password_file.unlink()

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / program), *args]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=SAFETY_LIMIT_S)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}\n{done.stderr}\n{self.log_tail()}")
        return done

    def log_tail(self) -> str:
        log = self.folder / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""

    def start(self) -> None:
        # fsync off: a test cluster, which a crash may lose; a clean stop (-m fast) keeps everything.
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}"')
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class MLflowServer:
    """`mlflow server` on 127.0.0.1 and a free port, backed by a PostgreSQL database, serving
    artifacts from a folder of its own (workers upload through it)."""

    def __init__(self, backend_url: str, folder: Path):
        self.backend_url = backend_url
        self.folder = folder
        self.artifacts = folder / "artifacts"
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        script = Path(sys.executable).parent / "mlflow"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: less CPU
        env.pop("MLFLOW_TRACKING_URI", None)
        log = open(self.folder / "server.log", "a")
        # Its own session, so that it and its uvicorn worker processes are stopped as one group.
        self.process = subprocess.Popen(
            [*command, "server", "--backend-store-uri", self.backend_url, "--serve-artifacts",
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "2"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.wait_healthy()

    def wait_healthy(self) -> None:
        import requests

        deadline = time.monotonic() + SAFETY_LIMIT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"mlflow server exited: {self.log_tail()}"
            try:
                if requests.get(self.uri + "/health", timeout=2).status_code == 200:
                    return
            except requests.exceptions.RequestException:
                pass
            time.sleep(0.25)
        raise AssertionError(f"mlflow server not healthy after {SAFETY_LIMIT_S} s: {self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=SAFETY_LIMIT_S)
        self.process = None

    def log_tail(self) -> str:
        log = self.folder / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""


@pytest.fixture(scope="session")
def postgres():
    server = Postgres(_postgres_bin_dir())
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def tracking_server(postgres, tmp_path_factory):
    server = MLflowServer(postgres.create_database("mlflow"), tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture
def storage(postgres, request) -> str:
    """A database of this test's own for its Optuna study."""
    return postgres.create_database("optuna_" + re.sub(r"\W", "_", request.node.name).lower()[:50])


# --------------------------------------------------------------------------------------------------
# Studies and workers


def write_study(folder: Path, name: str, grid: dict, seeds=(0,), epochs: int = 1) -> Path:
    """A study of very short trials: 64 synthetic 16-px images, a CNN of width 4, one thread."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        base:
          data: {{dataset: synthetic, synthetic_per_class: 16, synthetic_classes: 4, synthetic_size: 16}}
          model: {{encoder: small_cnn, width: 4}}
          train: {{epochs: {epochs}, batch_size: 16, num_threads: 1, device: cpu}}
          probe: {{max_iter: 20, knn_every: 0}}
        search:
          sampler: grid
          grid: {json.dumps(grid)}
        seeds: {list(seeds)}
        tracking: {{preview: false}}
        """))
    return path


# Imports the slow modules, says it is ready (a file), waits for the go (another file), then runs the
# study: workers started together really start at the same instant, whatever their import times.
LAUNCHER = """
import os, sys, time
import mlflow, optuna, psycopg, sqlalchemy, torch
from ablations.run import main

open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.002)
sys.exit(main(sys.argv[3:]))
"""


@dataclass
class Worker:
    process: subprocess.Popen
    folder: Path

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait(self, timeout: float = SAFETY_LIMIT_S) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout} s:\n{self.output()[-3000:]}") from None


def start_workers(root: Path, study: Path, storage_url: str, tracking_uri: str, count: int,
                  *extra: str) -> list[Worker]:
    """`count` workers, each in a folder of its own (its "machine"), released together once all have
    imported what they need."""
    go = root / f"go-{secrets.token_hex(4)}"
    workers = []
    for index in range(count):
        folder = root / f"machine-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        local_study = folder / study.name
        local_study.write_text(study.read_text())
        argv = [str(local_study), "--storage", storage_url, "--tracking-uri", tracking_uri, "--no-progress",
                "--no-report", *extra]
        with open(folder / "worker.log", "w") as log:
            process = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(go), str(folder / "ready"), *argv],
                                       cwd=folder,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
        workers.append(Worker(process, folder))
    deadline = time.monotonic() + SAFETY_LIMIT_S
    while not all((w.folder / "ready").exists() for w in workers):
        if time.monotonic() > deadline or any(w.process.poll() is not None for w in workers):
            stop_all(workers)
            raise AssertionError("workers did not start:\n" + "\n---\n".join(w.output()[-2000:] for w in workers))
        time.sleep(0.05)
    go.touch()
    return workers


def stop_all(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=SAFETY_LIMIT_S)


def trials_of(storage_url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, read through the harness's own storage opening: Optuna's RDBStorage creates its
    tables on opening, and a reader polling while the workers create them must take the same schema lock
    (a bare optuna.load_study(storage=url) raced them: "duplicate key ... alembic_version")."""
    storage = search.open_storage(storage_url, Path("unused.journal"), heartbeat_interval=30)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:  # not created yet
        return []
    finally:
        storage.engine.dispose()


def wait_for(condition, what: str, workers: list[Worker], timeout: float = SAFETY_LIMIT_S, poll: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.process.poll() is None, f"a worker exited early:\n{worker.output()[-3000:]}"
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}:\n" + "\n---\n".join(w.output()[-2000:] for w in workers))


def running_at_epoch(storage_url: str, name: str, epoch: int):
    def condition():
        return next((t for t in trials_of(storage_url, name) if t.state == TrialState.RUNNING
                     and t.user_attrs.get("progress", {}).get("epoch", 0) >= epoch), None)
    return condition


@dataclass
class Records:
    trials: list
    parents: list
    children: list
    client: object


def check_exactly_once(storage_url: str, tracking_uri: str, name: str, units: int, epochs: int,
                       secret: str, workers: list[Worker]) -> Records:
    """The final state of both stores: every unit COMPLETE once and FINISHED once, with its whole
    metric history and its artifact on the server; nothing RUNNING or WAITING; one parent, FINISHED;
    the password nowhere."""
    from mlflow import MlflowClient

    trials = trials_of(storage_url, name)
    complete = Counter(t.user_attrs["unit"] for t in trials if t.state == TrialState.COMPLETE)
    assert len(complete) == units and set(complete.values()) == {1}, complete
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    client = MlflowClient(tracking_uri)
    experiments = [e for e in client.search_experiments() if e.name == name]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("ablations.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("ablations.role") == "trial"]
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert Counter(r.data.tags["ablations.unit"] for r in finished) == complete
    by_number = {t.number: t for t in trials}
    for run in finished:
        trial = by_number[int(run.data.tags["optuna.trial"])]
        assert trial.state == TrialState.COMPLETE and trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.metrics["probe_h"] == pytest.approx(trial.value)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == list(range(1, epochs + 1)), steps  # none lost, none twice
    assert experiments[0].artifact_location.startswith("mlflow-artifacts:")  # through the server's proxy
    assert "config.yaml" in {a.path for a in client.list_artifacts(finished[0].info.run_id)}

    assert_no_secret(secret, trials, runs, workers)
    return Records(trials, parents, children, client)


def assert_no_secret(secret: str, trials, runs, workers: list[Worker]) -> None:
    for trial in trials:
        assert secret not in json.dumps([trial.user_attrs, trial.system_attrs], default=str)
    for run in runs:
        assert secret not in json.dumps([run.data.params, run.data.tags])
    for worker in workers:
        output = worker.output()
        assert secret not in output
        assert "Traceback" not in output, output[-3000:]


# --------------------------------------------------------------------------------------------------
# Fault cases


def test_a_worker_killed_mid_trial_has_its_cell_run_again_by_a_survivor(tmp_path, postgres, tracking_server, storage):
    epochs = 40
    study = write_study(tmp_path, "dist_sigkill", {"train.temperature": [0.2, 0.5]}, seeds=(0, 1), epochs=epochs)
    workers = start_workers(tmp_path, study, storage, tracking_server.uri, 2, "--heartbeat-interval", "1")
    try:
        victim = wait_for(running_at_epoch(storage, "dist_sigkill", 3), "a trial at epoch 3", workers)
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        killed = next(w for w in workers if w.process.pid == pid)
        os.kill(pid, signal.SIGKILL)
        assert killed.wait() == -signal.SIGKILL
        survivor = next(w for w in workers if w is not killed)
        assert survivor.wait() == 0, survivor.output()[-3000:]
    finally:
        stop_all(workers)

    records = check_exactly_once(storage, tracking_server.uri, "dist_sigkill", 4, epochs, postgres.password, [survivor])
    dead = records.trials[victim.number]
    assert dead.state == TrialState.FAIL and "error" not in dead.user_attrs
    rerun = next(t for t in records.trials if t.user_attrs.get("retry_of") == victim.number)
    assert rerun.state == TrialState.COMPLETE and rerun.user_attrs["unit"] == victim.user_attrs["unit"]
    assert rerun.user_attrs["worker"] != victim.user_attrs["worker"]
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in records.children}
    assert by_trial[victim.number].info.status == "KILLED"
    assert sorted(r.info.status for r in records.children) == ["FINISHED"] * 4 + ["KILLED"]


def test_a_database_restart_mid_study_loses_and_duplicates_nothing(tmp_path, postgres, tracking_server, storage):
    """PostgreSQL (the Optuna storage and the tracking server's store) stops with -m fast, refuses
    connections for 3 s and comes back; the workers wait and carry on. Heartbeats every 10 s (grace
    20 s) outlast the outage, so no live trial is taken for dead."""
    epochs = 40
    study = write_study(tmp_path, "dist_pg_restart", {"train.temperature": [0.2, 0.5]}, seeds=(0, 1), epochs=epochs)
    workers = start_workers(tmp_path, study, storage, tracking_server.uri, 2, "--heartbeat-interval", "10",
                            "--retry-for", "90")
    try:
        wait_for(running_at_epoch(storage, "dist_pg_restart", 3), "a trial at epoch 3", workers)
        postgres.stop("fast")
        time.sleep(3)
        postgres.start()
        for worker in workers:
            assert worker.wait() == 0, worker.output()[-3000:]
    finally:
        stop_all(workers)

    records = check_exactly_once(storage, tracking_server.uri, "dist_pg_restart", 4, epochs, postgres.password, workers)
    assert len(records.trials) == 4  # no trial failed, none was copied
    assert [r.info.status for r in records.children] == ["FINISHED"] * 4
    assert any("did not answer" in w.output() for w in workers)  # they really lost it, and retried


def test_a_tracking_server_restart_mid_study_loses_and_duplicates_nothing(tmp_path, postgres, tracking_server, storage):
    """The tracking server is killed (SIGKILL, with its workers) and started again on the same port
    after 3 s; connections are refused until it is up again."""
    epochs = 40
    study = write_study(tmp_path, "dist_mlflow_restart", {"train.temperature": [0.2, 0.5]}, seeds=(0, 1),
                        epochs=epochs)
    workers = start_workers(tmp_path, study, storage, tracking_server.uri, 2, "--retry-for", "120")
    try:
        wait_for(running_at_epoch(storage, "dist_mlflow_restart", 3), "a trial at epoch 3", workers)
        tracking_server.kill(signal.SIGKILL)
        time.sleep(3)
        tracking_server.start()
        for worker in workers:
            assert worker.wait() == 0, worker.output()[-3000:]
    finally:
        stop_all(workers)
        if tracking_server.process is None:
            tracking_server.start()

    records = check_exactly_once(storage, tracking_server.uri, "dist_mlflow_restart", 4, epochs, postgres.password,
                                 workers)
    assert len(records.trials) == 4
    assert [r.info.status for r in records.children] == ["FINISHED"] * 4
    assert any("did not answer" in w.output() for w in workers)


def test_two_workers_starting_at_the_same_instant_on_a_new_study(tmp_path, postgres, tracking_server, storage):
    """A new database (Optuna creates its tables) and a new experiment, both raced for."""
    study = write_study(tmp_path, "dist_race", {"train.temperature": [0.2, 0.3, 0.4, 0.5]}, epochs=2)
    workers = start_workers(tmp_path, study, storage, tracking_server.uri, 2)
    try:
        codes = [worker.wait() for worker in workers]
    finally:
        stop_all(workers)
    assert codes == [0, 0], "\n---\n".join(w.output()[-3000:] for w in workers)
    assert optuna.get_all_study_names(storage) == ["dist_race"]
    records = check_exactly_once(storage, tracking_server.uri, "dist_race", 4, 2, postgres.password, workers)
    assert len(records.trials) == 4 and len(records.children) == 4


def test_a_permanent_loss_stops_the_worker_after_the_retry_window_and_a_rerun_finishes(
        tmp_path, postgres, tracking_server, storage):
    epochs = 40
    study = write_study(tmp_path, "dist_lost", {"train.temperature": [0.2]}, seeds=(0, 1), epochs=epochs)
    workers = start_workers(tmp_path, study, storage, tracking_server.uri, 1, "--heartbeat-interval", "1",
                            "--retry-for", "4")
    try:
        wait_for(running_at_epoch(storage, "dist_lost", 2), "a trial at epoch 2", workers)
        postgres.stop("fast")
        try:
            code = workers[0].wait()
        finally:
            postgres.start()
    finally:
        stop_all(workers)
    output = workers[0].output()
    assert code == 75, output[-3000:]
    # It gave up because its own retry window (--retry-for 4, not the default) ran out: said so when it
    # started waiting, and waited at least that long. How much longer depends on the machine's load.
    assert any(line.startswith("warning:") and "retrying for up to 4 s" in line
               for line in output.splitlines()), output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    waited = re.search(r"did not answer for (\d+) s", errors[0])
    assert waited and int(waited.group(1)) >= 4, errors
    # The database holds both stores here (the tracking server's too): whichever the worker meets first.
    assert errors[0].startswith(("error: Optuna storage postgresql://simclr:***@127.0.0.1:",
                                 f"error: MLflow tracking store {tracking_server.uri} ")), errors
    assert "did not answer for" in errors[0] and "rerun the same command" in errors[0]
    assert postgres.password not in output

    # The same command again, once the database is back: the dead trial's cell runs again.
    rerun = start_workers(tmp_path / "again", study, storage, tracking_server.uri, 1, "--heartbeat-interval", "1")
    try:
        assert rerun[0].wait() == 0, rerun[0].output()[-3000:]
    finally:
        stop_all(rerun)
    check_exactly_once(storage, tracking_server.uri, "dist_lost", 2, epochs, postgres.password, rerun)


# --------------------------------------------------------------------------------------------------
# Load


def test_eight_workers_run_a_64_cell_grid_exactly_once(tmp_path, postgres, tracking_server, storage):
    grid = {"train.temperature": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            "train.lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}
    study = write_study(tmp_path, "dist_load", grid, epochs=1)
    workers = start_workers(tmp_path, study, storage, tracking_server.uri, 8)
    released = time.monotonic()
    try:
        codes = [worker.wait() for worker in workers]
    finally:
        stop_all(workers)
    wall = time.monotonic() - released
    assert codes == [0] * 8, "\n---\n".join(w.output()[-2000:] for w in workers)
    records = check_exactly_once(storage, tracking_server.uri, "dist_load", 64, 1, postgres.password, workers)
    assert len(records.trials) == 64
    assert len(records.children) == 64 and all(r.info.status == "FINISHED" for r in records.children)
    first = min(t.datetime_start for t in records.trials)
    last = max(t.datetime_complete for t in records.trials)
    per_minute = 64 / (last - first).total_seconds() * 60
    busy = Counter(t.user_attrs["worker"] for t in records.trials)
    training = statistics.fmean(r.data.metrics["wall_time_s"] for r in records.children)
    tracking = statistics.fmean(r.data.metrics["seconds/tracking"] for r in records.children)
    print(f"\nload: 64 trials by {len(busy)} workers in {(last - first).total_seconds():.1f} s from the first "
          f"trial's start to the last one's end ({wall:.1f} s from the workers' release to their exit): "
          f"{per_minute:.0f} trials/min; per trial {training:.2f} s training and probe, {tracking:.2f} s in "
          f"MLflow calls; trials per worker {sorted(busy.values())}")
    assert len(busy) >= 2


# --------------------------------------------------------------------------------------------------
# Bad input: one line before any training, the URL named with its password masked


def _bad_input_cases(postgres, tracking_server, storage):
    host = f"127.0.0.1:{postgres.port}"
    closed = free_port()
    return [
        (["--storage", f"postgresql://simclr:wrong-{postgres.password}@{host}/postgres"],
         f"--storage postgresql://simclr:***@{host}/postgres: cannot connect", "password authentication failed"),
        (["--storage", f"postgresql://simclr:{postgres.password}@127.0.0.1:{closed}/optuna"],
         f"--storage postgresql://simclr:***@127.0.0.1:{closed}/optuna: cannot connect", "refused"),
        (["--storage", f"postgresql://simclr:{postgres.password}@no-such-host.invalid/optuna"],
         "--storage postgresql://simclr:***@no-such-host.invalid/optuna: cannot connect", ""),
        (["--storage", f"postgresql://simclr:{postgres.password}@{host}/no_such_database"],
         f"--storage postgresql://simclr:***@{host}/no_such_database: cannot connect", "does not exist"),
        (["--storage", f"postgresql://simclr:{postgres.password}@127.0.0.1:port/optuna"],
         "--storage postgresql://simclr:***@127.0.0.1:port/optuna: not a database URL", ""),
        (["--storage", f"postgres://simclr:{postgres.password}@{host}/optuna"],
         f"--storage postgres://simclr:***@{host}/optuna: not a database URL", "write postgresql://"),
        (["--storage", storage, "--tracking-uri", f"http://127.0.0.1:{closed}"],
         f"--tracking-uri http://127.0.0.1:{closed}: no answer", ""),
        (["--storage", storage, "--tracking-uri", f"http://127.0.0.1:{postgres.port}"],
         f"--tracking-uri http://127.0.0.1:{postgres.port}: no answer", ""),
        (["--storage", storage, "--tracking-uri", "http://"], "--tracking-uri http://: it names no host", ""),
    ]


def test_bad_urls_are_one_line_before_any_training_with_the_password_masked(
        tmp_path, postgres, tracking_server, storage, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    study = write_study(tmp_path, "dist_bad", {"train.temperature": [0.5]})
    for extra, expected, cause in _bad_input_cases(postgres, tracking_server, storage):
        argv = [str(study), "--tracking-uri", tracking_server.uri, "--no-progress", "--no-report", *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith(f"error: {expected}"), (extra, err)
        assert cause in err, (extra, err)
        # One line and no "retrying" warning before it: the bad URL failed without waiting out a retry window.
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert postgres.password not in err
        assert not list(tmp_path.glob("runs/dist_bad/**/trial-*"))  # nothing trained
    # A bad tracking URL is found before the study is created: no unready study is left behind.
    assert optuna.get_all_study_names(storage) == []
    # The password may stay out of the URL (and of the process list): libpq reads PGPASSWORD.
    from ablations.stores import search

    monkeypatch.setenv("PGPASSWORD", postgres.password)
    search.open_storage(storage.replace(f":{postgres.password}@", "@"), tmp_path, heartbeat_interval=30)


def test_the_storage_password_is_masked_where_a_study_shows_its_storage(
        tmp_path, postgres, tracking_server, storage, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    study = write_study(tmp_path, "dist_shown", {"train.temperature": [0.5]})
    assert main([str(study), "--storage", storage, "--tracking-uri", tracking_server.uri, "--no-progress",
                 "--no-report"]) == 0
    out = capsys.readouterr()
    masked = storage.replace(postgres.password, "***")
    assert f"Optuna study 'dist_shown': {masked}" in out.out
    assert postgres.password not in out.out + out.err
    from mlflow import MlflowClient

    client = MlflowClient(tracking_server.uri)
    experiment = client.get_experiment_by_name("dist_shown")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags["ablations.role"] == "parent")
    assert parent.data.tags["optuna.storage"] == masked
    assert_no_secret(postgres.password, trials_of(storage, "dist_shown"), runs, [])


# Several processes or servers per test: minutes in all (see conftest.py).
pytestmark = pytest.mark.slow
