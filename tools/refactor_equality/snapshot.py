"""Before/after equality check for the redesign (issue "One clear house").

`snapshot.py dump STUDY TRACKING_URI REPORT_DIR OUT.json` writes what a finished study recorded:
every trial run's params, identity tags, final metrics and per-epoch histories from MLflow, and the
report's runs/summary tables. Values that depend on the clock or the machine (wall time, images/s,
run ids, start times, devices, commit) are left out: everything else must be bit-identical when the
same study file runs with the same seed on the same CPU.

`snapshot.py compare BEFORE.json AFTER.json` prints each difference and exits 1 if there is any.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

# Clock-, machine- or identity-dependent: differ between any two runs of the same code.
VOLATILE = {"wall_time_s", "images_per_s", "tracking_s", "duration_s", "start_time", "run_id", "trial",
            "device", "git_commit", "torch_version", "parent_run_id"}
IDENTITY_TAGS = ("ablations.cell", "ablations.first", "ablations.second", "ablations.seed", "ablations.varied",
                 "ablations.study")


def _table(path: Path) -> list[dict]:
    frame = pd.read_parquet(path)
    # Summary columns derive from the runs' (`wall_time_s_mean`, `images_per_s_std`): volatile alike.
    frame = frame[[c for c in frame.columns if not any(c == v or c.startswith(f"{v}_") for v in VOLATILE)]]
    return json.loads(frame.to_json(orient="records", double_precision=15))


def dump(study: str, uri: str, report_dir: str, out: str) -> None:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], "tags.`ablations.role` != 'parent'", max_results=10000)
    records = {}
    for run in runs:
        if "mlflow.parentRunId" not in run.data.tags:
            continue
        histories = {}
        for key in run.data.metrics:
            if key in VOLATILE:
                continue
            histories[key] = [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                                key=lambda m: m.step)]
        records[run.info.run_name] = {
            "params": dict(sorted(run.data.params.items())),
            "tags": {k: run.data.tags.get(k) for k in IDENTITY_TAGS},
            "metrics": {k: v for k, v in sorted(run.data.metrics.items()) if k not in VOLATILE},
            "histories": histories,
            "status": run.info.status,
        }
    report = Path(report_dir)
    snapshot = {
        "runs": dict(sorted(records.items())),
        "runs.parquet": _table(report / "runs.parquet"),
        "summary.parquet": _table(report / "summary.parquet"),
    }
    Path(out).write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"{out}: {len(records)} runs")


def _diff(before, after, where: str, out: list[str]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if key not in before or key not in after:
                out.append(f"{where}/{key}: only in {'after' if key not in before else 'before'}")
            else:
                _diff(before[key], after[key], f"{where}/{key}", out)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (b, a) in enumerate(zip(before, after)):
            _diff(b, a, f"{where}[{index}]", out)
    elif before != after:
        out.append(f"{where}: {before!r} -> {after!r}")


def compare(before: str, after: str) -> int:
    differences: list[str] = []
    old, new = json.loads(Path(before).read_text()), json.loads(Path(after).read_text())
    _diff(old, new, "", differences)
    for line in differences:
        print(line)
    values = sum(len(r["params"]) + len(r["metrics"]) + sum(len(h) for h in r["histories"].values())
                 for r in old["runs"].values())
    print(f"{len(old['runs'])} runs, {values} params/metric values, "
          f"{len(old['runs.parquet'])} + {len(old['summary.parquet'])} table rows compared: "
          f"{'identical' if not differences else f'{len(differences)} differences'}")
    return 1 if differences else 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "dump":
        dump(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(*sys.argv[2:]))
    else:
        sys.exit(__doc__)
