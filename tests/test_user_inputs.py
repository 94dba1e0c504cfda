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


# -- more training after a first look (item 3) ------------------------------------------------------
def _conv1_reference(keras, model, image01):
    sub = keras.Model(model.input, model.get_layer("conv1").output)
    return sub(image01[None].astype(np.float32), training=False).numpy()


def _fit(keras, model):
    rng = np.random.default_rng(1)
    model.fit(rng.random((8, 32, 32, 3), dtype=np.float32), rng.integers(0, 4, 8), epochs=1,
              verbose=0)


def _set_weights(keras, model):
    model.set_weights([w * 1.5 for w in model.get_weights()])


def _load_weights(keras, model, tmp_path):
    other = keras.models.clone_model(model)
    other.set_weights([w + 0.25 for w in model.get_weights()])
    path = str(tmp_path / "other.weights.h5")
    other.save_weights(path)
    model.load_weights(path)


def _assign(keras, model):
    kernel = model.get_layer("conv1").kernel
    kernel.assign(-kernel.numpy())


@pytest.mark.parametrize("change", ["fit", "set_weights", "load_weights", "assign"])
def test_feature_maps_follow_the_weights_after_more_training(keras, tiny_convnet, tmp_path,
                                                             change):
    from nbviz.featuremaps import FeatureMaps, image_key, show_feature_map

    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    fm = FeatureMaps(tiny_convnet)
    before = fm.activations(image, "conv1")
    ax = show_feature_map(image, tiny_convnet, "conv1", 2)
    np.testing.assert_allclose(before, _conv1_reference(keras, tiny_convnet, image), atol=1e-5)
    {"fit": lambda: _fit(keras, tiny_convnet),
     "set_weights": lambda: _set_weights(keras, tiny_convnet),
     "load_weights": lambda: _load_weights(keras, tiny_convnet, tmp_path),
     "assign": lambda: _assign(keras, tiny_convnet)}[change]()
    want = _conv1_reference(keras, tiny_convnet, image)
    assert not np.allclose(want, before, atol=1e-4)
    assert fm.cached("conv1", image_key(image)) is None
    np.testing.assert_allclose(fm.activations(image, "conv1"), want, atol=1e-5)
    assert fm.stats.weight_changes == 1
    ax = show_feature_map(image, tiny_convnet, "conv1", 2, ax=ax)
    np.testing.assert_allclose(np.asarray(ax.images[-1].get_array()), want[0, ..., 2], atol=1e-5)


def test_unchanged_weights_keep_the_cache(tiny_convnet):
    from nbviz.featuremaps import FeatureMaps

    image = np.zeros((32, 32, 3), np.float32)
    fm = FeatureMaps(tiny_convnet)
    fm.activations(image, "conv1")
    tiny_convnet.predict(image[None], verbose=0)  # inference changes nothing
    fm.activations(image, "conv1")
    assert fm.stats.network_calls == 1 and fm.stats.weight_changes == 0


def test_grid_of_directions_made_before_more_training_warns_or_recentres(keras):
    from nbviz.errors import StaleOriginWarning
    from nbviz.landscape.grid import ORIGINS

    model, x, y = _regularized_mlp(keras)
    d = random_directions(model, seed=1)
    d1 = random_directions(model, n=1, seed=2)
    old_loss = model.evaluate(x, y, batch_size=96, verbose=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    new_loss = model.evaluate(x, y, batch_size=96, verbose=0)
    with pytest.warns(StaleOriginWarning, match="origin='model'"):
        stale = evaluate_grid(model, x, y, d, [0.0], [0.0], progress=False)
    np.testing.assert_allclose(stale.Z[0, 0], old_loss, rtol=1e-5)
    moved = evaluate_grid(model, x, y, d, [0.0], [0.0], progress=False, origin="model")
    np.testing.assert_allclose(moved.Z[0, 0], new_loss, rtol=1e-5)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleOriginWarning)
        kept = evaluate_grid(model, x, y, d, [0.0], [0.0], progress=False, origin="directions")
        fresh = evaluate_grid(model, x, y, random_directions(model, seed=1), [0.0], [0.0],
                              progress=False)
    np.testing.assert_allclose(kept.Z[0, 0], old_loss, rtol=1e-5)
    np.testing.assert_allclose(fresh.Z[0, 0], new_loss, rtol=1e-5)
    with pytest.warns(StaleOriginWarning):
        line = evaluate_line(model, x, y, d1, [0.0])
    np.testing.assert_allclose(line.loss[0], old_loss, rtol=1e-5)
    assert evaluate_line(model, x, y, d1, [0.0], origin="model").loss[0] == pytest.approx(
        new_loss, rel=1e-5)
    assert ORIGINS == (None, "directions", "model")
