"""What the widgets look like (issue 18 items 4 and 6): OptVis Reset returns to the first look,
round step ticks on the objective curve with no toolbar over its title, readable 3-D heights
with their label beside the plot, and feature-map grid tiles numbered with their channel."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz.featuremaps.render import render_grid, render_view
from nbviz.imaging import decode_image
from nbviz.widgets.optvis_views import PLACEHOLDER, ResultViews
from nbviz.widgets.surface3d import make_surface_view, readable_factor
from nbviz.widgets.ticks import nice_ticks


def _look(w) -> dict:
    """Everything a reader sees of an OptVisWidget's result and progress."""
    v = w.views
    return {
        "image": (w.image.format, bytes(w.image.value)),
        "tiles": [bytes(t.value) for t in v.tile_images],
        "curve": (list(np.asarray(w.loss_line.x)), list(np.asarray(w.loss_line.y))),
        "scale": (v.x_scale.min, v.x_scale.max),
        "ticks": None if v.step_axis.tick_values is None else list(v.step_axis.tick_values),
        "counter": w.rate_label.value,
        "progress": (w.progress.value, w.progress.max),
        "step": w.step,
    }


def test_optvis_reset_returns_to_the_first_look(tiny_convnet, no_thread_leak):
    from nbviz.widgets.optvis import OptVisWidget

    before = weights_snapshot(tiny_convnet)
    w = OptVisWidget(tiny_convnet, layer="conv2", steps=24)
    try:
        first = _look(w)
        # an empty image is drawn as a broken-image icon: the first look is a placeholder
        assert first["image"] == ("png", PLACEHOLDER) and decode_image(PLACEHOLDER).size
        assert w.start() and w.wait(120)
        assert w.error is None, w.status.value
        ran = _look(w)
        assert ran["image"] != first["image"] and ran["counter"].startswith("step 24 / 24")
        assert ran["ticks"] == [0.0, 10.0, 20.0] and ran["scale"] == (0.0, 24.0)
        w.reset()
        assert _look(w) == first
        # the gallery's tiles too
        w.gallery, w.gallery_size = True, 2
        assert w.start() and w.wait(120)
        assert all(t != PLACEHOLDER for t in _look(w)["tiles"])
        w.reset()
        assert _look(w)["tiles"] == [PLACEHOLDER, PLACEHOLDER]
        assert _look(w)["counter"] == "" and _look(w)["curve"] == ([], [])
    finally:
        w.close()
    assert_weights_identical(tiny_convnet, before)


@pytest.mark.parametrize(
    ("steps", "ticks"),
    [(2401, [0, 1000, 2000]), (20000, [0, 5000, 10000, 15000, 20000]), (7, [0, 2, 4, 6]),
     (1, [0, 1])],
)  # fmt: skip
def test_objective_curve_has_round_whole_step_ticks(steps, ticks):
    views = ResultViews(on_open=lambda i: None)
    try:
        views.draw_curve([np.array([float(i)]) for i in range(steps)])
        assert list(views.step_axis.tick_values) == ticks  # not -18, 1191, 2401
        assert (views.x_scale.min, views.x_scale.max) == (0.0, float(steps))
        assert views.loss_figure.display_toolbar is False  # nothing over the title
        assert views.loss_figure.fig_margin["right"] >= 20  # room for the last label's half
    finally:
        views.loss_figure.close()
        views.image.close()


def test_readable_factor_makes_one_decimal_labels_distinct():
    assert readable_factor(0.0, 2.0) == 1.0
    assert readable_factor(0.02, 0.05) == 100.0  # 2.0 .. 5.0, not "0.0 0.0 0.0"
    assert readable_factor(1.2, 1.25) == 10.0 ** np.ceil(np.log10(0.5 / 0.05))
    for lo, hi in [(0.02, 0.05), (3e-4, 9e-4), (0.1, 0.3)]:
        f = readable_factor(lo, hi)
        assert (hi - lo) * f >= 0.5 and (hi - lo) * f < 5.0
        ticks = nice_ticks(lo * f, hi * f, 5)
        assert len({f"{t:.1f}" for t in ticks}) == len(ticks) >= 2  # ipyvolume's ".1f"


def test_ipyvolume_view_scales_small_heights_and_labels_them_beside_the_plot():
    pytest.importorskip("ipyvolume")
    xs = np.linspace(-1, 1, 5)
    X, Y = np.meshgrid(xs, xs)
    Z = 0.02 + 0.03 * (X**2 + Y**2) / 2
    v = make_surface_view("ipyvolume", zlabel="loss")
    try:
        assert v.figure.ylabel.strip() == ""  # no label floating in the middle of the box
        v.set_surface(xs, xs, Z)
        assert v.factor == 100.0
        np.testing.assert_allclose(np.max(v.mesh.y), 100 * Z.max(), rtol=1e-6)
        assert v.figure.scales["y"].max == pytest.approx(100 * Z.max(), rel=0.2)
        assert "loss" in v.caption.value and "&times; 100<" in v.caption.value
        v.set_height_label("log10 loss")
        assert "log10 loss" in v.caption.value
        v.set_surface(xs, xs, 10 * Z + 1.0)  # a range of 0.3: still scaled, by 10
        assert v.factor == 10.0 and "&times; 10<" in v.caption.value
        v.set_surface(xs, xs, 100 * Z)  # 2 .. 5: drawn as is, no factor in the label
        assert v.factor == 1.0 and "&times;" not in v.caption.value
    finally:
        v.close()


def test_matplotlib_view_renders_with_its_height_label():
    xs = np.linspace(-1.3, 1.3, 9)
    X, Y = np.meshgrid(xs, xs)
    v = make_surface_view("matplotlib", zlabel="loss")
    try:
        v.set_surface(xs, xs, X**2 + Y**2)
        renders = v.renders
        v.set_height_label("log10 loss")
        assert v.renders == renders + 1 and v.zlabel == "log10 loss"
        v.set_height_label("log10 loss")
        assert v.renders == renders + 1  # unchanged: not drawn again
        assert decode_image(bytes(v.image.value)).shape[:2] == (400, 480)
    finally:
        v.close()


def test_feature_map_grid_tiles_carry_their_channel_number():
    acts = np.random.default_rng(0).random((32, 32, 6), dtype=np.float32)
    view = render_view(acts, None, min_size=0)
    plain = render_grid(acts, cols=3)
    assert view.shape == plain.shape == (2 * 33 - 1, 3 * 33 - 1, 3)
    for i in range(6):
        r, c = divmod(i, 3)
        y, x = r * 33, c * 33
        corner = view[y : y + 10, x : x + 10]
        assert (corner == 0).all(axis=-1).any() and (corner == 255).all(axis=-1).any(), i
        # the rest of the tile is the map itself
        np.testing.assert_array_equal(
            view[y + 16 : y + 32, x : x + 32], plain[y + 16 : y + 32, x : x + 32]
        )
    # the digits differ from tile to tile (0 .. 5, not one stamp)
    corners = {
        view[r * 33 : r * 33 + 10, c * 33 : c * 33 + 8].tobytes()
        for r in range(2)
        for c in range(3)
    }
    assert len(corners) == 6
    # tiles too small for digits stay unnumbered
    tiny = np.random.default_rng(1).random((4, 4, 4), dtype=np.float32)
    np.testing.assert_array_equal(render_view(tiny, None, min_size=0), render_grid(tiny, cols=2))
