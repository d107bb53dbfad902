"""What a researcher opens the MLflow UI with: the command that serves a store, the address of a
study's runs list, and the saved view (columns, sort, grouping) that list opens on.

Only addresses and the view's contents; Tracker.save_runs_view writes the view into the experiment.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from ablations.tracking import CONFIG_TAG, PIPELINE_KEY, RUNS_VIEW_KEY


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on this store, with the `mlflow` of this interpreter's
    environment, so that it works as printed when the virtual environment is not activated."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"{command_path('mlflow')} ui --backend-store-uri {uri}"


def runs_url(uri: str, experiment_id: str) -> str:
    """The address of the experiment's runs list in the UI (`mlflow ui` serves on 127.0.0.1:5000),
    opened on the study's saved view (runs_view)."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={RUNS_VIEW_KEY}"


def runs_view(varied_keys: list[str], pairs: bool) -> dict[str, Any]:
    """The runs list a researcher looks at first: one row per configuration (runs grouped by its short
    name, CONFIG_TAG, MLflow showing the mean over seeds), best probe on h first, and as columns what
    tells the configurations apart and how they scored. The keys are those the UI's own saved views
    use (selectedColumns entries are `<type>.` + the key in backquotes)."""
    columns = [f"tags.`{CONFIG_TAG}`"]
    # A pair study's pipeline param is a long list that the short name already says.
    columns += [f"params.`{key}`" for key in varied_keys if not (pairs and key == PIPELINE_KEY)]
    # Not the seed: a group's row would show its mean (0.5); each run's name carries it.
    columns += ["metrics.`probe_h`", "metrics.`probe_z`", "metrics.`wall_time_s`"]
    return {
        "selectedColumns": columns,
        "orderByKey": "metrics.`probe_h`",
        "orderByAsc": False,
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": CONFIG_TAG}]},
    }


def command_path(name: str) -> str:
    """A console script of this interpreter's environment (`.venv/bin/mlflow`), relative to the current
    folder where it lies below it; the bare name where the environment has none."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        return name
    try:
        relative = script.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(script))
    return shlex.quote(str(relative))
