"""Feature-map backend: activations equal a direct sub-model, caching, preprocessing, rendering,
and a clear error for every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz.errors import ChannelError, ImageError, LayerError, ModelError
from nbviz.featuremaps import (
    FeatureMaps,
    ImagePreparer,
    ImageSpec,
    enlarge,
    feature_map_figure,
    image_key,
    normalize_maps,
    overlay,
    prepare_image,
    render_grid,
    render_map,
    render_view,
    show_feature_map,
    to_png,
)
from nbviz.featuremaps.render import block_mean
from nbviz.imaging import apply_colormap, decode_image


def _image(h=32, w=32, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


def _direct(keras, model, layer, batch):
    """The reference: a sub-model from the input to the layer, called directly."""
    sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
    return np.asarray(sub(batch, training=False))


@pytest.fixture
def resnetish(keras):
    """Functional model with the layer kinds a ResNet has: conv, BN, activation, add, concat."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    a = keras.layers.Activation("relu", name="relu")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="branch")(a)
    s = keras.layers.Add(name="add")([a, y])
    c = keras.layers.Concatenate(name="concat")([s, a])
    p = keras.layers.AveragePooling2D(2, name="avgpool")(c)
    f = keras.layers.Flatten(name="flat")(p)
    out = keras.layers.Dense(3, name="head")(f)
    return keras.Model(inp, out, name="resnetish")


@pytest.fixture
def transfer_model(keras):
    """A base model inside a Sequential, as in transfer learning."""
    keras.utils.set_random_seed(2)
    base = keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            keras.layers.Conv2D(6, 3, activation="relu", name="b_conv1"),
            keras.layers.MaxPooling2D(name="b_pool"),
            keras.layers.Conv2D(4, 3, name="b_conv2"),
        ],
        name="base",
    )
    return keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ],
        name="transfer",
    )


# -- activations ----------------------------------------------------------------------------
def test_maps_equal_direct_submodel(keras, tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    img = _image()
    batch = img[None].astype(np.float32) / 255.0
    for layer in ("conv1", "pool1", "conv2"):
        got = fm.activations(img, layer)
        want = _direct(keras, tiny_convnet, layer, batch)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    want = _direct(keras, tiny_convnet, "conv2", batch)
    np.testing.assert_allclose(
        fm.feature_map(img, "conv2", 5), want[0, :, :, 5], rtol=1e-5, atol=1e-6
    )


def test_layer_choices_cover_resnet_kinds_with_shapes(resnetish):
    fm = FeatureMaps(resnetish)
    choices = dict(fm.layer_choices())
    assert choices == {
        "stem": (24, 24, 8),
        "bn": (24, 24, 8),
        "relu": (24, 24, 8),
        "branch": (24, 24, 8),
        "add": (24, 24, 8),
        "concat": (24, 24, 16),
        "avgpool": (12, 12, 16),
    }
    assert "flat" not in choices and "head" not in choices


def test_nested_base_model_in_sequential(keras, transfer_model):
    fm = FeatureMaps(transfer_model)
    names = [n for n, _ in fm.layer_choices()]
    assert names == ["base/b_conv1", "base/b_pool", "base/b_conv2"]
    img = _image(20, 20)
    base = transfer_model.get_layer("base")
    want = _direct(keras, base, "b_conv2", img[None].astype(np.float32) / 255.0)
    np.testing.assert_allclose(fm.activations(img, "base/b_conv2"), want, rtol=1e-5, atol=1e-6)
    # a unique inner name works too, and hits the same cache entry
    calls = fm.stats.network_calls
    np.testing.assert_array_equal(
        fm.activations(img, "b_conv2"), fm.activations(img, "base/b_conv2")
    )
    assert fm.stats.network_calls == calls


def test_plain_sequential_model(keras):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), keras.layers.Conv2D(3, 3, name="c"), keras.layers.Flatten()]
    )
    img = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    got = FeatureMaps(model).activations(img, "c")
    np.testing.assert_allclose(
        got, _direct(keras, model, "c", img[None, :, :, None]), rtol=1e-5, atol=1e-6
    )


