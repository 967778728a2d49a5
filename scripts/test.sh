#!/usr/bin/env bash
# Set up, start the local Kafka and Redis, then lint, type-check and run every test.
# Integration tests must not skip here: ELECTION_REQUIRE_SERVICES=1 makes a missing
# service a failure. The services keep running afterwards (stop: election-services stop).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# start prints KAFKA_BOOTSTRAP_SERVERS=... and REDIS_URL=... once both answer.
services_env="$(.venv/bin/python -m scripts.services start)"
eval "$(printf '%s\n' "$services_env" | sed 's/^/export /')"
export ELECTION_REQUIRE_SERVICES=1

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m schemas.generate --check

mkdir -p artifacts
set +e
.venv/bin/pytest --junitxml=artifacts/junit.xml "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
