"""Curvature: Hessian-vector products, Lanczos eigenpairs, Hutch++ trace, SLQ density and
Hessian directions, checked against exact answers (the full Hessian as the Jacobian of the
gradient, a quadratic model with a known Hessian, finite differences of gradients)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import mlp, parabola

from nbviz.errors import ModelError
from nbviz.landscape import (
    HessianOperator,
    evaluate_grid,
    grid_coords,
    hessian_density,
    hessian_directions,
    hessian_eigen,
    hessian_trace,
    iter_eigen,
    iter_trace,
    plot_density,
)
from nbviz.landscape.curvature import eigsh_eigen, run_eigen
from nbviz.landscape.hessian import Cancelled


def _dense_hessian(model, x, y, loss=None):
    """The exact Hessian of the mean loss, built independently of nbviz: the Jacobian of the
    gradient through a GradientTape on the model's own variables' values (no assignment)."""
    import tensorflow as tf

    loss_fn = model.loss if loss is None else loss
    loss_fn = tf.keras.losses.get(loss_fn) if isinstance(loss_fn, str) else loss_fn
    flat = tf.concat([tf.reshape(v, [-1]) for v in model.trainable_variables], 0)
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    sizes = [int(np.prod(s)) for s in shapes]
    nt = [tf.identity(v) for v in model.non_trainable_variables]
    with tf.GradientTape() as outer:
        outer.watch(flat)
        with tf.GradientTape() as inner:
            inner.watch(flat)
            parts = [tf.reshape(p, s) for p, s in zip(tf.split(flat, sizes), shapes, strict=True)]
            out, _, reg = model.stateless_call(parts, nt, x, training=False, return_losses=True)
            value = tf.reduce_mean(loss_fn(y.reshape(out.shape), out)) + sum(reg)
        g = inner.gradient(value, flat)
    h = outer.jacobian(g, flat).numpy().astype(np.float64)
    return (h + h.T) / 2


@pytest.fixture(scope="module")
def small():
    """A small ReLU MLP (193 parameters), trained briefly so that the Hessian is that of a
    point near a minimum, and its exact Hessian."""
    import keras

    keras.utils.set_random_seed(0)
    model = mlp(seed=0, width=12)
    x, y = parabola(128, seed=0)
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    return model, x, y, _dense_hessian(model, x, y)


def test_the_operator_covers_the_trainable_weights_and_matches_the_exact_hessian(small):
    model, x, y, h = small
    before = weights_snapshot(model)
    op = HessianOperator(model, x, y)
    assert op.n == sum(int(np.prod(v.shape)) for v in model.trainable_variables) == 193
    v = np.random.default_rng(1).standard_normal(op.n)
    np.testing.assert_allclose(op.matvec(v), h @ v, rtol=0, atol=1e-5 * np.abs(h @ v).max())
    np.testing.assert_allclose(op.dense(), h, atol=1e-5 * np.abs(h).max())
    assert_weights_identical(model, before)


@pytest.mark.parametrize("mode", ["forward_over_reverse", "reverse_over_reverse"])
def test_hvp_equals_a_central_difference_of_gradients(mode):
    import keras

    # A smooth (tanh) model: a ReLU network's gradient jumps where a unit switches, which a
    # finite difference sees and the Hessian (almost everywhere) does not.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(12, activation="tanh"),
            keras.layers.Dense(12, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(loss="mse")
    x, y = parabola(128, seed=0)
    op = HessianOperator(model, x, y, mode=mode)
    rng = np.random.default_rng(2)
    v = rng.standard_normal(op.n)
    v /= np.linalg.norm(v)
    w0, eps = op.params, 1e-2
    op.set_params(w0 + eps * v)
    _, g_plus = op.gradient()
    op.set_params(w0 - eps * v)
    _, g_minus = op.gradient()
    op.set_params(w0)
    fd = (g_plus - g_minus) / (2 * eps)
    hv = op.matvec(v)
    assert np.linalg.norm(hv - fd) <= 1e-2 * np.linalg.norm(hv)


def test_products_reuse_one_trace_for_new_vectors_weights_and_operators(small):
    model, x, y, _ = small
    op = HessianOperator(model, x, y)
    op.matvec(np.ones(op.n))
    op.gradient()
    traces = op.compiled.traces()
    rng = np.random.default_rng(0)
    for _ in range(3):
        op.matvec(rng.standard_normal(op.n))
        op.set_params(op.params + 1e-3)
    op.gradient()
    again = HessianOperator(model, x, y)  # same model and settings: the cached functions
    again.matvec(np.ones(again.n))
    assert again.compiled is op.compiled and op.compiled.traces() == traces


def test_memory_bounded_batches_give_the_same_products(small):
    model, x, y, _ = small
    whole = HessianOperator(model, x, y)
    batched = HessianOperator(model, x, y, batch_size=48)  # 3 batches, the last one padded
    assert batched.info["n_batches"] == 3 and whole.info["n_batches"] == 1
    v = np.random.default_rng(3).standard_normal(whole.n)
    np.testing.assert_allclose(batched.matvec(v), whole.matvec(v), atol=1e-5)


def test_top_5_and_most_negative_eigenvalues_equal_the_full_hessians(small):
    model, x, y, h = small
    before = weights_snapshot(model)
    exact = np.linalg.eigvalsh(h)
    result = hessian_eigen(model, x, y, k=5)
    top = exact[::-1][:5]
    np.testing.assert_allclose(result.values, top, rtol=1e-3)
    assert abs(result.min_value - exact[0]) <= 1e-3 * top[0]
    assert result.converged and result.n_products < 100
    # The vectors are eigenvectors: H u = lambda u.
    for lam, u in zip(result.values, result.vectors, strict=True):
        assert np.linalg.norm(h @ u - lam * u) <= 1e-3 * top[0]
    assert_weights_identical(model, before)


def test_lanczos_agrees_with_scipys_eigsh_and_fixes_signs(small):
    model, x, y, _ = small
    op = HessianOperator(model, x, y)
    ours = run_eigen(op, 3)
    arpack = eigsh_eigen(op, 3)
    np.testing.assert_allclose(ours.values, arpack.values, rtol=1e-5)
    # Same vectors with the same sign: the entry of largest magnitude is positive.
    np.testing.assert_allclose(ours.vectors, arpack.vectors, atol=1e-4)
    for u in ours.vectors:
        assert u[np.argmax(np.abs(u))] > 0


def test_iter_eigen_reports_progress_and_stops_on_an_event(small):
    model, x, y, _ = small
    op = HessianOperator(model, x, y)
    updates = list(iter_eigen(op, 2))
    assert [u.n_products for u in updates] == list(range(1, len(updates) + 1))
    assert updates[-1].result is not None and all(u.result is None for u in updates[:-1])
    stop = threading.Event()
    seen = []
    for u in iter_eigen(op, 2, stop_event=stop, tol=0.0):
        seen.append(u)
        if u.n_products == 5:
            stop.set()
    assert seen[-1].result is not None and not seen[-1].result.converged
    assert seen[-1].n_products == 5


def test_hutchpp_trace_is_within_5_percent_at_100_products(small):
    model, x, y, h = small
    op = HessianOperator(model, x, y)
    exact = float(np.trace(h))
    result = hessian_trace(op, 100, seed=0)
    assert result.n_products == 100 and result.method == "hutch++"
    assert abs(result.value - exact) <= 0.05 * abs(exact)
    plain = hessian_trace(op, 100, seed=0, method="hutchinson")
    assert abs(plain.value - exact) <= 4 * plain.std_error  # its own error bar holds


def test_trace_stops_early_with_what_it_has(small):
    model, x, y, _ = small
    op = HessianOperator(model, x, y)
    stop = threading.Event()
    last = None
    for u in iter_trace(op, 30, method="hutchinson", stop_event=stop):
        last = u
        if u.n_products == 4:
            stop.set()
    assert last.result is not None and not last.result.complete and last.result.n_products == 4


def test_spectral_density_integrates_to_one_and_its_nodes_reach_the_extremes(small):
    model, x, y, h = small
    exact = np.linalg.eigvalsh(h)
    op = HessianOperator(model, x, y)
    density = hessian_density(op, runs=4, steps=40, seed=0)
    assert density.nodes.shape == (4, 40) and density.n_products == 160
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, rtol=1e-9)
    grid = density.grid(2000)
    assert np.trapezoid(density.density(grid), grid) == pytest.approx(1.0, abs=1e-3)
    # 40 Lanczos steps resolve both ends of the spectrum in every run.
    np.testing.assert_allclose(density.nodes.max(axis=1), exact[-1], rtol=1e-3)
    np.testing.assert_allclose(density.nodes.min(axis=1), exact[0], atol=1e-3 * exact[-1])
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_density(density)
    assert ax.get_xlabel() == "eigenvalue" and len(ax.lines) == 1


# -- a quadratic model: everything exact ---------------------------------------------------------
@pytest.fixture(scope="module")
def quadratic():
    """A linear model under MSE: loss = mean((x w + b - y)^2), Hessian = 2/N A^T A, A = [x, 1]."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, name="lin")], name="quad")
    model.compile(loss="mse")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 5)) * [1, 2, 3, 0.5, 1]).astype(np.float32)
    y = rng.standard_normal(64).astype(np.float32)
    a = np.concatenate([x.astype(np.float64), np.ones((64, 1))], axis=1)
    return model, x, y, 2.0 / 64 * a.T @ a


