"""Scheduling on Optuna, without training: every unit claimed exactly once (duplicates back off),
dead trials failed and their units enqueued again once, resume, sampled studies' budgets.

The multi-process races and kill -9 runs are in tests/test_run_workers.py and tests/test_distributed.py."""

import json
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState
from test_run_support import enqueue_plan

from ablations.stores import optuna_params, resume, search
from ablations.run.study_file import load_study

FOUR_CELLS = "search: {pairs: [crop, color]}\n"


def study_file(tmp_path, body: str, name: str = "s"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nbase: {{data: {{dataset: synthetic}}, train: {{epochs: 1}}}}\n{body}")
    return path


@pytest.fixture(params=["journal", "sqlite"])
def storage_url(request, tmp_path) -> str:
    return str(tmp_path / "s.journal") if request.param == "journal" else f"sqlite:///{tmp_path}/s.db"


def opened(spec, url, tmp_path, **kwargs):
    """A worker's view: its own storage object and study, as a separate process would have."""
    storage = search.open_storage(url, tmp_path / "unused.journal", kwargs.pop("heartbeat_interval", 30), **kwargs)
    study, _ = search.open_study(spec, storage)
    return storage, study


def claim_all(study, spec, storage) -> list:
    claims = []
    while (claim := search.claim_next(study, spec, storage)) is not None:
        claims.append(claim)
    return claims


def test_every_waiting_unit_is_claimed_once_with_its_plan(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, FOUR_CELLS + "seeds: [0, 1]\n"))
    storage, study = opened(spec, storage_url, tmp_path)
    assert enqueue_plan(study, spec) == 8
    claims = claim_all(study, spec, storage)
    planned = {p.unit: p for p in spec.trials()}
    assert sorted(c.attrs["unit"] for c in claims) == sorted(planned)
    for claim in claims:
        assert claim.attrs["config"] == planned[claim.attrs["unit"]].config.to_plain()
        assert claim.run_name == planned[claim.attrs["unit"]].run_name
        assert claim.attrs["checkpoint"] == f"trial-{claim.number}" and ":" in claim.attrs["worker"]
        assert storage.get_trial(claim.trial_id).number == claim.number
    assert search.work_left(study, spec) == (0, 8)
    assert all(search.finish(study, c, value=0.5, state=TrialState.COMPLETE) for c in claims)
    assert resume.units_done(study) == 8 and search.claim_next(study, spec, storage) is None



def test_checkpoints_of_two_stores_sharing_a_runs_folder_do_not_meet(tmp_path):
    """The same study name in two stores (say a local journal and --storage elsewhere) shares
    runs/<study>/: each store's trial 0 must get its own checkpoint folder, under its study's uid."""
    spec = load_study(study_file(tmp_path, FOUR_CELLS))
    folders = []
    for name, uid in (("a", "1111111111112222"), ("b", "3333333333334444")):
        storage, study = opened(spec, str(tmp_path / f"{name}.journal"), tmp_path)
        study.set_user_attr(search.UID_ATTR, uid)
        enqueue_plan(study, spec)
        claim = search.claim_next(study, spec, storage)
        assert claim.number == 0
        folders.append(claim.attrs["checkpoint"])
    assert folders == ["111111111111/trial-0", "333333333333/trial-0"]

def test_a_duplicate_copy_of_a_unit_backs_off(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, ""))
    storage, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)
    enqueue_plan(study, spec)  # as two processes re-enqueueing one dead unit at once would
    first = search.claim_next(study, spec, storage)
    assert first.number == 0
    assert search.claim_next(study, spec, storage) is None
    copy = study.get_trials()[1]
    assert copy.state == TrialState.FAIL and copy.user_attrs["duplicate_of"] == 0


