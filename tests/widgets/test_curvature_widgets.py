"""Curvature in the widgets: Hessian directions in LossLandscapeWidget and in watch (headless)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import mlp, parabola

from nbviz.landscape import evaluate_grid, hessian_directions


@pytest.fixture
def model_data():
    model = mlp(seed=1, width=8)
    x, y = parabola(96, seed=1)
    return model, x, y


def test_the_widget_computes_a_hessian_plane_from_its_dropdown(model_data, no_thread_leak):
    from nbviz.widgets.landscape import LossLandscapeWidget

    model, x, y = model_data
    before = weights_snapshot(model)
    w = LossLandscapeWidget(model, x, y, directions="random", resolution=5, view3d=None)
    try:
        assert ("Hessian top-2", "hessian") in w.directions_dropdown.options
        w.directions_dropdown.value = "hessian"
        assert w.directions == "hessian"
        assert w.compute() and w.wait(120), w.status.value
        assert w.error is None, w.status.value
        dirs = w.current_directions
        assert dirs.kind == "hessian" and dirs.normalization == "filter"
        # The same directions and grid as the backend computes on the same subset.
        ref = hessian_directions(model, x, y, subset=256, seed=0)
        assert dirs.hash() == ref.hash()
        ref_surface = evaluate_grid(model, x, y, ref, w.surface.xs, w.surface.ys)
        np.testing.assert_allclose(w.surface.loss, ref_surface.loss, rtol=1e-5)
        assert "Hessian eigenvector 1" in w.x_axis.label and "λ" in w.x_axis.label
    finally:
        w.close()
    assert_weights_identical(model, before)


def test_watch_with_hessian_directions_recomputes_around_the_snapshots(no_thread_leak):
    import keras

    from nbviz.widgets.landscape import watch

    keras.utils.set_random_seed(0)
    model = mlp(seed=2, width=8)
    x, y = parabola(64, seed=2)
    cb = watch(
        model,
        x,
        y,
        directions="hessian",
        display=False,
        resolution=5,
        recompute_every=2,
        recompute_s=0.0,
        max_duty=1.0,
        view3d=None,
        subset=32,
    )
    w = cb.widget
    try:
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
        assert w.wait(120) and cb.error is None, w.status.value
        assert cb.last.final and cb.last.directions.kind == "hessian"
        np.testing.assert_array_equal(cb.last.directions.origin_flat(), cb.latest())
        assert np.isfinite(cb.last.surface.loss).all()
    finally:
        w.close()
