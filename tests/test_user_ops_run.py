"""A study that names a user's op by import path, a torchvision transform and a built-in op, end to end: two
workers run it, it resumes after the whole command is killed, its report shows every op, its runs record
where each op came from; an edited op is refused on resume, and a worker without the op's module refuses
to start, naming it."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablations.run import main
from ablations.design import op_sources
from test_run_support import (  # noqa: F401 (workdir is a fixture)
    SAFETY_LIMIT_S, TINY_BASE, cli, complete_once_per_unit, mlflow_runs, optuna_trials, uri, wait_for_running_epoch,
    workdir,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OPS = """\
ops:
  solarize: my_ops:solarize
  tv_solarize: {op: "tv:RandomSolarize", threshold: 0.5}
"""


def write(workdir: Path, name: str, epochs: int = 6) -> Path:
    shutil.copy(EXAMPLES / "solarize_ops.py", workdir / "my_ops.py")
    path = workdir / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + OPS + TINY_BASE.format(epochs=epochs, knn_every=3)
                    + "search: {pairs: [[crop, solarize], [crop, tv_solarize], [solarize, tv_solarize]]}\n"
                      "seeds: [0, 1]\n")
    return path


@pytest.fixture(autouse=True)
def built_in_ops_after():
    yield
    op_sources.begin_study()


@pytest.mark.slow
def test_a_study_of_user_torchvision_and_built_in_ops_runs_with_two_workers_resumes_and_reports_all(workdir, capsys):
    study = write(workdir, "own_ops")
    args = [str(study), "--tracking-uri", uri(workdir), "--no-progress", "--workers", "2", "--heartbeat-interval", "1"]
    first = subprocess.Popen([sys.executable, "-m", "ablations.run", *args], cwd=workdir, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    wait_for_running_epoch(workdir, "own_ops", first, epoch=2)
    os.killpg(first.pid, signal.SIGKILL)  # the command and both workers, mid-trial
    first.communicate(timeout=SAFETY_LIMIT_S)

    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"study own_ops: op solarize: user my_ops:solarize ({workdir / 'my_ops.py'}, sha256 " in out
    assert "study own_ops: op tv_solarize: torchvision tv:RandomSolarize (torchvision " in out
    trials = optuna_trials(workdir, "own_ops")
    assert sorted(complete_once_per_unit(trials)) == sorted(
        f"augment.pipeline={cell} seed={seed}" for cell in ("crop+solarize", "crop+tv_solarize", "solarize+tv_solarize")
        for seed in (0, 1))
    study_ops = optuna.load_study(study_name="own_ops", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "runs" / "own_ops" / "optuna.journal")))).user_attrs[
        "ablations.ops"]
    assert study_ops["solarize"]["sha256"] == hashlib.sha256((workdir / "my_ops.py").read_bytes()).hexdigest()
    assert study_ops["solarize"]["kind"] == "user" and study_ops["tv_solarize"]["kind"] == "torchvision"
    assert study_ops["crop"] == {"kind": "built-in", "target": "crop"}

    _, _, children = mlflow_runs(workdir, "own_ops")
    finished = [run for run in children if run.info.status == "FINISHED"]
    assert len(finished) == 6
    mixed = next(run for run in finished if run.info.run_name == "solarize+tv_solarize seed=0")
    assert mixed.data.params["augment.pipeline"] == '["solarize", "tv_solarize"]'
    assert mixed.data.tags["ablations.op.solarize"].startswith("user my_ops:solarize (")
    assert mixed.data.tags["ablations.op.tv_solarize"].startswith("torchvision tv:RandomSolarize (torchvision ")

    grid = pd.read_csv(workdir / "reports" / "own_ops" / "figures" / "pair_grid.csv")
    assert list(grid["first"]) == ["crop", "solarize"]
    assert {"crop", "solarize", "tv_solarize"} <= set(grid.columns)
    cells = grid.set_index("first")
    ran = {("crop", "solarize"), ("crop", "tv_solarize"), ("solarize", "tv_solarize")}
    assert {(first, second) for first in cells.index for second in ("crop", "solarize", "tv_solarize")
            if pd.notna(cells.loc[first, second])} == ran
    summary = pd.read_parquet(workdir / "reports" / "own_ops" / "summary.parquet")
    assert sorted(zip(summary["config"], summary["n"])) == [
        ("crop+solarize", 2), ("crop+tv_solarize", 2), ("solarize+tv_solarize", 2)]
    readme = (workdir / "reports" / "own_ops" / "README.md").read_text()
    assert "figures/pair_grid.png" in readme
    # The paper's grid has none of these cells: no comparison with it is drawn.
    assert not (workdir / "reports" / "own_ops" / "figures" / "pair_grid_vs_paper.png").exists()


def test_an_edited_user_op_is_refused_on_resume_with_how_to_start_a_new_study(workdir, capsys):
    study = write(workdir, "edited", epochs=1)
    assert main(cli(workdir, study, "--set", "probe.knn_every=1")) == 0
    before = op_sources.source_of("solarize").sha256
    path = workdir / "my_ops.py"
    path.write_text(path.read_text().replace("images >= threshold", "images > threshold"))
    assert main(cli(workdir, study, "--set", "probe.knn_every=1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {study}: study 'edited' ran op solarize from other code (sha256 {before[:12]} -> ")
    assert "an edited op is another design" in err and "start a new study (give the file a new name:, e.g. edited-2)" in err
    assert "\n" not in err
    # The dry run says the same before anything is planned.
    assert main(cli(workdir, study, "--set", "probe.knn_every=1", "--dry-run")) == 2
    assert "ran op solarize from other code" in capsys.readouterr().err


def test_a_worker_without_the_ops_module_or_with_another_version_of_it_refuses_to_start(workdir, capsys):
    study = write(workdir, "shared_ops", epochs=1)
    assert main(cli(workdir, study, "--set", "probe.knn_every=1")) == 0
    elsewhere = workdir / "other_machine"
    elsewhere.mkdir()
    copy = elsewhere / study.name
    shutil.copy(study, copy)
    worker = ["--worker-index", "0", "--set", "probe.knn_every=1"]
    assert main(cli(workdir, copy, *worker)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {copy}: ops.solarize: no module 'my_ops' beside the study file or on sys.path")
    assert "every worker and machine of the study needs it" in err
    (elsewhere / "my_ops.py").write_text((workdir / "my_ops.py").read_text() + "\n# edited on this machine\n")
    assert main(cli(workdir, copy, *worker, "--runs-dir", str(workdir / "runs"))) == 2
    assert "ran op solarize from other code" in capsys.readouterr().err
