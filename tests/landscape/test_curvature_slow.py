"""Slow tier: the seed's parabola MLP (~8.5k parameters) against its full Hessian, and the
edge of stability: full-batch gradient descent drives the sharpness up to 2 / lr."""

from __future__ import annotations

import numpy as np
import pytest

from nbviz.demo import build_parabola_mlp, parabola_data
from nbviz.landscape import HessianOperator, hessian_eigen
from nbviz.landscape.sharpness import SharpnessTracker

pytestmark = pytest.mark.slow


def test_parabola_mlp_top_5_and_min_eigenvalues_equal_the_full_hessians():
    model = build_parabola_mlp(seed=0)
    x, y = parabola_data(256, seed=0)
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    op = HessianOperator(model, x, y)
    assert op.n == 8513
    # The exact Hessian: the Jacobian of the gradient (tape.jacobian, n reverse passes).
    exact = np.linalg.eigvalsh(op.dense())
    result = hessian_eigen(model, x, y, k=5, max_products=400)
    top = exact[::-1][:5]
    np.testing.assert_allclose(result.values, top, rtol=1e-3)
    assert abs(result.min_value - exact[0]) <= 1e-3 * top[0]


LR, STEPS, EVERY = 0.05, 400, 25


def test_full_batch_gradient_descent_drives_sharpness_to_2_over_lr_and_keeps_it_there():
    """Cohen et al. 2021 on a small tanh MLP (1 -> 32 -> 32 -> 1, MSE, y = x^2 on 128
    points): plain gradient descent with lr = 0.05 (2 / lr = 40), starting at sharpness ~16.
    Tolerances: the first estimate is below 60% of 2/lr; from step 150 on the median estimate
    is within 15% of 2/lr and none exceeds 1.5 x 2/lr."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (128, 1)).astype(np.float32)
    y = (x[:, 0] ** 2).astype(np.float32)
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    tracker = SharpnessTracker(
        x, y, every_k_batches=EVERY, subset=None, full_batch=True, background=False
    )
    full_batch = tf.data.Dataset.from_tensors((x, y)).repeat()  # every step sees all 128
    model.fit(
        full_batch, epochs=1, steps_per_epoch=STEPS, shuffle=False, verbose=0, callbacks=[tracker]
    )
    limit = 2 / LR
    steps, values = tracker.steps, tracker.values
    assert tracker.history[-1].threshold.value == pytest.approx(limit)
    assert "full-batch" not in tracker.history[-1].threshold.label
    assert values[0] < 0.6 * limit
    late = values[steps >= 150]
    assert abs(np.median(late) - limit) <= 0.15 * limit, values
    assert late.max() <= 1.5 * limit, values
