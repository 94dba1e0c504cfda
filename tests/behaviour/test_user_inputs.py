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
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(
                16, activation="relu", kernel_regularizer=keras.regularizers.L2(0.1), name="h"
            ),
            keras.layers.Dense(
                1,
                name="out",
                activity_regularizer=(keras.regularizers.L2(0.01) if activity else None),
            ),
        ],
        name="regularized",
    )
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
    np.testing.assert_allclose(
        got, _evaluate_at(keras, model, d.point((0.3, -0.2)), x, y, 96), rtol=1e-5
    )
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
    np.testing.assert_allclose(
        grads[kernel] - g_data[kernel], 0.2 * point[kernel].numpy(), rtol=1e-4, atol=1e-6
    )


def test_a_surface_file_is_not_resumed_with_the_other_regularization_setting(keras, tmp_path):
    model, x, y = _regularized_mlp(keras)
    d = random_directions(model, seed=1)
    path = str(tmp_path / "s.h5")
    evaluate_grid(model, x, y, d, [0.0, 1.0], [0.0], store=path, progress=False)
    with pytest.raises(SurfaceFileError, match="regularization"):
        evaluate_grid(
            model, x, y, d, [0.0, 1.0], [0.0], store=path, progress=False, regularization=False
        )
    again = evaluate_grid(model, x, y, d, [0.0, 1.0], [0.0], store=path, progress=False)
    assert again.metadata["regularization"] is True


# -- more training after a first look (item 3) ------------------------------------------------------
def _conv1_reference(keras, model, image01):
    sub = keras.Model(model.input, model.get_layer("conv1").output)
    return sub(image01[None].astype(np.float32), training=False).numpy()


def _fit(keras, model):
    rng = np.random.default_rng(1)
    model.fit(
        rng.random((8, 32, 32, 3), dtype=np.float32), rng.integers(0, 4, 8), epochs=1, verbose=0
    )


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
def test_feature_maps_follow_the_weights_after_more_training(keras, tiny_convnet, tmp_path, change):
    from nbviz.featuremaps import FeatureMaps, image_key, show_feature_map

    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    fm = FeatureMaps(tiny_convnet)
    before = fm.activations(image, "conv1")
    ax = show_feature_map(image, tiny_convnet, "conv1", 2)
    np.testing.assert_allclose(before, _conv1_reference(keras, tiny_convnet, image), atol=1e-5)
    {
        "fit": lambda: _fit(keras, tiny_convnet),
        "set_weights": lambda: _set_weights(keras, tiny_convnet),
        "load_weights": lambda: _load_weights(keras, tiny_convnet, tmp_path),
        "assign": lambda: _assign(keras, tiny_convnet),
    }[change]()
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
        fresh = evaluate_grid(
            model, x, y, random_directions(model, seed=1), [0.0], [0.0], progress=False
        )
    np.testing.assert_allclose(kept.Z[0, 0], old_loss, rtol=1e-5)
    np.testing.assert_allclose(fresh.Z[0, 0], new_loss, rtol=1e-5)
    with pytest.warns(StaleOriginWarning):
        line = evaluate_line(model, x, y, d1, [0.0])
    np.testing.assert_allclose(line.loss[0], old_loss, rtol=1e-5)
    assert evaluate_line(model, x, y, d1, [0.0], origin="model").loss[0] == pytest.approx(
        new_loss, rel=1e-5
    )
    assert ORIGINS == (None, "directions", "model")


# -- images as users load them (items 1, 2, 8) ------------------------------------------------------
RGB = np.random.default_rng(7).integers(0, 256, (8, 8, 3), dtype=np.uint8)
GRAY = np.random.default_rng(8).integers(0, 256, (8, 8), dtype=np.uint8)


def _pil(array, mode=None):
    from PIL import Image

    im = Image.fromarray(array)
    return im if mode is None else im.convert(mode)


def _rgb_of(pil_image):
    return np.asarray(pil_image.convert("RGB"), np.float32) / 255


def _gray3(gray01):
    return np.repeat(np.asarray(gray01, np.float32)[..., None], 3, axis=-1)


def _palette(transparent=False):
    im = _pil(RGB).quantize(16)
    if transparent:
        im.info["transparency"] = 0
    return im


def _tensor(a):
    import tensorflow as tf

    return tf.constant(a)


