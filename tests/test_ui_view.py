"""What a researcher opens after a study (ablations.stores.ui_view, and the records it points at): one name per
configuration in the terminal, MLflow and the report; readable numbers with mean, SD and n per
configuration; the parent run's summary; the experiment's description; the Optuna study as Optuna's own
tools read it; and, in a real headless Chromium with a fresh profile, every address the study prints
opening on its runs rather than on MLflow's GenAI pages, with the view's probe columns in sight.

The browser test needs Chromium (Debian's `chromium`) and the Playwright package (the `dev` extra); it is
skipped without them, except under CI=true, where .ci/run installs Chromium and a missing one fails.
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablations.run import main
from ablations.design.plan import cell_name
from ablations.stores.ui_view import runs_path, runs_view
from test_run_support import mlflow_runs, optuna_trials, study_file, uri, workdir  # noqa: F401 (workdir is a fixture)

# The quickstart's shape (studies/quickstart.yaml: four cells of the Figure 5 grid, two seeds) on the
# synthetic set, with its description.
QUICKSTART = "search: {pairs: [crop, color]}\n"
DESCRIPTION = "Four cells of the SimCLR Figure 5 pair grid, tiny."
NAMES = {"crop", "crop+color", "color+crop", "color"}
ACCURACIES = {"probe_h", "probe_z", "probe_h_mean", "probe_h_sd", "probe_z_mean", "probe_z_sd"}


def quickstart(workdir: Path, *extra: str) -> str:
    """Run the quickstart-shaped study in workdir; what it printed."""
    path = study_file(workdir, "quick", QUICKSTART, seeds=(0, 1))
    path.write_text(path.read_text().replace("name: quick\n", f"name: quick\ndescription: {DESCRIPTION}\n"))
    completed = subprocess.run([sys.executable, "-m", "ablations.run", str(path), "--tracking-uri", uri(workdir),
                                "--no-progress", *extra], cwd=workdir, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return completed.stdout


def test_a_finished_study_reads_the_same_in_the_terminal_mlflow_the_report_and_optuna(workdir):
    out = quickstart(workdir)
    client, parents, children = mlflow_runs(workdir, "quick")
    assert len(children) == 8

    # One name per configuration: the run names, the tag the runs view groups by, the terminal's
    # summary table and the report's rows.
    by_config: dict[str, list] = {}
    for run in children:
        tags = run.data.tags
        name = tags["ablations.config"]
        assert name == cell_name(tags["ablations.cell"]) and run.info.run_name == f"{name} seed={tags['ablations.seed']}"
        by_config.setdefault(name, []).append(run)
    assert set(by_config) == NAMES
    table = out[out.index("probe_h (mean ± sd, n)"):out.index("\nReport")]
    assert {line.split()[-2] for line in table.splitlines()[1:] if line.strip()} == NAMES
    assert "augment.pipeline=" not in out
    report = workdir / "reports" / "quick"
    runs = pd.read_parquet(report / "runs.parquet")
    assert dict(zip(runs["run_id"], runs["config"])) == {r.info.run_id: r.data.tags["ablations.config"] for r in children}
    assert set(pd.read_parquet(report / "summary.parquet")["config"]) == NAMES
    assert set(pd.read_csv(report / "figures" / "training_curves.csv")["configuration"]) == NAMES
    assert re.search(r"Best probe_h_mean: (crop|color)(\+(crop|color))? ", (report / "README.md").read_text())
    # The phases keep their report columns (runs.parquet's schema does not move with MLflow's names).
    assert {"probe_s", "train_s", "data_s", "tracking_s"} <= set(runs.columns) and "seconds/probe" not in runs.columns

    # Readable numbers: 4 decimals at most, the same in Optuna and the terminal; `probe_` finds accuracies.
    for run in children:
        metrics = run.data.metrics
        assert all(round(value, 4) == value for key, value in metrics.items() if key != "lr"), metrics
        assert {key for key in metrics if "probe_" in key} <= ACCURACIES
    trials = optuna_trials(workdir, "quick")
    assert all(round(t.value, 4) == t.value for t in trials)
    assert all(f"probe_h {t.value * 100:.2f} %" in out for t in trials)

    # Mean, SD and n per configuration, the same on each of its runs (the runs view's group row).
    for name, members in by_config.items():
        h = [run.data.metrics["probe_h"] for run in members]
        for run in members:
            metrics = run.data.metrics
            assert metrics["n_seeds"] == 2 and metrics["probe_h_mean"] == round(statistics.fmean(h), 4)
            assert metrics["probe_h_sd"] == round(statistics.stdev(h), 4), name
    view = json.loads(client.get_experiment_by_name("quick").tags["mlflow.sharedViewState.ablations-runs"])
    assert view == runs_view(["augment.pipeline"], pairs=True)
    assert {"metrics.`probe_h_mean`", "metrics.`probe_h_sd`", "metrics.`n_seeds`"} <= set(view["selectedColumns"])

    # The parent: the best mean on h and the best mean on z, each naming its configuration; no verdict,
    # since the study names no rule.
    parent = parents[0].data
    means_z = {name: members[0].data.metrics["probe_z_mean"] for name, members in by_config.items()}
    means_h = {name: members[0].data.metrics["probe_h_mean"] for name, members in by_config.items()}
    assert parent.metrics["best_probe_z"] == max(means_z.values()) and parent.metrics["best_probe_h"] == max(means_h.values())
    assert means_z[parent.tags["ablations.best_config_z"]] == max(means_z.values())
    assert means_h[parent.tags["ablations.best_config"]] == max(means_h.values())
    assert not [key for key in parent.tags if key.startswith("ablations.verdict")]

    # The experiment says what the study is and how to reach its runs from its own page.
    experiment = client.get_experiment_by_name("quick")
    note = experiment.tags["mlflow.note.content"]
    assert DESCRIPTION in note and "Model training" in note and runs_path(experiment.experiment_id) in note
    assert note.index("Model training") < note.index(DESCRIPTION)  # the line the page shows collapsed

    # Optuna's own tools: the objective is named, and parameter importance reads the grid's cells.
    study = optuna.load_study(study_name="quick", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "runs" / "quick" / "optuna.journal"))))
    assert study.metric_names == ["probe_h"]
    assert set(optuna.importance.get_param_importances(study)) == {"first", "second"}
    assert {(t.params["first"], t.params["second"]) for t in trials} == {
        ("crop", "crop"), ("crop", "color"), ("color", "crop"), ("color", "color")}


# ----------------------------------------------------------------------------------------------------
# In a real browser

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# Text only MLflow's GenAI pages show: the GenAI sidebar's sections (3.17 and 3.18), the 3.17 experiment
# overview's charts and pop-up, the 3.18 overview of an experiment without traces.
GENAI_MARKERS = ("Observability", "Evaluation runs", "Token Usage", "Detect Issues", "Tokens per Trace",
                 "Send your first trace")
# The view's metric columns (probe_h_mean .. probe_h), by the names their headers show.
METRIC_COLUMNS = [column.split("`")[1] for column in runs_view([], pairs=True)["selectedColumns"]
                  if column.startswith("metrics.")]
# How long the browser waits for a page to show what is awaited: the UI's first render fetches runs,
# metrics and tags; a failure, not a measure of speed.
PAGE_WAIT_MS = 180_000


def browser_or_skip():
    """Playwright's sync API over the system's Chromium; skipped (or, under CI=true, failed) without them."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = ("the Playwright package (pip install -e '.[dev]')" if sync_playwright is None else
               "Chromium (apt-get install chromium)" if CHROMIUM is None else None)
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the browser test needs {missing}; .ci/run installs both")
        pytest.skip(f"opening the study's addresses in a browser needs {missing}")
    return sync_playwright


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_ui(workdir: Path, port: int) -> subprocess.Popen:
    """`mlflow ui` on the study's store, as the study printed it, on a free port; returns once it answers."""
    process = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", uri(workdir),
                                "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                               cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    while process.poll() is None:  # waits for the server's progress, however slow its start
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return process
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow ui exited with status {process.returncode}")


