"""ablations.run.cli: bad input exits 2 with one line and no traceback, before anything heavy loads;
Ctrl-C at any moment is one line and status 130; the entry points."""

import re
import signal
import subprocess
import sys
import time

import pytest

from ablations.run import main
from test_run_support import SAFETY_LIMIT_S, study_file, uri, workdir  # noqa: F401 (workdir is a fixture)

HEAVY = ("torch", "mlflow", "optuna", "pandas", "scipy")


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


def test_help_names_both_ways_to_find_the_data(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "SIMCLR_DATA" in text and "data.download=true" in text


@pytest.mark.parametrize("args, says", [
    (["{bad}"], "search.pairs[1]: unknown augmentation 'colr'"),
    (["{good}", "--set", "train.epochs=ten"], "train.epochs"),
    (["{good}", "--workers", "0"], "--workers"),
    (["{good}", "--heartbeat-interval", "0"], "--heartbeat-interval"),
    (["{good}", "--tracking-uri", "foo://bar"], "unknown scheme 'foo'"),
    # Refused only after the heavy imports before (6.7 s).
    (["{good}", "--storage", "garbage"], "--storage: 'garbage' is neither a path ending in .journal"),
])
def test_bad_input_is_refused_before_torch_mlflow_or_optuna_load(tmp_path, args, says):
    """The light path: a bad study file or flag costs a fraction of a second, not the import of a deep-learning
    stack (5-30 s under load), checked with Python's own import log."""
    (tmp_path / "bad.yaml").write_text("name: bad\nsearch: {pairs: [crop, colr]}\n")
    (tmp_path / "good.yaml").write_text("name: good\nsearch: {pairs: [crop, color]}\n")
    argv = [a.format(bad=tmp_path / "bad.yaml", good=tmp_path / "good.yaml") for a in args]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ablations.run", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=SAFETY_LIMIT_S)
    imported = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    said = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2 and len(said) == 1 and said[0].startswith("error: ") and says in said[0], done.stderr[-2000:]
    assert "ablations.run.cli" in imported  # the log is read right
    assert not [name for name in imported if name.split(".")[0] in HEAVY]


@pytest.mark.parametrize("after_s", [0.3, 1.0, 3.0])
def test_ctrl_c_at_any_moment_of_the_start_is_one_line_and_status_130(workdir, after_s):
    """SIGINT while the command loads its libraries, reads the data or opens the stores: no traceback (one
    used to end 67 lines later in simclr_core/__init__.py), status 130. Where the signal lands depends on
    the machine's speed; every moment must end the same way."""
    study = study_file(workdir, "early", "search: {grid: {train.temperature: [0.2, 0.5]}}\n", epochs=20)
    process = subprocess.Popen([sys.executable, "-m", "ablations.run", str(study), "--tracking-uri", uri(workdir),
                                "--no-progress", "--no-report"], cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)  # not a bound: the moment at which the signal arrives
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=SAFETY_LIMIT_S)
    assert process.returncode == 130, out + err
    assert "Traceback" not in out + err and "Exception ignored" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"interrupted", lines[0]), err[-3000:]


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
