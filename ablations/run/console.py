"""What a study prints: the opening line, progress bars, one line per finished trial, the table of the
best cells and where the results are (the report step is `final_report`).

Only formatting and printing: the numbers come from the Optuna study (`Session.study`) and MLflow.
"""

from __future__ import annotations

import signal
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from ablations.stores import resume
from ablations.stores.errors import mask_url
from ablations.stores.identity import unit_of
from ablations.design.plan import cell_name
from ablations.stores.tracking import DECIMALS
from ablations.stores.ui_view import runs_url, ui_command
from simclr_core.trainer import (
    describe_device, describe_numerics, numeric_settings, recorded_numerics, select_device,
)

if TYPE_CHECKING:
    from ablations.run.session import Session

# Rows of failed trials listed under the summary table.
FAILED_SHOWN = 5
# The widest cell name the summary table pads to.
CELL_WIDTH = 60
# The summary's mark on a cell that the study file no longer plans.
NOT_IN_FILE = "(not in the file)"


def fmt(value: float | None) -> str:
    """An accuracy in percent, as the report prints it, with the precision MLflow holds (4 decimals of the
    fraction, tracking.rounded): 0.4047 -> `40.47 %`."""
    return "-" if value is None else f"{value * 100:.{DECIMALS - 2}f} %"


def print_header(session: Session) -> None:
    """The study's first line: its name, commit, trials and what this start put back in the queue."""
    prepared = session.prepared
    print(f"study {session.spec.name} (git {session.env_tags['git_commit'][:12]}): "
          f"{prepared.units} trials, {prepared.done} done"
          + (f", {prepared.enqueued} (re)queued" if prepared.enqueued else "")
          + (f"; trials {prepared.failed_stale} had died: their cells run again"
             if prepared.failed_stale else "")
          + (f"; {prepared.replanned} waiting trials take the edited study file's configuration"
             if prepared.replanned else ""), flush=True)
    name = session.spec.name
    for op, source in session.spec.ops.items():  # where each op not built in comes from; its contract held
        if source.kind != "built-in":
            print(f"study {name}: op {op}: {source.label()}", flush=True)
    if prepared.recovered:
        print(f"study {name}: {_count(len(prepared.recovered), 'trial')} finished in MLflow had lost their result in "
              f"the Optuna storage {session.storage_label} (cut short, damaged or restored from an older copy): "
              f"{_listed(prepared.recovered)}; their results are written back there, not trained again",
              flush=True)
    if prepared.changed_failures:
        names = {t.number: t.user_attrs.get("run_name", f"trial-{t.number}") for t in session.study.get_trials(deepcopy=False)}
        print(f"study {name}: {_count(len(prepared.changed_failures), 'failed trial')} ran with a configuration the "
              "study file has since changed ("
              + _listed(f"{names[number]}: {change}" for number, change in prepared.changed_failures.items())
              + "); failures are kept as results: rerun with --retry-failed to run them with the file's configuration",
              flush=True)
    if prepared.added:
        print(f"study {name}: the study file adds {_count(len(prepared.added), 'trial')} to those planned before "
              f"({_listed(unit.run_name for unit in prepared.added)}); new values or seeds extend a study", flush=True)
    mixed = numerics_change(session)
    if mixed:
        print(f"study {name}: {mixed}", flush=True)
    if prepared.dropped_cells:
        dropped = len(prepared.dropped_cells)
        print(f"study {name}: {_count(dropped, 'cell')} recorded before {'is' if dropped == 1 else 'are'} no longer "
              "in the study file "
              f"({_listed(cell_name(cell) for cell in prepared.dropped_cells)}); their trials stay in the records, "
              "marked in the summary",
              flush=True)


