"""Inputs users really pass, each with the expected *right answer* (issue 16).

Not "no exception": every case checks the value nbviz computes against an independent
reference (``model.evaluate``, numpy arithmetic on the same pixels, ...), or that a clear
nbviz warning / error names the fix.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz.errors import SurfaceFileError
from nbviz.landscape import evaluate_grid, evaluate_line, loss_at_weights, random_directions


# -- regularization losses in loss grids (item 4) ---------------------------------------------------
def _regularized_mlp(keras, activity: bool = False):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((1,)),
        keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(0.1),
                           name="h"),
        keras.layers.Dense(1, name="out", activity_regularizer=(
            keras.regularizers.L2(0.01) if activity else None)),
    ], name="regularized")
    model.compile(loss="mse")
    x = np.random.default_rng(0).standard_normal((96, 1)).astype(np.float32)
    return model, x, (x[:, 0] ** 2).astype(np.float32)


def _evaluate_at(keras, model, weights, x, y, batch_size):
    clone = keras.models.clone_model(model)
    clone.compile(loss=model.loss)
    clone.set_weights(weights)
    return clone.evaluate(x, y, batch_size=batch_size, verbose=0)


@pytest.mark.parametrize("strategy", ["vectorized", "per_point"])
@pytest.mark.parametrize("activity", [False, True], ids=["kernel_L2", "kernel_and_activity_L2"])
def test_grid_loss_includes_regularization_like_model_evaluate(keras, strategy, activity):
    model, x, y = _regularized_mlp(keras, activity)
    snap = weights_snapshot(model)
    d = random_directions(model, seed=1)
    xs, ys = [-0.5, 0.0, 0.5], [0.0, 1.0]
    s = evaluate_grid(model, x, y, d, xs, ys, strategy=strategy, batch_size=96, progress=False)
    want_centre = model.evaluate(x, y, batch_size=96, verbose=0)
    np.testing.assert_allclose(s.Z[0, 1], want_centre, rtol=1e-5)
    want_corner = _evaluate_at(keras, model, d.point((0.5, 1.0)), x, y, 96)
    np.testing.assert_allclose(s.Z[1, 2], want_corner, rtol=1e-5)
    assert s.metadata["regularization"] is True
    assert s.metadata["regularization_terms"] == (2 if activity else 1)
    assert_weights_identical(model, snap)


def test_regularization_can_be_left_out_and_is_recorded(keras):
    model, x, y = _regularized_mlp(keras)
    d = random_directions(model, seed=1)
    with_reg = evaluate_grid(model, x, y, d, [0.0], [0.0], progress=False)
    without = evaluate_grid(model, x, y, d, [0.0], [0.0], progress=False, regularization=False)
    data_loss = float(np.mean((model.predict(x, verbose=0)[:, 0] - y) ** 2))
    np.testing.assert_allclose(without.Z[0, 0], data_loss, rtol=1e-5)
    reg = float(sum(keras.ops.convert_to_numpy(v) for v in model.losses))
    np.testing.assert_allclose(with_reg.Z[0, 0], data_loss + reg, rtol=1e-5)
    assert reg > 0.05 and without.metadata["regularization"] is False
    line = evaluate_line(model, x, y, random_directions(model, n=1, seed=2), [0.0])
    np.testing.assert_allclose(line.loss[0], data_loss + reg, rtol=1e-5)
    assert line.metadata["regularization"] is True


def test_loss_at_weights_is_evaluate_and_differentiable(keras):
    import tensorflow as tf

    model, x, y = _regularized_mlp(keras)
    d = random_directions(model, seed=1)
    point = [tf.constant(w) for w in d.point((0.3, -0.2))]
    got = float(loss_at_weights(model, point, x, y))
    np.testing.assert_allclose(got, _evaluate_at(keras, model, d.point((0.3, -0.2)), x, y, 96),
                               rtol=1e-5)
    with tf.GradientTape() as tape:
        tape.watch(point)
        value = loss_at_weights(model, point, x, y)
    grads = tape.gradient(value, point)
    kernel = [i for i, v in enumerate(model.weights) if v.path.endswith("h/kernel")][0]
    with tf.GradientTape() as tape:
        tape.watch(point)
        data_only = loss_at_weights(model, point, x, y, regularization=False)
    g_data = tape.gradient(data_only, point)
    # d/dW of 0.1 * sum(W^2) is 0.2 W: the regularizer's gradient is there.
    np.testing.assert_allclose(grads[kernel] - g_data[kernel], 0.2 * point[kernel].numpy(),
                               rtol=1e-4, atol=1e-6)


def test_a_surface_file_is_not_resumed_with_the_other_regularization_setting(keras, tmp_path):
    model, x, y = _regularized_mlp(keras)
    d = random_directions(model, seed=1)
    path = str(tmp_path / "s.h5")
    evaluate_grid(model, x, y, d, [0.0, 1.0], [0.0], store=path, progress=False)
    with pytest.raises(SurfaceFileError, match="regularization"):
        evaluate_grid(model, x, y, d, [0.0, 1.0], [0.0], store=path, progress=False,
                      regularization=False)
    again = evaluate_grid(model, x, y, d, [0.0, 1.0], [0.0], store=path, progress=False)
    assert again.metadata["regularization"] is True
