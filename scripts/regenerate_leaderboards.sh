#!/usr/bin/env bash
# Regenerate every committed leaderboard and the CIFAR study from a fresh store, in the order
# reports/README.md gives ("Rebuild the store and the committed leaderboards"). Usage:
#   bash scripts/regenerate_leaderboards.sh [STORE_DIR]     (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export REALBENCH_MIRROR="${REALBENCH_MIRROR:-../shared/data}"
export REALBENCH_HOME="${1:-$(mktemp -d)/store}"
echo "store: $REALBENCH_HOME"
$PY -m reports build-store --quiet >/dev/null
$PY -m harness run --model efficientnet-lite0 --suite imagenet --quiet
$PY -m relabel real --register real-rebuilt --out "$(dirname "$REALBENCH_HOME")/real-rebuilt.json" >/dev/null
$PY -m reports cifar-study --quiet
$PY -m reports leaderboard --quiet
$PY -m reports leaderboard --check
