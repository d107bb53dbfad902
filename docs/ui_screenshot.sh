#!/usr/bin/env bash
# Take docs/mlflow_ui.png (runs view) and docs/mlflow_ui_charts.png (chart view) from a real study: start
# `mlflow ui` on the study's tracking store and open, in headless Chromium (Debian's chromium package),
# the URL the study printed when it finished.
#   bash docs/ui_screenshot.sh sqlite:////path/to/mlflow.db quickstart
set -euo pipefail
cd "$(dirname "$0")/.."
store=$1 study=$2
tools=$(mktemp -d)
(cd "$tools" && npm init -y >/dev/null && npm install --silent playwright-core@1 >/dev/null)
url=$(.venv/bin/python -c "import sys; from ablations.tracking import Tracker; from ablations.ui_view import runs_url; t = Tracker(sys.argv[1], sys.argv[2]); print(runs_url('', t.experiment_id))" "$store" "$study")
.venv/bin/mlflow ui --backend-store-uri "$store" --host 127.0.0.1 --port 5077 >"$tools/ui.log" 2>&1 &
ui=$!
trap 'kill $ui' EXIT
for _ in $(seq 60); do curl -sf -o /dev/null http://127.0.0.1:5077/ && break; sleep 1; done
NODE_PATH="$tools/node_modules" node docs/ui_screenshot.js "${url/5000/5077}" docs/mlflow_ui.png docs/mlflow_ui_charts.png
echo "wrote docs/mlflow_ui.png docs/mlflow_ui_charts.png"
