#!/usr/bin/env bash
# The declared floors are true: install the lowest allowed version of every direct dependency
# (uv's lowest-direct resolution; what they pull in resolves as a user's install would) into a
# throwaway virtualenv outside the checkout, then run the unit tests there (without the slow
# property tests, as `make test-unit`). Prints the versions it tested and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/uv ]; then
  echo "check_lowest: .venv/bin/uv not found: run bash scripts/setup.sh" >&2
  exit 1
fi
began=$SECONDS
work="$(mktemp -d -t election-lowest-XXXXXX)"
trap 'rm -rf "$work"' EXIT

.venv/bin/uv venv -q --python .venv/bin/python "$work/venv"
.venv/bin/uv pip install -q --python "$work/venv/bin/python" --resolution lowest-direct -e '.[test]'

# Each direct dependency must have come in at its floor: one held higher by another package's
# requirements, or whose floor is not on the index, would go untested under a false floor.
"$work/venv/bin/python" - <<'PY'
import sys
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.version import Version

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)["project"]
declared = project["dependencies"] + project["optional-dependencies"]["test"]
tested, wrong = [], []
for requirement in map(Requirement, declared):
    installed = version(requirement.name)
    tested.append(f"{requirement.name}=={installed}")
    floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    if len(floors) != 1 or Version(installed) != Version(floors[0]):
        wrong.append(f"  {requirement}: installed {installed}")
print("check_lowest: testing", " ".join(tested), file=sys.stderr)
if wrong:
    print("check_lowest: make each floor (>=) the version that installs:", file=sys.stderr)
    print("\n".join(wrong), file=sys.stderr)
    sys.exit(1)
PY
installed=$((SECONDS - began))

# -p no:cacheprovider: the checkout's pytest cache stays the main run's.
"$work/venv/bin/python" -m pytest tests/unit -m "not slow" -q -p no:cacheprovider
echo "check_lowest: passed in $((SECONDS - began))s (install ${installed}s)" >&2
