"""Live sharpness: stability thresholds per optimizer, warm-started estimates equal converged
eigsh at the same weights, training unchanged, and the live chart in nbviz.watch."""

from __future__ import annotations

import numpy as np
import pytest
from landscape_support import mlp, parabola

from nbviz.demo import build_parabola_mlp, parabola_data
from nbviz.landscape import HessianOperator
from nbviz.landscape.curvature import eigsh_eigen
from nbviz.landscape.sharpness import (
    SharpnessTracker,
    adam_preconditioner,
    stability_threshold,
)

EPOCHS, N, BATCH = 3, 96, 16  # as tests/landscape/test_watch.py: 6 batches an epoch, 18 in all


# -- thresholds ---------------------------------------------------------------------------------------
def test_each_optimizer_gets_its_own_threshold_or_none():
    import keras

    o = keras.optimizers
    sgd = stability_threshold(o.SGD(0.1))
    assert sgd.quantity == "sharpness" and sgd.value == pytest.approx(20.0)
    heavy = stability_threshold(o.SGD(0.1, momentum=0.9))
    assert heavy.value == pytest.approx((2 + 2 * 0.9) / 0.1) and "β" in heavy.formula
    adam = stability_threshold(o.Adam(0.01, beta_1=0.9))
    assert adam.quantity == "preconditioned sharpness"
    assert adam.value == pytest.approx(38 / 0.01)
    for opt in (
        o.SGD(0.1, momentum=0.9, nesterov=True),
        o.AdamW(0.01),
        o.RMSprop(0.01),
        o.Adam(0.01, weight_decay=1e-4),
        o.SGD(0.1, clipnorm=1.0),
        o.LossScaleOptimizer(o.SGD(0.1)),
    ):
        t = stability_threshold(opt)
        assert t.value is None and t.quantity == "sharpness" and "no stability line" in t.label
    # A line derived for full-batch descent says so during mini-batch training.
    assert "full-batch" in stability_threshold(o.SGD(0.1), full_batch=False).label
    assert "full-batch" not in sgd.label


# -- live estimates -------------------------------------------------------------------------------------
def _train(optimizer, every=3, seed=0, subset=64):
    import keras

    keras.utils.set_random_seed(seed)
    model = mlp(seed=seed, width=12, compile=False)
    model.compile(optimizer=optimizer, loss="mse")
    x, y = parabola(N, seed=seed)
    seen = []
    tracker = SharpnessTracker(
        x,
        y,
        every_k_batches=every,
        subset=subset,
        background=False,
        on_estimate=lambda e, _h: seen.append((e.value, e.weights)),
    )
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=[tracker])
    return model, x, y, tracker, seen


def test_each_live_estimate_is_within_5_percent_of_a_converged_eigsh():
    import keras

    model, x, y, tracker, seen = _train(keras.optimizers.SGD(0.05))
    # Before batch 0, 3, ..., 15 and at the end (18).
    np.testing.assert_array_equal(tracker.steps, [0, 3, 6, 9, 12, 15, 18])
    assert tracker.error is None
    for value, weights in seen:
        op = HessianOperator(model, x, y, weights=weights, subset=64, seed=0)
        exact = eigsh_eigen(op, 1).top
        assert value == pytest.approx(exact, rel=0.05)
    last = tracker.history[-1]
    assert last.threshold.value == pytest.approx(2 / 0.05) and last.lr == pytest.approx(0.05)
    assert last.threshold.full_batch_only  # 6 batches an epoch
    # Warm starts need fewer products than the cold first estimate.
    products = [e.n_products for e in tracker.history]
    assert np.mean(products[1:]) < products[0]
    assert all(e.info["warm_start"] for e in tracker.history[1:])


def test_adam_gets_the_preconditioned_sharpness_from_its_variables():
    import keras

    model, x, y, tracker, _ = _train(keras.optimizers.Adam(0.01), every=6)
    last = tracker.history[-1]
    assert last.threshold.quantity == "preconditioned sharpness"
    assert last.threshold.value == pytest.approx(38 / 0.01)
    # At the end of training: the top eigenvalue of P^-1 H with P from Adam's velocities.
    op = HessianOperator(model, x, y, subset=64, seed=0)
    p = adam_preconditioner(model.optimizer, model, op.idx)
    assert p is not None and p.shape == (op.n,) and np.all(p > 0)
    h = op.dense()
    exact = np.max(np.linalg.eigvals(h / p[:, None]).real)
    assert last.value == pytest.approx(exact, rel=0.05)
    # ... which is not the plain sharpness.
    assert abs(last.value - np.linalg.eigvalsh(h)[-1]) > 0.5 * exact


def test_the_first_adam_estimate_has_no_line_before_its_first_step():
    import keras

    _, _, _, tracker, _ = _train(keras.optimizers.Adam(0.01), every=100)
    first = tracker.history[0]
    assert first.step == 0 and first.threshold.value is None


# -- training unchanged, live view ----------------------------------------------------------------------
def _fit_parabola(callbacks=()):
    import keras

    keras.utils.set_random_seed(0)
    model = build_parabola_mlp(seed=0)
    x, y = parabola_data(N, seed=0)
    history = model.fit(
        x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0, callbacks=list(callbacks)
    )
    return model, history.history["loss"]