def numerics_change(session: Session) -> str | None:
    """A warning where this machine computes the study's trials in other numerics than its finished ones:
    `train.precision: auto` resolves per machine (bf16 where the CPU has it natively, else fp32), so a study
    resumed on another kind of machine would pool both. None where they agree, where the precision is a
    searched key, or where no finished trial recorded its numerics (runs before 2026-12-08)."""
    spec = session.spec
    if "train.precision" in spec.search.varied_keys:
        return None
    device = select_device(spec.base.train.device)
    here = describe_numerics(numeric_settings(spec.base.train, device)[0])
    before = Counter()
    for trial in session.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        numerics = recorded_numerics(str(trial.user_attrs.get("device", "")))
        if numerics is not None:
            before[numerics] += 1
    other = {numerics: count for numerics, count in before.items() if numerics != here}
    if not other:
        return None
    return (f"warning: {_listed(f'{count} finished trial(s) in {numerics}' for numerics, count in other.items())}, "
            f"and this machine computes in {here} (train.precision {spec.base.train.precision} on "
            f"{describe_device(device)}): the study will pool runs of both numerics (the README's hardware line "
            "shows each run's); to keep one, resume on a machine of the earlier kind")


# Names listed in one line of the header, before `and N more`.
NAMES_LISTED = 4


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _listed(names: Iterable[str]) -> str:
    names = list(names)
    more = f" and {len(names) - NAMES_LISTED} more" if len(names) > NAMES_LISTED else ""
    return ", ".join(names[:NAMES_LISTED]) + more


def trials_bar(session: Session) -> tqdm:
    """The bar over the study's cell x seed units."""
    # disable=None: bars on a terminal only; logs and pipes get the one-line summaries.
    return tqdm(total=session.prepared.units, initial=session.prepared.done, desc=session.spec.name,
                unit="trial", dynamic_ncols=True, disable=None)


def epoch_bar(name: str, epochs: int) -> tqdm:
    """The bar over one trial's epochs, gone when the trial ends."""
    return tqdm(total=epochs, desc=f"  {name}", unit="epoch", leave=False, dynamic_ncols=True, disable=None)


def write(line: str, bar: tqdm | None) -> None:
    """A line above the bars where there are bars, else a plain printed line; flushed at once either way:
    a study's output is often read while it runs through a pipe or a log file, where Python holds lines
    back until its buffer fills (the parent of three workers had shown 1 of 5 finished trials)."""
    if bar is not None:
        tqdm.write(line)
        sys.stdout.flush()
    else:
        print(line, flush=True)


