#!/usr/bin/env bash
# The package as a user gets it. Builds the wheel from a copy of the sources and checks it holds
# every file of its packages; installs it into a new virtualenv outside the checkout as
# deploy/Dockerfile does (the pins of deploy/constraints.txt, then the wheel); then, from an
# empty folder and with no setting inherited, runs `election-night` there, which starts its
# own Kafka and Redis on free ports from the files the wheel carries, and checks the worker it
# leaves running: the official 2024 result from its API and on the live page in Chromium
# (tests/integration/final_state.py). Stops what it started. Fails too when
# deploy/constraints.txt no longer pins what pyproject.toml asks for.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ ! -x .venv/bin/uv ]; then
  echo "check_wheel: .venv/bin/uv not found: run bash scripts/setup.sh" >&2
  exit 1
fi
began=$SECONDS
work="$(mktemp -d -t election-wheel-XXXXXX)"
night_env=()
cleanup() {
  local status=$?
  if [ -d "$work/night/.run" ]; then
    if [ "$status" -ne 0 ]; then
      mkdir -p "$root/artifacts/wheel-check"
      cp -r "$work/night/.run/logs" "$work/night/.run/kafka/logs" "$root/artifacts/wheel-check/" \
        2>/dev/null || true
      echo "check_wheel: logs of the failed night in artifacts/wheel-check/" >&2
    fi
    # The worker, Kafka and Redis this night started, by the pids they recorded.
    (cd "$work/night" && env -i "${night_env[@]}" election-services stop) || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

lock_command="uv pip compile pyproject.toml --universal --python-version 3.11 -o deploy/constraints.txt"
cp deploy/constraints.txt "$work/constraints.txt"
# Compiling over a copy keeps its pins: only a requirement added or changed shows as a
# difference. The pins alone are compared, not the comments another uv may word otherwise.
.venv/bin/uv pip compile -q pyproject.toml --universal --python-version 3.11 \
  -o "$work/constraints.txt" --custom-compile-command "$lock_command"
pins() { grep -v -e '^ *#' -e '^$' "$1"; }
if ! diff -u <(pins deploy/constraints.txt) <(pins "$work/constraints.txt") >&2; then
  echo "check_wheel: deploy/constraints.txt is stale: run .venv/bin/$lock_command" >&2
  exit 1
fi

mkdir "$work/src"
tar -c --exclude=__pycache__ pyproject.toml README.md streams schemas scripts | tar -x -C "$work/src"
.venv/bin/uv build -q --wheel --out-dir "$work/dist" "$work/src"
wheel=$(echo "$work"/dist/*.whl)
.venv/bin/python - "$wheel" "$work/src" <<'PY'
import sys
import zipfile
from pathlib import Path

wheel, src = sys.argv[1], Path(sys.argv[2])
packed = set(zipfile.ZipFile(wheel).namelist())
# The shell scripts in scripts/ are the checkout's own tooling, not part of the package.
sources = {
    path.relative_to(src).as_posix()
    for package in ("streams", "schemas", "scripts")
    for path in (src / package).rglob("*")
    if path.is_file() and path.suffix != ".sh"
}
missing = sorted(sources - packed)
if missing:
    sys.exit("check_wheel: files of the packages missing from the wheel:\n  " + "\n  ".join(missing))
print(f"check_wheel: {Path(wheel).name} holds all {len(sources)} files", file=sys.stderr)
PY
built=$((SECONDS - began))

.venv/bin/uv venv -q --python .venv/bin/python "$work/venv"
.venv/bin/uv pip install -q --python "$work/venv/bin/python" -r deploy/constraints.txt
.venv/bin/uv pip install -q --python "$work/venv/bin/python" -c deploy/constraints.txt "$wheel"
installed=$((SECONDS - began))

# Four free ports at once, so no two are the same.
read -r kafka_port controller_port redis_port web_port < <(.venv/bin/python -c '
import socket
probes = [socket.socket() for _ in range(4)]
for probe in probes:
    probe.bind(("127.0.0.1", 0))
print(*(probe.getsockname()[1] for probe in probes))')
prefix=$("$work/venv/bin/python" -c 'from streams.settings import ENV_PREFIX; print(ENV_PREFIX)')
night_env=(
  "PATH=$work/venv/bin:$PATH"
  "HOME=$HOME"
  ${JAVA_HOME:+"JAVA_HOME=$JAVA_HOME"}
  ${MAVEN_REPO_LOCAL:+"MAVEN_REPO_LOCAL=$MAVEN_REPO_LOCAL"}
  "${prefix}KAFKA_PORT=$kafka_port"
  "${prefix}KAFKA_CONTROLLER_PORT=$controller_port"
  "${prefix}REDIS_PORT=$redis_port"
  "${prefix}KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$kafka_port"
  "${prefix}REDIS_URL=redis://127.0.0.1:$redis_port/0"
  "${prefix}WEB_PORT=$web_port"
)
mkdir "$work/night"
cd "$work/night"
env -i "${night_env[@]}" python -c 'import streams, sys
sys.exit(0 if streams.__file__.startswith(sys.prefix) else f"streams from {streams.__file__}")'
env -i "${night_env[@]}" election-night >"$work/night.log" 2>&1 || {
  tail -n 40 "$work/night.log" >&2
  exit 1
}
sed -n "/State of the parties/,\$p" "$work/night.log" >&2
worker=$(cat .run/worker.pid)
# The worker serving the page is the installed package's, not a checkout's.
tr '\0' ' ' <"/proc/$worker/cmdline" | grep -q "^$work/venv/bin/python " || {
  echo "check_wheel: worker $worker is not the new virtualenv's python" >&2
  exit 1
}
cd "$root"
night=$((SECONDS - began))

.venv/bin/python -m tests.integration.final_state "http://127.0.0.1:$web_port" \
  --screenshot artifacts/wheel-live-page.png >&2
echo "check_wheel: passed in $((SECONDS - began))s (lock and build ${built}s, install" \
  "$((installed - built))s, night $((night - installed))s, page $((SECONDS - night))s)" >&2
