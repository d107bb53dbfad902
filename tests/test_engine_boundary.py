import subprocess
import sys


def test_engine_imports_no_tracking_search_or_yaml():
    # simclr_core must stay usable from a short script: it never pulls MLflow, Optuna or YAML in.
    code = (
        "import sys, simclr_core, simclr_core.trainer, simclr_core.data, simclr_core.augmentations, "
        "simclr_core.probe; print(sorted(m for m in ('mlflow', 'optuna', 'yaml') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