def test_on_a_quadratic_everything_is_exact(quadratic):
    model, x, y, h = quadratic
    exact = np.linalg.eigvalsh(h)
    op = HessianOperator(model, x, y)
    v = np.arange(6.0)
    # Exact up to float32 rounding (the products run in float32).
    np.testing.assert_allclose(op.matvec(v), h @ v, rtol=0, atol=1e-6 * np.abs(h @ v).max())
    result = run_eigen(op, 6)
    np.testing.assert_allclose(result.values, exact[::-1], rtol=1e-5)
    assert result.min_value == pytest.approx(exact[0], rel=1e-5)
    # Hutch++ with 3n products spans the whole space: the trace is exact.
    assert hessian_trace(op, 18).value == pytest.approx(np.trace(h), rel=1e-5)
    density = hessian_density(op, runs=2, steps=6)
    for nodes in density.nodes:
        np.testing.assert_allclose(np.sort(nodes), exact, rtol=1e-5)
    assert density.trace(6) == pytest.approx(np.trace(h), rel=0.5)  # 2 probes: rough


def test_regularization_losses_enter_the_hessian():
    import keras

    keras.utils.set_random_seed(0)
    reg = 0.3
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(reg), name="lin"),
        ],
        name="ridge",
    )
    model.compile(loss="mse")
    rng = np.random.default_rng(0)
    x, y = (
        rng.standard_normal((32, 3)).astype(np.float32),
        rng.standard_normal(32).astype(np.float32),
    )
    a = np.concatenate([x.astype(np.float64), np.ones((32, 1))], axis=1)
    h = 2.0 / 32 * a.T @ a + np.diag([2 * reg] * 3 + [0.0])  # L2(reg): reg * sum(w^2)
    op = HessianOperator(model, x, y)
    np.testing.assert_allclose(op.dense(), h, rtol=1e-5, atol=1e-6)
    value, _ = op.gradient()
    assert value == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)


