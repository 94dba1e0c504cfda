"""The demo convnet's architecture (weights ship as package data, see nbviz.demo)."""

from __future__ import annotations

from typing import Any

from .._tf import require_keras
from .procedural import NUM_CLASSES

INPUT_SHAPE = (64, 64, 3)
FILTERS = (16, 32, 64, 64)


def build_demo_convnet(num_classes: int = NUM_CLASSES, compile: bool = True):
    """A small functional convnet for 64x64 RGB images in [0, 1], untrained.

    Layers: ``image`` (input) -> ``conv1`` (16) -> ``pool1`` -> ``conv2`` (32) -> ``pool2``
    -> ``conv3`` (64) -> ``pool3`` -> ``conv4`` (64) -> ``gap`` (global average pooling)
    -> ``logits`` (Dense, linear) -> ``probs`` (softmax). Convolutions are 3x3, "same"
    padding, ReLU. About 61k parameters. When ``compile`` is true it is compiled with Adam,
    sparse categorical cross-entropy on ``probs`` and accuracy.
    """
    keras = require_keras()
    layers = keras.layers
    inp = keras.Input(INPUT_SHAPE, name="image")
    x = inp
    for i, filters in enumerate(FILTERS, start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < len(FILTERS):
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    probs = layers.Activation("softmax", name="probs")(logits)
    model = keras.Model(inp, probs, name="nbviz_demo_convnet")
    if compile:
        compile_demo_convnet(model)
    return model


def compile_demo_convnet(model: Any, learning_rate: float = 1e-3) -> Any:
    """Compile with Adam(``learning_rate``), sparse categorical cross-entropy and accuracy."""
    keras = require_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
