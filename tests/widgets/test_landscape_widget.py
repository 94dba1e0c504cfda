"""LossLandscapeWidget: contours, live heat map, path overlay, Stop, save/load, errors (headless)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import mlp, parabola

from nbviz.errors import DataError, PathError, SurfaceFileError
from nbviz.landscape import (
    GridUpdate,
    WeightPathRecorder,
    evaluate_grid,
    grid_coords,
    pca_directions,
    project_path,
    random_directions,
)
from nbviz.landscape.contours import bilinear, choose_levels, contour_lines
from nbviz.widgets.landscape_views import end_rows_at_a_point


@pytest.fixture
def model_data():
    model = mlp(seed=1, width=8)
    x, y = parabola(96, seed=1)
    return model, x, y


@pytest.fixture
def trained(model_data):
    """The model after a short fit, with its recorded path."""
    import keras

    model, x, y = model_data
    keras.utils.set_random_seed(3)
    rec = WeightPathRecorder(every_k_batches=1)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[rec])
    return model, x, y, rec


def _widget(model, x, y, **kw):
    from nbviz.widgets.landscape import LossLandscapeWidget

    kw.setdefault("view3d", None)
    return LossLandscapeWidget(model, x, y, **kw)


# -- contours (pure numpy) ---------------------------------------------------------------------------
def test_contour_lines_of_a_bowl_are_circles_at_the_right_radius():
    xs = grid_coords(41, 1.0)
    gx, gy = np.meshgrid(xs, xs)
    z = gx**2 + gy**2
    levels = [0.04, 0.16, 0.36, 0.64]
    lines = contour_lines(xs, xs, z, levels, scale="linear")
    assert lines.x.shape == lines.y.shape and lines.n_levels == 4
    np.testing.assert_allclose(lines.levels, levels)
    for k, level in enumerate(levels):
        segments = lines.segments(k)
        assert len(segments) == 1  # one closed circle per level
        seg = segments[0]
        np.testing.assert_allclose(seg[0], seg[-1])  # closed
        r = np.hypot(seg[:, 0], seg[:, 1])
        assert np.abs(r - np.sqrt(level)).max() < 0.01
        # Padding after the circle is NaN (rectangular array for one bqplot Lines mark).
        assert np.isnan(lines.x[k, len(seg) :]).all()


def test_contour_levels_log_spaced_by_default_and_skipped_without_data():
    xs = grid_coords(21, 2.0)
    gx, gy = np.meshgrid(xs, xs)
    z = 1.0 + gx**2 + gy**2
    lv, is_log = choose_levels(z, 5, "log")
    assert is_log and np.allclose(np.diff(np.log(lv)), np.log(lv[1] / lv[0]))
    assert lv[0] == pytest.approx(z.min()) and lv[-1] == pytest.approx(z.max())
    lv_lin, is_log = choose_levels(z, 5, "linear")
    assert not is_log and np.allclose(np.diff(lv_lin), lv_lin[1] - lv_lin[0])
    # Missing cells are masked: the lines stay where cells are finite ...
    partial = z.copy()
    partial[:, 11:] = np.nan
    lines = contour_lines(xs, xs, partial, [3.0], scale="linear")
    assert np.nanmax(lines.x) <= xs[10] + 1e-9
    # ... and too few finite cells give no lines at all.
    few = np.full_like(z, np.nan)
    few[0, :3] = 1.0
    assert contour_lines(xs, xs, few, 10).n_levels == 0
    with pytest.raises(ValueError, match="scale"):
        choose_levels(z, 5, "cubic")


@pytest.mark.parametrize(
    ("lo", "hi", "at_most", "expected"),
    [
        (-1.5, 1.5, 7, [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
        (-1.4, 1.4, 7, [-1.0, -0.5, 0.0, 0.5, 1.0]),
        (-0.03, 0.05, 7, [-0.02, 0.0, 0.02, 0.04]),
        (0.0, 1.0, 6, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (2.0, 2.0, 7, [2.0]),
    ],
)
def test_nice_ticks_are_round_inside_the_range_and_few(lo, hi, at_most, expected):
    from nbviz.widgets.landscape import nice_ticks

    ticks = nice_ticks(lo, hi, at_most)
    np.testing.assert_allclose(ticks, expected, atol=1e-12)
    assert len(ticks) <= at_most and not np.any(np.signbit(ticks) & (ticks == 0))


def test_bilinear_interpolation_is_exact_for_planes():
    xs, ys = grid_coords(5, 1.0), grid_coords(7, 2.0)
    gx, gy = np.meshgrid(xs, ys)
    z = 3 * gx - 2 * gy + 1
    a, b = np.array([0.1, -0.77, 2.0]), np.array([0.3, 1.5, 0.0])
    got = bilinear(xs, ys, z, a, b)
    np.testing.assert_allclose(got[:2], 3 * a[:2] - 2 * b[:2] + 1)
    assert np.isnan(got[2])  # outside the grid


# -- the widget -----------------------------------------------------------------------------------------
def test_heat_map_fills_in_as_chunks_finish(model_data, no_thread_leak):
    model, x, y = model_data
    before = weights_snapshot(model)
    w = _widget(
        model, x, y, directions="random", resolution=7, max_chunk=7, order="raster", max_fps=10_000
    )
    missing = []
    w.heatmap.observe(lambda c: missing.append(int(np.isnan(np.asarray(c["new"])).sum())), "color")
    try:
        assert w.compute()
        assert w.wait(60)
        assert w.error is None, w.status.value
        # One view update per finished row of 7 cells, each with fewer missing cells.
        assert missing[-7:] == [42, 35, 28, 21, 14, 7, 0]
        assert w.progress.value == w.progress.max == 49
        assert "49/49 cells" in w.progress_label.value
        # The colours are log10 of the backend's losses, and they match a direct evaluation.
        ref = evaluate_grid(
            model, x, y, random_directions(model, seed=0), grid_coords(7, 1.0), grid_coords(7, 1.0)
        )
        np.testing.assert_allclose(w.surface.loss, ref.loss, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(w.heatmap.color), np.log10(ref.loss), rtol=1e-5)
        # The contour mark holds the backend's iso-lines of this surface (each row padded
        # with its last point, not NaN: bqplot labels a row's last point).
        expected = contour_lines(ref.xs, ref.ys, ref.loss, w.levels, "log")
        drawn_x, _ = end_rows_at_a_point(expected.x, expected.y)
        np.testing.assert_allclose(np.asarray(w.contours.x), drawn_x, rtol=1e-5)
        assert w.color_axis.label == "log10 loss"
        assert "random direction 1" in w.x_axis.label
        # Round ticks inside the grid (+-1 here), 0 exactly, few enough for a 300 px axis.
        assert list(w.x_axis.tick_values) == [-1.0, -0.5, 0.0, 0.5, 1.0]
        colour_ticks = np.asarray(w.color_axis.tick_values)
        assert 2 <= len(colour_ticks) <= 6
        assert w.color_scale.min <= colour_ticks.min() and colour_ticks.max() <= w.color_scale.max
        # Hover read-out: one invisible tile per cell carrying (a, b, loss) of that cell.
        assert np.asarray(w.hover.color).shape == (7, 7)
        assert w.hover.tooltip.labels == ["a", "b", "loss"]
        assert w.hover.tooltip.fields == ["column", "row", "color"]
        np.testing.assert_allclose(np.asarray(w.hover.column), ref.xs)
        np.testing.assert_allclose(np.asarray(w.hover.row), ref.ys)
        np.testing.assert_allclose(np.asarray(w.hover.color), ref.loss, rtol=1e-6)
        # Changing the level count or scale redraws the contours without recomputing.
        w.level_scale = "linear"
        assert w.color_axis.label == "loss"
        w.levels = 5
        assert len(w.contour_levels) <= 5
    finally:
        w.close()
    assert_weights_identical(model, before)


@pytest.mark.parametrize("m", [1, 2, 5, 13, 641])
def test_a_path_is_a_few_step_coloured_pieces_with_its_joints_marked(m):
    from nbviz.widgets.landscape_views import PATH_COLORS, PATH_SEGMENTS, PlaneView, path_segments

    rng = np.random.default_rng(m)
    a, b = np.cumsum(rng.normal(size=(2, m)), axis=1)
    steps = np.arange(m) * 4
    x, y, joints, mid = path_segments(a, b, steps)
    assert len(x) <= PATH_SEGMENTS and joints[0] == 0 and joints[-1] == m - 1
    # the pieces, joined at their shared ends, are the whole path in order
    pieces = [np.stack([r, q])[:, np.isfinite(r)] for r, q in zip(x, y, strict=True)]
    drawn = np.concatenate([pieces[0]] + [p[:, 1:] for p in pieces[1:]], axis=1)
    drawn = drawn[:, np.r_[True, np.any(np.diff(drawn, axis=1) != 0, axis=0)]]  # padding
    np.testing.assert_array_equal(drawn, np.stack([a, b])[:, : drawn.shape[1]])
    assert drawn.shape[1] == m or m == 1
    # no row ends in NaN (bqplot labels each row's last point) and colours go early to late
    assert np.isfinite(x[:, -1]).all() and np.isfinite(y[:, -1]).all()
    assert np.all(np.diff(mid) >= 0)
    view = PlaneView()
    try:
        view.set_path(a, b, steps)
        colors = list(view.path_line.colors)
        assert colors[0] == PATH_COLORS[0] and (m < 100 or len(set(colors)) >= 4)
        order = [PATH_COLORS.index(c) for c in colors]
        assert order == sorted(order)
        np.testing.assert_array_equal(np.asarray(view.path_points.color), steps[joints])
        assert len(view.path_points.x) == len(joints) <= PATH_SEGMENTS + 1
    finally:
        view.close()


def test_iso_line_rows_end_at_a_point_not_at_nan():
    from nbviz.widgets.landscape_views import HOVER_PER_AXIS, PlaneView

    xs = np.linspace(-1, 1, 21)
    z = np.add.outer(xs**2, xs**2) + 0.1
    z[:5] = np.nan  # a grid still filling in
    view = PlaneView()
    try:
        view.set_surface(xs, xs, z, levels=8, level_scale="linear", hover=False)  # live
        x, y = np.asarray(view.contours.x), np.asarray(view.contours.y)
        assert x.ndim == 2 and len(x) >= 3
        assert np.isfinite(x[:, -1]).all() and np.isfinite(y[:, -1]).all()
        assert np.asarray(view.hover.color).shape == (2, 2), "read-out sent only when asked"
        view.set_hover(xs, xs, z)
        k = -(-21 // HOVER_PER_AXIS)  # every k-th cell of a finer grid
        color = np.asarray(view.hover.color, float)
        assert color.shape == (len(range(0, 21, k)),) * 2
        assert np.isfinite(color).sum() == len(range(0, 21, k)) * len(range(6, 21, k))  # done
    finally:
        view.close()


def test_path_overlay_equals_the_backend_projection(trained, no_thread_leak):
    model, x, y, rec = trained
    w = _widget(model, x, y, path=rec, directions="pca", resolution=7)
    try:
        assert w.compute() and w.wait(60)
        assert w.error is None, w.status.value
        dirs = pca_directions(rec, model)
        coords, residual = project_path(rec, dirs)
        np.testing.assert_allclose(np.asarray(w.path_points.x), coords[:, 0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.asarray(w.path_points.y), coords[:, 1], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(np.asarray(w.path_points.color), rec.steps)
        np.testing.assert_allclose(w.path_residual, residual, atol=1e-6)
        # The final weights are marked (the origin of PCA directions).
        np.testing.assert_allclose(np.asarray(w.final_mark.x), coords[-1:, 0], atol=1e-7)
        assert w.x_axis.label.startswith("PC1 (") and "% of path variance" in w.x_axis.label
        # The automatic range shows the whole path.
        assert np.abs(coords).max() <= w.surface.xs[-1]
        w.show_path = False
        assert not w.path_points.visible and not w.path_line.visible
    finally:
        w.close()


def test_a_list_of_weight_lists_is_a_path_too(trained, no_thread_leak):
    model, x, y, rec = trained
    snapshots = [model.get_weights()]  # one snapshot: PCA cannot work, random can
    w = _widget(model, x, y, path=snapshots, directions="pca", resolution=5)
    try:
        assert not w.compute() or (w.wait(30) and w.error is not None)
        assert isinstance(w.error, PathError) and "snapshot" in str(w.error)
        assert "PathError" in w.status.value
    finally:
        w.close()


def test_pca_without_a_path_says_how_to_fix_it(model_data, no_thread_leak):
    model, x, y = model_data
    with pytest.raises(PathError, match="directions='random'"):
        _widget(model, x, y, directions="pca", autostart=True)
    w = _widget(model, x, y)  # default directions="pca": a notice, not an exception
    try:
        assert "watch()" in w.status.value
        assert not w.compute()
        assert isinstance(w.error, PathError) and "WeightPathRecorder" in str(w.error)
    finally:
        w.close()


def test_stop_keeps_finished_cells(model_data, no_thread_leak):
    model, x, y = model_data
    before = weights_snapshot(model)
    w = _widget(
        model, x, y, directions="random", resolution=9, max_chunk=3, order="raster", max_fps=10_000
    )
    first = threading.Event()
    w.heatmap.observe(lambda c: first.set(), "color")
    try:
        # Slow each chunk down a little so that Stop arrives mid-grid.
        original = w._on_frame

        def slow(frame):
            original(frame)
            if isinstance(frame, GridUpdate):
                threading.Event().wait(0.05)

        w._worker.on_frame = slow
        assert w.compute()
        assert first.wait(60)
        w.stop()
        assert w.wait(30)
        s = w.surface
        assert 0 < s.n_done < s.done.size
        assert "stopped: kept" in w.status.value
        assert np.isfinite(s.loss[s.done]).all() and np.isnan(s.loss[~s.done]).all()
        # What was kept is right.
        ref = evaluate_grid(model, x, y, random_directions(model, seed=0), s.xs, s.ys)
        np.testing.assert_allclose(s.loss[s.done], ref.loss[s.done], rtol=1e-5)
        shown = np.asarray(w.heatmap.color)
        assert np.isnan(shown).sum() >= (~s.done).sum()
    finally:
        w.close()
    assert_weights_identical(model, before)


def test_worker_errors_are_shown_in_the_widget(model_data, no_thread_leak):
    model, x, y = model_data
    w = _widget(model, x[:, :0], y, directions="random", resolution=5)  # x has no feature
    try:
        assert w.compute()
        assert w.wait(30)
        assert isinstance(w.error, DataError)
        assert "DataError" in w.status.value and "Fix" in w.status.value
        assert w.progress.bar_style == "danger" and not w.compute_button.disabled
        with pytest.raises(Exception, match="resolution"):
            w.resolution = 1
        assert "resolution" in w.status.value
    finally:
        w.close()


def test_line_mode_random_and_interpolation(model_data, no_thread_leak):
    from nbviz.landscape import evaluate_line, interpolation_directions

    model, x, y = model_data
    other = mlp(seed=2, width=8)
    w = _widget(model, x, y, directions="interpolation", other=other, mode="1d", resolution=11)
    try:
        assert w.compute() and w.wait(60), w.status.value
        assert w.error is None, w.status.value
        ref = evaluate_line(
            model, x, y, interpolation_directions(model, other), np.linspace(-0.5, 1.5, 11)
        )
        np.testing.assert_allclose(np.asarray(w.line_mark.y), ref.loss, rtol=1e-5)
        # The anchors t=0 (this model) and t=1 (other) are marked.
        np.testing.assert_allclose(np.sort(np.asarray(w.line_anchor.x)), [0.0, 1.0])
        # round ticks on both axes (multiples of one round step)
        for axis in w.line_figure.axes:
            ticks = np.asarray(axis.tick_values)
            step = np.diff(ticks)
            assert len(ticks) >= 3 and np.allclose(step, step[0])
            assert np.allclose(ticks / step[0], np.round(ticks / step[0]))
            mantissa = step[0] / 10 ** np.floor(np.log10(step[0]))
            assert np.isclose(mantissa, [1.0, 2.0, 2.5, 5.0]).any(), ticks
        # only the line is in the page: a hidden figure is laid out at zero size by bqplot
        assert w.views.box.children == (w.line_figure,)
        assert w.export_png()[:8] == b"\x89PNG\r\n\x1a\n"
        w.directions = "random"
        assert w.compute() and w.wait(60) and w.error is None
        assert len(w.line.ts) == 11 and w.line.ts[5] == 0.0
    finally:
        w.close()


def test_save_load_resumes_missing_cells_and_exports_png(model_data, tmp_path, no_thread_leak):
    from nbviz.widgets.landscape import LossLandscapeWidget

    model, x, y = model_data
    w = _widget(model, x, y, directions="random", resolution=7, subset=64, seed=5)
    try:
        assert w.compute() and w.wait(60) and w.error is None
        full = w.surface.loss.copy()
        file = tmp_path / "surface.h5"
        w.save(file)
        png = w.export_png(tmp_path / "plot.png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "plot.png").read_bytes() == png
    finally:
        w.close()

    # Forget some cells in the file, as if the computation had been interrupted.
    import h5py

    with h5py.File(file, "r+") as f:
        done = f["done"][...]
        done[4:] = 0
        f["done"][...] = done
    w2 = LossLandscapeWidget.load(file, model, x, y, view3d=None)
    try:
        assert w2.surface.n_done == 4 * 7 and w2.subset == 64
        assert w2.directions == "custom" and "from file" in str(w2.directions_dropdown.options)
        assert w2.compute() and w2.wait(60), w2.status.value
        assert w2.error is None, w2.status.value
        # Only the 21 missing cells were computed, and the result is the same surface.
        assert w2.last_update is not None and w2.last_update.done == 49
        np.testing.assert_allclose(w2.surface.loss, full, rtol=1e-6)
        with h5py.File(file, "r") as f:
            assert f["done"][...].all()
    finally:
        w2.close()
    with pytest.raises(SurfaceFileError):
        LossLandscapeWidget.load(tmp_path / "missing.h5", model, x, y, view3d=None)


def test_3d_view_gets_the_surface_and_the_path(trained, no_thread_leak):
    model, x, y, rec = trained
    w = _widget(model, x, y, path=rec, directions="pca", resolution=5, view3d="matplotlib")
    try:
        assert w.compute() and w.wait(60) and w.error is None
        v = w.view3d
        np.testing.assert_allclose(v.Z, np.log10(w.surface.loss))
        assert v.path is not None and len(v.path[0]) == len(rec)
        w.show_path = False
        assert not v.show_path
    finally:
        w.close()


def test_grid_on_an_executor_fills_in_and_equals_the_local_grid(model_data, no_thread_leak):
    """The widget hands its grid to an Executor (here threads; Dask in test_distributed)."""
    from concurrent.futures import ThreadPoolExecutor

    model, x, y = model_data
    before = weights_snapshot(model)
    with ThreadPoolExecutor(2) as pool:
        w = _widget(
            model,
            x,
            y,
            directions="random",
            resolution=7,
            max_chunk=7,
            order="raster",
            max_fps=10_000,
            executor=pool,
        )
        try:
            assert w.compute()
            assert w.wait(60)
            assert w.error is None, w.status.value
            assert w.progress.value == w.progress.max == 49
        finally:
            w.close()
    ref = evaluate_grid(
        model, x, y, random_directions(model, seed=0), grid_coords(7, 1.0), grid_coords(7, 1.0)
    )
    np.testing.assert_allclose(w.surface.loss, ref.loss, rtol=1e-5)
    assert_weights_identical(model, before)


def test_the_default_3d_view_draws_one_picture_per_redraw(trained, no_thread_leak):
    model, x, y, rec = trained
    w = _widget(model, x, y, path=rec, directions="pca", resolution=7, view3d="auto")
    try:
        assert w.compute() and w.wait(120) and w.error is None, w.error
        assert w.view3d.kind == "matplotlib"  # the default: cheap for the page at every update
        assert w.view3d.path is not None  # the path is on the surface too
        before = w.view3d.renders
        w.levels = 7  # a redraw of the surface and path: one picture, not one per part
        assert w.view3d.renders == before + 1
        w.show_path = False  # hiding the path: one more picture, without it
        assert w.view3d.renders == before + 2 and not w.view3d.show_path
    finally:
        w.close()