def _png_path(tmp_path, pathlib=False):
    path = tmp_path / "photo.png"
    _pil(RGB).save(path)
    return path if pathlib else str(path)


# (id, user input from tmp_path, expected (8, 8, 3) floats in [0, 1] the network sees, warns)
IMAGE_CASES = [
    ("uint8", lambda t: RGB, RGB / 255, False),
    ("img_to_array-float32-0..255", lambda t: RGB.astype(np.float32), RGB / 255, True),
    ("float64-0..255", lambda t: RGB.astype(np.float64), RGB / 255, True),
    ("float32-0..1", lambda t: RGB / np.float32(255), RGB / 255, False),
    (
        "float16-0..1",
        lambda t: (RGB / 255).astype(np.float16),
        (RGB / 255).astype(np.float16).astype(np.float32),
        False,
    ),
    ("randint-int64-0..255", lambda t: RGB.astype(np.int64), RGB / 255, False),
    ("int32-0..255", lambda t: RGB.astype(np.int32), RGB / 255, False),
    ("uint16-16-bit", lambda t: RGB.astype(np.uint16) * 257, RGB / 255, False),
    ("int32-16-bit-range", lambda t: RGB.astype(np.int32) * 257, RGB / 255, True),
    ("bool-mask", lambda t: GRAY > 127, _gray3(GRAY > 127), False),
    ("tf.Tensor-uint8", lambda t: _tensor(RGB), RGB / 255, False),
    ("tf.Tensor-float32", lambda t: _tensor(RGB / np.float32(255)), RGB / 255, False),
    ("tolist-nested-ints", lambda t: RGB.tolist(), RGB / 255, False),
    ("gray-2-d", lambda t: GRAY, _gray3(GRAY / 255), False),
    (
        "gray+alpha-array",
        lambda t: np.dstack([GRAY, np.full_like(GRAY, 255)]),
        _gray3(GRAY / 255),
        False,
    ),
    ("PIL-RGB", lambda t: _pil(RGB), RGB / 255, False),
    ("PIL-RGBA", lambda t: _pil(RGB, "RGBA"), RGB / 255, False),
    ("PIL-P-palette", lambda t: _palette(), _rgb_of(_palette()), False),
    ("PIL-P-transparent-gif", lambda t: _palette(True), _rgb_of(_palette()), False),
    ("PIL-PA", lambda t: _palette().convert("PA"), _rgb_of(_palette()), False),
    ("PIL-L", lambda t: _pil(GRAY), _gray3(GRAY / 255), False),
    ("PIL-LA", lambda t: _pil(GRAY, "LA"), _gray3(GRAY / 255), False),
    ("PIL-1-bilevel", lambda t: _pil(GRAY, "1"), _gray3(np.asarray(_pil(GRAY, "1"))), False),
    ("PIL-I;16", lambda t: _pil(GRAY.astype(np.uint16) * 257), _gray3(GRAY / 255), False),
    ("PIL-CMYK", lambda t: _pil(RGB, "CMYK"), _rgb_of(_pil(RGB, "CMYK")), False),
    ("PIL-YCbCr", lambda t: _pil(RGB, "YCbCr"), _rgb_of(_pil(RGB, "YCbCr")), False),
    ("path-string", lambda t: _png_path(t), RGB / 255, False),
    ("pathlib.Path", lambda t: _png_path(t, pathlib=True), RGB / 255, False),
]


@pytest.fixture
def rgb_model(keras):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    out = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    return keras.Model(inp, out, name="rgb8")


