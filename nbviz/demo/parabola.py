"""The seed article's regression problem: y = x^2 + noise, fitted by a 3x64 ReLU MLP."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._tf import require_keras


def parabola_data(
    n: int = 1024, seed: int = 0, noise: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (n, 1) float32 ~ N(0, 1) and ``y`` (n,) float32 = x^2 + N(0, noise^2).

    Deterministic from ``seed``; uses its own generator (the global numpy state is untouched).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}.")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1)).astype(np.float32)
    y = (x[:, 0] ** 2 + noise * rng.standard_normal(n)).astype(np.float32)
    return x, y


def build_parabola_mlp(seed: int = 0) -> Any:
    """The seed article's MLP, compiled: Dense 64 ReLU x 3 -> Dense 1, Adam, MSE.

    Input shape (1,). Layers are named ``hidden1``..``hidden3`` and ``output``. Weights are
    initialised from ``seed`` through seeded initializers, without touching Keras' global
    random state, so two calls with the same seed give identical models.
    """
    keras = require_keras()
    layers = keras.layers

    def init(i: int) -> Any:
        return keras.initializers.GlorotUniform(seed=int(seed) * 1000 + i)

    model = keras.Sequential(
        [keras.Input((1,), name="x")]
        + [
            layers.Dense(64, activation="relu", kernel_initializer=init(i), name=f"hidden{i}")
            for i in (1, 2, 3)
        ]
        + [layers.Dense(1, kernel_initializer=init(4), name="output")],
        name="parabola_mlp",
    )
    model.compile(optimizer="adam", loss="mse")
    return model