def test_cache_hits_do_not_call_the_network_or_retrace(tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    a, b = _image(seed=0), _image(seed=1)
    first = fm.activations(a, "conv2")
    assert (fm.stats.network_calls, fm.stats.cache_misses) == (1, 1)
    for f in range(16):
        fm.feature_map(a, "conv2", f)
    again = fm.activations(a.copy(), "conv2")  # same content, another array: still a hit
    assert again is first
    assert fm.stats.network_calls == 1 and fm.stats.cache_hits == 17
    assert fm.stats.traces == 0, "a first look at a layer runs eagerly"
    fm.activations(b, "conv2")  # a new image: one more call, compiled once
    fm.activations(_image(seed=2), "conv2")  # and no retrace for further images
    fm.activations(np.stack([a, b, a]), "conv2")  # nor for a batch of another size
    assert fm.stats.network_calls == 4 and fm.stats.traces == 1
    np.testing.assert_allclose(  # compiled and eager calls agree
        fm.activations(np.stack([a, b, a]), "conv2")[0], first[0], rtol=1e-5, atol=1e-6
    )
    assert fm.stats.extractors_built == 1
    key = image_key(a)
    assert fm.cached("conv2", key) is first and fm.cached("conv1", key) is None
    assert not first.flags.writeable, "cached arrays are shared and must be read-only"


def test_cache_is_bounded_and_keeps_the_newest(tiny_convnet):
    one = 32 * 32 * 8 * 4  # bytes of one conv1 result
    fm = FeatureMaps(tiny_convnet, cache_bytes=int(2.5 * one))
    for seed in range(5):
        fm.activations(_image(seed=seed), "conv1")
    assert fm.cache_nbytes <= 2.5 * one
    calls = fm.stats.network_calls
    fm.activations(_image(seed=4), "conv1")  # newest: cached
    assert fm.stats.network_calls == calls
    fm.activations(_image(seed=0), "conv1")  # oldest: evicted
    assert fm.stats.network_calls == calls + 1
    tiny = FeatureMaps(tiny_convnet, cache_bytes=1)  # smaller than one result: still usable
    tiny.activations(_image(), "conv1")
    tiny.activations(_image(), "conv1")
    assert tiny.stats.network_calls == 1


def test_multi_layer_variant_is_one_pass(tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    img = _image()
    many = fm.activations_many(img, ["conv1", "pool1", "conv2"])
    assert fm.stats.network_calls == 1
    single = FeatureMaps(tiny_convnet)
    for name, value in many.items():
        np.testing.assert_allclose(value, single.activations(img, name), rtol=1e-5, atol=1e-6)
    fm.activations(img, "pool1")  # filled by the multi-layer pass
    assert fm.stats.network_calls == 1


def test_batches_are_chunked(keras, tiny_convnet):
    fm = FeatureMaps(tiny_convnet, batch_size=2)
    batch = np.stack([_image(seed=s) for s in range(5)])
    got = fm.activations(batch, "conv1")
    assert got.shape == (5, 32, 32, 8) and fm.stats.network_calls == 3
    want = _direct(keras, tiny_convnet, "conv1", batch.astype(np.float32) / 255.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_user_weights_stay_identical(keras, resnetish):
    snap = weights_snapshot(resnetish)
    fm = FeatureMaps(resnetish)
    fm.activations_many(np.stack([_image(24, 24, seed=s) for s in range(3)]), ["bn", "concat"])
    with pytest.raises(ChannelError):
        fm.feature_map(_image(24, 24), "bn", 8)
    assert_weights_identical(resnetish, snap)


# -- preprocessing --------------------------------------------------------------------------
def test_uint8_and_float_images_agree(tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    img = _image()
    np.testing.assert_allclose(
        fm.activations(img, "conv1"),
        fm.activations(img.astype(np.float32) / 255.0, "conv1"),
        rtol=1e-5,
        atol=1e-6,
    )


def test_gray_rgba_and_channel_conversion():
    rgb_spec = ImagePreparer(ImageSpec(8, 8, 3))
    gray = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    for g in (gray, gray[..., None]):
        np.testing.assert_array_equal(rgb_spec.prepare(g)[0], np.repeat(gray[..., None], 3, -1))
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((8, 8, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(rgb_spec.prepare(rgba), rgb_spec.prepare(rgb))
    one = ImagePreparer(ImageSpec(8, 8, 1)).prepare(rgb)[0]
    luma = (rgb.astype(np.float32) / 255.0) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(one[..., 0], luma, atol=1e-6)


def test_resize_to_model_input(keras):
    import tensorflow as tf

    img = _image(50, 40)
    out = prepare_image(img, (None, 32, 32, 3))
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    want = tf.image.resize(img[None].astype(np.float32) / 255.0, (32, 32), antialias=True)[0]
    np.testing.assert_allclose(out, want.numpy(), atol=1e-6)
    with pytest.raises(ImageError, match="50x40 but the model takes 32x32"):
        prepare_image(img, (None, 32, 32, 3), resize=False)
    # open height and width: no resizing
    assert prepare_image(img, (None, None, None, 3)).shape == (50, 40, 3)


def test_model_preprocess_input_hook(keras):
    from keras.applications import vgg16

    img = _image(16, 16)
    out = prepare_image(img, (None, 16, 16, 3), preprocess=vgg16.preprocess_input)
    want = vgg16.preprocess_input(img.astype(np.float32))  # expects 0..255 RGB
    np.testing.assert_allclose(out, want, atol=1e-4)
    # the hook gets a copy: the float image of the caller is untouched
    f = img.astype(np.float32) / 255.0
    before = f.copy()
    prepare_image(f, (None, 16, 16, 3), preprocess=vgg16.preprocess_input)
    np.testing.assert_array_equal(f, before)
    scaled = prepare_image(img, (None, 16, 16, 3), input_range=(-1, 1))
    np.testing.assert_allclose(scaled, img.astype(np.float32) / 127.5 - 1.0, atol=1e-6)


# -- errors ---------------------------------------------------------------------------------
def test_unknown_layer_lists_valid_ones(tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    with pytest.raises(LayerError) as err:
        fm.activations(_image(), "conv3")
    msg = str(err.value)
    assert "'conv3'" in msg and "Did you mean" in msg
    assert "'conv1', 'pool1', 'conv2'" in msg and "logits" not in msg.split("Layers with")[1]


def test_non_spatial_layer_says_why(tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    for name, shape in (("logits", "(None, 4)"), ("gap", "(None, 16)")):
        with pytest.raises(LayerError) as err:
            fm.activations(_image(), name)
        msg = str(err.value)
        assert shape in msg and "not an image-like" in msg and "'conv1'" in msg
    with pytest.raises(LayerError, match="strings"):
        fm.activations(_image(), 3)


@pytest.mark.parametrize("bad", [8, 100, -1, 2.0, True, "1"])
def test_channel_out_of_range(tiny_convnet, bad):
    fm = FeatureMaps(tiny_convnet)
    with pytest.raises(ChannelError, match=r"0\.\.7"):
        fm.feature_map(_image(), "conv1", bad)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((32,), "rank 1"),
        ((1, 1, 32, 32, 3), "rank 5"),
        ((32, 32, 5), "has 5 channels"),  # 2 channels are gray + alpha (test_user_inputs.py)
        ((2, 32, 32, 5), "5 channels but the model takes 3"),
        ((32, 32, 5), "5 channels"),
        ((0, 32, 32, 3), "empty"),
    ],
)
def test_bad_images(tiny_convnet, shape, match):
    with pytest.raises(ImageError, match=match):
        FeatureMaps(tiny_convnet).activations(np.zeros(shape, np.float32), "conv1")


def test_bad_dtype_and_batch_for_feature_map(tiny_convnet):
    fm = FeatureMaps(tiny_convnet)
    with pytest.raises(ImageError, match="dtype"):
        fm.activations(np.full((32, 32, 3), "a"), "conv1")
    with pytest.raises(ImageError, match="one image"):
        fm.feature_map(np.zeros((2, 32, 32, 3), np.float32), "conv1", 0)


def test_models_without_image_input(keras):
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    with pytest.raises(ModelError, match="no defined input"):
        FeatureMaps(unbuilt)
    mlp = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="not images"):
        FeatureMaps(mlp)


# -- rendering ------------------------------------------------------------------------------
def _acts():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 5, 4)).astype(np.float32)
    a[..., 0] *= 10.0
    a[..., 3] = 2.5  # a constant (dead) map
    return a


def test_normalization_modes():
    a = _acts()
    per_map = normalize_maps(a, "map")
    np.testing.assert_allclose(per_map[..., :3].min(axis=(0, 1)), 0.0, atol=1e-6)
    np.testing.assert_allclose(per_map[..., :3].max(axis=(0, 1)), 1.0, atol=1e-6)
    assert np.all(per_map[..., 3] == 0.0)
    per_layer = normalize_maps(a, "layer")
    assert per_layer.min() == 0.0 and per_layer.max() == 1.0
    assert per_layer[..., 1].max() < 0.8, "a weak map stays dim next to a strong one"
    fixed = normalize_maps(a, (0.0, 1.0))  # the article's vmin=0, vmax=1
    np.testing.assert_allclose(fixed, np.clip(a, 0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="normalization"):
        normalize_maps(a, "global")


def test_render_map_grid_overlay_png():
    a = _acts()
    rgb = render_map(a, 1)  # magma, per map
    want = apply_colormap((a[..., 1] - a[..., 1].min()) / np.ptp(a[..., 1]), "magma")
    np.testing.assert_array_equal(rgb, want)
    assert render_map(a, 1, cmap="gray").shape == (6, 5, 3)
    with pytest.raises(ChannelError):
        render_map(a, 4)
    with pytest.raises(ValueError, match="colormap"):
        render_map(a, 0, cmap="magmaa")
    grid = render_grid(a, cols=2, pad=1)
    assert grid.shape == (2 * 6 + 1, 2 * 5 + 1, 3)
    np.testing.assert_array_equal(grid[:6, :5], render_map(a, 0))
    assert np.all(grid[6, :] == 255), "white gaps between maps"
    img = np.zeros((12, 10, 3), np.uint8)
    ov = overlay(img, np.ones((6, 5), np.float32), "gray", alpha=0.5)
    assert ov.shape == (12, 10, 3) and np.all(ov == 128)
    png = to_png(render_map(a, 2))
    np.testing.assert_array_equal(decode_image(png), render_map(a, 2))
    big = render_view(a, 2, min_size=24)
    assert big.shape == (30, 25, 3)  # integer factor 5: the short side reaches 24
    np.testing.assert_array_equal(big[::5, ::5], render_map(a, 2))
    assert enlarge(np.zeros((200, 300, 3), np.uint8)).shape == (200, 300, 3)


def test_grid_view_is_bounded_for_big_layers():
    acts = np.random.default_rng(0).random((128, 128, 64), dtype=np.float32)
    view = render_view(acts, None, max_grid_side=768)
    assert max(view.shape[:2]) <= 768 and view.shape[0] > 500  # 8x8 tiles of 64 px
    pooled = block_mean(acts, 2)
    assert pooled.shape == (64, 64, 64)
    np.testing.assert_allclose(pooled[3, 5], acts[6:8, 10:12].mean(axis=(0, 1)), rtol=1e-6)
    assert block_mean(acts[:3, :3], 4).shape == (1, 1, 64)


def test_show_feature_map_like_the_article(tiny_convnet):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = _image()
    ax = show_feature_map(img, tiny_convnet, "conv1", 2)
    fm = FeatureMaps(tiny_convnet)
    np.testing.assert_allclose(ax.images[0].get_array(), fm.feature_map(img, "conv1", 2), atol=1e-6)
    assert ax.get_title() == "conv1 channel 2"
    plt.close(ax.figure)
    fig, axes = plt.subplots(1, 2)
    show_feature_map(img, tiny_convnet, "conv1", 3, ax=axes[0])
    from nbviz.featuremaps import feature_maps_for

    shared = feature_maps_for(tiny_convnet)
    calls = shared.stats.network_calls
    show_feature_map(img, tiny_convnet, "conv1", 4, ax=axes[1])  # cached path: no new pass
    assert shared.stats.network_calls == calls
    plt.close(fig)
    fig = feature_map_figure(img, fm.activations(img, "conv2")[0], None, title="conv2")
    assert len(fig.axes) == 2


def test_demo_model(keras):
    import nbviz.demo as demo

    model = demo.load_demo_model()
    fm = FeatureMaps(model)
    names = [n for n, _ in fm.layer_choices()]
    assert any(n.startswith("conv") for n in names)
    with pytest.raises(LayerError, match="not an image-like"):
        fm.activations(np.zeros((64, 64, 3), np.float32), "logits")
    img = demo.sample_images()[next(iter(demo.sample_images()))]
    conv = next(n for n in names if n.startswith("conv"))
    batch = fm.preparer.prepare(img)
    want = _direct(keras, model, conv, batch)
    np.testing.assert_allclose(fm.activations(img, conv), want, rtol=1e-5, atol=1e-5)
