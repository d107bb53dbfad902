"""Add the runs of a later sitting to a committed report whose MLflow store was not kept.

A committed study (reports/<name>/runs.parquet, history.parquet) can gain seeds without its store: run
the same study file with only the new seeds (`seeds: [2]`, the same name, base and grid) into a scratch
store, build its report there, then append that report's rows here:

    python tools/add_seeds.py reports/temperature /tmp/temperature-seed2/reports/temperature

Every cell and seed of the addition is checked: the same configurations (run names less the seed), seeds
the committed table does not have, the same shared params (the recipe) but for data.root and train.seed. Rows are
appended unchanged; the committed file's metadata is kept, with a note naming the addition (its parent
run, commits and dates). Then rebuild the report: python -m ablations.report --from-parquet reports/<name>.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablations.report.saved import HISTORY_NAME, RUNS_NAME  # noqa: E402
from ablations.report.parquet import write_parquet  # noqa: E402


def read(folder: Path, name: str) -> tuple[pd.DataFrame, dict]:
    table = pq.read_table(folder / name)
    meta = {k.decode()[len("ablations."):]: json.loads(v.decode()) if v[:1] in b'[{"' else v.decode()
            for k, v in (table.schema.metadata or {}).items() if k.startswith(b"ablations.")}
    frame = table.to_pandas()
    frame.attrs = {}
    return frame, meta


def configuration(run_name: str) -> str:
    return " ".join(part for part in run_name.split() if not part.startswith("seed="))


def main(committed: Path, addition: Path) -> None:
    runs, meta = read(committed, RUNS_NAME)
    extra, extra_meta = read(addition, RUNS_NAME)
    if extra_meta["study"] != meta["study"]:
        sys.exit(f"{addition}: study {extra_meta['study']!r}, not {meta['study']!r}")
    ignored = ("data.root", "train.seed")  # where the data lay, and the seeds being added
    recipe = {k: v for k, v in meta["params"].items() if k not in ignored}
    extra_recipe = {k: v for k, v in extra_meta["params"].items() if k not in ignored}
    if recipe != extra_recipe:
        changed = sorted(k for k in set(recipe) | set(extra_recipe) if recipe.get(k) != extra_recipe.get(k))
        sys.exit(f"{addition}: the recipe differs from the committed study's ({', '.join(changed)})")
    if set(map(configuration, extra["run_name"])) - set(map(configuration, runs["run_name"])):
        sys.exit(f"{addition}: configurations the committed study does not have")
    overlap = set(zip(runs["role"], runs["cell"], runs["seed"])) & set(zip(extra["role"], extra["cell"], extra["seed"]))
    if overlap:
        sys.exit(f"{addition}: (cell, seed) already in the committed study: {sorted(overlap)[:5]}")
    for column in runs.columns:
        if column in extra and str(runs[column].dtype) != str(extra[column].dtype):
            extra[column] = extra[column].astype(runs[column].dtype)
    both = pd.concat([runs, extra[list(runs.columns)]], ignore_index=True)
    commits = ", ".join(sorted(extra["git_commit"].dropna().str[:12].unique()))
    started = pd.to_datetime(extra["start_time"]).dropna()
    note = (f"{len(extra)} run(s) added on {datetime.now(timezone.utc):%Y-%m-%d} by tools/add_seeds.py from a later "
            f"sitting (parent run {extra_meta['parent_run_id']}, seeds {sorted(set(extra['seed'].dropna().astype(int)))}, "
            f"git {commits}, started {started.min():%Y-%m-%d %H:%M} to {started.max():%Y-%m-%d %H:%M} UTC); "
            "the same study file's base and grid, its own store; no earlier row changed.")
    meta["notes"] = list(meta.get("notes", [])) + [note]
    write_parquet(both, committed / RUNS_NAME, meta)
    history, history_meta = read(committed, HISTORY_NAME)
    extra_history, _ = read(addition, HISTORY_NAME)
    write_parquet(pd.concat([history, extra_history[list(history.columns)]], ignore_index=True),
                  committed / HISTORY_NAME, history_meta)
    print(f"{committed}: {len(runs)} + {len(extra)} runs; note: {note}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
