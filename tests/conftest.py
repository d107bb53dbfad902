import os
import shutil

import pytest
import torch

# One thread per test process: on a 2-core machine shared with other work, torch's second
# OpenMP thread spins waiting for a busy core and makes small ops up to 100x slower.
torch.set_num_threads(1)

# torch.compile on CPU (augment.compile's colour kernel) needs a C++ compiler for Inductor.
HAS_CPP_COMPILER = bool(os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "clang++", "c++")))


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_cpp_compiler: compiles the colour kernel with torch.compile")


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