def worker_ended(index: int, code: int, log: Path) -> str:
    """How a worker process ended, other than with status 0: the signal that killed it, by name, or its
    status and the last line of its log."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker {index} was killed by {name} (log: {log})"
    lines = [line for line in (log.read_text(errors="replace").splitlines() if log.exists() else []) if line.strip()]
    return f"worker {index} exited with status {code}" + (f": {lines[-1].strip()}" if lines else "") + f" (log: {log})"


def print_stopped_workers(lines: list[str], finished: bool) -> None:
    """Workers that ended early: a warning where the others finished the study (its records are complete),
    else the error that fails the command."""
    for line in lines:
        print(f"warning: {line}; the other workers finished the study" if finished else f"error: {line}",
              file=sys.stderr)


def confirmation_line(count: int, seeds: Iterable[int]) -> str:
    """The line that tells of a confirmation round: how many trials it added, with which seed."""
    seeds_text = ", ".join(str(seed) for seed in sorted(set(seeds)))
    return f"confirmation: {count} trial(s) added (seed {seeds_text}) where the verdict is still open"


def new_rung_units(trials: list[FrozenTrial], announced: set[int], first_rung: int) -> list[FrozenTrial]:
    """A race's trials of a later rung (or the audit) not in `announced`, retried copies left out; each is
    added to `announced`."""
    return _told_once(trials, announced,
                      lambda trial: trial.user_attrs.get("race") and trial.user_attrs.get("rung") != first_rung)


def _told_once(trials: list[FrozenTrial], announced: set[int],
               wanted: Callable[[FrozenTrial], Any]) -> list[FrozenTrial]:
    """The `wanted` trials of a unit not told yet, one per unit (two workers may enqueue one unit at once; its
    copy backs off unrun), retried copies left out; every wanted trial of a unit told is added to `announced`."""
    told = {unit_of(t) for t in trials if t.number in announced}
    new = []
    for trial in trials:
        unit = unit_of(trial)
        if wanted(trial) and trial.number not in announced and "retry_of" not in trial.user_attrs and unit not in told:
            new.append(trial)
            told.add(unit)
    announced.update(t.number for t in trials if wanted(t) and unit_of(t) in told)
    return new


def rung_lines(trials: list[FrozenTrial]) -> list[str]:
    """`race: 6 trial(s) added at 6 epochs (2 audit)`, one line per rung."""
    by_rung: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        by_rung.setdefault(int(trial.user_attrs["rung"]), []).append(trial)
    lines = []
    for rung, members in sorted(by_rung.items()):
        audit = sum(t.user_attrs.get("race") == "audit" for t in members)
        lines.append(f"race: {len(members)} trial(s) added at {rung} epochs" + (f" ({audit} audit)" if audit else ""))
    return lines


def new_confirmations(trials: list[FrozenTrial], announced: set[int]) -> list[FrozenTrial]:
    """The trials a confirmation round added that are not in `announced` (trial numbers already told),
    which is updated, one per unit. With --workers N a worker process enqueues the round and its own line
    goes to its log; the parent, which polls the study, tells of the round from these."""
    return _told_once(trials, announced, lambda trial: trial.user_attrs.get("confirm"))


def trial_line(trial: FrozenTrial) -> str:
    """One finished trial as read back from the study (a worker process's trial, seen by its parent)."""
    name = trial.user_attrs.get("run_name", f"trial-{trial.number}")
    attrs = trial.user_attrs
    if trial.state.name == "COMPLETE":
        z = f" probe_z {fmt(attrs.get('probe_z'))}" if attrs.get("probe_z") is not None else ""
        return f"trial {trial.number:>3} {name}: probe_h {fmt(attrs.get('probe_h'))}{z} ({attrs.get('wall_time_s', 0):.0f} s)"
    if trial.state.name == "PRUNED":
        return f"trial {trial.number:>3} {name}: {attrs.get('pruned', 'pruned')}"
    if "error" in attrs:
        return f"trial {trial.number:>3} {name}: FAILED: {attrs['error']}"
    return f"trial {trial.number:>3} {name}: {'interrupted' if attrs.get('outcome') else 'worker died'}; will run again"


def running_epochs(trials: list[FrozenTrial]) -> str:
    """The progress bar's postfix: epoch and loss of up to four running trials."""
    running = [t for t in trials if t.state.name == "RUNNING" and "progress" in t.user_attrs]
    return "  ".join(
        f"#{t.number} {t.user_attrs['progress']['epoch']}/{t.user_attrs['progress']['epochs']}"
        f" loss {t.user_attrs['progress']['loss']:.3f}" for t in running[:4])


class CellRow(NamedTuple):
    """One row of the summary table: a cell's complete trials, over its seeds."""

    mean: float  # of probe_h (or knn_acc where the probe is off): the trial's value
    sd: float  # 0 for one seed
    n: int
    probe_z: float | None  # mean, where recorded
    wall_s: float  # mean
    cell: str
    trials: list[int]

    @property
    def name(self) -> str:
        """The configuration's name, as its runs' names and tag `ablations.config` in MLflow and the report
        write it (`crop+color`)."""
        return cell_name(self.cell)


def summary_rows(trials: list[FrozenTrial]) -> list[CellRow]:
    """The complete trials grouped by cell, best mean first."""
    by_cell: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        rung = trial.user_attrs.get("rung")  # a race: each rung of a cell is a row of its own
        key = trial.user_attrs.get("cell", str(trial.number)) + (f" epochs={rung}" if rung is not None else "")
        by_cell.setdefault(key, []).append(trial)
    rows = []
    for cell, members in by_cell.items():
        h = [t.value for t in members]
        z = [t.user_attrs["probe_z"] for t in members if t.user_attrs.get("probe_z") is not None]
        rows.append(CellRow(statistics.fmean(h), statistics.stdev(h) if len(h) > 1 else 0.0, len(h),
                            statistics.fmean(z) if z else None,
                            statistics.fmean(t.user_attrs.get("wall_time_s", 0) for t in members),
                            cell, sorted(t.number for t in members)))
    rows.sort(key=lambda row: -row.mean)
    return rows


def summary_line(row: CellRow, width: int) -> str:
    """One row of the summary table, accuracies in percent as the report writes them (`40.5 % ± 1.5`), so
    the terminal and the report's README speak one unit; MLflow and the trial lines keep the fraction."""
    # Here, not at the top: the report package loads pandas and matplotlib, which worker processes (they
    # import this module for the trial lines) never need; the summary is printed once, at the end.
    from ablations.report.formatting import pct, pct_spread

    spread = (f"{pct_spread(row.mean, row.sd)} (n={row.n})" if row.n > 1
              else f"{pct(row.mean)} (n=1, no spread)")
    probe_z = "-" if row.probe_z is None else pct(row.probe_z)
    return f"{spread:<26} {probe_z:>8} {row.wall_s:>7.0f}  {row.name:<{width}}  {','.join(map(str, row.trials))}"


def print_summary(session: Session, top: int) -> None:
    """The best cells (mean over seeds, with spread and n), then the failed trials."""
    spec, study = session.spec, session.study
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    failed = [t for t in study.get_trials(deepcopy=False)
              if t.state.name == "FAIL" and "error" in t.user_attrs]
    rows = summary_rows(trials)
    dropped = set(session.prepared.dropped_cells) if session.prepared else set()
    done = resume.units_done(study)
    print(f"\n{spec.name}: {len(trials)} trials complete, {len(failed)} failed; "
          f"{done} of {max(session.prepared.units, resume.units_known(study))} cell x seed units done")
    if rows:
        width = min(CELL_WIDTH, max(len(row.name) for row in rows[:top]))
        print(f"{'probe_h (mean ± sd, n)':<26} {'probe_z':>8} {'wall s':>7}  {'configuration':<{width}}  trials")
        for row in rows[:top]:
            print(summary_line(row, width) + (f"  {NOT_IN_FILE}" if row.cell in dropped else ""))
        if dropped & {row.cell for row in rows[:top]}:
            print(f"{NOT_IN_FILE}: a cell recorded before and no longer in the study file")
    changed = session.prepared.changed_failures if session.prepared else {}
    for trial in failed[:FAILED_SHOWN]:
        # Its error's advice, where the file has changed since, may be what the user already did.
        why = (f"with the configuration before the study file's edit ({changed[trial.number]}); --retry-failed runs it "
               "with the file's" if trial.number in changed else trial.user_attrs["error"])
        print(f"failed: trial {trial.number} {trial.user_attrs.get('run_name', '')}: {why}")


def all_failed(session: Session) -> str | None:
    """The error line of a study in which every trial failed (no result at all), else None: a study like
    that has nothing to report and must not exit 0."""
    trials = session.study.get_trials(deepcopy=False)
    if any(t.state.name in ("COMPLETE", "PRUNED") for t in trials):
        return None
    failed = [t for t in trials if t.state.name == "FAIL" and "error" in t.user_attrs]
    if not failed:
        return None
    changed = session.prepared.changed_failures if session.prepared else {}
    advice = ("the study file has changed since they failed: rerun with --retry-failed to run them with it"
              if changed else f"the first error: {failed[0].user_attrs['error']}; fix its cause in the study file, "
              "then rerun with --retry-failed")
    return f"every trial of study {session.spec.name} failed ({len(failed)} failed, none finished); {advice}"


def print_locations(session: Session, report: Path | None) -> None:
    """Where the results are, and the command that opens them; the last lines the user sees."""
    name, uri = session.spec.name, mask_url(session.tracker.uri)
    print(f"\nOptuna study '{name}': {session.storage_label}")
    print(f"MLflow experiment '{name}' (parent run {session.parent_run_id}): {uri}")
    if report is not None:
        print(f"Report: {report}")
    print(f"Open the MLflow UI:  {ui_command(uri)}")
    print(f"  then the study's runs: {runs_url(session.tracker.uri, session.tracker.experiment_id)}")
