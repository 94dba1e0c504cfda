"""TensorFlow's one-time C++ start-up lines stay off stderr after ``import nbviz`` (they were a
red box in every notebook), while real stderr output still shows."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import sys
import nbviz
import keras
import numpy as np
keras.layers.Dense(2)(np.zeros((1, 3), np.float32))
from nbviz import demo
from nbviz.landscape import evaluate_grid, grid_coords, random_directions
x, y = demo.parabola_data(32)
m = demo.build_parabola_mlp()
evaluate_grid(m, x, y, random_directions(m), grid_coords(3), grid_coords(3))  # XLA compiles
print("a real warning", file=sys.stderr)
"""


def _stderr(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_tensorflow_start_up_lines_stay_off_stderr():
    lines = [line for line in _stderr().splitlines() if line.strip()]
    assert lines == ["a real warning"], lines


def test_nbviz_tf_logs_shows_them_again():
    err = _stderr(NBVIZ_TF_LOGS="1")
    assert "oneDNN custom operations" in err and "a real warning" in err
