"""Tables and figures from what a study recorded in MLflow: `python -m ablations.report [--study NAME]`.

Reads the records `ablations.run` leaves (see `ablations.tracking`: an experiment per study, a parent run
tagged `ablations.role=parent`, one child run per trial) and writes, per study, into `reports/<study>/`:

- `runs.parquet`: one row per trial run, whatever its status;
- `summary.parquet`: one row per configuration (the varied values other than the seed), mean, SD and n
  over the seeds of its FINISHED runs; the runs left out are counted in the file's metadata;
- `figures/*.png` with the plotted data as `figures/*.csv` beside each (see `ablations.figures`);
- `README.md`: the evidence header (hardware, versions, runs, wall time), a reading of each table and
  figure, and for pair studies the verdict on SimCLR's crop-plus-colour finding (Figure 5).

The figures, tables and README are also logged to the study's parent run under `report/`. The report
never trains and never changes a run. The schema users script against is in reports/README.md.

Bad input (an unknown study, a study without trial runs, a store that cannot be read) exits with
status 2 and one line `error: ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ablations.tracking import EPOCH_METRICS, resolve_tracking_uri, retry

EXIT_BAD_INPUT = 2
PARENT_ROLE, TRIAL_ROLE = "parent", "trial"
SEED_KEY, PIPELINE_KEY = "train.seed", "augment.pipeline"
# Final metrics every runs.parquet has (NaN where a run did not log them); others the runs logged follow.
FINAL_METRICS = ("probe_h", "probe_z", "knn_acc", "loss", "wall_time_s")
# The objective, and the metric every figure shows.
OBJECTIVE = "probe_h"
# Figure 5's finding: crop composed with colour distortion, in either order, beats every other pair.
CROP_COLOR_CELLS = frozenset({("crop", "color"), ("color", "crop")})
# A margin in pooled standard deviations that a cell must exceed to count as a clear win.
MARGIN_SD = 2.0
# Budget keys worth stating in the header when constant over a study's runs.
BUDGET_KEYS = ("data.dataset", "data.train_subset", "data.test_subset", "model.encoder", "model.width",
               "model.head", "train.epochs", "train.batch_size", "train.optimizer", "train.lr",
               "train.weight_decay", "train.temperature", "augment.protocol", "augment.base_crop",
               "augment.color_strength")
# A hand-written reading of a study's results, kept beside its README and included in it on every rebuild.
ANALYSIS_NAME = "ANALYSIS.md"
# Figure names, in the order the README lists them.
FIGURES = ("pair_grid", "pair_grid_vs_paper", "temperature_batch", "color_strength", "projection_head",
           "training_curves")


class ReportError(RuntimeError):
    """Input this report cannot use; the message says which and what to do."""


# ----------------------------------------------------------------------------------------------------
# Reading MLflow


@dataclass
class StudyRecords:
    """What one study left in MLflow."""

    name: str
    uri: str
    experiment_id: str
    parent: Any  # mlflow.entities.Run
    trials: list[Any]  # child runs, by trial number
    earlier_parents: int = 0  # parent runs of earlier starts of this study name (not reported)


def open_client(uri: str):
    """An MlflowClient on an existing store; a missing SQLite file is an error, not a new empty store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix):]).expanduser()
        if not path.is_file():
            raise ReportError(f"no MLflow store at {path} (tracking URI {uri}); run a study first "
                              "(python -m ablations.run studies/<file>.yaml) or pass --tracking-uri")
    from mlflow import MlflowClient

    for name in ("mlflow", "alembic"):  # table checks and migrations log at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return MlflowClient(uri)
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {_one_line(error)}") from None


def _retry(call, *args, **kwargs):
    """tracking.retry on SQLite stores, where a study's workers may hold the write lock; other stores are
    called once (MLflow's HTTP client retries by itself, and retries on retries would make an unreachable
    server take many minutes to report)."""
    uri = str(getattr(getattr(call, "__self__", None), "tracking_uri", ""))
    return retry(call, *args, attempts=6 if uri.startswith("sqlite") else 1, **kwargs)


