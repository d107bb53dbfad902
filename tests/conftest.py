import pytest
import torch

# One thread per test process: on a 2-core machine shared with other work, torch's second
# OpenMP thread spins waiting for a busy core and makes small ops up to 100x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory):
    """An initialised MLflow database, copied per test: creating its tables takes seconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path
