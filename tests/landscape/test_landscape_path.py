"""Training paths: the recorder (read-only, bounded memory, live reads), projection onto a
plane, PCA directions against scikit-learn."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from landscape_support import mlp, parabola

from nbviz.errors import PathError
from nbviz.landscape import (
    WeightLayout,
    WeightPathRecorder,
    as_path_matrix,
    pca_directions,
    project_path,
    random_directions,
)


def _fit(model, callbacks=(), epochs=2, n=64):
    x, y = parabola(n)
    model.fit(
        x, y, epochs=epochs, batch_size=8, shuffle=False, verbose=0, callbacks=list(callbacks)
    )


def test_recorder_records_every_k_and_does_not_change_training():
    a, b = mlp(0), mlp(0)
    rec = WeightPathRecorder(every_k_batches=3)
    _fit(a, [rec])  # 2 epochs x 8 batches = 16 batches
    _fit(b)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert wa.tobytes() == wb.tobytes(), "recording changed training"
    assert list(rec.steps) == [0, 3, 6, 9, 12, 15, 16]
    layout = WeightLayout.from_model(a)
    np.testing.assert_array_equal(rec.latest(), layout.flatten(a.get_weights()))
    assert rec.snapshots().shape == (7, layout.n_params) and rec.snapshots().dtype == np.float32


def test_recorder_thins_within_its_memory_budget():
    model = mlp(0)
    n_params = WeightLayout.from_model(model).n_params
    budget_rows = 6
    rec = WeightPathRecorder(memory_budget_mb=budget_rows * 4 * n_params / 2**20 + 1e-9)
    _fit(model, [rec], epochs=3)  # 24 batches, 25+ snapshots wanted
    assert len(rec) <= budget_rows and rec.nbytes <= budget_rows * 4 * n_params
    steps = rec.steps
    assert steps[0] == 0 and steps[-1] == 24 and np.all(np.diff(steps) > 0)
    assert rec.stride > 1 and rec.generation > 0


def test_recorder_spills_to_disk(tmp_path):
    model = mlp(0)
    n_params = WeightLayout.from_model(model).n_params
    rec = WeightPathRecorder(
        memory_budget_mb=4 * 4 * n_params / 2**20 + 1e-9, overflow="spill", spill_dir=tmp_path
    )
    _fit(model, [rec])
    assert len(rec) == 17 and list(rec.steps) == list(range(17))
    assert rec.spill_path is not None and rec.nbytes == 0
    layout = WeightLayout.from_model(model)
    np.testing.assert_array_equal(rec.latest(), layout.flatten(model.get_weights()))
    rec.close()
    assert not list(tmp_path.iterdir())


def test_path_can_be_read_live_from_another_thread():
    model = mlp(0)
    rec = WeightPathRecorder()
    seen, errors = [], []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                n = len(rec)
                if n:
                    seen.append(rec.snapshots(start=max(0, n - 2)).shape[0])
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            stop.wait(0.002)

    t = threading.Thread(target=reader, name="nbviz-test-reader")
    t.start()
    try:
        _fit(model, [rec], epochs=3)
    finally:
        stop.set()
        t.join(5)
    assert not errors and seen and len(rec) == 25


def test_project_synthetic_plane_path_exactly():
    model = mlp(0)
    d = random_directions(model, seed=4)
    rng = np.random.default_rng(0)
    ab = rng.uniform(-1, 1, (20, 2))
    path = [d.point(c) for c in ab]
    coords, residual = project_path(path, d)
    np.testing.assert_allclose(coords, ab, atol=1e-5)
    assert residual.max() < 1e-5
    # a path that leaves the plane shows it in the residual
    off = [w + (0.1 * np.ones_like(w) if w.ndim == 2 else 0) for w in path[0]]
    _, r = project_path([off], d)
    assert r[0] > 0.1


def _sign_align(a, b):
    return a * np.sign(np.sum(a * b, axis=1, keepdims=True))


def test_pca_matches_sklearn_and_numpy_svd():
    from sklearn.decomposition import PCA

    model = mlp(0)
    rec = WeightPathRecorder()
    _fit(model, [rec], epochs=3)
    m = rec.snapshots()
    layout = WeightLayout.from_model(model)
    cols = np.concatenate(
        [np.arange(s, e) for s, e in layout.ranges([len(t.shape) >= 2 for t in layout.tensors])]
    )

    d = pca_directions(rec, model)  # default: Li et al.'s code, sklearn PCA of w_i - w_final
    ref = PCA(n_components=2, svd_solver="full").fit((m[:, cols] - m[-1, cols]).astype(np.float64))
    assert d.metadata["center"] == "mean" and "sklearn" in d.metadata["explained_variance_of"]
    got = d.flat()[:, cols]
    np.testing.assert_allclose(_sign_align(got, ref.components_), ref.components_, atol=2e-4)
    np.testing.assert_allclose(d.explained_variance, ref.explained_variance_ratio_, rtol=1e-4)
    assert np.all(d.flat()[:, np.setdiff1d(np.arange(layout.n_params), cols)] == 0)

    f = pca_directions(rec, model, center="final")  # uncentred SVD of w_i - w_final
    _, s, vt = np.linalg.svd((m[:, cols] - m[-1, cols]).astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(_sign_align(f.flat()[:, cols], vt[:2]), vt[:2], atol=2e-4)
    np.testing.assert_allclose(f.explained_variance, (s**2 / np.sum(s**2))[:2], rtol=1e-4)
    coords, residual = project_path(rec, f)
    assert coords[0, 0] < 0 and np.allclose(coords[-1], 0, atol=1e-6)
    assert f.describe()["explained_variance"] == pytest.approx(list(f.explained_variance))


def test_path_errors():
    model = mlp(0)
    layout = WeightLayout.from_model(model)
    good = model.get_weights()
    with pytest.raises(PathError, match="snapshot 1"):
        as_path_matrix([good, mlp(0, width=8).get_weights()], layout)
    with pytest.raises(PathError, match=r"shape \(n_snapshots, "):
        as_path_matrix(np.zeros((3, 5), np.float32), layout)
    with pytest.raises(PathError, match="empty"):
        as_path_matrix([], layout)
    bad = np.tile(layout.flatten(good), (3, 1))
    bad[2, 0] = np.nan
    with pytest.raises(PathError, match="snapshot 2 contains NaN"):
        as_path_matrix(bad, layout)
    with pytest.raises(PathError, match="spans only"):
        pca_directions(np.tile(layout.flatten(good), (4, 1)), model)
    with pytest.raises(PathError, match="at least 3 snapshots"):
        pca_directions([good, good], model)
    with pytest.raises(PathError, match="raise memory_budget_mb"):
        _fit(mlp(0), [WeightPathRecorder(memory_budget_mb=0.001)], epochs=1)
    rec = WeightPathRecorder()
    _fit(model, [rec], epochs=1)
    with pytest.raises(PathError, match="cannot record"):
        _fit(mlp(0, width=8), [rec], epochs=1)


def test_grid_in_a_thread_during_fit_uses_the_directions_origin():
    from nbviz.landscape import evaluate_grid, grid_coords

    model = mlp(0)
    x, y = parabola(64)
    d = random_directions(model, seed=2)  # origin = the weights now
    result, errors = {}, []

    def job():
        try:
            result["s"] = evaluate_grid(
                model, x, y, d, grid_coords(7), grid_coords(5), origin="directions"
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=job, name="nbviz-test-grid")
    rec = WeightPathRecorder()
    t.start()
    try:
        _fit(model, [rec], epochs=3)
    finally:
        t.join(60)
    assert not errors and len(rec) == 25
    after = evaluate_grid(model, x, y, d, grid_coords(7), grid_coords(5), origin="directions")
    np.testing.assert_allclose(result["s"].Z, after.Z, rtol=1e-6)


def test_top_eigenpairs_of_a_long_path_equal_a_full_eigh():
    """Paths of hundreds of snapshots take Lanczos (a full eigh of a 1601-snapshot Gram matrix
    took 6 s before the first grid cell); it agrees with the full solver."""
    from nbviz.landscape.pca import FULL_EIGH_MAX, top_eigenpairs

    rng = np.random.default_rng(0)
    path = rng.normal(size=(3 * FULL_EIGH_MAX, 500)).cumsum(axis=0)
    d = path - path.mean(axis=0)
    gram = d @ d.T
    lam, vec = top_eigenpairs(gram, 3)
    full_lam, full_vec = np.linalg.eigh(gram)
    np.testing.assert_allclose(lam, full_lam[::-1][:3], rtol=1e-10)
    for i in range(3):  # eigenvectors up to sign
        ref = full_vec[:, -1 - i]
        np.testing.assert_allclose(vec[:, i] * np.sign(vec[:, i] @ ref), ref, atol=1e-8)
    small_lam, _ = top_eigenpairs(gram[:10, :10], 2)  # small: the full solver
    np.testing.assert_allclose(small_lam, np.linalg.eigh(gram[:10, :10])[0][::-1][:2])