@pytest.mark.parametrize(
    ("make", "want", "warns"), [pytest.param(*c[1:], id=c[0]) for c in IMAGE_CASES]
)
def test_images_as_users_pass_them_reach_the_network_right(rgb_model, tmp_path, make, want, warns):
    import warnings

    from nbviz.errors import ImageRangeWarning
    from nbviz.featuremaps import FeatureMaps

    fm = FeatureMaps(rgb_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seen = fm.display_image(make(tmp_path))
        acts = fm.activations(make(tmp_path), "conv")
    ours = [w for w in caught if issubclass(w.category, ImageRangeWarning)]
    assert bool(ours) == warns, [str(w.message) for w in ours]
    if warns:
        assert "Fix:" in str(ours[0].message)
    np.testing.assert_allclose(seen, want, atol=1e-6)
    reference = rgb_model(np.asarray(want, np.float32)[None]).numpy()
    np.testing.assert_allclose(acts, reference, atol=1e-5)


def test_float_pixels_0_255_with_preprocess_are_not_scaled_twice(rgb_model):
    import warnings

    from nbviz.featuremaps import ImagePreparer, ImageSpec

    prep = ImagePreparer(
        ImageSpec.from_model(rgb_model), preprocess=lambda x: x - 127.5, input_range=(0, 255)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_floats = prep.prepare(RGB.astype(np.float32))
    np.testing.assert_allclose(from_floats, prep.prepare(RGB), atol=1e-4)
    assert from_floats.max() <= 127.5 + 1e-3  # not 255 * 255


def test_a_list_of_images_of_different_sizes_is_one_batch_at_the_model_size(rgb_model, tmp_path):
    from nbviz.featuremaps import FeatureMaps

    fm = FeatureMaps(rgb_model)
    big = np.random.default_rng(1).integers(0, 256, (20, 12, 3), dtype=np.uint8)
    batch = fm.activations([RGB, big, _png_path(tmp_path)], "conv")
    assert batch.shape == (3, 8, 8, 4)
    for i, one in enumerate([RGB, big, RGB]):
        np.testing.assert_allclose(batch[i], fm.activations(one, "conv")[0], atol=1e-5)


@pytest.mark.parametrize(
    ("make", "error", "fix"),
    [
        (lambda t: str(t / "missing.png"), "ImageError", "check the path"),
        (lambda t: str(t), "ImageError", "a directory"),
        (lambda t: "https://example.com/cat.jpg", "ImageError", "download it first"),
        (
            lambda t: (t / "notes.png").write_text("hello") and str(t / "notes.png"),
            "ImageError",
            "PNG, JPEG",
        ),
        (lambda t: RGB.astype(np.int64) - 300, "ImageError", "scale it to floats in [0, 1]"),
    ],
    ids=["missing-file", "directory", "url", "not-an-image-file", "negative-ints"],
)
def test_unreadable_images_say_what_to_do(rgb_model, tmp_path, make, error, fix):
    import nbviz.errors
    from nbviz.featuremaps import FeatureMaps

    with pytest.raises(getattr(nbviz.errors, error), match="Fix") as info:
        FeatureMaps(rgb_model).activations(make(tmp_path), "conv")
    assert fix in str(info.value)


def test_images_outside_both_ranges_are_used_as_they_are_with_a_warning(rgb_model):
    from nbviz.errors import ImageRangeWarning
    from nbviz.featuremaps import FeatureMaps

    signed = RGB / np.float32(127.5) - 1  # [-1, 1]: already preprocessed
    with pytest.warns(ImageRangeWarning, match="neither 0..1 nor 0..255"):
        seen = FeatureMaps(rgb_model).display_image(signed)
    np.testing.assert_allclose(seen, signed, atol=1e-6)


def test_a_reshape_to_image_model_has_feature_maps(keras):
    from nbviz.errors import ModelError
    from nbviz.featuremaps import FeatureMaps
    from nbviz.optvis import Renderer

    keras.utils.set_random_seed(0)
    for shape in [(28, 28), (784,)]:
        model = keras.Sequential(
            [
                keras.Input(shape),
                keras.layers.Reshape((28, 28, 1), name="to_image"),
                keras.layers.Conv2D(4, 3, name="conv"),
            ],
            name="mnist_like",
        )
        snap = weights_snapshot(model)
        digit = np.random.default_rng(0).random((28, 28), dtype=np.float32)
        fm = FeatureMaps(model)
        assert [n for n, _ in fm.layer_choices()] == ["to_image", "conv"]
        want = keras.Model(model.inputs[0], model.get_layer("conv").output)(
            digit.reshape((1,) + shape)
        ).numpy()
        np.testing.assert_allclose(fm.activations(digit, "conv"), want, atol=1e-6)
        assert_weights_identical(model, snap)
        with pytest.raises(ModelError, match=r"keras.Input\(\(28, 28, 1\)\)"):
            Renderer(model, "conv:0")


# -- PCA centring (item 5) ---------------------------------------------------------------------------
def test_pca_default_is_li_et_al_mean_centring_and_labels_say_so(keras):
    from sklearn.decomposition import PCA

    from nbviz.landscape import pca_directions

    rng = np.random.default_rng(0)
    model, _, _ = _regularized_mlp(keras)
    final = np.concatenate([w.reshape(-1) for w in model.get_weights()])
    drift = np.linspace(-1, 0, 12)[:, None] * rng.standard_normal(final.size)
    path = (final + drift + 0.05 * rng.standard_normal((12, final.size))).astype(np.float32)
    path[-1] = final
    d = pca_directions(path, model, perturb_1d=True)
    ref = PCA(2).fit((path - path[-1]).astype(np.float64))  # Li et al.'s projection.py
    got = d.flat()
    for g, r in zip(got, ref.components_, strict=True):
        assert abs(abs(float(g @ r)) - 1) < 1e-4
    np.testing.assert_allclose(d.explained_variance, ref.explained_variance_ratio_, rtol=1e-4)
    assert "around its mean" in d.metadata["explained_variance_of"]
    np.testing.assert_allclose(d.origin_flat(), final)  # the plot is still around the end
    f = pca_directions(path, model, center="final", perturb_1d=True)
    assert "final weights" in f.metadata["explained_variance_of"]


# -- the small ones (item 6) ---------------------------------------------------------------------------
def test_unsorted_coordinates_plot_like_sorted_ones(keras):
    import matplotlib

    matplotlib.use("Agg")
    from nbviz.landscape import plot_contour
    from nbviz.landscape.contours import contour_lines

    model, x, y = _regularized_mlp(keras)
    d = random_directions(model, seed=1)
    xs, ys = np.array([0.5, -0.5, 0.0, 1.0, -1.0]), np.array([0.2, -0.4, 0.6, -0.8])
    s = evaluate_grid(model, x, y, d, xs, ys, progress=False)
    s_sorted = evaluate_grid(model, x, y, d, np.sort(xs), np.sort(ys), progress=False)
    asc = s.ascending()
    np.testing.assert_array_equal(asc.xs, s_sorted.xs)
    np.testing.assert_allclose(asc.loss, s_sorted.loss, rtol=1e-6)
    a, b = plot_contour(s), plot_contour(s_sorted)
    assert a.get_xlim() == b.get_xlim() == (-1.0, 1.0) and a.get_ylim() == (-0.8, 0.6)
    la = contour_lines(s.xs, s.ys, s.loss, 5, "linear")
    lb = contour_lines(s_sorted.xs, s_sorted.ys, s_sorted.loss, 5, "linear")
    np.testing.assert_allclose(la.levels, lb.levels)
    np.testing.assert_allclose(np.nan_to_num(la.x), np.nan_to_num(lb.x), atol=1e-9)


def test_landscape_widget_resolution_slider_shows_what_is_computed(keras, no_thread_leak):
    from nbviz.widgets import LossLandscapeWidget

    model, x, y = _regularized_mlp(keras)
    w = LossLandscapeWidget(model, x, y, directions="random", resolution=151)
    try:
        assert w.resolution == 151 and w.resolution_slider.value == 151
        w.resolution = 2
        assert w.resolution_slider.value == 2
    finally:
        w.close()


@pytest.mark.parametrize("size", [0, -2, True])
def test_optvis_gallery_of_no_units_is_refused(tiny_convnet, no_thread_leak, size):
    from nbviz.widgets import OptVisWidget

    with pytest.raises(ValueError, match="gallery_size=8"):
        OptVisWidget(tiny_convnet, gallery=True, gallery_size=size)


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0, -0.1])
def test_optvis_backend_refuses_a_learning_rate_that_gives_nan_images(tiny_convnet, lr):
    from nbviz.optvis import visualize

    snap = weights_snapshot(tiny_convnet)
    with pytest.raises(ValueError, match="learning_rate must be a positive, finite number"):
        visualize(tiny_convnet, "conv1:0", steps=2, learning_rate=lr)
    assert_weights_identical(tiny_convnet, snap)


