#!/usr/bin/env bash
# nbviz developer entry point. Two commands (see README "Quick start"):
#   bash dev.sh lab    set everything up, open JupyterLab on the tour notebook
#   bash dev.sh test   set everything up, run ruff, mypy and the test suite (fast, notebook and
#                      browser tiers, ~15 min on 2 cores; add --slow for the slow tier, as CI does)
# and one more:
#   bash dev.sh docs   set everything up, build the documentation site into docs/_build/html
# Anything after the command is passed on (to jupyter lab / pytest).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

PY=${PYTHON:-python3}
VENV=${NBVIZ_VENV:-.venv}
EXTRAS=${NBVIZ_EXTRAS:-cpu,lab,test,browser,distributed,docs}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[nbviz] creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when the project metadata changed.
  local stamp="$VENV/.nbviz-installed"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[nbviz] installing nbviz[$EXTRAS] (first run downloads TensorFlow, ~1.3 GB)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
  fi
}

ensure_chromium() {
  # Browser tests drive Debian's Chromium; playwright never downloads a browser here.
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "[nbviz] installing Debian's chromium for the browser tests"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "[nbviz] chromium not found: browser tests will be skipped (apt-get install chromium)"
    fi
  fi
}

cmd=${1:-}
shift || true
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
case "$cmd" in
  lab)
    setup
    "$VENV/bin/python" scripts/save_widget_state.py  # reopened notebooks keep their widgets
    extra=()
    [ "$(id -u)" = 0 ] && extra+=(--allow-root)  # containers and CI machines run as root
    exec "$VENV/bin/jupyter" lab notebooks/00-tour.ipynb "${extra[@]}" "$@"
    ;;
  test)
    setup
    ensure_chromium
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .   # one code style: ruff format decides
    "$VENV/bin/mypy" nbviz   # configured in pyproject.toml [tool.mypy]
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  docs)
    setup
    # Executed notebooks: reuse the notebook tier's copies when they match, else run them.
    "$VENV/bin/python" scripts/run_notebooks.py docs/notebooks \
      --reuse "${NBVIZ_ARTIFACTS:-test-artifacts}/notebooks"
    exec "$VENV/bin/python" -m sphinx -W --keep-going -n -q -b html docs docs/_build/html "$@"
    ;;
  *)
    echo "usage: bash dev.sh lab|test|docs [args...]" >&2
    exit 2
    ;;
esac
