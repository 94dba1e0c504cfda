"""The shipped, trained demo convnet and the exact data splits it was trained on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, WeightsUnavailableError, format_choices
from .model import build_demo_convnet, compile_demo_convnet
from .procedural import NUM_CLASSES, generate_dataset
from .splits import SPLITS

DATA_DIR = Path(__file__).resolve().parent / "data"
WEIGHTS_PATH = DATA_DIR / "demo_convnet.weights.h5"
INFO_PATH = DATA_DIR / "demo_convnet.json"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The demo model file {path} is missing; it ships inside the nbviz package. "
            "Reinstall nbviz (pip install --force-reinstall nbviz), or recreate it offline "
            "in about 2 minutes with: python -m nbviz.demo.train"
        )
    return path


def demo_model_info() -> dict[str, Any]:
    """Metadata of the shipped demo model (a fresh dict): test accuracy, splits, versions..."""
    info: dict[str, Any] = json.loads(_require(INFO_PATH).read_text())
    return info


def load_demo_model(compile: bool = True) -> Any:
    """A new instance of the trained demo convnet (input (64, 64, 3) float32 in [0, 1]).

    Every call builds a fresh model and loads the shipped weights (well under a second), so
    changing one instance never affects another. Layers: ``conv1``..``conv4`` (ReLU),
    ``pool1``..``pool3``, ``gap``, ``logits`` (pre-softmax Dense) and ``probs`` (softmax,
    the output). Classes are :data:`nbviz.demo.CLASS_NAMES`. With ``compile`` it is compiled
    with sparse categorical cross-entropy and accuracy, ready for ``evaluate``.
    """
    weights = _require(WEIGHTS_PATH)
    # Load before compiling: a compiled model expects optimizer state in the file.
    model = build_demo_convnet(NUM_CLASSES, compile=False)
    model.load_weights(weights)
    if compile:
        compile_demo_convnet(model)
    return model


def load_demo_data(
    split: str = "test", n: int | None = None, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the demo task: x (n, 64, 64, 3) float32 in [0, 1], y (n,) int64.

    ``split`` is "train", "val" or "test" and regenerates exactly the images the shipped
    model was trained / validated / tested on (``n`` <= the split's size takes its first
    ``n`` images). ``seed`` instead draws fresh images from that seed (any ``n``, default
    the split's size); the split seeds are 1, 2 and 3.
    """
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}. Valid splits: {format_choices(list(SPLITS))}.")
    spec = SPLITS[split]
    if n is None:
        n = spec.n
    n = int(n)
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}.")
    if seed is None:
        if n > spec.n:
            raise DataError(
                f"The {split!r} split has {spec.n} images, {n} were asked for. Ask for at most "
                f"{spec.n}, or pass seed=<int> to draw fresh images from another seed."
            )
        seed = spec.seed
    return generate_dataset(n, int(seed))