# -- surface files (item 7) ------------------------------------------------------------------------
def _small_grid(keras, store, **kw):
    model, x, y = _regularized_mlp(keras)
    return evaluate_grid(
        model,
        x,
        y,
        random_directions(model, seed=1),
        [0.0, 1.0],
        [0.0],
        store=store,
        progress=False,
        **kw,
    )


def test_a_missing_directory_is_named(keras, tmp_path):
    with pytest.raises(SurfaceFileError, match="does not exist") as info:
        _small_grid(keras, str(tmp_path / "runs" / "today" / "s.h5"))
    assert "os.makedirs" in str(info.value) and "delete" not in str(info.value)


def test_a_read_only_location_is_named(keras, tmp_path):
    import os

    if os.geteuid() == 0:  # root writes anywhere on a normal file system; sysfs refuses files
        target = "/sys/nbviz_surface.h5"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = str(ro / "s.h5")
    with pytest.raises(SurfaceFileError, match="No permission to write") as info:
        _small_grid(keras, target)
    assert "writable path" in str(info.value) and "delete" not in str(info.value)


def test_a_file_locked_by_another_process_is_named_locked_not_corrupted(keras, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.h5"
    first = _small_grid(keras, str(path))
    holder = subprocess.Popen(  # another process keeps the file open for writing
        [
            sys.executable,
            "-c",
            "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); "
            "print('open', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(SurfaceFileError, match="locked by another process") as info:
            _small_grid(keras, str(path))
        message = str(info.value)
        assert "not damaged" in message and "corrupt" not in message
        assert "do not delete it" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    again = _small_grid(keras, str(path))  # the healthy file resumes once it is free
    np.testing.assert_allclose(again.Z, first.Z)


# -- data as Python lists (item 8) ------------------------------------------------------------------
def test_tolist_data_gives_the_same_surface_as_arrays(keras):
    model, x, y = _regularized_mlp(keras)
    d = random_directions(model, seed=1)
    want = evaluate_grid(model, x, y, d, [0.0, 1.0], [0.0], progress=False)
    got = evaluate_grid(model, x.tolist(), y.tolist(), d, [0.0, 1.0], [0.0], progress=False)
    np.testing.assert_allclose(got.Z, want.Z, rtol=1e-6)


# -- optvis far above the model's size (item 9) ------------------------------------------------------
def test_optvis_far_above_the_model_size_warns_with_the_cost(keras):
    import warnings

    from nbviz.errors import CostWarning
    from nbviz.optvis import Renderer

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="c")])
    with pytest.warns(CostWarning, match=r"size=16 \(up to 64") as info:
        r = Renderer(model, "c:0", size=1024)
    assert "GiB" in str(info[0].message)
    assert "method='fft'" in r.param.description  # irfft2d above MATMUL_MAX_SIZE
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)
        small = Renderer(model, "c:0", size=64)
    assert "method='matmul'" in small.param.description


