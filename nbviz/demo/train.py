"""Train the demo convnet reproducibly and write its weights and metadata.

Usage::

    python -m nbviz.demo.train [--out DIR] [--epochs N] [--seed S]

Generates the train/val/test splits of :data:`nbviz.demo.splits.SPLITS`, trains
:func:`nbviz.demo.build_demo_convnet` (Adam with cosine decay, batch 64), evaluates
on the held-out test split and writes ``demo_convnet.weights.h5`` and
``demo_convnet.json`` (test accuracy, seeds, versions, timings) to ``--out`` (by default
the package's data folder, i.e. what ships). Takes about 2-3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from .._tf import require_keras, require_tensorflow
from .model import build_demo_convnet, compile_demo_convnet
from .procedural import CLASS_NAMES, generate_dataset
from .splits import SPLITS

DATA_DIR = Path(__file__).resolve().parent / "data"
WEIGHTS_NAME = "demo_convnet.weights.h5"
INFO_NAME = "demo_convnet.json"
DEFAULT_EPOCHS = 12
DEFAULT_SEED = 0
BATCH_SIZE = 64
PEAK_LR = 2e-3


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(
    out: Path = DATA_DIR, epochs: int = DEFAULT_EPOCHS, seed: int = DEFAULT_SEED, verbose: int = 2
) -> dict:
    """Train, evaluate, write the weights and the json into ``out``; return the json dict."""
    tf = require_tensorflow()
    keras = require_keras()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)

    t0 = time.perf_counter()
    data = {name: generate_dataset(s.n, s.seed) for name, s in SPLITS.items()}
    data_time = time.perf_counter() - t0

    model = build_demo_convnet(len(CLASS_NAMES), compile=False)
    steps = epochs * int(np.ceil(SPLITS["train"].n / BATCH_SIZE))
    schedule = keras.optimizers.schedules.CosineDecay(PEAK_LR, decay_steps=steps, alpha=0.05)
    compile_demo_convnet(model, learning_rate=schedule)
    x_train, y_train = data["train"]
    t1 = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        shuffle=True,
        validation_data=data["val"],
        verbose=verbose,
    )
    train_time = time.perf_counter() - t1
    x_test, y_test = data["test"]
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    pred = np.argmax(model.predict(x_test, batch_size=256, verbose=0), axis=-1)
    confusion = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), np.int64)
    np.add.at(confusion, (y_test, pred), 1)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / WEIGHTS_NAME
    # Save from an uncompiled twin so the file holds the 61k weights only, not Adam's state.
    shipped = build_demo_convnet(len(CLASS_NAMES), compile=False)
    shipped.set_weights(model.get_weights())
    shipped.save_weights(weights_path)
    info = {
        "model": model.name,
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": _sha256(weights_path),
        "num_params": int(model.count_params()),
        "input_shape": [64, 64, 3],
        "input_range": [0.0, 1.0],
        "class_names": list(CLASS_NAMES),
        "test_accuracy": float(test_acc),
        "test_loss": float(test_loss),
        "n_test": int(len(y_test)),
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "train_accuracy": float(history.history["accuracy"][-1]),
        "test_confusion": confusion.tolist(),
        "splits": {name: {"n": s.n, "seed": s.seed} for name, s in SPLITS.items()},
        "train_seed": int(seed),
        "epochs": int(epochs),
        "batch_size": BATCH_SIZE,
        "optimizer": f"Adam, cosine decay from {PEAK_LR} to {PEAK_LR * 0.05} over {steps} steps",
        "data_generation_s": round(data_time, 2),
        "training_time_s": round(train_time, 1),
        "cpu_count": os.cpu_count(),
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "command": f"python -m nbviz.demo.train --epochs {epochs} --seed {seed}",
    }
    (out / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DATA_DIR,
        help=f"output folder (default: the package data folder {DATA_DIR})",
    )
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="seed of weight initialisation and shuffling (data splits are fixed)",
    )
    args = parser.parse_args(argv)
    info = train(args.out, args.epochs, args.seed)
    print(
        f"test accuracy {info['test_accuracy']:.4f} on {info['n_test']} images; "
        f"training {info['training_time_s']} s; wrote {args.out / WEIGHTS_NAME}"
    )


if __name__ == "__main__":
    main()
