import os
import shutil
import signal

import pytest
import torch

# One thread per test process: on a 2-core machine shared with other work, torch's second
# OpenMP thread spins waiting for a busy core and makes small ops up to 100x slower.
torch.set_num_threads(1)

# Tests never depend on how they were started. A shell starts background jobs (`cmd &`, some CI
# runners) with SIGINT ignored, and every child process would inherit that: the Ctrl-C tests need
# Python's own handler here and the default disposition in the children they start (a handled signal
# is reset to the default across exec, an ignored one is not).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def no_caller_environment(monkeypatch):
    """Variables a user may have exported (the README's quickstart suggests SIMCLR_DATA) change what
    the commands under test read; every test starts without them and sets what it needs."""
    for name in ("SIMCLR_DATA", "MLFLOW_TRACKING_URI", "OPTUNA_STORAGE"):
        monkeypatch.delenv(name, raising=False)


# torch.compile on CPU (augment.compile's colour kernel) needs a C++ compiler for Inductor.
HAS_CPP_COMPILER = bool(os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "clang++", "c++")))


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_cpp_compiler: compiles the colour kernel with torch.compile")
    config.addinivalue_line("markers", "slow: starts servers or several processes, or trains end to end several "
                                       "times (deselect with -m 'not slow' for a quick run)")


def pytest_collection_modifyitems(config, items):
    if HAS_CPP_COMPILER:
        return
    skip = pytest.mark.skip(reason="torch.compile on CPU needs a C++ compiler (augment.compile auto falls "
                                   "back to the eager ops there)")
    for item in items:
        if "needs_cpp_compiler" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cpp_compiler() -> bool:
    return HAS_CPP_COMPILER


@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory):
    """An initialised MLflow database, copied per test: creating its tables takes seconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path
