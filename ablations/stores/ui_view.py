"""What a researcher opens the MLflow UI with: the command that serves a store, the address of a
study's runs list, the saved view (columns, sort, grouping) that list opens on, and the experiment's
description, which says how to reach that list from the experiment's own page.

Only addresses and texts; Tracker.save_runs_view and Tracker.describe_experiment write them into the
experiment.

MLflow 3's UI shows each experiment either as GenAI (traces, evaluations) or as model training (runs),
from the URL parameter `workflowType` (`genai` or `machine_learning`), else from the browser's own
setting (localStorage `mlflow.workflowType`), GenAI in a new browser; the experiment's kind tag does not
change it (mlflow/mlflow issue 24498, read in the 3.17 and 3.18 UI's code). Every address printed here
carries the parameter, so that it opens on the runs in any browser; the experiment page reached from the
experiment list cannot carry it, and its description says where the runs are. Nor can the links the UI
itself draws to each run: the parameter sets the mode of its own page only (only the sidebar's switch
stores it in the browser), so a run opened from the runs list shows the GenAI sidebar in a new browser
(docs/views.md says how to switch once).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from ablations.design.plan import PIPELINE_KEY
from ablations.stores.tracking import CONFIG_TAG, RUNS_VIEW_KEY


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on this store, with the `mlflow` of this interpreter's
    environment, so that it works as printed when the virtual environment is not activated."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"{command_path('mlflow')} ui --backend-store-uri {uri}"


# Pixels: a metric column that shows a group row's `0.2891 (average)` whole.
METRIC_WIDTH = 150
# The UI's model-training mode (see the module's docstring).
WORKFLOW = "workflowType=machine_learning"


def runs_url(uri: str, experiment_id: str) -> str:
    """The address of the experiment's runs list in the UI (`mlflow ui` serves on 127.0.0.1:5000),
    opened on the study's saved view (runs_view), in the UI's model-training mode."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/{runs_path(experiment_id)}"


def runs_path(experiment_id: str) -> str:
    """runs_url without the server: the UI's own route, a link that works on any host and port."""
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={RUNS_VIEW_KEY}&{WORKFLOW}"


def experiment_description(description: str, experiment_id: str) -> str:
    """The experiment's description (Markdown, on its page in the UI): first how to reach the runs from
    that page, which a new browser opens in the UI's GenAI mode (the page shows a description's first line
    until it is expanded), then the study file's description."""
    reach = (f"**The study's runs:** [open them grouped by configuration]({runs_path(experiment_id)}), or "
             "choose **Model training** at the top of the sidebar, then **Runs**.")
    return reach + (f"\n\n{description}" if description else "")


def runs_view(varied_keys: list[str], pairs: bool) -> dict[str, Any]:
    """The runs list a researcher looks at first: one row per configuration (runs grouped by its short
    name, CONFIG_TAG, MLflow showing the mean over seeds), best probe on h first, and as columns what
    tells the configurations apart and how they scored. The keys are those the UI's own saved views
    use (selectedColumns entries are `<type>.` + the key in backquotes)."""
    columns = [f"tags.`{CONFIG_TAG}`"]
    # A pair study's pipeline param is a long list that the short name already says.
    columns += [f"params.`{key}`" for key in varied_keys if not (pairs and key == PIPELINE_KEY)]
    # Not the seed: a group's row would show its mean (0.5); each run's name carries it. The mean, SD and
    # n are the same on every run of a configuration (tracking.SPREAD_METRICS), so its row shows them as
    # logged; each run's own probe_h comes last (on a group's row the UI prints its own average of them,
    # a float sum such as 0.40275000000000005). Not the wall time: its average reads the same way, and
    # the runs and the report have it.
    metrics = ["metrics.`probe_h_mean`", "metrics.`probe_h_sd`", "metrics.`n_seeds`", "metrics.`probe_z_mean`",
               "metrics.`probe_h`"]
    columns += metrics
    return {
        "selectedColumns": columns,
        # The UI would sort metrics by name; wide enough for a group row's `0.2891 (average)`.
        "columnOrder": ["attributes.`Run Name`", *metrics, *columns[:-len(metrics)]],
        "columnWidths": {column: METRIC_WIDTH for column in metrics},
        "orderByKey": "metrics.`probe_h_mean`",
        "orderByAsc": False,
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": CONFIG_TAG}]},
        # The chart view opens on the accuracies (a search the user can clear), not on every metric in
        # alphabetical order.
        "chartsSearchFilter": "probe_",
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
