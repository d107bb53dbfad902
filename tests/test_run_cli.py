"""ablations.run.cli: bad input exits 2 with one line and no traceback; the entry points."""

import subprocess
import sys

import pytest

from ablations.run import main
from test_run_support import study_file, uri, workdir  # noqa: F401 (workdir is a fixture)


@pytest.mark.parametrize("args, expected", [
    (["missing.yaml"], "missing.yaml: cannot read"),
    (["{study}", "--set", "train.epochs=ten"], "train.epochs"),
    (["{study}", "--set", "data.dataset=cifar10", "--set", "data.root={empty}"], "SIMCLR_DATA"),
    (["{study}", "--storage", "not-a-url"], "--storage"),
    (["{study}", "--workers", "0"], "--workers"),
    (["{study}", "--retry-for", "-1"], "--retry-for"),
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(workdir, capsys, args, expected):
    study = study_file(workdir, "bad", "")
    (workdir / "empty").mkdir()
    argv = [a.format(study=study, empty=workdir / "empty") for a in args] + ["--tracking-uri", uri(workdir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_usage_errors_keep_argparses_message_and_status(capsys):
    assert main(["--help"]) == 0
    assert "--retry-for" in capsys.readouterr().out and main([]) == 2
    assert "the following arguments are required: study" in capsys.readouterr().err


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "ablations.run", "missing.yaml"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: missing.yaml: cannot read")


def test_a_grid_over_data_sets_checks_each_before_any_trial(workdir, capsys):  # noqa: F811
    empty = workdir / "empty"
    empty.mkdir()
    # The synthetic set loads; cifar10 is not in the empty root: refused before any trial.
    study = study_file(workdir, "datasets", "search: {grid: {data.dataset: [synthetic, cifar10]}}\n")
    args = [str(study), "--tracking-uri", uri(workdir), "--no-progress", "--set", f"data.root={empty}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and str(empty) in err
    assert not (workdir / "runs" / "datasets").exists()  # refused before any store was touched
