"""Optuna's private names that the harness relies on (ablations/stores/optuna_private.py): each test fails
loudly when a new Optuna release removes or renames one, instead of retries or storage lookups
silently going wrong."""

import inspect
import re
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend

from ablations.stores import optuna_private
from ablations.stores.optuna_storage import RETRIED_CALLS, HeartbeatJournalStorage, RetryingRDBStorage

ABLATIONS = Path(__file__).resolve().parents[1] / "ablations"
# Optuna's private attributes and modules, as code reaches them.
PRIVATE_USE = re.compile(r"\._(storage|trial_id|study_id|backend)\b|\boptuna(\.\w+)*\._\w+")


def test_rdb_storage_still_has_the_private_methods_the_retrying_storage_wraps():
    for name in optuna_private.RDB_BACKEND_CALLS:
        assert callable(getattr(RDBStorage, name, None)), f"RDBStorage.{name} is gone: update optuna_private"


def test_the_caching_wrapper_calls_no_other_private_backend_method():
    """Optuna's _CachedStorage calls these on the RDBStorage it wraps; one the list lacks would run
    without retries (a lost connection would stop the worker instead of pausing it)."""
    source = inspect.getsource(optuna.storages._CachedStorage)
    called = set(re.findall(r"self\._backend\.(_\w+)\(", source))
    assert called == set(optuna_private.RDB_BACKEND_CALLS), "update optuna_private.RDB_BACKEND_CALLS"


def test_every_listed_call_is_retried():
    for name in RETRIED_CALLS:
        assert getattr(RetryingRDBStorage, name) is not getattr(RDBStorage, name), name
    assert set(optuna_private.RDB_BACKEND_CALLS) <= set(RETRIED_CALLS)


def test_storage_of_is_the_storage_a_study_reads_through(tmp_path):
    journal = HeartbeatJournalStorage(JournalFileBackend(str(tmp_path / "s.journal")), heartbeat_interval=30)
    study = optuna.create_study(study_name="s", storage=journal)
    assert optuna_private.storage_of(study) is journal

    rdb = RDBStorage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(study_name="s", storage=rdb)
    wrapper = optuna_private.storage_of(study)
    assert isinstance(wrapper, optuna.storages.BaseStorage)
    assert wrapper._backend is rdb  # Optuna's cache around it, which the RDB_BACKEND_CALLS come from


@pytest.mark.parametrize("path", sorted(p for p in ABLATIONS.rglob("*.py") if p.name != "optuna_private.py"),
                         ids=lambda p: str(p.relative_to(ABLATIONS)))
def test_no_other_module_uses_optunas_private_names(path):
    lines = [f"{number}: {line.strip()}" for number, line in enumerate(path.read_text().splitlines(), 1)
             if PRIVATE_USE.search(line)]
    assert lines == [], "move private Optuna use into ablations/stores/optuna_private.py"