def _search_all(client, experiment_ids: list[str], filter_string: str, order_by: list[str] | None = None) -> list:
    """Every matching run, page by page."""
    runs, token = [], None
    while True:
        page = _retry(client.search_runs, experiment_ids, filter_string=filter_string, max_results=1000,
                     order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def list_studies(client, uri: str) -> list[str]:
    """Names of the experiments that hold a study's parent run."""
    try:
        experiments = []
        token = None
        while True:
            page = _retry(client.search_experiments, max_results=1000, page_token=token)
            experiments.extend(page)
            token = page.token
            if not token:
                break
        if not experiments:
            return []
        parents = _search_all(client, [e.experiment_id for e in experiments],
                              f"tags.`ablations.role` = '{PARENT_ROLE}'")
    except ReportError:
        raise
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {_one_line(error)}") from None
    names = {e.experiment_id: e.name for e in experiments}
    return sorted({names[run.info.experiment_id] for run in parents if run.info.experiment_id in names})


def read_study(client, uri: str, name: str) -> StudyRecords:
    """The study's latest parent run and its trial runs; ReportError if there are none."""
    try:
        experiment = _retry(client.get_experiment_by_name, name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            available = list_studies(client, uri)
            there = f"studies there: {', '.join(available)}" if available else \
                "no studies there yet (python -m ablations.run studies/<file>.yaml)"
            state = "is deleted" if experiment is not None else "not found"
            raise ReportError(f"study {name!r} {state} in {uri}; {there}")
        parents = _search_all(client, [experiment.experiment_id], f"tags.`ablations.role` = '{PARENT_ROLE}'",
                              order_by=["attributes.start_time DESC"])
        if not parents:
            raise ReportError(f"experiment {name!r} in {uri} has no parent run tagged ablations.role=parent; "
                              "was it made by python -m ablations.run?")
        parent = parents[0]
        trials = _search_all(client, [experiment.experiment_id],
                             f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
                             f"and tags.`ablations.role` = '{TRIAL_ROLE}'")
    except ReportError:
        raise
    except Exception as error:
        raise ReportError(f"tracking store {uri!r}: {_one_line(error)}") from None
    if not trials:
        raise ReportError(f"study {name!r} in {uri} has no trial runs yet; run it first "
                          f"(python -m ablations.run studies/{name}.yaml)")
    trials.sort(key=lambda run: (_int(run.data.tags.get("optuna.trial")) or 0, run.info.start_time or 0))
    return StudyRecords(name, uri, experiment.experiment_id, parent, trials, earlier_parents=len(parents) - 1)


def read_histories(client, runs: list[Any], keys: tuple[str, ...] = EPOCH_METRICS) -> dict[str, dict[str, dict[int, float]]]:
    """run_id -> metric -> {epoch: value} (the last value logged at each step)."""
    histories: dict[str, dict[str, dict[int, float]]] = {}
    for run in runs:
        per_metric = {}
        for key in keys:
            if key in run.data.metrics:
                points = sorted(_retry(client.get_metric_history, run.info.run_id, key),
                                key=lambda m: (m.step, m.timestamp))
                per_metric[key] = {m.step: m.value for m in points}
        histories[run.info.run_id] = per_metric
    return histories


# ----------------------------------------------------------------------------------------------------
# Tables


@dataclass
class Tables:
    runs: Any  # pandas.DataFrame
    summary: Any  # pandas.DataFrame
    config_keys: list[str]  # the columns that name a configuration
    metrics: list[str]  # the final-metric columns
    pair: bool  # a Figure 5 pair study (first/second columns)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> runs left out of the summary


def runs_table(records: StudyRecords):
    """One row per trial run: identity, configuration, outcome, final metrics, provenance."""
    import pandas as pd

    rows = []
    varied_keys: list[str] = []
    metric_keys: list[str] = list(FINAL_METRICS)
    pair = any("ablations.first" in run.data.tags for run in records.trials)
    for run in records.trials:
        tags, info = run.data.tags, run.info
        varied = _json(tags.get("ablations.varied")) or {}
        for key in varied:
            if key != SEED_KEY and key not in varied_keys and not (pair and key == PIPELINE_KEY):
                varied_keys.append(key)
        for key in sorted(run.data.metrics):
            if key not in metric_keys:
                metric_keys.append(key)
        seed = _int(tags.get("ablations.seed"))
        if seed is None:
            seed = _int(varied.get(SEED_KEY, run.data.params.get(SEED_KEY)))
        end = info.end_time if info.status != "RUNNING" else None
        row = {
            "run_id": info.run_id,
            "run_name": info.run_name,
            "trial": _int(tags.get("optuna.trial")),
            "status": info.status,
            "pruned": "ablations.pruned" in tags,
            "seed": seed,
            "cell": tags.get("ablations.cell"),
            "first": tags.get("ablations.first"),
            "second": tags.get("ablations.second"),
            **{f"varied:{key}": _cell_value(value) for key, value in varied.items()},
            **{f"metric:{key}": value for key, value in run.data.metrics.items()},
            "duration_s": (end - info.start_time) / 1000.0 if end and info.start_time else math.nan,
            "start_time": info.start_time,
            "device": tags.get("device"),
            "git_commit": tags.get("git_commit"),
            "torch_version": tags.get("torch_version"),
            "error": tags.get("ablations.error") or tags.get("ablations.killed") or tags.get("ablations.pruned"),
        }
        rows.append(row)

    def column(name: str, dtype: str | None = None, default: Any = None):
        values = [r.get(name, default) for r in rows]
        return _typed(values) if dtype is None else pd.Series(values, dtype=dtype)

    columns: dict[str, Any] = {"run_id": column("run_id", "str"), "run_name": column("run_name", "str"),
                               "trial": column("trial"), "status": column("status", "str"), "seed": column("seed")}
    if pair:
        columns["first"], columns["second"] = column("first", "str"), column("second", "str")
    for key in varied_keys:
        columns[key] = column(f"varied:{key}")
    columns["cell"] = column("cell", "str")
    for key in metric_keys:
        columns[key] = column(f"metric:{key}", "float64", default=math.nan)
    columns["duration_s"] = column("duration_s", "float64")
    columns["start_time"] = pd.to_datetime(column("start_time", "float64"), unit="ms", utc=True)
    for key in ("device", "git_commit", "torch_version", "error"):
        columns[key] = column(key, "str")
    columns["pruned"] = column("pruned", "bool")
    table = pd.DataFrame(columns)
    config_keys = (["first", "second"] if pair else []) + varied_keys
    return table, config_keys, metric_keys, pair


def included(runs):
    """The runs that count: FINISHED and not pruned (a pruned trial stopped early, by design)."""
    return runs[(runs["status"] == "FINISHED") & ~runs["pruned"]]


def left_out_reasons(runs) -> dict[str, int]:
    reasons = Counter()
    for status, pruned in zip(runs["status"], runs["pruned"]):
        if status != "FINISHED":
            reasons[status] += 1
        elif pruned:
            reasons["pruned"] += 1
    return dict(sorted(reasons.items()))


def summarize(runs, config_keys: list[str], metrics: list[str]):
    """One row per configuration over its included runs: the key columns, n, then mean and SD
    (sample SD, ddof 1; NaN when n = 1) of every final metric. Configurations in trial order."""
    import pandas as pd

    kept = included(runs)
    keys = config_keys or ["cell"]
    grouped = kept.groupby(keys, sort=False, dropna=False)
    summary = grouped.size().rename("n").reset_index()
    if config_keys:  # the runner's readable id of the configuration, beside the typed keys
        summary.insert(len(keys), "cell", grouped["cell"].first().to_numpy())
    for metric in metrics:
        summary[f"{metric}_mean"] = grouped[metric].mean().to_numpy()
        summary[f"{metric}_std"] = grouped[metric].std(ddof=1).to_numpy()
    summary["n"] = summary["n"].astype("int64")
    ordered = keys + [c for c in summary.columns if c not in keys]
    return pd.DataFrame(summary[ordered]).reset_index(drop=True)


def build_tables(records: StudyRecords) -> Tables:
    runs, config_keys, metrics, pair = runs_table(records)
    summary = summarize(runs, config_keys, metrics)
    tables = Tables(runs, summary, config_keys, metrics, pair, left_out_reasons(runs))
    attrs = {"study": records.name, "parent_run_id": records.parent.info.run_id, "tracking_uri": records.uri,
             "config_keys": config_keys}
    runs.attrs.update(attrs)
    summary.attrs.update(attrs, left_out=sum(tables.left_out.values()), left_out_by_reason=tables.left_out)
    return tables


def write_parquet(frame, path: Path, metadata: dict[str, Any]) -> Path:
    """Parquet through pyarrow, with `ablations.*` keys in the schema metadata (and pandas attrs)."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq

    with warnings.catch_warnings():
        # pyarrow reads tz-aware columns through Series.values, which pandas 3.1 deprecates; the values
        # it gets are the right UTC instants, and the column keeps its UTC type in the file.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
        table = pa.Table.from_pandas(frame, preserve_index=False)
    schema_metadata = dict(table.schema.metadata or {})
    schema_metadata[b"PANDAS_ATTRS"] = json.dumps(frame.attrs, default=str).encode()  # pandas reads it back
    for key, value in metadata.items():
        schema_metadata[f"ablations.{key}".encode()] = (value if isinstance(value, str) else json.dumps(value)).encode()
    pq.write_table(table.replace_schema_metadata(schema_metadata), path)
    return path


# ----------------------------------------------------------------------------------------------------
# Statistics


def cell_stats(runs, keys: list[str], metric: str = OBJECTIVE):
    """Mean, SD (ddof 1) and n of `metric` over the included runs of each combination of `keys`
    (averaging over any other varied key), in trial order."""
    kept = included(runs).dropna(subset=[metric])
    grouped = kept.groupby(keys, sort=False)[metric]
    stats = grouped.agg(mean="mean", std="std", n="count").reset_index()
    stats["n"] = stats["n"].astype("int64")
    return stats


def pooled_sd(stats) -> tuple[float, int]:
    """sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over cells with n >= 2: the seed-to-seed spread of one
    run, pooled over cells; and its degrees of freedom. NaN, 0 when no cell has two runs."""
    usable = stats[(stats["n"] >= 2) & stats["std"].notna()]
    dof = int((usable["n"] - 1).sum())
    if dof == 0:
        return math.nan, 0
    return math.sqrt(float(((usable["n"] - 1) * usable["std"] ** 2).sum()) / dof), dof


@dataclass
class Verdict:
    """SimCLR Figure 5's finding on this study: crop with colour (either order) is the best cell and
    beats every cell that does not combine them by more than MARGIN_SD pooled standard deviations."""

    holds: bool | None  # None: cannot be judged
    sentence: str  # "The crop-plus-color finding holds at this budget." (or does not hold / cannot be judged)
    reasons: list[str]  # why, from the data
    best: tuple[str, str] | None = None
    best_mean: float = math.nan
    best_other: tuple[str, str] | None = None  # the best cell that is not crop with colour
    best_other_mean: float = math.nan
    best_crop_color: tuple[str, str] | None = None
    best_crop_color_mean: float = math.nan
    pooled_sd: float = math.nan
    margin_sd: float = math.nan  # (best crop+colour - best other) / pooled SD


def pair_verdict(stats) -> Verdict:
    """The verdict from per-pair statistics (columns first, second, mean, std, n; accuracies as fractions)."""
    stats = stats.dropna(subset=["mean"])
    if stats.empty:
        return Verdict(None, "The crop-plus-color finding cannot be judged at this budget: no pair cell has a "
                             "finished run.", ["no finished runs"])
    cells = {(f, s): row for f, s, row in zip(stats["first"], stats["second"], stats.itertuples())}
    best = max(cells, key=lambda cell: cells[cell].mean)
    crop_color = [cell for cell in cells if cell in CROP_COLOR_CELLS]
    others = [cell for cell in cells if cell not in CROP_COLOR_CELLS]
    sd, dof = pooled_sd(stats)
    verdict = Verdict(None, "", [], best=best, best_mean=cells[best].mean, pooled_sd=sd)
    if others:
        verdict.best_other = max(others, key=lambda cell: cells[cell].mean)
        verdict.best_other_mean = cells[verdict.best_other].mean
    if crop_color:
        verdict.best_crop_color = max(crop_color, key=lambda cell: cells[cell].mean)
        verdict.best_crop_color_mean = cells[verdict.best_crop_color].mean
    if not crop_color or not others:
        missing = "no crop-with-colour cell (the study needs crop and color in its pairs)" if not crop_color \
            else "no cell without crop-with-colour to compare against"
        verdict.sentence = f"The crop-plus-color finding cannot be judged at this budget: {missing}."
        verdict.reasons.append(missing)
        return verdict
    gap = verdict.best_crop_color_mean - verdict.best_other_mean
    if dof:
        verdict.margin_sd = gap / sd if sd > 0 else (math.inf if gap > 0 else -math.inf if gap < 0 else 0.0)
    best_is_crop_color = best in CROP_COLOR_CELLS
    if not best_is_crop_color:
        verdict.holds = False
        verdict.reasons.append(
            f"the best cell is {_pair(best)} ({_pct(cells[best].mean)}), not crop with colour; the best "
            f"crop-with-colour cell, {_pair(verdict.best_crop_color)}, reaches {_pct(verdict.best_crop_color_mean)}")
        if dof:
            verdict.reasons.append(f"{_pair(verdict.best_crop_color)} trails {_pair(verdict.best_other)} by "
                                   f"{-verdict.margin_sd:.1f} pooled SD ({_pct(-gap, sign=False)} points)")
        verdict.sentence = "The crop-plus-color finding does not hold at this budget."
    elif not dof:
        verdict.reasons.append(f"{_pair(best)} is the best cell, but no cell has two finished seeds, so the "
                               "margin over the other cells cannot be judged against the seed-to-seed spread")
        verdict.sentence = ("The crop-plus-color finding cannot be judged at this budget: the margin needs at "
                            "least two seeds per cell.")
    elif verdict.margin_sd > MARGIN_SD:
        verdict.holds = True
        verdict.reasons.append(
            f"{_pair(best)} is the best cell ({_pct(cells[best].mean)}) and beats the best cell without crop "
            f"and colour, {_pair(verdict.best_other)} ({_pct(verdict.best_other_mean)}), by "
            f"{verdict.margin_sd:.1f} pooled SD (> {MARGIN_SD:g})")
        verdict.sentence = "The crop-plus-color finding holds at this budget."
    else:
        verdict.holds = False
        verdict.reasons.append(
            f"{_pair(best)} is the best cell ({_pct(cells[best].mean)}), but its margin over "
            f"{_pair(verdict.best_other)} ({_pct(verdict.best_other_mean)}) is {verdict.margin_sd:.1f} pooled SD, "
            f"not more than {MARGIN_SD:g}: within the seed-to-seed spread")
        verdict.sentence = "The crop-plus-color finding does not hold at this budget."
    return verdict


def spearman(a, b) -> float:
    """Spearman rank correlation: Pearson correlation of average ranks (no SciPy needed); NaN under 3
    pairs or when either side is constant."""
    import pandas as pd

    frame = pd.DataFrame({"a": list(a), "b": list(b)}).dropna()
    if len(frame) < 3 or frame["a"].nunique() < 2 or frame["b"].nunique() < 2:
        return math.nan
    return float(frame["a"].rank().corr(frame["b"].rank(), method="pearson"))


def op_order(runs) -> list[str]:
    """The pair grid's ops: the paper's Figure 5 order when they are all among its seven, else the
    order of first appearance in the study (its `pairs` list: cells run first-op outermost)."""
    from ablations.reference import FIGURE5_OPS

    seen = list(dict.fromkeys(op for first, second in zip(runs["first"], runs["second"]) for op in (first, second)
                              if isinstance(op, str)))
    if set(seen) <= set(FIGURE5_OPS):
        return [op for op in FIGURE5_OPS if op in seen]
    return seen


# ----------------------------------------------------------------------------------------------------
# The report


@dataclass
class Written:
    paths: list[Path] = field(default_factory=list)
    readings: dict[str, list[str]] = field(default_factory=dict)  # figure name -> two lines
    verdict: Verdict | None = None
    rho: float = math.nan
    n_common: int = 0


def configuration_labels(runs, config_keys: list[str], pair: bool) -> list[str]:
    """Short names of each run's configuration: `crop→color`, `temperature=0.5 batch_size=256`."""
    labels = []
    for _, row in runs.iterrows():
        parts = []
        if pair:
            parts.append(row["first"] if row["first"] == row["second"] else f"{row['first']}→{row['second']}")
        parts += [f"{key.split('.')[-1]}={_fmt_value(row[key])}" for key in config_keys if key not in ("first", "second")]
        labels.append(" ".join(parts) or "base")
    return labels


def write_figures(records: StudyRecords, tables: Tables, histories, figures_dir: Path) -> Written:
    """Every figure that applies to the study's varied keys, PNG and CSV, with the README's readings."""
    import pandas as pd

    from ablations import figures
    from ablations.reference import FIGURE5, FIGURE5_OPS, TABLE1_SIMCLR

    out = Written()
    runs, keys = tables.runs, tables.config_keys
    name = records.name
    kept = included(runs)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stem in FIGURES:  # figures of an earlier report that no longer apply must not linger
        for suffix in (".png", ".csv"):
            (figures_dir / f"{stem}{suffix}").unlink(missing_ok=True)

    def scope(used: list[str], stats) -> str:
        """`n = 2`, or `n = 8; averaged over model.head` when the figure pools other varied keys."""
        rest = [k for k in keys if k not in used]
        return _n_text(stats["n"]) + (f"; averaged over {', '.join(rest)}" if rest else "")

    def pooled(used: list[str]) -> str:
        rest = [k for k in keys if k not in used]
        return f" (averaged over {', '.join(rest)})" if rest else ""

    if tables.pair and kept[OBJECTIVE].notna().any():
        ops = op_order(runs)
        stats = cell_stats(runs, ["first", "second"])
        title = f"{name}: linear probe on h, test top-1 %, mean ± SD over seeds ({scope(['first', 'second'], stats)})"
        figure, data = figures.pair_grid(stats, ops, title)
        out.paths += figures.save(figure, data, figures_dir / "pair_grid", index=True)
        verdict = out.verdict = pair_verdict(stats)
        row_means = data[figures.ROW_MEAN].dropna()
        diagonal = stats[stats["first"] == stats["second"]]
        best_single = diagonal.loc[diagonal["mean"].idxmax()] if not diagonal.empty else None
        out.readings["pair_grid"] = [
            f"Best cell: {_pair(verdict.best)} at {_pct(verdict.best_mean)}"
            + (f"; best single transformation (diagonal): {best_single['first']} at {_pct(best_single['mean'])}"
               if best_single is not None else "") + ".",
            f"Row means (first transformation, averaged over the second): highest {row_means.idxmax()} "
            f"({row_means.max():.1f} %), lowest {row_means.idxmin()} ({row_means.min():.1f} %)."
            if len(row_means) else "No row has a finished cell.",
        ]

        common = stats[[f in FIGURE5 and s in FIGURE5_OPS for f, s in zip(stats["first"], stats["second"])]]
        if len(common):
            paper_values = [FIGURE5[f][s] for f, s in zip(common["first"], common["second"])]
            out.rho, out.n_common = spearman(common["mean"], paper_values), len(common)
            dataset = _budget_value(records, "data.dataset")
            figure, data = figures.paper_comparison(
                stats, ops, out.rho, out.n_common, f"{name} against SimCLR Figure 5",
                study_label=f"this study ({dataset}), mean ± SD over seeds" if dataset else "this study")
            out.paths += figures.save(figure, data, figures_dir / "pair_grid_vs_paper")
            paper_best = data.loc[data["paper_rank"].idxmin()]
            here_best = data.loc[data["study_rank"].idxmin()]
            rho = f"{out.rho:.2f}" if math.isfinite(out.rho) else "undefined (under 3 cells, or a constant side)"
            out.readings["pair_grid_vs_paper"] = [
                f"Spearman rank correlation with the paper's ImageNet grid over the {out.n_common} shared cells: {rho}.",
                f"The paper's best shared cell, {_pair((paper_best['first'], paper_best['second']))} "
                f"({paper_best['paper_percent']:.1f} % there), ranks {_ordinal(paper_best['study_rank'])} here; "
                f"this study's best, {_pair((here_best['first'], here_best['second']))}, ranks "
                f"{_ordinal(here_best['paper_rank'])} in the paper.",
            ]

    if {"train.temperature", "train.batch_size"} <= set(keys):
        used = ["train.temperature", "train.batch_size"]
        stats = cell_stats(runs, used)
        if len(stats):
            figure, data = figures.temperature_batch(
                stats, f"{name}: linear probe on h, top-1 %, mean ± SD ({scope(used, stats)})")
            out.paths += figures.save(figure, data, figures_dir / "temperature_batch")
            best = data.loc[data["mean_percent"].idxmax()]
            best_tau = data.loc[data.groupby("train.batch_size")["mean_percent"].idxmax()]
            out.readings["temperature_batch"] = [
                f"Best: τ = {_fmt_value(best['train.temperature'])}, batch {_fmt_value(best['train.batch_size'])} "
                f"at {best['mean_percent']:.1f} ± {_nan0(best['std_percent']):.1f} % (n = {int(best['n'])}){pooled(used)}.",
                "Best τ per batch size: " + ", ".join(
                    f"{_fmt_value(b)}: {_fmt_value(t)}" for b, t in zip(best_tau["train.batch_size"],
                                                                       best_tau["train.temperature"]))
                + " (paper, ImageNet batch 4096: τ = 0.1 best of 0.05-1.0, Table 5).",
            ]

    if "augment.color_strength" in keys:
        used = ["augment.color_strength"]
        stats = cell_stats(runs, used)
        if len(stats):
            dataset = _budget_value(records, "data.dataset")
            figure, data = figures.color_strength(
                stats, f"{name}: linear probe on h against colour strength ({scope(used, stats)})",
                study_label=f"this study ({dataset})" if dataset else "this study")
            out.paths += figures.save(figure, data, figures_dir / "color_strength")
            low, high = data.iloc[0], data.iloc[-1]
            best = data.loc[data["mean_percent"].idxmax()]
            strengths = sorted(TABLE1_SIMCLR)
            out.readings["color_strength"] = [
                f"From s = {_fmt_value(low['augment.color_strength'])} to s = {_fmt_value(high['augment.color_strength'])} "
                f"the probe goes from {low['mean_percent']:.1f} % to {high['mean_percent']:.1f} % "
                f"({high['mean_percent'] - low['mean_percent']:+.1f} points); best s = "
                f"{_fmt_value(best['augment.color_strength'])} at {best['mean_percent']:.1f} %{pooled(used)}.",
                f"The paper (ImageNet, Table 1) rises monotonically from {TABLE1_SIMCLR[strengths[0]]} % at s = 1/8 "
                f"to {TABLE1_SIMCLR[strengths[-1]]} % at s = 1; "
                + ("here too." if _monotonic(data["mean_percent"]) else "here the curve is not monotonic."),
            ]

    if "model.head" in keys:
        used = ["model.head"]
        parts = []
        for metric, representation in ((OBJECTIVE, "h"), ("probe_z", "z")):
            if kept[metric].notna().any():
                parts.append(cell_stats(runs, used, metric).assign(representation=representation))
        if parts:
            stats = pd.concat(parts, ignore_index=True)[["model.head", "representation", "mean", "std", "n"]]
            figure, data = figures.projection_head(
                stats, f"{name}: linear probe on h and z by projection head, mean ± SD ({scope(used, stats)})")
            out.paths += figures.save(figure, data, figures_dir / "projection_head")
            h = data[data["representation"] == "h"].set_index("model.head")["mean_percent"]
            z = data[data["representation"] == "z"].set_index("model.head")["mean_percent"]
            gaps = (h - z).dropna()
            out.readings["projection_head"] = [
                f"Best head on h: {h.idxmax()} at {h.max():.1f} %; " + ", ".join(
                    f"{head} {value:.1f} %" for head, value in h.items()) + f"{pooled(used)}.",
                ("h minus z: " + ", ".join(f"{head} {gap:+.1f}" for head, gap in gaps.items())
                 + " points (paper: h beats z by more than 10 %, a nonlinear head beats a linear one by about 3 %).")
                if len(gaps) else "probe_z was not recorded (probe.probe_z: false), so h and z cannot be compared.",
            ]

    history = _history_frame(runs, histories, configuration_labels(runs, keys, tables.pair))
    if len(history):
        figure, data = figures.training_curves(history, f"{name}: per-epoch training curves of the finished runs")
        out.paths += figures.save(figure, data, figures_dir / "training_curves")
        last = history.sort_values("epoch").groupby("run_id").last()
        first = history.sort_values("epoch").groupby("run_id").first()
        line2 = ""
        if "knn_acc" in history and history["knn_acc"].notna().any():
            knn = history.dropna(subset=["knn_acc"]).sort_values("epoch").groupby("run_id")["knn_acc"].last()
            line2 = f"Last kNN accuracy: {_pct(knn.min())} to {_pct(knn.max())} (median {_pct(knn.median())})."
        out.readings["training_curves"] = [
            f"{last.shape[0]} finished runs over {int(history['epoch'].max())} epochs: loss from a median "
            f"{first['loss'].median():.3f} at the first epoch to {last['loss'].median():.3f} at the last"
            + (" (every run's loss fell)." if (last["loss"] < first["loss"]).all() else
               f" ({int((last['loss'] >= first['loss']).sum())} runs did not lower their loss)."),
            line2 or "No kNN accuracy was logged (probe.knn_every: 0).",
        ]
    return out


def _history_frame(runs, histories, labels):
    import pandas as pd

    rows = []
    for (_, run), label in zip(runs.iterrows(), labels):
        if run["status"] != "FINISHED" or run["pruned"]:
            continue
        per_metric = histories.get(run["run_id"], {})
        epochs = sorted({step for values in per_metric.values() for step in values})
        for epoch in epochs:
            rows.append({"run_id": run["run_id"], "run_name": run["run_name"], "configuration": label,
                         "seed": run["seed"], "epoch": epoch,
                         **{key: per_metric.get(key, {}).get(epoch, math.nan) for key in EPOCH_METRICS}})
    return pd.DataFrame(rows)


def build_report(client, records: StudyRecords, out_dir: Path, log_artifacts: bool = True) -> Written:
    """runs.parquet, summary.parquet, figures and README.md for one study; logged to its parent run."""
    tables = build_tables(records)
    study_dir = out_dir / records.name
    study_dir.mkdir(parents=True, exist_ok=True)
    meta = {"study": records.name, "parent_run_id": records.parent.info.run_id, "config_keys": tables.config_keys}
    runs_path = write_parquet(tables.runs, study_dir / "runs.parquet", meta)
    summary_path = write_parquet(tables.summary, study_dir / "summary.parquet", {
        **meta, "left_out": sum(tables.left_out.values()), "left_out_by_reason": tables.left_out,
        "included": int(tables.summary["n"].sum())})
    histories = read_histories(client, [r for r in records.trials if r.info.status == "FINISHED"])
    written = write_figures(records, tables, histories, study_dir / "figures")
    readme = study_dir / "README.md"
    text = render_readme(records, tables, written)
    analysis = study_dir / ANALYSIS_NAME
    if analysis.exists():
        text += (f"\n## Analysis\n\nFrom [`{ANALYSIS_NAME}`]({ANALYSIS_NAME}), written by hand after reading the "
                 "figures above; the report includes it again whenever it is rebuilt.\n\n" + analysis.read_text())
    readme.write_text(text)
    written.paths = [runs_path, summary_path, readme] + written.paths
    if log_artifacts:
        parent_id = records.parent.info.run_id
        try:
            for path in written.paths:
                artifact_dir = "report/figures" if path.parent.name == "figures" else "report"
                _retry(client.log_artifact, parent_id, str(path), artifact_dir)
        except Exception as error:
            raise ReportError(f"wrote {study_dir}, but could not log it to parent run {parent_id}: "
                              f"{_one_line(error)} (--no-log to skip)") from None
    return written


# ----------------------------------------------------------------------------------------------------
# README


def render_readme(records: StudyRecords, tables: Tables, written: Written) -> str:
    import matplotlib
    import mlflow
    import pandas as pd
    import seaborn

    runs, summary = tables.runs, tables.summary
    kept = included(runs)
    parent = records.parent
    statuses = Counter(runs["status"])
    devices = Counter(d for d in runs["device"] if isinstance(d, str))
    torch_versions = sorted({v for v in runs["torch_version"] if isinstance(v, str)})
    commits = sorted({c for c in runs["git_commit"] if isinstance(c, str)})
    dirty = parent.data.tags.get("git_dirty")
    wall = float(runs["wall_time_s"].sum(skipna=True))
    duration = float(runs["duration_s"].sum(skipna=True))
    started = runs["start_time"].min()
    left_out = sum(tables.left_out.values())
    budget = _budget(records, tables)

    lines = [
        f"# {records.name}: report",
        "",
        f"Built by `python -m ablations.report --study {records.name}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from MLflow `{records.uri}`, experiment "
        f"`{records.name}`, parent run `{parent.info.run_id}` ({parent.info.status}). The report trains nothing: "
        "every number below is read from the runs' records.",
    ]
    description = parent.data.tags.get("mlflow.note.content")
    if description and description != records.name:
        lines += ["", f"> {description}"]
    lines += [
        "",
        "| | |",
        "|---|---|",
        f"| hardware | {'; '.join(f'{device} ({count} runs)' for device, count in devices.most_common()) or 'not recorded'} |",
        f"| libraries | runs: torch {', '.join(torch_versions) or 'not recorded'}; report: pandas {pd.__version__}, "
        f"mlflow {mlflow.__version__}, seaborn {seaborn.__version__}, matplotlib {matplotlib.__version__} |",
        f"| code | git {', '.join(c[:12] for c in commits) or 'not recorded'}"
        + (f" (working tree dirty: {dirty})" if dirty else "") + " |",
        f"| runs | {len(runs)}: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        + (f" ({tables.left_out.get('pruned', 0)} of them pruned)" if tables.left_out.get("pruned") else "")
        + f"; {left_out} left out of the summary |",
        f"| wall time | {_duration(wall)} in all (sum of the runs' wall_time_s); {_duration(duration)} summed over the "
        f"MLflow runs' start-to-end durations (data loading and tracking included); median {_duration(float(kept['wall_time_s'].median()))} per finished run |"
        if len(kept) and kept["wall_time_s"].notna().any() else
        f"| wall time | {_duration(wall)} in all (sum of the runs' wall_time_s) |",
        f"| dates | runs started {started:%Y-%m-%d %H:%M} UTC to {runs['start_time'].max():%Y-%m-%d %H:%M} UTC |",
        f"| budget | {budget or 'see the runs’ params'} |",
        f"| varied | {_varied_text(tables)}; seeds {sorted(set(int(s) for s in runs['seed'].dropna()))} |",
    ]
    if records.earlier_parents:
        lines += ["", f"Note: {records.earlier_parents} earlier parent run(s) of a study with this name are in the "
                      "experiment; only the latest study's runs are reported."]

    best = summary.loc[summary[f"{OBJECTIVE}_mean"].idxmax()] if summary[f"{OBJECTIVE}_mean"].notna().any() else None
    worst = summary.loc[summary[f"{OBJECTIVE}_mean"].idxmin()] if best is not None else None
    lines += ["", "## Tables", "", "### `runs.parquet`: one row per trial run", ""]
    if len(kept) and kept[OBJECTIVE].notna().any():
        top, bottom = kept.loc[kept[OBJECTIVE].idxmax()], kept.loc[kept[OBJECTIVE].idxmin()]
        lines += [f"{len(runs)} runs of {runs['cell'].nunique()} configurations; {len(kept)} finished. "
                  f"probe_h ranges from {_pct(bottom[OBJECTIVE])} (`{bottom['run_name']}`) to "
                  f"{_pct(top[OBJECTIVE])} (`{top['run_name']}`).  ",
                  _seed_line(kept, tables.config_keys)]
    else:
        lines += [f"{len(runs)} runs of {runs['cell'].nunique()} configurations; {len(kept)} finished with a probe "
                  "result.  ", "No finished run has probe_h, so no configuration can be compared."]
    lines += ["", "### `summary.parquet`: one row per configuration, mean, SD and n over seeds", ""]
    if best is not None:
        lines += [f"{len(summary)} configurations, {_n_range(kept, tables.config_keys)}. Best probe_h_mean: "
                  f"{_config_name(best, tables)} {_pct(best[f'{OBJECTIVE}_mean'])} ± "
                  f"{_pct(_nan0(best[f'{OBJECTIVE}_std']), unit=False)} (n = {int(best['n'])}); worst: "
                  f"{_config_name(worst, tables)} {_pct(worst[f'{OBJECTIVE}_mean'])}.  ",
                  f"{left_out} run(s) left out (status other than FINISHED, or pruned): "
                  + (", ".join(f"{count} {reason}" for reason, count in tables.left_out.items()) or "none")
                  + "; the count is in the file's metadata (`ablations.left_out`)."]
    else:
        lines += ["No configuration has a finished run.  ", f"{left_out} run(s) left out."]
    if left_out:
        lines += ["", "| run | trial | status | why |", "|---|---|---|---|"]
        for _, row in runs[~runs.index.isin(kept.index)].head(20).iterrows():
            why = row["error"] if isinstance(row["error"], str) else ""
            lines.append(f"| `{row['run_name']}` | {row['trial']} | {row['status']}"
                         f"{' (pruned)' if row['pruned'] else ''} | {why.replace('|', '/')[:200]} |")

    verdict = written.verdict
    if verdict is not None:
        lines += ["", "## The crop-plus-color finding (SimCLR Figure 5)", "", f"**{verdict.sentence}**", ""]
        lines += [f"- Best cell: {_pair(verdict.best)} at {_pct(verdict.best_mean)}."]
        if verdict.best_other is not None:
            margin = (f"{verdict.margin_sd:.1f} pooled SD" if math.isfinite(verdict.margin_sd)
                      else "cannot be judged (no cell has two finished seeds)")
            subject = _pair(verdict.best_crop_color) if verdict.best_crop_color else _pair(verdict.best)
            lines += [f"- Best cell that is not crop with colour: {_pair(verdict.best_other)} at "
                      f"{_pct(verdict.best_other_mean)}; margin of {subject} over it: {margin}."]
        pooled = (f"{verdict.pooled_sd * 100:.2f} points" if math.isfinite(verdict.pooled_sd) else "undefined")
        lines += [f"- Pooled SD (seed-to-seed spread of one run, pooled over the cells with n ≥ 2): {pooled}."]
        lines += [f"- Why: {reason}." for reason in verdict.reasons]
        lines += ["- Rule: the finding holds when crop→color or color→crop is the best cell and beats every cell "
                  f"that does not combine crop with colour by more than {MARGIN_SD:g} pooled SD."]
        if verdict.holds is False:
            lines += [f"- This is reported as measured, not tuned away: the budget ({budget or 'see above'}) is far "
                      "below the paper's (ImageNet, ResNet-50, batch 4096, 100 epochs)."]

    lines += ["", "## Figures", "", "Each PNG has its plotted data as CSV beside it (accuracies in percent there, "
              "as in the paper). They are logged to the parent run under `report/figures`.", ""]
    titles = {
        "pair_grid": "Pair grid in the layout of SimCLR Figure 5",
        "pair_grid_vs_paper": "Pair grid beside the paper's Figure 5 (ImageNet)",
        "temperature_batch": "Temperature × batch size",
        "color_strength": "Colour-distortion strength",
        "projection_head": "Projection head, probe on h and on z",
        "training_curves": "Training curves",
    }
    for stem in FIGURES:
        if stem not in written.readings:
            continue
        lines += [f"### {titles[stem]}", "", f"![{stem}](figures/{stem}.png)", "",
                  f"Data: [`figures/{stem}.csv`](figures/{stem}.csv).", ""]
        reading = written.readings[stem]
        lines += [reading[0] + "  ", reading[1], ""]
    return "\n".join(lines).rstrip() + "\n"


def _varied_text(tables: Tables) -> str:
    keys = [k for k in tables.config_keys if k not in ("first", "second")]
    parts = ([f"{PIPELINE_KEY} as ordered pairs (columns first, second)"] if tables.pair else []) + keys
    return ", ".join(parts) or "nothing but the seed"


def _seed_line(kept, config_keys: list[str]) -> str:
    """How much the seed moves a configuration's probe accuracy."""
    keys = config_keys or ["cell"]
    spread = kept.groupby(keys, dropna=False)[OBJECTIVE].agg(["std", "count"])
    spread = spread[spread["count"] >= 2]["std"].dropna()
    if spread.empty:
        return "One seed per configuration: the seed-to-seed spread is unknown."
    return (f"Across seeds, a configuration's probe_h varies by a median SD of {spread.median() * 100:.2f} points "
            f"(largest {spread.max() * 100:.2f}).")


def _budget(records: StudyRecords, tables: Tables) -> str:
    """The training budget: the BUDGET_KEYS params the runs share."""
    parts = []
    for key in BUDGET_KEYS:
        if key in tables.config_keys:
            continue
        value = _budget_value(records, key)
        if value is not None:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def _budget_value(records: StudyRecords, key: str) -> str | None:
    """A param's value when every run has the same one."""
    values = {run.data.params.get(key) for run in records.trials}
    return values.pop() if len(values) == 1 else None


def _config_name(row, tables: Tables) -> str:
    if tables.pair:
        text = _pair((row["first"], row["second"]))
        rest = [k for k in tables.config_keys if k not in ("first", "second")]
        return text + ("" if not rest else " " + " ".join(f"{k}={_fmt_value(row[k])}" for k in rest))
    return " ".join(f"{k}={_fmt_value(row[k])}" for k in tables.config_keys) or "base"


def _n_range(kept, config_keys: list[str]) -> str:
    """n per configuration over the included runs: `n = 2`, `n = 1 to 2`."""
    return _n_text(kept.groupby(config_keys or ["cell"], dropna=False).size()) if len(kept) else "n = 0"


def _n_text(counts) -> str:
    low, high = int(min(counts)), int(max(counts))
    return f"n = {low}" if low == high else f"n = {low} to {high}"


# ----------------------------------------------------------------------------------------------------
# Small formatting helpers of this module


def _pair(cell: tuple[str, str] | None) -> str:
    if cell is None:
        return "none"
    first, second = cell
    return first if first == second else f"{first}→{second}"


def _pct(value: float, unit: bool = True, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:{'+' if sign else ''}.1f}" + (" %" if unit else "")


def _nan0(value: float) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _ordinal(rank: float) -> str:
    rank = float(rank)
    if not rank.is_integer():
        return f"{rank:g} (tied)"
    n = int(rank)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _monotonic(values) -> bool:
    values = list(values)
    return all(b >= a for a, b in zip(values, values[1:]))


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _cell_value(value: Any) -> Any:
    """A varied value as a table cell: scalars as they are, a pipeline as `crop+color`, else JSON."""
    if isinstance(value, list) and all(isinstance(v, str) or (isinstance(v, dict) and "op" in v) for v in value):
        if not value:
            return "[]"
        parts = []
        for op in value:
            if isinstance(op, str):
                parts.append(op)
            else:  # {op: name, **params} as in ablations.study.format_value
                params = ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}"
                                  for k, v in sorted(op.items()) if k != "op")
                parts.append(f"{op['op']}({params})" if params else op["op"])
        return "+".join(parts)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def _typed(values: list[Any]):
    """A column typed by its values: bool, int64 (Int64 with gaps), float64, else str."""
    import pandas as pd

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean" if len(present) < len(values) else "bool")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="Int64" if len(present) < len(values) else "int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else str(v) for v in values], dtype="str")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300] + ("..." if len(text) > 300 else "")


