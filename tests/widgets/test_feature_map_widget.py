"""FeatureMapExplorer, headless: slider moves re-render from the cache, layers are computed on
demand on the worker (latest request wins), and bad input is shown in the widget."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz.errors import ChannelError, ImageError, LayerError, ModelError
from nbviz.featuremaps import FeatureMaps, render_view
from nbviz.imaging import decode_image, encode_image
from nbviz.widgets.feature_maps import FeatureMapExplorer, show_feature_map

_NOW = datetime.now(timezone.utc)  # FileUpload serializes ``last_modified`` as a datetime


def _samples():
    rng = np.random.default_rng(0)
    return {
        "noise": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "big": rng.integers(0, 256, (48, 40, 3), dtype=np.uint8),
    }


@pytest.fixture
def explorer(tiny_convnet, no_thread_leak):
    snap = weights_snapshot(tiny_convnet)
    e = FeatureMapExplorer(tiny_convnet, samples=_samples())
    assert e.wait(60)
    yield e
    e.close()
    assert_weights_identical(tiny_convnet, snap)


def _expected_png(e, layer, channel, **kw):
    """The map rendered from a *direct* sub-model, for comparison with what the widget shows."""
    import keras

    sub = keras.Model(e.backend.model.inputs[0], e.backend.model.get_layer(layer).output)
    acts = np.asarray(sub(e.backend.preparer.prepare(e.image)))[0]
    return render_view(acts, channel, **kw)


def test_initial_view_shows_first_layer_and_image(explorer):
    assert explorer.layer == "conv1" and explorer.channel == 0
    assert explorer.error is None
    assert "conv1" in explorer.status.value and "channel 0 of 8" in explorer.status.value
    assert decode_image(explorer.input_image.value).shape[:2] == (192, 192)
    np.testing.assert_array_equal(
        decode_image(explorer.map_image.value), _expected_png(explorer, "conv1", 0)
    )
    labels = [label for label, _ in explorer.layer_dropdown.options]
    assert labels == ["conv1  32x32x8", "pool1  16x16x8", "conv2  16x16x16"]


def test_slider_updates_image_from_cache(explorer):
    calls = explorer.backend.stats.network_calls
    assert calls == 1
    shown = {explorer.map_image.value}
    for f in (3, 5, 7, 1):
        explorer.channel_slider.value = f  # what a user drag does
        assert explorer.channel == f
        assert not explorer.computing, "a cached slider move must not start the worker"
        shown.add(explorer.map_image.value)
        np.testing.assert_array_equal(
            decode_image(explorer.map_image.value), _expected_png(explorer, "conv1", f)
        )
        assert f"channel {f} of 8" in explorer.status.value
    assert len(shown) == 5
    assert explorer.backend.stats.network_calls == calls, "the network ran on a slider move"
    assert explorer.last_render_s < 1.0


def test_view_controls_rerender_without_the_network(explorer):
    calls = explorer.backend.stats.network_calls
    before = explorer.map_image.value
    explorer.cmap_dropdown.value = "gray"
    gray = explorer.map_image.value
    assert gray != before
    img = decode_image(gray)
    assert np.all(img[..., 0] == img[..., 1]), "gray colormap gives gray pixels"
    explorer.norm_buttons.value = "layer"
    assert explorer.normalization == "layer"
    explorer.overlay_box.value = True
    overlaid = decode_image(explorer.map_image.value)
    np.testing.assert_array_equal(
        overlaid,
        _expected_png(
            explorer,
            "conv1",
            0,
            cmap="gray",
            normalization="layer",
            image=explorer.picker.display,
            overlay_alpha=0.6,
        ),
    )
    explorer.mode_buttons.value = "grid"
    assert explorer.channel_slider.disabled
    assert "all 8 maps" in explorer.status.value
    grid = decode_image(explorer.map_image.value)
    assert grid.shape[0] > 2 * 32
    explorer.cmap = "twilight"  # any matplotlib colormap is accepted and added to the list
    assert "twilight" in explorer.cmap_dropdown.options
    assert explorer.backend.stats.network_calls == calls


def test_layers_are_computed_on_demand_and_cached(explorer):
    stats = explorer.backend.stats
    explorer.layer_dropdown.value = "conv2"
    assert explorer.wait(60)
    assert explorer.channel_slider.max == 15
    assert stats.network_calls == 2 and stats.extractors_built == 2, "only the chosen layer runs"
    explorer.channel = 12
    np.testing.assert_array_equal(
        decode_image(explorer.map_image.value), _expected_png(explorer, "conv2", 12)
    )
    explorer.layer = "conv1"  # back to a computed layer: from the cache, channel clamped to 7
    assert not explorer.computing
    assert explorer.channel == 7 and stats.network_calls == 2
    assert "conv1" in explorer.status.value


def test_rapid_layer_changes_latest_wins(tiny_convnet, no_thread_leak):
    gate = threading.Event()

    def slow_preprocess(x):  # a real user hook that happens to be slow
        gate.wait(30)
        return x

    e = FeatureMapExplorer(
        tiny_convnet, preprocess=slow_preprocess, input_range=(0, 1), samples=_samples()
    )
    try:
        assert e.computing  # conv1 is being computed, blocked in the hook
        for name in ("pool1", "conv2", "pool1", "conv2"):
            e.layer = name
        assert "computing" in e.status.value
        gate.set()
        assert e.wait(60)
        stats = e.backend.stats
        assert stats.network_calls == 2, "intermediate layer requests were queued up"
        assert e.backend.cached("conv2", e.picker.key) is not None
        assert e.backend.cached("pool1", e.picker.key) is None
        assert "conv2" in e.status.value and e.error is None
    finally:
        gate.set()
        e.close()


def test_image_picker_and_upload(explorer):
    calls = explorer.backend.stats.network_calls
    old_input = explorer.input_image.value
    explorer.image_dropdown.value = "big"  # 48x40, resized to the model's 32x32
    assert explorer.wait(60)
    assert explorer.input_image.value != old_input
    assert explorer.backend.stats.network_calls == calls + 1
    np.testing.assert_array_equal(
        decode_image(explorer.map_image.value), _expected_png(explorer, "conv1", 0)
    )
    photo = np.random.default_rng(5).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    upload = {
        "name": "cat.png",
        "type": "image/png",
        "size": 1,
        "content": memoryview(encode_image(photo)),
        "last_modified": _NOW,
    }
    explorer.upload.value = (upload,)
    assert explorer.wait(60)
    assert explorer.image_dropdown.value == "upload: cat.png"
    np.testing.assert_array_equal(explorer.image, photo)
    assert explorer.backend.stats.network_calls == calls + 2
    explorer.image_dropdown.value = "noise"  # back to the first image: cached
    assert not explorer.computing and explorer.backend.stats.network_calls == calls + 2


def test_errors_are_shown_and_the_widget_survives(explorer):
    before = explorer.map_image.value
    with pytest.raises(LayerError):
        explorer.layer = "logits"
    assert "LayerError" in explorer.status.value and "Dense" in explorer.status.value
    assert isinstance(explorer.error, LayerError) and explorer.layer == "conv1"
    with pytest.raises(LayerError):
        explorer.layer = "conv9"
    assert "conv1" in explorer.status.value  # the valid ones are listed
    with pytest.raises(ChannelError):
        explorer.channel = 8
    assert "ChannelError" in explorer.status.value and "0..7" in explorer.status.value
    assert explorer.channel == 0 and explorer.map_image.value == before
    with pytest.raises(ImageError):
        explorer.set_image(np.zeros(7))
    assert "rank 1" in explorer.status.value
    with pytest.raises(ImageError):
        explorer.image = np.zeros((32, 32, 5))
    assert "5 channels" in explorer.status.value
    with pytest.raises(ValueError, match="colormap"):
        explorer.cmap = "no-such-map"
    assert explorer.cmap == "magma"
    bad = {
        "name": "notes.txt",
        "type": "text/plain",
        "size": 3,
        "content": memoryview(b"abc"),
        "last_modified": _NOW,
    }
    explorer.upload.value = (bad,)
    assert "notes.txt" in explorer.status.value and isinstance(explorer.error, ImageError)
    explorer.channel_slider.value = 2  # still usable
    assert explorer.error is None and "channel 2 of 8" in explorer.status.value
    assert explorer.map_image.value != before


def test_network_errors_are_shown(tiny_convnet, no_thread_leak):
    def broken(x):
        raise RuntimeError("preprocess exploded")

    e = FeatureMapExplorer(tiny_convnet, preprocess=broken, samples=_samples())
    try:
        assert e.wait(60)
        assert "preprocess exploded" in e.status.value and isinstance(e.error, RuntimeError)
        e.layer = "conv2"  # tries again, fails again, still alive
        assert e.wait(60) and "preprocess exploded" in e.status.value
    finally:
        e.close()


def test_bad_constructor_arguments(tiny_convnet, keras, no_thread_leak):
    e = FeatureMapExplorer(tiny_convnet, image=np.zeros((4,)), layer="gap", samples=_samples())
    try:
        assert e.wait(60)
        status = e.status.value
        assert "rank 1" in status and "GlobalAveragePooling2D" in status
        assert e.layer == "conv1" and "channel 0 of 8" in status  # started on the defaults
    finally:
        e.close()
    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 3)])
    with pytest.raises(ModelError, match="no defined input"):
        FeatureMapExplorer(unbuilt)
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ModelError):
        FeatureMapExplorer(mlp)


def test_headless_figure_and_function(explorer, tiny_convnet):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = explorer.figure()
    assert len(fig.axes) == 3  # input, map, colorbar
    explorer.layer = "conv2"  # headless use: figure() computes on the calling thread
    fig = explorer.figure()
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), explorer.current_map(), atol=1e-6)
    explorer.wait(60)
    ax = show_feature_map(explorer.image, tiny_convnet, "conv2", 4)
    fm = FeatureMaps(tiny_convnet)
    np.testing.assert_allclose(
        ax.images[0].get_array(), fm.feature_map(explorer.image, "conv2", 4), atol=1e-6
    )
    plt.close("all")


def test_nested_model_and_default_samples(keras, no_thread_leak):
    keras.utils.set_random_seed(4)
    base = keras.Sequential(
        [keras.Input((24, 24, 3)), keras.layers.Conv2D(4, 3, name="inner")], name="base"
    )
    model = keras.Sequential([keras.Input((24, 24, 3)), base, keras.layers.Flatten()])
    e = FeatureMapExplorer(model, layer="inner")  # bundled sample images
    try:
        assert e.wait(60)
        assert e.layer == "base/inner" and e.error is None
        assert len(e.image_dropdown.options) >= 2
        assert "base/inner" in e.status.value
    finally:
        e.close()


def test_demo_model(no_thread_leak):
    import nbviz.demo as demo

    model = demo.load_demo_model()
    e = FeatureMapExplorer(model)
    try:
        assert e.wait(60) and e.error is None
        calls = e.backend.stats.network_calls
        before = e.map_image.value
        e.channel_slider.value = 1
        assert e.map_image.value != before and e.backend.stats.network_calls == calls
        with pytest.raises(LayerError, match="not an image-like"):
            e.layer = "logits"
    finally:
        e.close()
