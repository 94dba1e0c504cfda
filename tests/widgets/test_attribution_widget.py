"""AttributionExplorer, headless: the heatmap and the ranked channels match the backend computed
directly, class switches do not retrace, clicks select channels in the composed
FeatureMapExplorer, long methods stream and stop, and nothing is left running."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz import attribution
from nbviz.demo import CLASS_NAMES, load_demo_data, load_demo_model
from nbviz.featuremaps.render import enlarge, overlay
from nbviz.imaging import decode_image
from nbviz.widgets.attribution import HEAT_ALPHA, HEAT_CMAP, AttributionExplorer


@pytest.fixture(scope="module")
def demo():
    return load_demo_model(compile=False)


def _samples():
    x, _ = load_demo_data("test", n=3)
    return {f"test {i}": (x[i] * 255).astype(np.uint8) for i in range(3)}


@pytest.fixture(scope="module")
def icons(demo):
    """One icon cache for the module: each filter's optimized image is rendered once."""
    from nbviz.attribution.icons import ChannelIcons

    return ChannelIcons(demo)


@pytest.fixture
def view(demo, icons, no_thread_leak):
    snap = weights_snapshot(demo)
    w = AttributionExplorer(demo, top_channels=3, samples=_samples(), icons=icons)
    assert w.wait(180)
    yield w
    w.close()
    assert not w._worker.running and not w._icon_worker.running
    assert_weights_identical(demo, snap)


def _expected_heat(w, cls, method="grad_cam"):
    fn = {"grad_cam": attribution.grad_cam, "grad_cam++": attribution.grad_cam_plus_plus}[method]
    heat = fn(w.model, w.explorer.image, cls, layer=w.layer).heatmap()
    display = w.explorer.backend.display_image(w.explorer.image)
    return enlarge(overlay(display, heat, HEAT_CMAP, HEAT_ALPHA), 256)


def test_initial_view_explains_the_top_class_with_ranked_channels_and_icons(view):
    assert view.error is None and view.layer == "conv4"
    top = int(np.argmax(view.attributor().predict(view.explorer.image)[0]))
    assert view.cls == top and view.class_dropdown.options[0][1] == top
    assert (
        CLASS_NAMES[top] in view.class_dropdown.options[0][0]
        and "%" in view.class_dropdown.options[0][0]
    )
    np.testing.assert_allclose(
        decode_image(view.heat_image.value).astype(int),
        _expected_heat(view, top).astype(int),
        atol=2,
    )
    ranking = attribution.layer_attribution(view.model, view.explorer.image, top, layer="conv4")
    assert view.ranked_channels == ranking.top_channels(3)
    for tile, c in zip(view.tiles, view.ranked_channels, strict=True):
        assert tile.channel == c and f"channel {c}" in tile.button.description
        assert view.icons.get("conv4", c) is not None and tile.icon_image.value
    assert "128 steps" in view.icon_note.value and "Grad-CAM" in view.status.value


def test_class_switch_redraws_from_the_compiled_attributor_without_retracing(view):
    a = view.attributor()
    traces = a.trace_count
    for cls in (3, 5, 1):
        view.class_dropdown.value = cls
        assert view.wait(120, icons=False)
        assert view.cls == cls and CLASS_NAMES[cls] in view.status.value
        np.testing.assert_allclose(
            decode_image(view.heat_image.value).astype(int),
            _expected_heat(view, cls).astype(int),
            atol=2,
        )
    view.method = "grad_cam++"
    assert view.wait(120, icons=False)
    np.testing.assert_allclose(
        decode_image(view.heat_image.value).astype(int),
        _expected_heat(view, 1, "grad_cam++").astype(int),
        atol=2,
    )
    assert a.trace_count == traces and view.last_draw_s > 0


def test_clicking_a_channel_selects_it_in_the_explorer(view):
    view.explorer.mode = "grid"
    view.tiles[2].button.click()
    assert view.explorer.channel == view.ranked_channels[2] and view.explorer.mode == "single"
    assert view.explorer.wait(60) and f"channel {view.ranked_channels[2]} of 64" in (
        view.explorer.status.value
    )
    with pytest.warns(DeprecationWarning, match="ranked_channels"):
        assert view.ranked_filters == view.ranked_channels  # the old names still work
    with pytest.warns(DeprecationWarning, match="select_channel"):
        view.select_filter(view.ranked_channels[0])
    assert view.explorer.channel == view.ranked_channels[0]


def test_long_methods_stream_and_stop(view):
    view.attributor().batch_size = 5  # ten compiled calls of five noisy samples
    shown = view.frames_shown
    view.method = "smoothgrad"
    assert view.wait(120)
    assert "SmoothGrad 50/50 samples" in view.status.value and view.frames_shown > shown
    view.attributor().batch_size = 1
    view.method = "integrated_gradients"
    view.stop()
    assert view.wait(60) and not view._worker.running
    assert "(stopped)" in view.status.value or "65/65" in view.status.value


def test_a_new_image_in_the_explorer_updates_predictions_and_map(view):
    before = view.heat_image.value
    view.explorer.image_dropdown.value = "test 2"
    assert view.wait(120, icons=False) and view.error is None
    top = int(np.argmax(view.attributor().predict(view.explorer.image)[0]))
    assert view.cls == top and view.heat_image.value != before
    np.testing.assert_allclose(
        decode_image(view.heat_image.value).astype(int),
        _expected_heat(view, top).astype(int),
        atol=2,
    )
    view.explorer.layer = "conv3"
    assert view.wait(120, icons=False) and view.layer == "conv3" and view.tiles[0].layer == "conv3"


def test_fine_tuning_model_with_a_nested_base(keras, no_thread_leak):
    from attribution.test_attribution import _fine_tuning_model

    model, _ = _fine_tuning_model(keras)
    snap = weights_snapshot(model)
    rng = np.random.default_rng(0)
    w = AttributionExplorer(
        model,
        top_channels=2,
        input_range=(0, 255),
        samples={"noise": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)},
    )
    try:
        assert w.wait(180) and w.error is None, w.status.value
        assert w.layer == "base/conv2" and len(w.ranked_channels) == 2
        assert w.icons.get("base/conv2", w.ranked_channels[0]) is not None
    finally:
        w.close()
    assert_weights_identical(model, snap)


def test_unusable_models_show_the_error_and_the_explorer_still_works(keras, no_thread_leak):
    from nbviz.errors import ModelError

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    maps = keras.Model(inp, keras.layers.Conv2D(4, 3, name="conv")(inp), name="no_classifier")
    dead = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(
                4,
                3,
                activation="relu",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(-1.0),
                name="conv",
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="logits"),
        ],
        name="dead",
    )
    samples = {"noise": np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)}
    for model, fix in ((maps, "not class scores"), (dead, "nothing to weight")):
        with pytest.warns(DeprecationWarning, match="top_channels="):
            w = AttributionExplorer(model, samples=samples, top_filters=2)  # the old keyword
        try:
            assert w.wait(120)
            assert isinstance(w.error, ModelError) and fix in w.status.value, w.status.value
            assert w.explorer.wait(60) and w.explorer.error is None
        finally:
            w.close()
