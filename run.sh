#!/usr/bin/env bash
# fusion_monitor's entry point for a fresh machine: bootstraps the project venv (idempotent, pinned),
# sets the ROS 2 environment, then runs one of:
#   ./run.sh demo [--out DIR]     the embedded default main job (fusion-monitor demo)
#   ./run.sh test [PYTEST ARGS]   ruff + the whole test suite
#   ./run.sh exec CMD [ARGS...]   any command inside the environment (e.g. fusion-monitor replay ...)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FUSION_MONITOR_VENV:-$ROOT/.venv}"
LOCK="$ROOT/requirements.lock"

die() { printf 'fusion_monitor: %s\n' "$*" >&2; exit 1; }

find_python() {
  local cand
  for cand in "${FUSION_MONITOR_PYTHON:-}" python3.11 python3; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  local found
  found="$({ "${FUSION_MONITOR_PYTHON:-python3}" --version 2>&1 || echo none; } | head -1)"
  die "Python 3.11 is required (the ROS 2 Kilted wheels on PyPI are built for CPython 3.11); found: ${found}. Install python3.11 and python3.11-venv (or set FUSION_MONITOR_PYTHON to a Python 3.11 interpreter)."
}

bootstrap() {
  local want stamp py log
  want="$(cat "$LOCK" "$ROOT/setup.py" "$ROOT/setup.cfg" | sha256sum | cut -c1-64)"
  stamp="$VENV/.fusion_monitor-installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    return 0
  fi
  py="$(find_python)"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "fusion_monitor: creating the project venv in $VENV" >&2
    "$py" -m venv "$VENV" >/dev/null 2>&1 || die "could not create a venv with $py (on Debian/Ubuntu: apt-get install python3.11-venv)."
  fi
  log="$VENV/bootstrap.log"
  echo "fusion_monitor: installing pinned dependencies (requirements.lock) into $VENV; log: $log" >&2
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --timeout 60 --retries 2 \
      -r "$LOCK" >"$log" 2>&1; then
    die "could not install the pinned dependencies. Is the package registry (PyPI) reachable from here? pip said: $(grep -E 'ERROR|Error' "$log" | tail -1)  (full log: $log)"
  fi
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps --no-build-isolation \
      -e "$ROOT" >>"$log" 2>&1; then
    die "could not install fusion_monitor itself (log: $log)"
  fi
  echo "$want" >"$stamp"
  echo "fusion_monitor: environment ready" >&2
}

ros_env() {
  # shellcheck source=config/ros_env.sh
  . "$ROOT/config/ros_env.sh"
  export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
  # The ROS wheels re-execute each Python once to set LD_LIBRARY_PATH; a stale marker from a parent
  # environment would skip that step.
  unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
}

cmd="${1:-}"
[ -n "$cmd" ] || die "usage: ./run.sh demo [--out DIR] | ./run.sh test [PYTEST ARGS] | ./run.sh exec CMD [ARGS...]"
shift
bootstrap
ros_env
cd "$ROOT"
case "$cmd" in
  demo)
    exec fusion-monitor demo "$@" ;;
  test)
    # one DDS domain per test run, so parallel or leftover processes never cross-talk
    export ROS_DOMAIN_ID=$(( $$ % 100 + 1 ))
    ruff check "$ROOT"
    exec python -m pytest "$@" ;;
  exec)
    [ $# -gt 0 ] || die "usage: ./run.sh exec CMD [ARGS...]"
    exec "$@" ;;
  *)
    die "unknown command '$cmd': use demo, test or exec" ;;
esac
