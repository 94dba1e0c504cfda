#!/usr/bin/env bash
# Regenerate the README screenshots in docs/images/ from the browser tests.
#
# The per-widget browser tests (tests/browser/test_widgets_*.py) drive JupyterLab 4 in
# Debian's Chromium and take element screenshots of the widgets they check; with
# NBVIZ_SCREENSHOTS set they also write them, shrunk to small palette PNGs (< 150 KB), to that
# folder: feature-maps.png, optvis.png, loss-landscape-2d.png, loss-landscape-3d.png.
#
# Needs /usr/bin/chromium (apt-get install chromium) and the dev venv (.venv). About 2 minutes
# on 2 cores. Usage: bash scripts/screenshots.sh [output dir, default docs/images]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/images}"
NBVIZ_SCREENSHOTS="$out" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/browser/test_widgets_feature_maps.py \
  tests/browser/test_widgets_optvis.py \
  tests/browser/test_widgets_landscape.py \
  tests/browser/test_widgets_attribution.py \
  tests/browser/test_widgets_sharpness.py
ls -l "$out"/feature-maps.png "$out"/optvis.png "$out"/loss-landscape-2d.png "$out"/loss-landscape-3d.png \
  "$out"/attribution.png "$out"/sharpness.png
