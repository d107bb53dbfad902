"""Bad input, as a new user makes it: every case exits with status 2 and one line `error: ...` that names the
file, key, flag or path and what is allowed; no traceback; and what a study recorded before is intact.

The cases run in one working folder that already holds a finished study, which the last test checks."""

import json
import resource
import signal
import subprocess
import sys

import pytest
import yaml

from ablations.report import main as report_main
from ablations.run import main
from test_run_support import mlflow_runs, optuna_trials

TINY = """\
name: {name}
base:
  data: {{dataset: synthetic, synthetic_per_class: 16, synthetic_classes: 4, synthetic_size: 16}}
  model: {{encoder: small_cnn, width: 8}}
  train: {{epochs: 1, batch_size: 16, num_threads: 1, device: cpu}}
  probe: {{max_iter: 20, knn_k: 10, knn_every: 0}}
"""

# (what is wrong, the study file's text after the valid base, what the one line must contain)
FILE_CASES = [
    ("unknown top-level key", "bogus: 1\n", "bogus: unknown key"),
    ("unknown section", "base: {trian: {epochs: 1}}\n", "base.trian"),
    ("misspelt key", "base: {train: {tempertaure: 0.5}}\n", "base.train.tempertaure"),
    ("text for an integer", "base: {train: {epochs: ten}}\n", "base.train.epochs"),
    ("float for an integer", "base: {train: {epochs: 2.0}}\n", "base.train.epochs"),
    ("1 for true", "base: {probe: {enabled: 1}}\n", "base.probe.enabled"),
    ("zero temperature", "base: {train: {temperature: 0}}\n", "train.temperature"),
    ("batch of one", "base: {train: {batch_size: 1}}\n", "train.batch_size"),
    ("negative lr", "base: {train: {lr: -0.1}}\n", "train.lr"),
    ("width 0", "base: {model: {width: 0}}\n", "model.width"),
    ("no threads", "base: {train: {num_threads: 0}}\n", "train.num_threads"),
    ("probe max_iter 0", "base: {probe: {max_iter: 0}}\n", "probe.max_iter"),
    ("negative colour strength", "base: {augment: {color_strength: -1}}\n", "augment.color_strength"),
    ("unknown protocol", "base: {augment: {protocol: both}}\n", "augment.protocol"),
    ("unknown encoder", "base: {model: {encoder: vit}}\n", "model.encoder"),
    ("unknown head", "base: {model: {head: deep}}\n", "model.head"),
    ("unknown optimizer", "base: {train: {optimizer: rmsprop}}\n", "train.optimizer"),
    ("unknown precision", "base: {train: {precision: fp8}}\n", "train.precision"),
    ("unknown device", "base: {train: {device: tpu}}\n", "train.device"),
    ("knn_k 0", "base: {probe: {knn_k: 0}}\n", "probe.knn_k"),
    ("projection_dim 0", "base: {model: {projection_dim: 0}}\n", "model.projection_dim"),
    ("unknown op", "base: {augment: {pipeline: [crop, sharpen]}}\n", "sharpen"),
    ("unknown op parameter", "base: {augment: {pipeline: [{op: blur, kernel: 5}]}}\n", "kernel"),
    ("op parameter out of range", "base: {augment: {pipeline: [{op: hflip, p: 2}]}}\n", "hflip"),
    ("unknown op in pairs", "search: {pairs: [crop, sharpen]}\n", "search.pairs"),
    ("grid over an unknown key", "search: {grid: {train.tempertaure: [0.1]}}\n", "train.tempertaure"),
    ("impossible grid value", "search: {grid: {train.temperature: [0.5, -1]}}\n", "train.temperature"),
    ("unknown sampler", "search: {sampler: bayes}\n", "search.sampler"),
    ("sampled search without n_trials", "search: {sampler: tpe, params: {train.lr: {type: float, low: 0.1, high: 1}}}\n",
     "n_trials"),
    ("seeds not integers", "seeds: [zero]\n", "seeds"),
    ("unknown verdict rule", "verdict: best_of_all\n", "verdict"),
    ("verdict the grid cannot decide", "search: {grid: {train.temperature: [0.1, 0.5]}}\nverdict: head_order\n",
     "verdict"),
    ("confirmation without a verdict", "confirm: {max_seeds: 3}\n", "confirm"),
    ("floor not true or false", "floor: maybe\n", "floor"),
    ("batch larger than the training set", "base: {train: {batch_size: 256}}\n", "train.batch_size"),
    ("a key given twice", "seeds: [0]\nseeds: [1]\n", "given twice"),
    # Accepted before, then every trial failed ("Overflow when unpacking long long") and the report too.
    ("a seed too large for its records", "seeds: [99999999999999999999]\n", "seeds[0]: 99999999999999999999 is not"),
    # Each ran one silent "base" cell before.
    ("a grid search that varies nothing", "search: {sampler: grid}\n", "leave `search` out"),
    ("an empty list of pairs", "search: {pairs: []}\n", "search.pairs: [] is not allowed"),
    ("an empty grid", "search: {grid: {}}\n", "search.grid: {} is not allowed"),
    ("invalid YAML", "search: {grid: [\n", "invalid YAML"),
]