@pytest.mark.parametrize(
    ("b", "h", "w", "c", "decorrelate"),
    [(1, 16, 16, 3, True), (2, 15, 20, 3, True), (3, 9, 8, 1, False)],
)
def test_fft_and_matmul_spectra_give_the_same_image(b, h, w, c, decorrelate):
    from nbviz.optvis import param

    color = param.COLOR_CORRELATION_NORMALIZED if decorrelate else None
    dense = param.fft_image((b, h, w, c), seed=1, color=color, method="matmul")
    fft = param.fft_image((b, h, w, c), seed=2, color=color, method="fft")
    fft.variables[0].assign(dense.variables[0])
    np.testing.assert_allclose(fft.image().numpy(), dense.image().numpy(), atol=1e-6)


def test_feature_map_explorer_shows_the_new_weights_after_fit(keras, tiny_convnet, no_thread_leak):
    from nbviz.featuremaps import render_view
    from nbviz.imaging import decode_image
    from nbviz.widgets import FeatureMapExplorer

    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    e = FeatureMapExplorer(tiny_convnet, samples={"photo": image})
    try:
        assert e.wait(60)
        old = e.map_image.value
        _fit(keras, tiny_convnet)
        e.channel = 1  # the next slider step after training
        assert e.wait(60) and e.error is None
        e.channel = 0
        assert e.wait(60) and e.error is None
        want = render_view(_conv1_reference(keras, tiny_convnet, image / np.float32(255))[0], 0)
        np.testing.assert_array_equal(decode_image(e.map_image.value), want)
        assert e.map_image.value != old and e.backend.stats.weight_changes == 1
    finally:
        e.close()