# -- Hessian directions ---------------------------------------------------------------------------
def test_hessian_directions_are_the_top_eigenvectors_over_the_random_directions_tensors(small):
    model, x, y, _ = small
    before = weights_snapshot(model)
    unit = hessian_directions(model, x, y, normalization="none", subset=None)
    assert unit.kind == "hessian" and unit.n == 2
    # Biases (1-D) are left out, as for random directions.
    assert unit.perturbed() == [True, False, True, False, True, False]
    # Over those tensors the vectors are the top eigenvectors of the restricted Hessian.
    mask = [True, False, True, False, True, False]
    op = HessianOperator(model, x, y, tensors=mask)
    exact = np.linalg.eigh(op.dense())
    flat = np.stack([op.from_weights(v) for v in unit.vectors])
    for j in range(2):
        u = exact[1][:, -1 - j]
        assert abs(abs(flat[j] @ u) - 1.0) < 1e-4
        assert unit.metadata["eigenvalues"][j] == pytest.approx(exact[0][-1 - j], rel=1e-4)
    # Filter-normalized (the default): each output neuron slice gets the weights' norm.
    filt = hessian_directions(model, x, y, subset=None)
    k = filt.vectors[0][0]
    np.testing.assert_allclose(
        np.linalg.norm(k, axis=0), np.linalg.norm(filt.origin[0], axis=0), rtol=1e-5
    )
    surface = evaluate_grid(model, x, y, filt, grid_coords(5, 0.5), grid_coords(5, 0.5))
    assert surface.complete and np.isfinite(surface.loss).all()
    assert surface.metadata["directions"]["kind"] == "hessian"
    assert_weights_identical(model, before)


def test_hessian_directions_are_reproducible(small):
    model, x, y, _ = small
    a = hessian_directions(model, x, y, subset=64, seed=3)
    b = hessian_directions(model, x, y, subset=64, seed=3)
    assert a.hash() == b.hash()


# -- bad inputs -------------------------------------------------------------------------------------
def test_a_model_without_a_loss_is_refused_with_the_fix():
    model = mlp(seed=0, width=4, compile=False)
    x, y = parabola(16)
    with pytest.raises(ModelError, match="has no loss.*Fix: pass loss="):
        HessianOperator(model, x, y)
    assert HessianOperator(model, x, y, loss="mse").n == 33  # a given loss works


def test_a_non_differentiable_loss_is_refused_with_the_fix():
    import tensorflow as tf

    model = mlp(seed=0, width=4)
    x, y = parabola(16)

    def rounded(y_true, y_pred):
        return tf.round(tf.abs(y_true - y_pred))

    with pytest.raises(ModelError, match="no gradient.*Fix: pass a differentiable loss"):
        HessianOperator(model, x, y, loss=rounded)


def test_integer_trainable_weights_are_refused_with_the_fix():
    import keras

    class Counter(keras.layers.Layer):
        def build(self, shape):
            self.count = self.add_weight(
                shape=(), dtype="int32", initializer="zeros", trainable=True
            )

        def call(self, x):
            return x

    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(2), Counter(), keras.layers.Dense(1)],
        name="with_int",
    )
    model.compile(loss="mse")
    x, y = parabola(8)
    with pytest.raises(ModelError, match="int32.*Fix: create it with trainable=False"):
        HessianOperator(model, x, y)


def test_k_larger_than_the_parameter_count_is_refused_with_the_fix(quadratic):
    model, x, y, _ = quadratic
    with pytest.raises(ModelError, match="only 6 x 6.*Fix: pass k <= 6"):
        hessian_eigen(model, x, y, k=7)


def test_a_cancelled_product_raises_cancelled(small):
    model, x, y, _ = small
    op = HessianOperator(model, x, y)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        op.matvec(np.ones(op.n), stop)
