"""ablations.stores.errors: passwords kept out of messages, transient failures told from permanent ones, bounded
retries (the servers themselves are exercised in tests/test_distributed.py)."""

import errno
import sqlite3

import pytest

from ablations.stores import errors as stores


def test_mask_url_hides_the_password_only():
    assert stores.mask_url("postgresql://ana:s3cret@db:5432/optuna") == "postgresql://ana:***@db:5432/optuna"
    assert stores.mask_url("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_store_label_is_what_a_reader_elsewhere_can_use(tmp_path, monkeypatch):
    """A report's header names the store relative to the working folder, never an absolute path of the
    machine that built it, and a server without its password."""
    monkeypatch.chdir(tmp_path)
    assert stores.store_label("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert stores.store_label(f"sqlite:///{tmp_path}/runs/mlflow.db") == "sqlite:///runs/mlflow.db"
    assert stores.store_label(f"sqlite:///{tmp_path.parent}/other/mlflow.db") == "sqlite:///../other/mlflow.db"
    assert stores.store_label("postgresql://u:secret@db/x") == "postgresql://u:***@db/x"
    assert stores.store_label("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_describe_gives_the_root_cause_on_one_line():
    try:
        try:
            raise ConnectionRefusedError("connection refused\n  to db:5432")
        except ConnectionRefusedError as inner:
            raise RuntimeError("") from inner
    except RuntimeError as outer:
        assert stores.describe(outer) == "ConnectionRefusedError: connection refused to db:5432"


def test_transient_errors_are_retried_until_they_pass(monkeypatch):
    monkeypatch.setattr(stores.time, "sleep", lambda seconds: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "answer"

    assert stores.retry(flaky, retry_for=60) == "answer" and len(calls) == 3


def test_a_store_down_longer_than_retry_for_is_one_error_naming_it(monkeypatch):
    clock = iter(range(0, 1000, 7))
    monkeypatch.setattr(stores.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(stores.time, "sleep", lambda seconds: None)

    def down():
        raise TimeoutError("no answer")

    with pytest.raises(stores.StoreUnavailable, match="the tracking store"):
        stores.retry(down, retry_for=20, store="the tracking store")


def test_other_errors_are_tried_a_bounded_number_of_times(monkeypatch):
    monkeypatch.setattr(stores.time, "sleep", lambda seconds: None)
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        stores.retry(broken, attempts=3)
    assert len(calls) == 3
    assert not stores.is_transient(ValueError("bad value")) and stores.is_transient(ConnectionError())


@pytest.mark.parametrize("error", [
    sqlite3.OperationalError("database or disk is full"),
    sqlite3.OperationalError("disk I/O error"),
    sqlite3.OperationalError("attempt to write a readonly database"),
    OSError(errno.ENOSPC, "No space left on device"),
], ids=["sqlite full", "sqlite io", "sqlite read-only", "ENOSPC"])
def test_a_write_the_disk_refuses_is_not_retried(monkeypatch, error):
    """MLflow reports SQLite's "disk is full" as TEMPORARILY_UNAVAILABLE; waiting would not free the disk."""
    monkeypatch.setattr(stores.time, "sleep", lambda seconds: pytest.fail("retried a full disk"))
    from mlflow.exceptions import MlflowException
    calls = []

    def write():
        calls.append(1)
        try:
            raise error
        except Exception as cause:
            raise MlflowException(str(cause), error_code="TEMPORARILY_UNAVAILABLE") from cause

    with pytest.raises(stores.StoreCannotWrite, match=r"^the store cannot write \(.*\): is its disk full"):
        stores.retry(write, retry_for=60, store="the store")
    assert len(calls) == 1
    assert not stores.is_disk_error(sqlite3.OperationalError("database is locked"))  # that one is retried


def test_a_store_whose_file_was_deleted_is_named_as_gone_not_as_read_only(tmp_path):
    """SQLite says "attempt to write a readonly database" once its file is deleted under it; the message
    said "read-only? ... nothing recorded before is lost", while the runs went with the file."""
    path = tmp_path / "mlflow.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("create table runs (id integer)")
    connection.execute("insert into runs values (1)")
    path.unlink()

    def write():
        connection.execute("insert into runs values (2)")

    with pytest.raises(stores.StoreCannotWrite) as caught:
        stores.retry(write, retry_for=1, store=f"MLflow tracking store sqlite:///{path}")
    message = str(caught.value)
    assert f"its file {path} is gone" in message and "nothing recorded before is lost" not in message
    assert "restore the file" in message and "--tracking-uri" in message


def test_a_full_disk_under_the_tracking_store_names_its_file_and_what_to_free(tmp_path, monkeypatch):
    """MLflow passes on SQLite's "database or disk is full" (and a bare "[Errno 28] No space left on
    device"): the message names the disk by the store's file, its free space and what can go."""
    monkeypatch.setattr(stores.time, "sleep", lambda seconds: pytest.fail("retried a full disk"))
    from mlflow.exceptions import MlflowException
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"")

    for error in (sqlite3.OperationalError("database or disk is full"), OSError(errno.ENOSPC, "No space left on device")):
        def write():
            try:
                raise error
            except Exception as cause:
                raise MlflowException(str(cause), error_code="TEMPORARILY_UNAVAILABLE") from cause

        with pytest.raises(stores.StoreCannotWrite) as caught:
            stores.retry(write, retry_for=60, store=f"MLflow tracking store sqlite:///{path}")
        message = str(caught.value)
        assert f"the disk holding {path} is full (" in message and " free)" in message
        assert "runs/<study>/" in message and "nothing recorded before is lost" in message
        assert "[Errno" not in message and "\n" not in message