def test_watch_with_sharpness_draws_live_and_leaves_training_identical(no_thread_leak):
    from nbviz.widgets.landscape import watch

    ref_model, ref_losses = _fit_parabola()
    x, y = parabola_data(N, seed=0)
    import keras

    keras.utils.set_random_seed(0)
    model = build_parabola_mlp(seed=0)
    cb = watch(model, x, y, display=False, sharpness=4, resolution=5, view3d=None, recompute_s=1e9)
    w = cb.widget
    try:
        history = model.fit(
            x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0, callbacks=[cb]
        )
        assert history.history["loss"] == ref_losses
        for a, b in zip(model.weights, ref_model.weights, strict=True):
            assert a.numpy().tobytes() == b.numpy().tobytes(), "the sharpness changed training"
        assert w.wait(120) and cb.sharpness.error is None and w.error is None, w.status.value
        tracker, view = cb.sharpness, w.sharpness_view
        assert len(tracker.history) >= 2 and tracker.history[-1].step == EPOCHS * N // BATCH
        assert view in w.children
        np.testing.assert_allclose(np.asarray(view.curve.y), tracker.values)
        # Adam (the demo MLP's optimizer): the preconditioned sharpness with its line.
        assert "preconditioned sharpness" in view.figure.title
        assert "full-batch" in view.line.labels[0] and len(view.line.y) == len(tracker.values)
    finally:
        w.close()


def test_no_line_is_drawn_for_an_optimizer_without_a_known_threshold(no_thread_leak):
    import keras

    from nbviz.widgets.sharpness_view import SharpnessView

    keras.utils.set_random_seed(0)
    model = mlp(seed=0, width=8, compile=False)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), loss="mse")
    x, y = parabola(48)
    view = SharpnessView()
    tracker = SharpnessTracker(x, y, every_k_batches=2, background=False)
    view.attach_to(tracker)
    try:
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[tracker])
        assert len(view.curve.y) == len(tracker.history) >= 2
        assert len(view.line.y) == 0 and "Nesterov" in view.note.value
    finally:
        tracker.close()
        view.close()


# -- the compiled estimate: robust start, reproducible, no retracing -----------------------------------
def test_a_warm_start_on_a_wrong_eigenvector_still_finds_the_top_eigenvalue():
    from nbviz.landscape.topeigen import top_eigen

    model = mlp(seed=1, width=10)
    x, y = parabola(64, seed=1)
    op = HessianOperator(model, x, y)
    values, vectors = np.linalg.eigh(op.dense())
    # The previous "top" eigenvector is now the bottom one: alone, it spans an invariant
    # subspace and Lanczos would return its eigenvalue, not the top.
    for warm in (vectors[:, 0], vectors[:, len(values) // 2]):
        result = top_eigen(op, warm=warm, seed=3)
        assert result.converged
        assert result.value == pytest.approx(values[-1], rel=0.05)
    # From the top eigenvector itself, fewer products than from a random start.
    warm = top_eigen(op, warm=vectors[:, -1], seed=3)
    cold = top_eigen(op, seed=3)
    assert warm.value == pytest.approx(values[-1], rel=1e-2)
    assert warm.n_products < cold.n_products, (warm.n_products, cold.n_products)


def _adam_run():
    import keras

    keras.utils.set_random_seed(0)
    model = build_parabola_mlp(seed=0)  # Adam(lr 0.001)
    x, y = parabola_data(1024, seed=0)
    seen = []
    tracker = SharpnessTracker(
        x,
        y,
        every_k_batches=10,
        subset=256,
        background=False,
        on_estimate=lambda e, _h: seen.append((e.step, e.value, e.weights, e.preconditioner)),
    )
    model.fit(x, y, epochs=2, batch_size=32, shuffle=True, verbose=0, callbacks=[tracker])
    assert tracker.error is None
    return model, x, y, seen


def test_adam_preconditioned_estimates_are_reproducible_and_match_a_converged_eigsh():
    """Early in training Adam's preconditioner changes so much between estimates that the
    top eigenvector of P^-1 H jumps (measured here: ~2e3 at batch 10 and 20, ~5e2 at 30-40,
    ~1.7e4 at 50); a warm start alone then converged to a lower eigenvalue (265 instead of
    1941 at batch 20), and two runs could disagree by 100x."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    model, x, y, first = _adam_run()
    _, _, _, second = _adam_run()
    assert [s for s, *_ in first] == [0, 10, 20, 30, 40, 50, 60, 64]
    np.testing.assert_allclose([v for _, v, *_ in second], [v for _, v, *_ in first], rtol=1e-6)
    op = HessianOperator(model, x, y, weights=first[0][2], subset=256, seed=0)
    assert first[0][3] is None  # before Adam's first step: the plain sharpness
    for step, value, weights, p in first:
        op.set_weights(weights)
        if p is None:
            exact = eigsh_eigen(op, 1).top
        else:
            s = 1 / np.sqrt(p)
            a = LinearOperator((op.n, op.n), matvec=lambda v, s=s: s * op.matvec(s * v))
            exact = float(eigsh(a, k=1, which="LA", tol=1e-8)[0][0])
        assert value == pytest.approx(exact, rel=0.05), f"batch {step}"


def test_live_estimates_are_compiled_once_per_model():
    import keras

    model = mlp(seed=2, width=12, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = parabola(N, seed=2)
    tracker = SharpnessTracker(x, y, every_k_batches=2, subset=64, background=False)
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[tracker])
    traces = tracker.op.compiled.traces()
    assert len(tracker.history) >= 4 and tracker.error is None
    again = SharpnessTracker(x, y, every_k_batches=2, subset=64, background=False)
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[again])
    assert len(again.history) >= 7 and again.error is None
    assert again.op.compiled is tracker.op.compiled
    assert again.op.compiled.traces() == traces, "a later estimate or a new tracker retraced"
