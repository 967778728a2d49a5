#!/usr/bin/env bash
# Set up, start the local Kafka and Redis, then lint, type-check and run every test.
# Integration tests must not skip here: ELECTION_REQUIRE_SERVICES=1 makes a missing
# service a failure. Every check runs even when an earlier one fails, so one run shows
# all that is wrong; the exit code is non-zero if any failed. Every test runs, the `slow`
# property tests too (make test-unit leaves those out). JUnit XML goes to
# artifacts/junit.xml. The services keep running afterwards, so the next run starts in
# seconds: stop them with `.venv/bin/python -m scripts.services stop`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# start prints ELECTION_KAFKA_BOOTSTRAP_SERVERS=... and ELECTION_REDIS_URL=... on stdout once both answer.
services_env="$(.venv/bin/python -m scripts.services start)"
eval "$(printf '%s\n' "$services_env" | sed 's/^/export /')"
export ELECTION_REQUIRE_SERVICES=1

failed=()
check() {
  echo "test.sh: $*" >&2
  "$@" || failed+=("$*")
}

check .venv/bin/ruff check .
check .venv/bin/ruff format --check .
check .venv/bin/mypy
check .venv/bin/python -m schemas.generate --check
# The package as users get it (a wheel in a new virtualenv runs the night and serves the
# page), and the unit tests on the lowest versions pyproject.toml allows.
check bash scripts/check_wheel.sh
check bash scripts/check_lowest.sh

mkdir -p artifacts
set +e
.venv/bin/pytest --junitxml=artifacts/junit.xml "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  failed+=("pytest (no tests collected)")
elif [ "$status" -ne 0 ]; then
  failed+=("pytest (exit $status)")
fi

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'test.sh: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "test.sh: all checks passed" >&2
