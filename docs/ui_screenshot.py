"""The pictures of docs/views.md, taken from a real study in headless Chromium, each in a fresh browser
profile (a new visitor's: no saved MLflow mode, no closed pop-ups):

- docs/mlflow_ui.png: the runs list at the address the study printed (its saved view);
- docs/mlflow_ui_charts.png: the same groups in the chart view;
- docs/mlflow_ui_experiment.png: the experiment's page as a visitor who clicks it in the experiment list
  first sees it (MLflow's GenAI mode, the Assistant's panel open), with the description line that leads
  to the runs;
- docs/optuna_dashboard.png (with --journal, where optuna-dashboard is installed): the study in
  optuna-dashboard, on its parameter importance.

    python docs/ui_screenshot.py sqlite:///mlflow.db quickstart --journal runs/quickstart/optuna.journal

It starts `mlflow ui` (and optuna-dashboard) on free loopback ports and stops them. Chromium is the system's
(Debian's chromium, or $CHROMIUM), driven by Playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
VIEWPORT = {"width": 1600, "height": 900}
WAIT_MS = 180_000  # the UI's first render fetches runs, metrics and tags


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(command: list[str], url: str):
    """A server started in its own process group, once `url` answers; stopped (the group) on leaving."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if process.poll() is not None:
                sys.exit(f"{command[0]} exited with status {process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()


def printed_address(store: str, study: str) -> str:
    """The address the study printed when it finished (ablations.stores.ui_view.runs_url)."""
    sys.path.insert(0, str(DOCS.parent))
    from ablations.stores.tracking import Tracker
    from ablations.stores.ui_view import runs_url

    return runs_url(store, Tracker(store, study).experiment_id)


def close_assistant(page) -> None:
    """The MLflow Assistant's side panel opens on a first visit to a server on localhost and narrows the
    page by a third (the runs table's last columns out of sight); a visitor closes it with its own Close
    button (its header's X). Only that panel's button: the shared-view banner has a Close button too."""
    close = page.locator('[data-assistant-ui] button[aria-label="Close"]')
    if close.count():
        close.click(timeout=WAIT_MS)
        close.wait_for(state="detached", timeout=WAIT_MS)


def mlflow_pictures(browser, base: str, address: str, study: str) -> None:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(address)
    page.get_by_text("probe_h_mean", exact=True).first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(3000)  # the grid settles its column widths after the first rows
    close_assistant(page)
    page.screenshot(path=DOCS / "mlflow_ui.png")
    page.locator('[role="radiogroup"] label, [role="radiogroup"] button, [role="radio"]').nth(1).click()
    page.get_by_text("Model metrics").first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(5000)  # the charts draw after their data arrives
    page.screenshot(path=DOCS / "mlflow_ui_charts.png")
    page.context.close()

    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{base}/#/experiments")
    page.get_by_role("link", name=study, exact=True).click()
    page.get_by_text("The study's runs:").first.wait_for(timeout=WAIT_MS)
    # As first seen: MLflow's GenAI mode (its sidebar's Observability section), the Assistant's panel open.
    page.get_by_text("Observability", exact=True).first.wait_for(timeout=WAIT_MS)
    page.locator("[data-assistant-ui]").first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(3000)  # the overview draws after its data arrives
    page.screenshot(path=DOCS / "mlflow_ui_experiment.png")
    page.context.close()


def dashboard_picture(browser, base: str, study: str) -> None:
    # Tall enough for the history (objective probe_h) and the whole importance chart.
    page = browser.new_context(viewport={"width": 1600, "height": 1250}).new_page()
    page.goto(base)
    page.get_by_role("link", name=study).first.click()
    page.get_by_text("Hyperparameter Importance").first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(5000)  # the plots draw after their data arrives
    page.screenshot(path=DOCS / "optuna_dashboard.png")
    page.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", help="the study's MLflow tracking URI, e.g. sqlite:///mlflow.db")
    parser.add_argument("study", help="the study's name")
    parser.add_argument("--journal", help="its Optuna storage (runs/<study>/optuna.journal) for optuna-dashboard")
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Chromium: apt-get install chromium (or set CHROMIUM)")
    bin_dir = Path(sys.executable).parent
    address = printed_address(args.store, args.study)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        with server([str(bin_dir / "mlflow"), "ui", "--backend-store-uri", args.store, "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"], f"{base}/health"):
            mlflow_pictures(browser, base, address.replace("http://127.0.0.1:5000", base), args.study)
        written = ["mlflow_ui.png", "mlflow_ui_charts.png", "mlflow_ui_experiment.png"]
        if args.journal and (bin_dir / "optuna-dashboard").exists():
            port = free_port()
            with server([str(bin_dir / "optuna-dashboard"), args.journal, "--host", "127.0.0.1", "--port", str(port)],
                        f"http://127.0.0.1:{port}/"):
                dashboard_picture(browser, f"http://127.0.0.1:{port}", args.study)
            written.append("optuna_dashboard.png")
        elif args.journal:
            print("optuna-dashboard is not installed (pip install -e '.[dashboard]'): no optuna_dashboard.png")
        browser.close()
    print("wrote " + " ".join(f"docs/{name}" for name in written))


if __name__ == "__main__":
    main()