def test_two_workers_claim_every_unit_exactly_once(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, "search: {pairs: [crop, color, cutout]}\nseeds: [0, 1]\n"))
    workers = [opened(spec, storage_url, tmp_path) for _ in range(2)]
    study = workers[0][1]
    enqueue_plan(study, spec)
    for planned in spec.trials()[::4]:  # duplicate copies of 5 units
        study.add_trial(search.optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=resume.plan_attrs(planned)))
    done: list[list[str]] = [[], []]

    def work(index: int) -> None:
        storage, worker_study = workers[index]
        while (claim := search.claim_next(worker_study, spec, storage)) is not None:
            assert search.finish(worker_study, claim, value=0.5, state=TrialState.COMPLETE)
            done[index].append(claim.attrs["unit"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(done[0] + done[1]) == sorted(p.unit for p in spec.trials())
    backed_off = [t for t in study.get_trials() if t.state != TrialState.COMPLETE]
    assert len(backed_off) == 5 and all("duplicate_of" in t.user_attrs for t in backed_off)


def test_a_dead_trial_is_failed_and_its_unit_enqueued_again_once(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, FOUR_CELLS))
    storage, study = opened(spec, storage_url, tmp_path, heartbeat_interval=1, grace_period=1)
    other_storage, other_study = opened(spec, storage_url, tmp_path, heartbeat_interval=1, grace_period=1)
    enqueue_plan(study, spec)
    dead, alive = search.claim_next(study, spec, storage), search.claim_next(study, spec, storage)
    with alive.heartbeat():
        time.sleep(3.5)  # past the grace period; SQLite's clock counts whole seconds
        failed = resume.fail_stale(study, storage) + resume.fail_stale(other_study, other_storage)
    assert failed == [dead.number]
    assert not search.finish(study, dead, value=0.5, state=TrialState.COMPLETE)  # its result no longer counts
    copies = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == dead.number]
    assert len(copies) == 1 and copies[0].state == TrialState.WAITING
    # The copy carries the plan (floor and confirm are there only for such units).
    planned = [k for k in resume.PLAN_ATTRS if k in dead.attrs]
    assert {k: copies[0].user_attrs.get(k) for k in resume.PLAN_ATTRS} == {k: dead.attrs.get(k) for k in resume.PLAN_ATTRS}
    assert set(planned) >= {"unit", "cell", "seed", "varied", "config", "checkpoint"}
    rest = {claim.number: claim.attrs["unit"] for claim in claim_all(study, spec, storage)}
    assert len(rest) == 3 and rest[copies[0].number] == dead.attrs["unit"]
    assert search.finish(study, alive, value=0.5, state=TrialState.COMPLETE)


def test_callers_that_pass_no_storage_get_the_studys_own(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, ""))
    _, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)
    claim = search.claim_next(study, spec)
    with claim.heartbeat() as beating:
        assert beating.interval == 30
    assert resume.fail_stale(study) == []
    assert search.finish(study, claim, value=0.5, state=TrialState.COMPLETE)


def test_resume_enqueues_what_is_missing_and_refuses_a_changed_configuration(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, FOUR_CELLS))
    storage, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)
    for claim in claim_all(study, spec, storage)[:2]:
        search.finish(study, claim, value=0.5, state=TrialState.COMPLETE)
    more_seeds = load_study(study_file(tmp_path, FOUR_CELLS + "seeds: [0, 1]\n"))
    prepared = resume.prepare(study, more_seeds, storage=storage)
    assert (prepared.units, prepared.done, prepared.enqueued, prepared.failed_stale) == (8, 2, 4, [])
    longer = load_study(study_file(tmp_path, FOUR_CELLS), ["train.epochs=2"])
    with pytest.raises(search.SearchError, match="another configuration .*train.epochs: 1 -> 2"):
        resume.prepare(study, longer, storage=storage)


