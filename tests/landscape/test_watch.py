"""Live watching of training: path points, background recompute, training unaffected."""

from __future__ import annotations

import numpy as np
import pytest

from nbviz.demo import build_parabola_mlp, parabola_data
from nbviz.landscape import project_path
from nbviz.landscape.watch import LandscapeWatcher

EPOCHS, N, BATCH = 3, 96, 16  # 6 batches an epoch, 18 in all


def _fit(callbacks=(), seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = build_parabola_mlp(seed=seed)
    x, y = parabola_data(N, seed=seed)
    history = model.fit(
        x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0, callbacks=list(callbacks)
    )
    return model, history.history["loss"]


@pytest.fixture(scope="module")
def reference():
    """The seed MLP trained without any callback: final weights and losses."""
    model, losses = _fit()
    return [w.numpy().copy() for w in model.weights], losses


def _assert_same_training(model, losses, reference):
    weights, ref_losses = reference
    assert losses == ref_losses
    for a, b in zip(model.weights, weights, strict=True):
        assert a.numpy().tobytes() == b.tobytes(), "watching changed the training"


def test_watch_records_the_path_and_leaves_training_identical(reference, no_thread_leak):
    from nbviz.widgets.landscape import watch

    x, y = parabola_data(N, seed=0)
    import keras

    keras.utils.set_random_seed(0)
    model = build_parabola_mlp(seed=0)
    cb = watch(
        model,
        x,
        y,
        display=False,
        every_k_batches=4,
        recompute_every=3,
        recompute_s=0.0,
        max_duty=1.0,
        resolution=7,
        view3d=None,
    )
    w = cb.widget
    try:
        history = model.fit(
            x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0, callbacks=[cb]
        )
        _assert_same_training(model, history.history["loss"], reference)
        # Initial weights, every 4th of 18 batches (4, 8, 12, 16) and the final weights.
        assert len(cb) == 6
        np.testing.assert_array_equal(cb.steps, [0, 4, 8, 12, 16, 18])
        assert w.wait(60), "the background recompute did not finish"
        assert cb.error is None and w.error is None, w.status.value
        # At least the primed and the final landscape were computed, the last around the
        # final weights with PCA of the whole path.
        assert cb.recomputes >= 2 and cb.last.final and cb.last.directions.kind == "pca"
        np.testing.assert_array_equal(cb.last.directions.origin_flat(), cb.latest())
        assert cb.last.surface.complete and np.isfinite(cb.last.surface.loss).all()
        # The widget shows that landscape, and the whole path projected onto its plane.
        np.testing.assert_array_equal(w.surface.loss, cb.last.surface.loss)
        coords, _ = project_path(cb.snapshots(), cb.last.directions)
        np.testing.assert_allclose(np.asarray(w.path_points.x), coords[:, 0], atol=1e-6)
        np.testing.assert_array_equal(np.asarray(w.path_points.color), cb.steps)
        assert "final weights" in w.status.value
        # Afterwards the widget keeps the recorded path for PCA computations.
        assert w.path is cb
    finally:
        w.close()


def test_watcher_recomputes_during_fit_on_snapshots(reference, no_thread_leak):
    surfaces, paths = [], []
    x, y = parabola_data(N, seed=0)
    watcher = LandscapeWatcher(
        x,
        y,
        directions="random",
        resolution=5,
        subset=32,
        every_k_batches=1,
        recompute_every=2,
        recompute_s=0.0,
        max_duty=1.0,
        path_interval_s=0.0,
        on_surface=surfaces.append,
        on_path=paths.append,
    )
    try:
        model, losses = _fit([watcher])
        _assert_same_training(model, losses, reference)
        assert watcher.wait(60) and watcher.error is None
        assert len(watcher) == EPOCHS * N // BATCH + 1  # every batch, plus the initial weights
        # The path was handed out on the training thread as it grew.
        assert len(paths) >= 10
        assert [len(p.steps) for p in paths] == sorted(len(p.steps) for p in paths)
        # Recomputes happened (at least the first one and the final one), each around a
        # recorded snapshot, on 32 examples, with fixed random directions renormalized there.
        assert watcher.recomputes >= 2 and surfaces[-1].final
        snaps = watcher.snapshots()
        for frame in surfaces:
            origin = frame.directions.origin_flat()
            assert any(np.array_equal(origin, s) for s in snaps)
            assert frame.surface.metadata["n_examples"] == 32
            assert frame.directions.kind == "random" and frame.directions.seed == 0
        np.testing.assert_array_equal(surfaces[-1].directions.origin_flat(), snaps[-1])
    finally:
        watcher.close()


def test_watch_options_are_checked():
    x, y = parabola_data(8)
    with pytest.raises(ValueError, match="directions"):
        LandscapeWatcher(x, y, directions="interpolation")
    with pytest.raises(ValueError, match="max_duty"):
        LandscapeWatcher(x, y, max_duty=0.0)


def test_a_failing_view_never_stops_training(reference, no_thread_leak):
    x, y = parabola_data(N, seed=0)

    def broken(frame):
        raise RuntimeError("view is broken")

    watcher = LandscapeWatcher(
        x, y, directions="random", resolution=5, subset=32, on_path=broken, path_interval_s=0.0
    )
    try:
        model, losses = _fit([watcher])
        _assert_same_training(model, losses, reference)
        assert isinstance(watcher.error, RuntimeError)
    finally:
        watcher.close()
