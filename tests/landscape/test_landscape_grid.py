"""Grid evaluation: equals the seed's naive loop, never touches the model, progressive,
cancellable, subset estimates, NaN cells, memory-bounded chunks, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import convnet, images, mlp, naive_grid, parabola

from nbviz.errors import DataError, ModelError
from nbviz.landscape import (
    cell_order,
    evaluate_grid,
    evaluate_line,
    grid_coords,
    interpolation_directions,
    iter_grid,
    random_directions,
)

XS = grid_coords(5, 1.0)
YS = grid_coords(4, 0.5)  # nx != ny: catches [ix, iy] mix-ups


def test_grid_coords():
    c = grid_coords(7, 2.0)
    assert c[3] == 0.0 and c[0] == -2.0 and c[-1] == 2.0
    np.testing.assert_allclose(grid_coords(30, 0.4, "cubed"), np.linspace(-1, 1, 30) ** 3 * 0.4)
    assert 0.0 not in grid_coords(30, 1.0, "cubed") and 0.0 in grid_coords(31, 1.0, "cubed")
    np.testing.assert_allclose(grid_coords(3, (0.0, 1.0)), [0.0, 0.5, 1.0])


def test_coarse_to_fine_order_is_a_permutation_starting_with_corners():
    order = cell_order(9, 7, "coarse_to_fine")
    assert sorted(order) == list(range(63))
    corners = {0, 6, 56, 62}
    assert set(order[:4]) == corners


@pytest.mark.parametrize("strategy", ["vectorized", "per_point"])
def test_mlp_grid_equals_naive_loop(strategy):
    model = mlp()
    x, y = parabola(64)
    d = random_directions(model, seed=1)
    snap = weights_snapshot(model)
    s = evaluate_grid(model, x, y, d, XS, YS, strategy=strategy, progress=False)
    assert s.Z.shape == (4, 5) and s.complete
    assert s.metadata["strategy"] == strategy
    want, _ = naive_grid(model, x, y, d, XS, YS)
    np.testing.assert_allclose(s.Z, want, rtol=1e-5)
    assert_weights_identical(model, snap)


def test_convnet_grid_with_accuracy_equals_naive_loop():
    model = convnet()
    x, y = images(24)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # moving statistics away from 0/1
    d = random_directions(model, seed=2)
    snap = weights_snapshot(model)
    s = evaluate_grid(model, x, y, d, XS[:3], YS[:2], metrics=["accuracy"], batch_size=10)
    assert s.metadata["strategy"] == "per_point"  # auto: convolutions
    want, acc = naive_grid(model, x, y, d, XS[:3], YS[:2], metric="accuracy")
    np.testing.assert_allclose(s.Z, want, rtol=1e-5)
    np.testing.assert_allclose(s.metrics["accuracy"], acc, atol=1e-6)
    assert_weights_identical(model, snap)


def test_weights_identical_after_cancel_close_and_exception():
    model = mlp()
    x, y = parabola(32)
    d = random_directions(model)
    snap = weights_snapshot(model)
    stop = threading.Event()
    updates = []
    for u in iter_grid(
        model,
        x,
        y,
        d,
        grid_coords(9),
        grid_coords(9),
        strategy="per_point",
        max_chunk=4,
        stop_event=stop,
    ):
        updates.append(u)
        stop.set()
    assert len(updates) == 1 and 0 < updates[0].done < 81
    s = updates[-1].surface
    assert s.n_done == updates[0].done and np.isfinite(s.Z[s.done]).all()
    assert np.isnan(s.Z[~s.done]).all()
    assert_weights_identical(model, snap)

    gen = iter_grid(model, x, y, d, grid_coords(9), grid_coords(9), max_chunk=10)
    next(gen)
    gen.close()
    assert_weights_identical(model, snap)

    calls = []

    def exploding_metric(y_true, y_pred):
        calls.append(1)
        if len(calls) > 1:  # the eager probe passes; tracing the grid function raises
            raise RuntimeError("boom")
        return y_pred[:, 0] * 0.0

    with pytest.raises(RuntimeError, match="boom"):
        evaluate_grid(model, x, y, d, XS, YS, metrics=[exploding_metric], jit_compile=False)
    assert_weights_identical(model, snap)


def test_progress_bar_on_request(capsys):
    model = mlp()
    x, y = parabola(16)
    evaluate_grid(model, x, y, random_directions(model), XS, YS, progress=True)
    assert "loss grid" in capsys.readouterr().err


def test_interpolation_of_batchnorm_convnets_reaches_the_second_model():
    a, b = convnet(0), convnet(1)
    x, y = images(16)
    b.fit(x, y, epochs=2, batch_size=8, verbose=0)  # b's moving statistics differ from a's
    line = evaluate_line(a, x, y, interpolation_directions(a, b), ts=[0.0, 1.0])
    assert line.loss[0] == pytest.approx(a.evaluate(x, y, verbose=0)[0], rel=1e-5)
    assert line.loss[1] == pytest.approx(b.evaluate(x, y, verbose=0)[0], rel=1e-5)


def test_cancelled_evaluate_grid_returns_partial_surface():
    model = mlp()
    x, y = parabola(32)
    stop = threading.Event()
    stop.set()
    s = evaluate_grid(model, x, y, random_directions(model), XS, YS, stop_event=stop)
    assert s.metadata["cancelled"] and s.n_done == 0


def test_updates_progress_eta_and_coarse_to_fine_result():
    model = mlp()
    x, y = parabola(32)
    d = random_directions(model)
    ups = list(
        iter_grid(
            model,
            x,
            y,
            d,
            grid_coords(8),
            grid_coords(6),
            order="coarse_to_fine",
            max_chunk=7,
            strategy="vectorized",
        )
    )
    assert [u.done for u in ups] == sorted(u.done for u in ups) and ups[-1].done == 48
    assert all(len(u.iy) <= 7 for u in ups) and ups[-1].eta_s == 0.0
    # No ETA from the first chunk alone (it includes compiling); an estimate after it.
    assert ups[0].eta_s is None
    assert all(u.eta_s is not None and u.eta_s >= 0 for u in ups[1:])
    seen = np.concatenate([u.iy * 8 + u.ix for u in ups])
    assert sorted(seen) == list(range(48))
    raster = evaluate_grid(model, x, y, d, grid_coords(8), grid_coords(6))
    np.testing.assert_allclose(ups[-1].surface.Z, raster.Z, rtol=1e-6)


def test_subset_is_seeded_and_reports_standard_error():
    model = mlp()
    x, y = parabola(400)
    d = random_directions(model)
    full = evaluate_grid(model, x, y, d, XS, YS)
    assert full.stderr is None
    a = evaluate_grid(model, x, y, d, XS, YS, subset=100, seed=3)
    b = evaluate_grid(model, x, y, d, XS, YS, subset=0.25, seed=3)
    np.testing.assert_array_equal(a.Z, b.Z)
    assert a.metadata["n_examples"] == 100 and a.metadata["n_total"] == 400
    assert np.all(a.stderr > 0)
    z = np.abs(a.Z - full.Z) / a.stderr
    assert np.median(z) < 3.0  # the estimate is within its error bars
    c = evaluate_grid(model, x, y, d, XS, YS, subset=100, seed=4)
    assert not np.array_equal(a.Z, c.Z)


def test_nonfinite_losses_are_kept_as_nan_cells():
    model = mlp()
    x, y = parabola(16)
    d = random_directions(model)
    xs = np.array([0.0, 1.0, 1e30, 3e38])
    s = evaluate_grid(model, x, y, d, xs, np.array([0.0, 1e30]))
    assert s.complete
    assert np.isfinite(s.Z[0, :2]).all()
    assert s.nonfinite.any() and np.isnan(s.Z[s.nonfinite]).all()
    assert s.metadata["nonfinite_cells"] == int(s.nonfinite.sum())


def test_huge_grid_is_chunked_by_memory_budget():
    model = mlp(width=32)
    x, y = parabola(256)
    d = random_directions(model)
    ups = list(
        iter_grid(
            model,
            x,
            y,
            d,
            grid_coords(41),
            grid_coords(41),
            strategy="vectorized",
            memory_budget=4_000_000,
        )
    )
    chunk = ups[0].surface.metadata["chunk"]
    assert 1 <= chunk < 50, chunk
    assert len(ups) >= 41 * 41 // chunk and all(len(u.iy) <= chunk for u in ups)
    assert ups[-1].surface.complete


def test_line_random_and_interpolation():
    a, b = mlp(0), mlp(1)
    x, y = parabola(64)
    b.fit(x, y, epochs=2, verbose=0)
    line = evaluate_line(a, x, y, interpolation_directions(a, b), ts=[0.0, 0.5, 1.0])
    assert line.loss[0] == pytest.approx(a.evaluate(x, y, verbose=0), rel=1e-5)
    assert line.loss[2] == pytest.approx(b.evaluate(x, y, verbose=0), rel=1e-5)
    r = evaluate_line(a, x, y, subset=32)
    assert r.loss.shape == (41,) and r.stderr is not None
    assert r.loss[20] == pytest.approx(
        evaluate_line(a, x, y, ts=[0.0], subset=32).loss[0], rel=1e-6
    )


def test_bad_input_errors_name_the_fix():
    model = mlp()
    x, y = parabola(16)
    d = random_directions(model)
    with pytest.raises(DataError, match=r"expected shape \(N, 1\).*got \(16, 3\)"):
        evaluate_grid(model, np.zeros((16, 3), np.float32), y, d, XS, YS)
    with pytest.raises(DataError, match="same number of examples"):
        evaluate_grid(model, x, y[:10], d, XS, YS)
    raw = mlp(compile=False)
    with pytest.raises(ModelError, match="pass loss="):
        evaluate_grid(raw, x, y, random_directions(raw), XS, YS)
    s = evaluate_grid(raw, x, y, random_directions(raw), XS, YS, loss="mae")
    assert s.metadata["loss"] == "mae" and s.complete
    with pytest.raises(ModelError, match="made for model"):
        evaluate_grid(mlp(width=8), x, y, d, XS, YS)
    cnn = convnet()
    xi, _ = images(8)
    with pytest.raises(DataError, match="fails on targets"):
        evaluate_grid(cnn, xi, np.zeros((8, 5), np.float32), random_directions(cnn), XS, YS)
    with pytest.raises(ValueError, match="2 directions"):
        evaluate_grid(model, x, y, random_directions(model, n=1), XS, YS)


def test_evaluate_grid_in_one_call_uses_random_directions_and_21_points():
    model = mlp(seed=0, width=8)
    x, y = parabola(32)
    got = evaluate_grid(model, x, y)
    assert got.loss.shape == (21, 21) and got.complete
    want = evaluate_grid(
        model, x, y, random_directions(model, seed=0), grid_coords(21, 1.0), grid_coords(21, 1.0)
    )
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-6)


def test_eta_is_the_rate_of_the_chunks_after_the_first_times_the_cells_left():
    model = mlp()
    x, y = parabola(32)
    d = random_directions(model)
    kw = {"order": "coarse_to_fine", "max_chunk": 9, "strategy": "vectorized"}
    ups = list(iter_grid(model, x, y, d, grid_coords(9), grid_coords(9), **kw))
    first = ups[0]
    for u in ups[1:-1]:
        rate = (u.elapsed_s - first.elapsed_s) / (u.done - first.done)
        assert u.eta_s == pytest.approx(rate * (u.total - u.done))


def test_coarse_first_shows_a_strided_subgrid_first_and_the_same_grid_bit_for_bit():
    """The first chunk of a large coarse-to-fine grid is a strided subgrid spanning the whole
    plane (so the first picture covers it) and the final grid equals the raster one exactly."""
    model = mlp()
    x, y = parabola(64)
    d = random_directions(model)
    xs = grid_coords(41, 1.0)
    kw = {"strategy": "vectorized", "max_chunk": 256}
    ups = list(iter_grid(model, x, y, d, xs, xs, order="coarse_to_fine", **kw))
    raster = list(iter_grid(model, x, y, d, xs, xs, order="raster", **kw))
    first = ups[0]
    assert 0 < first.done <= first.total // 4  # a first picture after a fraction of the work
    # every 4th row and column (ends included) is in the first chunk: 11 x 11 cells
    cells = set(zip(first.iy.tolist(), first.ix.tolist(), strict=True))
    assert {(i, j) for i in range(0, 41, 4) for j in range(0, 41, 4)} <= cells
    # ... whereas row by row the first chunk covers only the first rows
    assert raster[0].iy.max() < 40
    np.testing.assert_array_equal(ups[-1].surface.Z, raster[-1].surface.Z)