def test_interrupted_units_come_back_and_failed_ones_only_when_asked(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, FOUR_CELLS))
    storage, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)
    interrupted, failed, *_ = claim_all(study, spec, storage)
    search.finish(study, interrupted, state=TrialState.FAIL, attrs={"outcome": "interrupted"})
    search.finish(study, failed, state=TrialState.FAIL, attrs={"error": "non-finite loss"})
    assert resume.requeue_orphans(study) == 1
    assert resume.requeue_orphans(study) == 0  # its copy is waiting now
    assert resume.requeue_orphans(study, retry_failed=True) == 1
    units = [t.user_attrs["unit"] for t in study.get_trials(states=(TrialState.WAITING,))]
    assert sorted(units) == sorted([interrupted.attrs["unit"], failed.attrs["unit"]])


def test_a_sampled_study_samples_each_claim_and_keeps_to_its_budget(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, "search:\n  sampler: random\n  n_trials: 3\n  params:\n"
                                           "    train.lr: {type: float, low: 0.1, high: 1.0}\n"
                                           "    augment.pipeline: {type: categorical, choices: [[crop], [crop, color]]}\n"))
    storage, study = opened(spec, storage_url, tmp_path)
    assert enqueue_plan(study, spec) == 0
    claims = claim_all(study, spec, storage)
    assert [c.attrs["unit"] for c in claims] == ["trial-0", "trial-1", "trial-2"]
    for claim in claims:
        lr = claim.attrs["config"]["train"]["lr"]
        assert 0.1 <= lr <= 1.0 and claim.varied["train.lr"] == lr
        assert claim.attrs["config"]["augment"]["pipeline"] in (["crop"], ["crop", "color"])
        # Pipelines go to Optuna as JSON strings (optuna-dashboard shows them) and come back decoded.
        assert json.loads(claim.trial.params["augment.pipeline"]) == claim.attrs["config"]["augment"]["pipeline"]


# What Optuna's own tools read (issue 20: optuna-dashboard as a second viewer)

def test_grid_trials_carry_their_configuration_as_optuna_params(tmp_path, storage_url):
    """A grid's cells as categorical params (a pair study's as first/second, the floor as None), the
    objective named probe_h: Optuna's parameter importance works on the finished study."""
    spec = load_study(study_file(tmp_path, "search: {pairs: [crop, color], grid: {train.temperature: [0.1, 0.5]}}\n"
                                           "floor: true\nseeds: [0, 1]\n"))
    storage, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)
    claims = claim_all(study, spec, storage)
    for claim in claims:
        search.finish(study, claim, value=0.3 if claim.attrs.get("floor") else 0.4 + 0.1 * (claim.attrs["pair"][0] == "crop")
                      + 0.01 * claim.attrs["seed"], state=TrialState.COMPLETE)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert len(trials) == 2 * (8 + 1) and study.metric_names == ["probe_h"]
    assert "kNN" in study.user_attrs[search.INTERMEDIATE_ATTR]
    for trial in trials:
        attrs = trial.user_attrs
        expected = ({"first": None, "second": None, "train.temperature": None} if attrs.get("floor") else
                    {"first": attrs["pair"][0], "second": attrs["pair"][1],
                     "train.temperature": attrs["varied"]["train.temperature"]})
        assert trial.params == expected, trial.number
        assert trial.distributions["first"].choices == ("crop", "color", None)
        assert trial.distributions["train.temperature"].choices == (0.1, 0.5, None)
    importances = optuna.importance.get_param_importances(study)
    assert set(importances) == {"first", "second", "train.temperature"}
    assert max(importances, key=importances.get) == "first"  # the only param the values follow
    # A retried copy of a dead trial inherits the params; a claim does not record them twice.
    assert optuna_params.grid_params(spec, {"pair": ["crop", "color"], "varied": {"train.temperature": 0.7}}) == {
        "first": ("crop", optuna.distributions.CategoricalDistribution(["crop", "color", None])),
        "second": ("color", optuna.distributions.CategoricalDistribution(["crop", "color", None]))}


