"""Opening Optuna storages: one-line errors before any training, torn journal lines, journal
heartbeats, and the atomic WAITING -> RUNNING claim on SQLite."""

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from ablations.stores.optuna_storage import (
    HEARTBEAT_ATTR, Heartbeat, HeartbeatJournalStorage, RetryingRDBStorage, open_storage,
    repair_journal,
)
from ablations.stores.errors import SearchError, StoreCannotWrite


@pytest.mark.parametrize("url, interval, message", [
    (None, 0, "--heartbeat-interval: 0 is not allowed; expected seconds >= 1"),
    ("optuna.db", 30, "is neither a path ending in .journal nor a database URL"),
    ("postgres://user:secret@localhost/db", 30, "write postgresql://, SQLAlchemy's name for it"),
    ("sqlite:////no/such/folder/optuna.db", 30, "cannot connect"),
])
def test_unusable_storages_are_one_clear_error(tmp_path, url, interval, message):
    with pytest.raises(SearchError) as caught:
        open_storage(url, tmp_path / "default.journal", interval)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_journal_path_is_made_absolute_and_its_folder_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = open_storage("studies/s.journal", tmp_path / "unused.journal", heartbeat_interval=30)
    assert isinstance(storage, HeartbeatJournalStorage)
    assert (tmp_path / "studies").is_dir()
    default = open_storage(None, tmp_path / "runs" / "default.journal", heartbeat_interval=30, grace_period=90)
    assert default.get_heartbeat_interval() == 30 and default.grace_period == 90
    assert (tmp_path / "runs").is_dir()


def test_a_database_url_opens_a_retrying_rdb_storage_with_heartbeats(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", tmp_path / "unused", heartbeat_interval=7, retry_for=3)
    assert isinstance(storage, RetryingRDBStorage)
    assert storage.get_heartbeat_interval() == 7 and storage.retry_for == 3


def test_a_torn_last_journal_line_is_cut(tmp_path):
    journal = tmp_path / "s.journal"
    assert not repair_journal(journal)  # nothing there yet
    journal.write_bytes(b'{"op_code": 0}\n{"op_code": 5, "worker_')
    assert repair_journal(journal)
    assert journal.read_bytes() == b'{"op_code": 0}\n'
    assert not repair_journal(journal)


def test_a_full_disk_under_the_journal_names_the_journal_and_loses_nothing(tmp_path, monkeypatch):
    """Optuna said only "[Errno 28] No space left on device", and its torn line made every later line
    unreadable."""
    journal = tmp_path / "s.journal"
    storage = open_storage(str(journal), None, heartbeat_interval=30)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({}, user_attrs={"unit": "a"})
    recorded = journal.read_bytes()

    def full_disk(self, logs):
        with open(journal, "ab") as file:  # a stand-in for Optuna's own write
            file.write(b'{"op_code": 4, "study_')  # as far as the disk had room
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(StoreCannotWrite) as caught:
        patch.setattr(optuna.storages.journal.JournalFileBackend, "append_logs", full_disk)
        study.set_user_attr("after", 1)
    message = str(caught.value)
    assert f"Optuna journal {journal} cannot write: the disk holding {journal} is full" in message
    assert "nothing recorded before is lost" in message and "free space on that disk" in message
    assert "\n" not in message
    assert journal.read_bytes() == recorded  # the torn line is cut at once: another worker's next line is readable
    study.enqueue_trial({}, user_attrs={"unit": "b"})  # space freed: the same storage goes on
    again = optuna.load_study(study_name="s", storage=open_storage(str(journal), None, heartbeat_interval=30))
    assert [t.user_attrs["unit"] for t in again.get_trials()] == ["a", "b"]


def journal_study(path, callback=None, grace_period=1):
    storage = HeartbeatJournalStorage(optuna.storages.journal.JournalFileBackend(str(path)), heartbeat_interval=1,
                                      grace_period=grace_period, stale_trial_callback=callback)
    return storage, optuna.load_study(study_name="s", storage=storage)


def test_journal_heartbeats_find_dead_trials_and_one_process_alone_retries_them(tmp_path):
    path = tmp_path / "s.journal"
    optuna.create_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path))))
    calls = []
    first, study = journal_study(path, callback=lambda study, trial: calls.append(trial.number))
    second, other_study = journal_study(path, callback=lambda study, trial: calls.append(trial.number))
    study.add_trials([optuna.trial.create_trial(state=TrialState.WAITING) for _ in range(3)])
    study_id = first.get_study_id_from_name("s")
    ids = [first.get_trial_id_from_study_id_trial_number(study_id, n) for n in range(3)]
    for trial_id in ids:
        assert first.set_trial_state_values(trial_id, state=TrialState.RUNNING)
    first.record_heartbeat(ids[1])  # trial 0 never beats: it counts from its start
    with Heartbeat(first, ids[2]):  # trial 2 beats every second
        time.sleep(2.5)
        # It keeps beating (a later beat than the one seen now), however loaded the machine is.
        seen = first.get_trial(ids[2]).system_attrs[HEARTBEAT_ATTR]
        for _ in range(600):
            if first.get_trial(ids[2]).system_attrs[HEARTBEAT_ATTR] > seen:
                break
            time.sleep(0.1)
        assert first.get_trial(ids[2]).system_attrs[HEARTBEAT_ATTR] > seen
        assert sorted(first.stale_trial_ids(study_id)) == ids[:2]
        threads = [threading.Thread(target=s.fail_stale_trials, args=(st,))
                   for s, st in ((first, study), (second, other_study))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(calls) == [0, 1]  # each dead trial retried once, by whichever process failed it
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING]


def test_sqlite_claims_are_atomic_between_storages(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    storages = [open_storage(url, tmp_path, heartbeat_interval=30) for _ in range(2)]
    study = optuna.create_study(study_name="s", storage=storages[0])
    study.add_trials([optuna.trial.create_trial(state=TrialState.WAITING) for _ in range(20)])
    study_id = storages[0].get_study_id_from_name("s")
    won: list[list[int]] = [[], []]

    def claim_all(index: int) -> None:
        for number in range(20):
            trial_id = storages[index].get_trial_id_from_study_id_trial_number(study_id, number)
            if storages[index].set_trial_state_values(trial_id, state=TrialState.RUNNING):
                won[index].append(number)

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won[0] + won[1]) == list(range(20))
