#!/usr/bin/env bash
# Take the pictures of docs/views.md from a real study, each in a fresh headless Chromium profile (Debian's
# chromium package): the runs list at the address the study printed, the chart view, the experiment's page
# as a visitor from the experiment list sees it, and (with the study's journal, where optuna-dashboard is
# installed) the study in optuna-dashboard. docs/ui_screenshot.py does the work.
#   bash docs/ui_screenshot.sh sqlite:///mlflow.db quickstart runs/quickstart/optuna.journal
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
store=$1 study=$2 journal=${3:-}
"$here/.venv/bin/python" "$here/docs/ui_screenshot.py" "$store" "$study" ${journal:+--journal "$journal"}
