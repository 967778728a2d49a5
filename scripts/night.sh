#!/usr/bin/env bash
# Set up (once), then run election night 2024: services, a worker, the replay, the final state.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/election-night "$@"