# ----------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ablations.report",
        description="Tables (Parquet), figures (PNG + CSV) and a README from what a study recorded in MLflow. "
                    "Trains nothing.",
        epilog="The columns of runs.parquet and summary.parquet are documented in reports/README.md.",
    )
    parser.add_argument("--study", default=None,
                        help="the study (MLflow experiment) to report; default: every experiment with a study's "
                             "parent run")
    parser.add_argument("--out", default="reports", help="output folder; each study gets <out>/<study>/ (default reports)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the report to the study's parent run (a read-only store, say)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return int(exit_.code or 0)
    try:
        return _main(args)
    except ReportError as error:
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        return EXIT_BAD_INPUT


def _main(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.tracking_uri)
    client = open_client(uri)
    names = [args.study] if args.study else list_studies(client, uri)
    if not names:
        raise ReportError(f"no studies in {uri} (no run tagged ablations.role=parent); run one first "
                          "(python -m ablations.run studies/<file>.yaml) or pass --tracking-uri")
    out_dir = Path(args.out)
    for name in names:
        try:
            records = read_study(client, uri, name)
        except ReportError as error:
            if args.study:
                raise
            print(f"skipped {name}: {error}", file=sys.stderr)
            continue
        written = build_report(client, records, out_dir, log_artifacts=not args.no_log)
        statuses = Counter(run.info.status for run in records.trials)
        print(f"{name}: {len(records.trials)} runs ("
              + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) + ")")
        for path in written.paths:
            print(f"  wrote {path}")
        if written.verdict is not None:
            print(f"  {written.verdict.sentence}")
        if not args.no_log:
            print(f"  logged to MLflow parent run {records.parent.info.run_id} under report/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