def stop(process: subprocess.Popen) -> None:
    """The server and the workers it started (its own process group), and only them."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def as_a_visitor(page):
    """The page, closing what MLflow lays over it in a new profile whenever it shows, as a visitor does:
    the MLflow Assistant's side panel, which opens on a first visit to a server on localhost (3.17, 3.18;
    no server setting or address turns that off) and narrows the runs table by a third, leaving its last
    columns out of sight; and 3.17's "Detect Issues" pop-up over the GenAI overview."""
    for overlay in (page.locator('[data-assistant-ui] button[aria-label="Close"]'),
                    page.get_by_role("button", name="Got it")):
        page.add_locator_handler(overlay, lambda shown: shown.click())
    return page


def shows_the_runs(page) -> str:
    """Wait until the page shows the study's runs grouped by configuration with the view's metric
    columns, each column's header wholly in sight (in the viewport, not scrolled out of the table); the
    page's text."""
    from playwright.sync_api import expect  # the caller has checked that Playwright is there

    for text in ("probe_h_mean", "probe_h_sd", "n_seeds", *(f"Group: {name}" for name in NAMES)):
        page.get_by_text(text, exact=True).first.wait_for(timeout=PAGE_WAIT_MS)
    for column in METRIC_COLUMNS:
        expect(page.get_by_role("columnheader", name=column, exact=True).first).to_be_in_viewport(
            ratio=1, timeout=PAGE_WAIT_MS)
    body = page.inner_text("body")
    assert "/runs" in page.url and not [marker for marker in GENAI_MARKERS if marker in body], page.url
    return body


@pytest.mark.slow
def test_every_address_the_study_prints_opens_on_its_runs_in_a_fresh_browser(workdir):
    sync_playwright = browser_or_skip()
    out = quickstart(workdir, "--no-report")
    printed = re.findall(r"https?://\S+", out)
    assert printed and all(address.startswith("http://127.0.0.1:5000/") for address in printed), printed
    port = free_port()
    server = serve_ui(workdir, port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            for address in printed:
                context = browser.new_context(viewport={"width": 1600, "height": 900})  # a fresh profile
                page = as_a_visitor(context.new_page())
                page.goto(address.replace(":5000/", f":{port}/"))
                body = shows_the_runs(page)
                assert DESCRIPTION in body
                context.close()
            # A visitor who comes from the experiment list instead, in a fresh profile: MLflow opens the
            # experiment in its GenAI mode (the project cannot steer that page), and the description's
            # first line leads to the runs.
            context = browser.new_context(viewport={"width": 1600, "height": 900})
            page = as_a_visitor(context.new_page())
            page.goto(f"http://127.0.0.1:{port}/#/experiments")
            page.get_by_role("link", name="quick", exact=True).click()
            page.get_by_text("Observability", exact=True).first.wait_for(timeout=PAGE_WAIT_MS)  # GenAI, as said
            with context.expect_page() as opened:  # the UI opens a description's links in a new tab
                page.get_by_role("link", name="open them grouped by configuration").click(timeout=PAGE_WAIT_MS)
            shows_the_runs(as_a_visitor(opened.value))
            browser.close()
    finally:
        stop(server)
