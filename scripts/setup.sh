#!/usr/bin/env bash
# Set up a fresh machine: the virtualenv with the project installed, and Debian's packages
# the services and browser tests need. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,dev]'

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get not found: install $* yourself" >&2
    return 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists at all: fetch them first.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    $sudo apt-get update -qq
  fi
  # Stale lists name versions the mirror no longer has: refresh once and retry.
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null || {
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  }
}

command -v redis-server >/dev/null 2>&1 || { echo "setup: installing redis-server" >&2; apt_install redis-server; }
# The browser tests drive Debian's Chromium; Playwright never downloads a browser here.
[ -x /usr/bin/chromium ] || { echo "setup: installing chromium" >&2; apt_install chromium; }
command -v java >/dev/null 2>&1 || echo "setup: java not found: install a JDK 17+ to run Kafka" >&2
command -v mvn >/dev/null 2>&1 || echo "setup: mvn not found: install Maven to fetch Kafka" >&2
echo "setup: done" >&2