# (what is wrong, extra command-line arguments, what the one line must contain)
FLAG_CASES = [
    ("--set an unknown key", ["--set", "train.tempertaure=0.5"], "train.tempertaure"),
    ("--set a wrong type", ["--set", "train.epochs=ten"], "train.epochs"),
    ("--set without =", ["--set", "train.epochs"], "dotted.key=value"),
    ("--set an impossible value", ["--set", "train.temperature=0"], "train.temperature"),
    ("--workers 0", ["--workers", "0"], "--workers"),
    ("--retry-for negative", ["--retry-for", "-1"], "--retry-for"),
    ("--heartbeat-interval 0", ["--heartbeat-interval", "0"], "--heartbeat-interval"),
    ("--storage neither journal nor URL", ["--storage", "optuna.sqlite"], "--storage"),
    ("--storage an unknown database", ["--storage", "nosuchdb://x/y"], "nosuchdb"),
    ("--runs-dir a file", ["--runs-dir", "a_file"], "a_file/flags: Not a directory; a file is in the way"),
    # sysfs lets no one make folders, root included: a folder this user cannot write, on any Linux.
    ("--runs-dir not writable", ["--runs-dir", "/sys/simclr-runs"], "/sys/simclr-runs: Operation not permitted; "
     "this user may not write there"),
    ("a data set that is not there", ["--set", "data.dataset=cifar10", "--set", "data.root=empty"], "empty"),
    # MLflow's words were "KeyError: 'foo'" and a text on migrating file stores.
    ("--tracking-uri an unknown scheme", ["--tracking-uri", "foo://bar"], "--tracking-uri foo://bar: unknown scheme"),
    ("--tracking-uri a file", ["--tracking-uri", "a_file"], "--tracking-uri a_file: a path is not a tracking store"),
    # Each was taken before: -1 dropped the last row, '' meant the default store.
    ("--top negative", ["--top", "-1"], "--top: -1 is not allowed; expected a number of rows >= 0"),
    ("--tracking-uri empty", ["--tracking-uri", ""], "--tracking-uri: '' is not allowed"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, mlflow_template):
    """A working folder holding one finished study, `kept`."""
    import os

    path = tmp_path_factory.mktemp("bad_input")
    (path / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    (path / "a_file").write_text("not a folder")
    (path / "empty").mkdir()
    previous = os.getcwd()
    os.chdir(path)
    kept = path / "kept.yaml"
    kept.write_text(TINY.format(name="kept") + "search: {grid: {train.temperature: [0.2, 0.5]}}\n")
    assert main([str(kept), "--tracking-uri", f"sqlite:///{path}/mlflow.db", "--no-progress", "--no-report"]) == 0
    yield path
    os.chdir(previous)


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def with_base(name: str, text: str) -> str:
    """TINY with `text` added: a `base:` change merged into TINY's base (a second `base:` key would be
    an error of its own), anything else appended as written."""
    if not text.startswith("base:"):
        return TINY.format(name=name) + text
    study = yaml.safe_load(TINY.format(name=name))
    for section, values in yaml.safe_load(text)["base"].items():
        study["base"].setdefault(section, {}).update(values)
    return yaml.safe_dump(study, sort_keys=False)


@pytest.mark.parametrize("what, text, says", FILE_CASES, ids=[case[0] for case in FILE_CASES])
def test_a_bad_study_file(folder, capsys, what, text, says):
    study = folder / "bad.yaml"
    study.write_text(with_base("bad", text))
    assert main([str(study), "--tracking-uri", f"sqlite:///{folder}/mlflow.db", "--no-progress"]) == 2
    line = one_line_error(capsys)
    assert "bad.yaml" in line and says in line, line


@pytest.mark.parametrize("what, extra, says", FLAG_CASES, ids=[case[0] for case in FLAG_CASES])
def test_a_bad_flag(folder, capsys, monkeypatch, what, extra, says):
    monkeypatch.chdir(folder)
    study = folder / "flags.yaml"
    study.write_text(TINY.format(name="flags"))
    assert main([str(study), "--tracking-uri", f"sqlite:///{folder}/mlflow.db", "--no-progress", *extra]) == 2
    assert says in one_line_error(capsys)


@pytest.mark.parametrize("what, make, says", [
    ("a study file that is not there", lambda f: f / "missing.yaml", "missing.yaml"),
    ("a study file that is not UTF-8", lambda f: (f / "latin.yaml").write_bytes(b"name: caf\xe9\n") and f / "latin.yaml",
     "not UTF-8"),
    ("a study name too long for a folder", lambda f: (f / "long.yaml").write_text(TINY.format(name="x" * 300))
     and f / "long.yaml", "up to 100"),
    ("a study name with a slash", lambda f: (f / "slash.yaml").write_text(TINY.format(name="a/b")) and f / "slash.yaml",
     "name"),
    ("an empty study file", lambda f: (f / "empty.yaml").write_text("") or f / "empty.yaml", "empty.yaml"),
], ids=lambda case: case if isinstance(case, str) else "")
def test_a_bad_study_path(folder, capsys, what, make, says):
    study = make(folder)
    assert main([str(study), "--tracking-uri", f"sqlite:///{folder}/mlflow.db", "--no-progress"]) == 2
    assert says in one_line_error(capsys)


@pytest.mark.parametrize("argv, says", [
    (["--study", "nosuchstudy"], "nosuchstudy"),
    (["--tracking-uri", "sqlite:///nowhere/mlflow.db"], "nowhere"),
    (["--study", "kept", "--out", "a_file"], "a_file"),
    (["--tracking-uri", "a_file"], "--tracking-uri a_file: a path is not a tracking store"),
    (["--tracking-uri", "foo://bar"], "--tracking-uri foo://bar: unknown scheme 'foo'"),
])
def test_a_bad_report_request(folder, capsys, monkeypatch, argv, says):
    monkeypatch.chdir(folder)
    if "--tracking-uri" not in argv:
        argv = [*argv, "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
    assert report_main([*argv, "--no-log"]) == 2
    assert says in one_line_error(capsys)


def test_a_read_only_store_is_named_with_the_way_out(folder, capsys, monkeypatch):
    """Was `PermissionError ... mlflow.db.lock`. The store is made read-only for this user by answering
    os.access as the file system would (chmod does not bind root, which runs some test machines)."""
    import os

    read_only = folder / "read_only"
    read_only.mkdir(exist_ok=True)
    (read_only / "mlflow.db").write_bytes((folder / "mlflow.db").read_bytes())
    allowed = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (not str(path).startswith(str(read_only))
                                                                 and allowed(path, mode, **kw)))
    study = folder / "flags.yaml"
    study.write_text(TINY.format(name="flags"))
    assert main([str(study), "--tracking-uri", f"sqlite:///{read_only}/mlflow.db", "--no-progress"]) == 2
    line = one_line_error(capsys)
    assert f"MLflow store {read_only}/mlflow.db is read-only for this user" in line
    assert "make it writable" in line and "another --tracking-uri" in line


def _disk_full_at(limit: int):
    """For a child process: writes past `limit` bytes fail with EFBIG ("File too large"), as writes to a
    full disk fail with ENOSPC: the same refusal, reachable without privileges."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error to handle, not a signal that kills
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_stops_at_once_with_one_line_and_a_rerun_finishes(folder):
    """The tracking store's file cannot grow (a full disk): one line naming the store, exit 75, no
    traceback and no two minutes of retrying; after space is freed the same command finishes."""
    study = folder / "full.yaml"
    study.write_text(TINY.format(name="full"))
    argv = [sys.executable, "-m", "ablations.run", str(study), "--tracking-uri", f"sqlite:///{folder}/mlflow.db",
            "--no-progress", "--no-report"]
    limit = (folder / "mlflow.db").stat().st_size + 4096
    full = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=300,
                          preexec_fn=_disk_full_at(limit))
    assert full.returncode == 75, full.stderr[-2000:]
    assert "Traceback" not in full.stdout + full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: MLflow tracking store sqlite:///{folder}/mlflow.db "
                                                   "cannot write"), full.stderr[-2000:]
    assert "disk full or read-only" in lines[0] and "rerun the same command" in lines[0]
    again = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    # The unit ran once to the end. Where the store filled up depends on how many bytes each run's records
    # take: before the trial was claimed (nothing else left), or after (that trial left as no result, FAIL
    # without an error, and run again), as for any worker that lost its store mid-trial.
    trials = optuna_trials(folder, "full")
    assert [t.state.name for t in trials if t.state.name != "FAIL"] == ["COMPLETE"]
    assert all("error" not in t.user_attrs for t in trials)

def test_what_was_recorded_before_is_intact(folder):
    trials = optuna_trials(folder, "kept")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    _, parents, children = mlflow_runs(folder, "kept")
    assert len(parents) == 1 and sorted(r.info.status for r in children) == ["FINISHED", "FINISHED"]
    assert all(json.loads(r.data.tags["ablations.varied"])["train.temperature"] in (0.2, 0.5) for r in children)
