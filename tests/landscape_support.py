"""Small models, data and the seed's naive grid loop, shared by tests/landscape/ and tests/behaviour/."""

from __future__ import annotations

import numpy as np


def mlp(seed: int = 0, width: int = 16, compile: bool = True):
    """A small parabola MLP (1 -> width -> width -> 1), seeded initializers, MSE."""
    import keras

    def init(i):
        return keras.initializers.GlorotUniform(seed=seed * 100 + i)

    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(width, activation="relu", kernel_initializer=init(1), name="h1"),
            keras.layers.Dense(width, activation="relu", kernel_initializer=init(2), name="h2"),
            keras.layers.Dense(1, kernel_initializer=init(3), name="out"),
        ],
        name=f"mlp{seed}",
    )
    if compile:
        model.compile(optimizer="adam", loss="mse")
    return model


def parabola(n: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1)).astype(np.float32)
    return x, (x[:, 0] ** 2 + 0.25 * rng.standard_normal(n)).astype(np.float32)


def convnet(seed: int = 0):
    """A tiny convnet with BatchNorm, Dropout and a transposed conv (all code paths)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Conv2DTranspose(3, 3, padding="same", name="deconv")(h)
    h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(3, name="logits")(h)
    model = keras.Model(inp, out, name="tiny_bn_convnet")
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def images(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, n)


def naive_grid(
    model, x, y, directions, xs, ys, metric: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The seed article's loop (set_weights + test_on_batch per point) on a *copy* of the model."""
    import keras

    clone = keras.models.clone_model(model)
    clone.compile(optimizer="adam", loss=model.loss, metrics=[metric] if metric else None)
    z = np.empty((len(ys), len(xs)))
    acc = np.empty_like(z) if metric else None
    for iy, b in enumerate(ys):
        for ix, a in enumerate(xs):
            clone.set_weights(directions.point((a, b)))
            out = clone.test_on_batch(x, y, return_dict=True)
            z[iy, ix] = out["loss"]
            if metric:
                acc[iy, ix] = out[metric]
    return z, acc
