"""`--dry-run` of a race (issue 28): the rungs, where the race stands, and two costs, after the same checks
on the stores a run makes (`estimate.check_as_the_run_would`). Nothing is trained and nothing written.

- worst case: every cell at every rung (nothing eliminated);
- expected: every cell at the first rung, then at each later rung the cells the race sent on where it has
  decided, else a share of the rung before: the share of the last decided rung once there is one, before
  that `EXPECTED_SHARE`, said as an assumption; plus the audited cells at the last rung.
A trial's cost at a rung is the mean of its cell's recorded trials at that rung where there are some;
otherwise the timed estimate (`estimate.estimate_trial_seconds`, by training steps) at that rung's length,
scaled by how the first rung's measured trials compare with their own timed estimate, once there are some.
"""

from __future__ import annotations

import argparse
import statistics

from ablations.messages import duration, one_line
from ablations.run import estimate
from ablations.design.plan import StudySpec, cell_name, expand_cells
from ablations.stats.race import describe
from ablations.stores import race as race_store

# Before any rung is decided, the share of a rung's cells assumed to go on to the next. aug_pairs' own
# 6-epoch grid (reports/aug_pairs, 3 seeds) leaves 4 of its 49 cells needed by crop_color_best; a shorter
# rung decides less, so a quarter is a cautious guess, replaced by the race's own share once it has one.
EXPECTED_SHARE = 1 / 4


def dry_run(spec: StudySpec, args: argparse.Namespace) -> int:
    trials = estimate.check_as_the_run_would(spec, args)
    race, seeds = spec.race, spec.seeds
    cells = expand_cells(spec.search)
    print(f"study {spec.name} ({spec.source}): grid, {len(cells)} cells x {len(seeds)} seeds, raced over "
          f"{', '.join(map(str, race.rungs))} epochs by the rule {spec.verdict}; audit: {race.audit_cells} "
          f"eliminated cell(s) (drawn with seed {race.audit_seed}) also run at {race.rungs[-1]} epochs")
    state = race_store.state_of(spec, trials)
    states = estimate.unit_states(trials)
    for rung in state.rungs:
        units = [spec.planned(cell, seed, rung.epochs) for cell in cells if cell.id in rung.cells for seed in seeds]
        done = sum(states.get(u.unit) in ("done", "failed") for u in units)
        print(f"  {rung.epochs:>4} epochs: {len(rung.cells)} cells x {len(seeds)} seeds, {done} of {len(units)} done"
              + ("" if rung.go_on is None else f"; {len(rung.go_on)} went on"))
    for line in describe(state):
        print(line)
    if spec.floor:
        print(f"  and the untrained floor, {len(seeds)} trial(s)")
    try:
        seconds, how = _seconds(spec, trials, args.workers)
    except Exception as error:  # the data set is missing, say: still a useful dry run
        print(f"estimate unavailable: {one_line(error, limit=500, with_type=True)}")
        return 0
    worst = sum(seconds[(cell.id, r)] for r in race.rungs for cell in cells) * len(seeds)
    expected, assumed = _expected(spec, state, seconds, [cell.id for cell in cells])
    per = f" with {args.workers} worker{'s' if args.workers > 1 else ''}"
    # What a resume has left: the costs above are of the whole race, the trials already run included.
    spent = sum(float(t.user_attrs["wall_time_s"]) for t in trials
                if t.state.name == "COMPLETE" and "rung" in t.user_attrs and "wall_time_s" in t.user_attrs)
    left = (lambda total: f"; left: {duration(max(0.0, total - spent) / args.workers)}" if spent else "")
    print(f"worst case (nothing eliminated): {spec.race_limit()} trials, {duration(worst / args.workers)}{per}"
          + left(worst))
    print(f"expected: {duration(expected / args.workers)}{per}{left(expected)} ({assumed})")
    if spent:
        print(f"run so far: {duration(spent)} of trial time (the measured trials of every rung)")
    print(f"trial times: {how}")
    print("nothing was trained (--dry-run)")
    return 0


def _seconds(spec: StudySpec, trials, workers: int) -> tuple[dict[tuple[str, int], float], str]:
    """(cell id, epochs) -> seconds of one trial, and how they were had."""
    cells = expand_cells(spec.search)
    keys = [(cell, rung) for rung in spec.race.rungs for cell in cells]
    timed, how = estimate.estimate_trial_seconds([spec.planned(cell, spec.seeds[0], rung).config for cell, rung in keys],
                                                 workers=workers)
    timed_of = {(cell.id, rung): seconds for (cell, rung), seconds in zip(keys, timed)}
    recorded: dict[tuple[str, int], list[float]] = {}
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state.name == "COMPLETE" and "wall_time_s" in attrs and "rung" in attrs:
            recorded.setdefault((attrs["cell"], int(attrs["rung"])), []).append(float(attrs["wall_time_s"]))
    first = spec.race.rungs[0]
    ratios = [statistics.fmean(v) / timed_of[key] for key, v in recorded.items() if key[1] == first and key in timed_of]
    scale = statistics.median(ratios) if ratios else 1.0
    seconds = {key: statistics.fmean(recorded[key]) if key in recorded else value * scale
               for key, value in timed_of.items()}
    if ratios:
        how = (f"measured where a cell has trials at a rung; elsewhere timed steps scaled by {scale:.2f}, the median "
               f"ratio of {len(ratios)} cell(s)' measured first-rung trials to their timed estimate")
    return seconds, how


def _expected(spec: StudySpec, state, seconds: dict[tuple[str, int], float], cells: list[str]) -> tuple[float, str]:
    """Seconds of the race as far as it has decided, and beyond that at the last decided share (or
    EXPECTED_SHARE); with the sentence that says which."""
    rungs, seeds = spec.race.rungs, len(spec.seeds)
    reached = {rung.epochs: rung for rung in state.rungs}
    shares = [len(rung.go_on) / len(rung.cells) for rung in state.rungs if rung.go_on is not None and rung.cells]
    share = shares[-1] if shares else EXPECTED_SHARE
    total, count = 0.0, float(len(cells))
    for index, epochs in enumerate(rungs):
        if epochs in reached:
            names = reached[epochs].cells
            count = len(names)
            total += sum(seconds[(c, epochs)] for c in names) * seeds
        else:
            count = max(1.0, count * share)
            mean = statistics.fmean(seconds[(c, epochs)] for c in cells)
            total += count * mean * seeds
    audit = state.audit or ([] if len(state.rungs) == len(rungs) else [None] * spec.race.audit_cells)
    mean_last = statistics.fmean(seconds[(c, rungs[-1])] for c in cells)
    total += sum(seconds[(c, rungs[-1])] if c else mean_last for c in audit) * seeds
    decided = [f"{rung.epochs}: {len(rung.go_on)} of {len(rung.cells)}" for rung in state.rungs if rung.go_on is not None]
    if len(state.rungs) == len(rungs) and all(r.go_on is not None for r in state.rungs[:-1]):
        assumed = "the race's own decisions (" + "; ".join(decided) + ")"
        if state.audit:
            assumed += ", audit " + ", ".join(cell_name(c) for c in state.audit)
    elif decided:
        assumed = (f"decided so far {'; '.join(decided)}; later rungs assumed to keep the same share, "
                   f"{share:.0%}")
    else:
        assumed = (f"an assumption until the first rung is decided: {share:.0%} of a rung's cells go on to the next "
                   f"(aug_pairs' 6-epoch grid needed 4 of 49)")
    return total, assumed
