"""LossLandscapeWidget tells the truth (issue 18 item 4): the progress label, the status line
and the ETA come from one clock and one counter; Stop is enabled whenever something can be
stopped (a ``watch`` recompute too); Compute during a run restarts; the range box shows the
extent in use; a live PCA plane that is still random says so (headless, real TensorFlow)."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import mlp, parabola

from nbviz.landscape import WeightPathRecorder, evaluate_grid, random_directions

LABEL = re.compile(r"(\d+)/(\d+) cells, ([\d.]+) s(?:, ETA ([\d.]+) s)?$")
SUMMARY = re.compile(r"(\d+) cells in ([\d.]+) s")


@pytest.fixture
def model_data():
    model = mlp(seed=1, width=8)
    x, y = parabola(96, seed=1)
    return model, x, y


def _widget(model, x, y, **kw):
    from nbviz.widgets.landscape import LossLandscapeWidget

    kw.setdefault("view3d", None)
    return LossLandscapeWidget(model, x, y, **kw)


def _record(widget, trait_owner, name):
    """Every value ``trait_owner.name`` takes, with the monotonic time it took it."""
    seen: list[tuple[float, object]] = []
    trait_owner.observe(lambda c: seen.append((time.monotonic(), c["new"])), name)
    return seen


def test_progress_label_and_summary_agree_with_the_cell_counter_and_the_wall_clock(
    model_data, no_thread_leak
):
    model, x, y = model_data
    w = _widget(
        model, x, y, directions="random", resolution=15, max_chunk=15, order="raster",
        max_fps=10_000,
    )  # fmt: skip
    labels = _record(w, w.progress_label, "value")
    try:
        t0 = time.monotonic()
        assert w.compute()
        assert w.wait(120)
        wall = time.monotonic() - t0
        assert w.error is None, w.status.value
        parsed = [(t, LABEL.match(v)) for t, v in labels if v]
        assert parsed and all(m is not None for _, m in parsed), labels
        done = [int(m[1]) for _, m in parsed]
        elapsed = [float(m[3]) for _, m in parsed]
        # one counter: counts rise chunk by chunk to the surface's own count of finished cells
        assert done == sorted(done) and done[-1] == w.surface.n_done == 225
        assert all(int(m[2]) == 225 for _, m in parsed)
        # one clock: every elapsed time is at most the wall time since compute() (rounding to
        # 0.1 s aside), never runs backwards, and the last equals the status line's
        for t, m in parsed:
            assert float(m[3]) <= t - t0 + 0.06
        assert elapsed == sorted(elapsed)
        summary = SUMMARY.search(w.status.value)
        assert summary is not None and int(summary[1]) == 225, w.status.value
        took = float(summary[2])
        assert took <= wall + 0.01
        assert abs(elapsed[-1] - took) <= 0.06
        # no ETA from the first finished chunk alone (it includes compiling) nor at the end;
        # the ones shown are estimates of the time that was really left (generous bounds)
        assert parsed[0][1][4] is None and parsed[-1][1][4] is None
        end = t0 + wall
        etas = [(t, float(m[4])) for t, m in parsed if m[4] is not None]
        assert etas, labels
        for t, eta in etas:
            left = end - t
            assert eta <= 10 * left + 2.0 and left <= 10 * eta + 2.0, (eta, left)
    finally:
        w.close()


def test_compute_during_a_run_restarts_with_the_new_settings(model_data, no_thread_leak):
    model, x, y = model_data
    before = weights_snapshot(model)
    w = _widget(
        model, x, y, directions="random", resolution=21, max_chunk=3, order="raster",
        max_fps=10_000,
    )  # fmt: skip
    first = threading.Event()
    w.heatmap.observe(lambda c: first.set(), "color")
    disabled = _record(w, w.compute_button, "disabled")
    try:
        assert w.compute()
        assert first.wait(60)
        assert w.computing and not w.stop_button.disabled and not w.compute_button.disabled
        w.seed = 5  # another plane: Compute now restarts, it does not answer "busy"
        assert w.compute()
        assert w.wait(120)
        assert w.error is None and "busy" not in w.status.value, w.status.value
        ref = evaluate_grid(
            model, x, y, random_directions(model, seed=5), w.surface.xs, w.surface.ys
        )
        assert w.surface.complete
        np.testing.assert_allclose(w.surface.loss, ref.loss, rtol=1e-5)
        assert not any(v for _, v in disabled)  # Compute never pointed at a disabled button
        assert w.stop_button.disabled  # nothing left to stop
    finally:
        w.close()
    assert_weights_identical(model, before)


def test_range_box_shows_the_extent_in_use_with_auto(model_data, no_thread_leak):
    import keras

    model, x, y = model_data
    keras.utils.set_random_seed(3)
    rec = WeightPathRecorder(every_k_batches=1)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[rec])
    w = _widget(model, x, y, path=rec, directions="pca", resolution=7)
    try:
        assert w.auto_box.value and w.extent_box.value == 1.0  # before: nothing in use yet
        assert w.compute()
        assert w.wait(60)
        assert w.error is None, w.status.value
        in_use = float(np.max(np.abs(w.surface.xs)))
        assert in_use != pytest.approx(1.0)  # fitted to the path, not the default
        assert w.extent_box.value == pytest.approx(in_use, rel=1e-3)
        assert w.auto_box.value and w.auto_extent  # still automatic
        assert "settings changed" not in w.status.value
        assert w.x_axis.label.startswith("PC1")
    finally:
        w.close()


def test_stop_is_enabled_during_a_watch_recompute_and_the_first_frame_says_pca(
    model_data, no_thread_leak
):
    model, x, y = model_data
    w = _widget(model, x, y, directions="pca", resolution=9)
    busy = threading.Event()
    stop_states = _record(w, w.stop_button, "disabled")
    w.stop_button.observe(lambda c: busy.set() if not c["new"] else None, "disabled")
    try:
        t0 = time.monotonic()
        cb = w.watch(prime=True, subset=64)  # the first landscape is computed now, in background
        assert busy.wait(60)  # Stop was enabled while it ran
        assert cb.wait(120) and w.wait(60)
        wall = time.monotonic() - t0
        assert w.error is None, w.status.value
        assert [v for _, v in stop_states][-1] is True  # and disabled once nothing runs
        assert not w.compute_button.disabled
        # The first plane is random (one snapshot has no PCA) and its axes say it stands in
        # for the PCA the dropdown shows.
        assert w.directions_dropdown.value == "pca"
        assert w.x_axis.label.startswith("PC1 pending") and "random" in w.x_axis.label
        assert "PCA once the path has 3 snapshots" in w.status.value
        # progress label and status line: the same count and the same seconds, within the wall
        label = LABEL.match(w.progress_label.value)
        assert label is not None and label[1] == label[2] == "81" and label[4] is None
        seconds = re.search(r"examples, ([\d.]+) s\)", w.status.value)
        assert seconds is not None and seconds[1] == label[3], w.status.value
        assert float(label[3]) <= wall + 0.06
    finally:
        w.close()


def test_stop_button_stops_a_running_watch_recompute(model_data, no_thread_leak):
    model, x, y = model_data
    w = _widget(model, x, y, directions="random", resolution=41)
    busy = threading.Event()
    w.stop_button.observe(lambda c: busy.set() if not c["new"] else None, "disabled")
    try:
        cb = w.watch(prime=True, subset=64, resolution=41)
        assert busy.wait(60)
        w.stop_button.click()
        assert cb.wait(60) and w.wait(60)
        assert w.stop_button.disabled and not w.computing
        assert cb.recomputes == 0  # the recompute was cancelled, not finished
    finally:
        w.close()
