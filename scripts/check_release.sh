#!/usr/bin/env bash
# Release check (CI runs it from .ci/run): build the sdist and wheel, check them, install the
# WHEEL (not editable, not the source tree) into a fresh virtual environment with
# tensorflow-cpu from PyPI, and run a smoke test there from a temporary directory.
#
#   bash scripts/check_release.sh [dist dir, default dist/]
#
# Uses the dev venv (.venv, or $NBVIZ_VENV; `bash dev.sh test` creates it) for `build` and
# `twine`, and python3 (or $PYTHON) to create the fresh environment. pip's cache makes a rerun
# fast; the first run downloads TensorFlow (~1.3 GB installed). About 2-4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
PY=${PYTHON:-python3}
DEV_PY=${NBVIZ_VENV:-.venv}/bin/python
dist=$(realpath -m "${1:-dist}")
t0=$SECONDS
step() { echo "[release] $* (+$((SECONDS - t0)) s)"; }

step "building sdist and wheel into $dist"
rm -rf "$dist"
"$DEV_PY" -m build --outdir "$dist" . >/dev/null  # the wheel is built from the sdist
"$DEV_PY" -m twine check --strict "$dist"/*
"$DEV_PY" scripts/check_dist.py "$dist"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nbviz-release.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
wheel=$(ls "$dist"/nbviz-*.whl)
step "installing $(basename "$wheel")[cpu] into a fresh venv"
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
# --no-compile: no .pyc for all of TensorFlow (what is imported compiles on import)
"$tmp/venv/bin/python" -m pip install -q --no-compile "${wheel}[cpu]"

step "smoke test of the installed wheel (from $tmp)"
cp scripts/smoke_installed.py "$tmp/"
(cd "$tmp" && env -u PYTHONPATH TF_CPP_MIN_LOG_LEVEL=2 MPLBACKEND=Agg \
  "$tmp/venv/bin/python" smoke_installed.py)
step "release check passed; removing the temporary venv"
rm -rf "$tmp"
step "done"