def test_a_sampled_study_is_importance_ready_too(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, "search:\n  sampler: random\n  n_trials: 4\n  params:\n"
                                           "    train.lr: {type: float, low: 0.1, high: 1.0}\n"
                                           "    train.temperature: {type: categorical, choices: [0.1, 0.5]}\n"))
    storage, study = opened(spec, storage_url, tmp_path)
    for claim in claim_all(study, spec, storage):
        search.finish(study, claim, value=claim.trial.params["train.lr"], state=TrialState.COMPLETE)
    assert set(optuna.importance.get_param_importances(study)) == {"train.lr", "train.temperature"}
    assert study.metric_names == ["probe_h"]


# A study's design and edits of its file (issue: "Nothing a user does breaks a study")

def test_a_key_added_to_a_studys_search_is_refused_naming_it(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, FOUR_CELLS))
    storage, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)
    for claim in claim_all(study, spec, storage):
        search.finish(study, claim, value=0.5, state=TrialState.COMPLETE)
    resume.prepare(study, spec, storage=storage)  # unchanged: fine
    widened = load_study(study_file(tmp_path, FOUR_CELLS.replace("}", ", grid: {train.temperature: [0.2]}}")))
    with pytest.raises(search.SearchError, match=r"planned varying augment.pipeline.*added train.temperature.*new name"):
        resume.prepare(study, widened, storage=storage)
    # New seeds extend the design: accepted.
    more_seeds = load_study(study_file(tmp_path, FOUR_CELLS + "seeds: [0, 1]\n"))
    assert resume.prepare(study, more_seeds, storage=storage).enqueued == 4


def test_waiting_trials_take_an_edit_made_before_any_finished(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, FOUR_CELLS))
    storage, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)  # an interrupted first start: all four still waiting
    edited = load_study(study_file(tmp_path, FOUR_CELLS), ["train.epochs=3"])
    prepared = resume.prepare(study, edited, storage=storage)
    assert prepared.replanned == 4 and prepared.enqueued == 0
    claims = claim_all(study, edited, storage)
    assert {c.attrs["config"]["train"]["epochs"] for c in claims} == {3}


def test_a_configuration_that_failed_every_trial_may_be_corrected_and_rerun(tmp_path, storage_url):
    spec = load_study(study_file(tmp_path, FOUR_CELLS), ["train.lr=10.0"])
    storage, study = opened(spec, storage_url, tmp_path)
    enqueue_plan(study, spec)
    for claim in claim_all(study, spec, storage):
        search.finish(study, claim, state=TrialState.FAIL, attrs={"error": "non-finite loss"})
    corrected = load_study(study_file(tmp_path, FOUR_CELLS), ["train.lr=0.1"])
    assert resume.prepare(study, corrected, storage=storage).enqueued == 0  # failures are kept without the flag
    assert resume.prepare(study, corrected, retry_failed=True, storage=storage).enqueued == 4
    assert {c.attrs["config"]["train"]["lr"] for c in claim_all(study, corrected, storage)} == {0.1}


def test_a_joiner_stops_waiting_at_once_for_a_creator_that_is_gone(tmp_path, storage_url):
    import socket
    import subprocess
    import sys

    spec = load_study(study_file(tmp_path, FOUR_CELLS))
    _, study = opened(spec, storage_url, tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study.set_user_attr(search.CREATOR_ATTR, f"{socket.gethostname()}:{gone.stdout.strip()}")
    said = []
    # Not one pause: the answer comes from the creator's absence, not from the (long) timeout running out.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search.time, "sleep", lambda seconds: pytest.fail("waited for a creator that is gone"))
        assert search.wait_until_ready(study, timeout_s=3600, on_wait=said.append) is False
    assert said == []
    # A creator that is alive (this process) is waited for, and the wait says so.
    search.mark_creator(study)
    assert search.wait_until_ready(study, timeout_s=1, on_wait=said.append) is False
    assert len(said) == 1 and "to finish planning it" in said[0]
