#!/usr/bin/env bash
# Take docs/mlflow_ui.png from a real study: start `mlflow ui` on the study's tracking store, open its
# runs list in headless Chromium (Debian's chromium package), group by configuration, show the probes.
#   bash docs/ui_screenshot.sh sqlite:////path/to/mlflow.db projection_head [docs/mlflow_ui.png]
set -euo pipefail
cd "$(dirname "$0")/.."
store=$1 study=$2 out=${3:-docs/mlflow_ui.png}
tools=$(mktemp -d)
(cd "$tools" && npm init -y >/dev/null && npm install --silent playwright-core@1 >/dev/null)
id=$(.venv/bin/python -c "import sys; from ablations.tracking import Tracker; print(Tracker(sys.argv[1], sys.argv[2]).experiment_id)" "$store" "$study")
.venv/bin/mlflow ui --backend-store-uri "$store" --host 127.0.0.1 --port 5077 >"$tools/ui.log" 2>&1 &
ui=$!
trap 'kill $ui' EXIT
for _ in $(seq 60); do curl -sf -o /dev/null http://127.0.0.1:5077/ && break; sleep 1; done
NODE_PATH="$tools/node_modules" node docs/ui_screenshot.js "http://127.0.0.1:5077/#/experiments/$id/runs" "$out"
echo "wrote $out"
