"""Loss grids on a dask LocalCluster (2 worker processes) and on concurrent.futures executors:
equal to the single-process grid, resumable, retried after worker failures and a killed
worker, stoppable, clean shutdown, clear errors."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import convnet, images, mlp, parabola

from nbviz.errors import DistributedError, ModelError
from nbviz.landscape import SurfaceFile, evaluate_grid, grid_coords, iter_grid, random_directions
from nbviz.landscape.distributed import (
    ModelSource,
    Remote,
    clear_worker_cache,
    evaluate_grid_distributed,
    iter_grid_distributed,
    worker_info,
)

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

XS = grid_coords(7, 1.0)
YS = grid_coords(6, 0.6)  # nx != ny: catches [ix, iy] mix-ups


def _cmdline(p) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # gone already
        return ""


@pytest.fixture(scope="module")
def client():
    """2 worker processes on 127.0.0.1 (no dashboard); checks that closing leaves nothing."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    threads_before = {t.ident for t in threading.enumerate()}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    c = distributed.Client(cluster)
    c.run(lambda: __import__("tensorflow") and None)  # warm up: TensorFlow's import, once
    # Only what this fixture started is checked: the cluster's processes (nannies and their
    # workers), not whatever else the session runs meanwhile (the browser tier's Chromium).
    worker_pids = set(c.run(os.getpid).values())
    ours = [p for p in me.children(recursive=True) if p.pid not in before or p.pid in worker_pids]
    ours = [p for p in ours if "resource_tracker" not in _cmdline(p)]  # lives as long as we do
    assert worker_pids <= {p.pid for p in ours}, "the workers are not processes of this fixture"
    yield c
    c.close()
    cluster.close()
    left = [p for p in ours if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"worker processes left running: {left}"
    threads = [
        t.name
        for t in threading.enumerate()
        if t.ident not in threads_before and t.is_alive() and not t.daemon
    ]
    assert not threads, f"non-daemon threads left running: {threads}"


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    model = mlp(seed=3)
    path = tmp_path_factory.mktemp("models") / "mlp.keras"
    model.save(path)
    return model, path


def _rel(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))


def test_dask_grid_from_keras_file_equals_single_process_and_resumes(client, mlp_file, tmp_path):
    model, path = mlp_file
    x, y = parabola(96)
    d = random_directions(model, seed=1)
    snap = weights_snapshot(model)
    want = evaluate_grid(model, x, y, d, XS, YS, metrics=["mae"], progress=False)

    store = tmp_path / "s.h5"
    got = evaluate_grid_distributed(
        path, x, y, d, XS, YS, client, store=store, metrics=["mae"], chunk_size=5
    )
    assert got.complete and got.Z.shape == (6, 7)
    assert _rel(got.Z, want.Z) < 1e-5
    assert _rel(got.metrics["mae"], want.metrics["mae"]) < 1e-5
    with SurfaceFile.open(store, "r") as f:
        assert f.done.all()
        np.testing.assert_array_equal(f.loss, got.Z)
    # 42 cells in chunks of 5: both workers worked, each loaded the model once
    info = client.run(worker_info)
    assert len(info) == 2 and all(i["chunks"] >= 1 for i in info.values())
    assert all(i["models_loaded"] == 1 for i in info.values()), info

    # A rerun on the finished file submits nothing.
    updates = list(
        iter_grid_distributed(path, x, y, d, XS, YS, client, store=store, metrics=["mae"])
    )
    assert len(updates) == 1 and updates[0].done == 42 and len(updates[0].iy) == 0
    assert sum(i["chunks"] for i in client.run(worker_info).values()) == sum(
        i["chunks"] for i in info.values()
    )
    assert_weights_identical(model, snap)


def test_dask_convnet_from_model_with_subset_metric_and_coarse_to_fine(client):
    model = convnet()
    x, y = images(40)
    d = random_directions(model, seed=2)
    snap = weights_snapshot(model)
    kw = {"metrics": ["accuracy"], "subset": 25, "seed": 4, "order": "coarse_to_fine"}
    want = evaluate_grid(model, x, y, d, XS, YS, progress=False, **kw)
    # the widget's way: iter_grid on the live model with executor=
    updates = list(iter_grid(model, x, y, d, XS, YS, executor=Remote(client, chunk_size=4), **kw))
    got = updates[-1].surface
    assert len(updates) == 11 and updates[0].done == 4  # one update per chunk of 4 cells
    assert got.complete and got.metadata["strategy"] == "per_point"
    assert _rel(got.Z, want.Z) < 1e-5
    np.testing.assert_allclose(got.stderr, want.stderr, rtol=1e-4)
    np.testing.assert_array_equal(got.metrics["accuracy"], want.metrics["accuracy"])
    assert_weights_identical(model, snap)


def test_dask_stop_keeps_finished_cells_and_resume_completes(client, mlp_file, tmp_path):
    model, path = mlp_file
    x, y = parabola(64)
    d = random_directions(model, seed=5)
    store = tmp_path / "stop.h5"
    stop = threading.Event()
    seen = 0
    for update in iter_grid_distributed(
        path, x, y, d, XS, YS, client, store=store, chunk_size=3, max_in_flight=1, stop_event=stop
    ):
        seen = update.done
        stop.set()
    assert 0 < seen < 42
    with SurfaceFile.open(store, "r") as f:
        assert 0 < f.done.sum() < 42
        partial = f.done.copy()
    got = evaluate_grid_distributed(path, x, y, d, XS, YS, client, store=store)
    want = evaluate_grid(model, x, y, d, XS, YS, progress=False)
    assert got.complete and _rel(got.Z, want.Z) < 1e-5
    assert got.metadata["elapsed_s"] >= 0 and partial.sum() < 42


@pytest.mark.slow  # two spawned processes import TensorFlow: ~30 s on 2 busy cores
def test_process_pool_with_builder_equals_single_process():
    model = convnet()
    x, y = images(24)
    d = random_directions(model, seed=6)
    want = evaluate_grid(model, x, y, d, XS, YS, metrics=["accuracy"], progress=False)
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        got = evaluate_grid_distributed(convnet, x, y, d, XS, YS, pool, metrics=["accuracy"])
    assert got.complete and _rel(got.Z, want.Z) < 1e-5
    np.testing.assert_array_equal(got.metrics["accuracy"], want.metrics["accuracy"])


def test_model_source_from_a_model_loads_again_and_again():
    """Deserializing a Keras config consumes it; a worker that restarts fetches the job from a
    peer that already loaded it, so loading must leave the shipped config intact."""
    model = convnet()
    source = ModelSource.of(model)
    for _ in range(2):
        rebuilt = source.load()
        assert [tuple(w.shape) for w in rebuilt.weights] == [tuple(w.shape) for w in model.weights]
        assert rebuilt.loss is not None


class FlakyBuilder:
    """Builds the MLP, but its first ``fails`` calls raise as a dying worker would."""

    def __init__(self, fails: int) -> None:
        self.fails, self.calls = fails, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.fails:
            raise ConnectionResetError("simulated lost worker")
        return mlp(seed=3)


def test_failed_chunks_are_retried_then_reported(mlp_file, tmp_path):
    model, _ = mlp_file
    x, y = parabola(64)
    d = random_directions(model, seed=7)
    want = evaluate_grid(model, x, y, d, XS, YS, progress=False)
    with ThreadPoolExecutor(max_workers=2) as pool:
        clear_worker_cache()
        flaky = Remote(pool, model_source=FlakyBuilder(fails=2), chunk_size=6, retries=2)
        got = evaluate_grid(model, x, y, d, XS, YS, executor=flaky, progress=False)
        assert got.complete and _rel(got.Z, want.Z) < 1e-5

        clear_worker_cache()
        store = tmp_path / "flaky.h5"
        flaky = Remote(pool, model_source=FlakyBuilder(fails=1), chunk_size=6, retries=0)
        with pytest.raises(DistributedError, match="failed 1 time.*same store="):
            evaluate_grid(model, x, y, d, XS, YS, executor=flaky, store=store, progress=False)
        with SurfaceFile.open(store, "r") as f:
            assert not f.done.all()
        got = evaluate_grid_distributed(mlp(seed=3), x, y, d, XS, YS, pool, store=store)
        assert got.complete and _rel(got.Z, want.Z) < 1e-5
    clear_worker_cache()


def test_bad_input_gives_clear_errors(client, mlp_file, tmp_path):
    model, path = mlp_file
    x, y = parabola(16)
    d = random_directions(model, seed=1)
    with pytest.raises(ModelError, match="No model file.*builder"):
        evaluate_grid_distributed(tmp_path / "missing.keras", x, y, d, XS, YS, client)
    with pytest.raises(ModelError, match="not a .keras file"):
        evaluate_grid_distributed(tmp_path / "m.h5", x, y, d, XS, YS, client)
    with pytest.raises(ModelError, match="directions were made for model"):
        evaluate_grid_distributed(convnet(), *images(8), d, XS, YS, client)
    with pytest.raises(TypeError, match="dask.distributed.Client or a concurrent.futures"):
        evaluate_grid_distributed(path, x, y, d, XS, YS, object())
    # a worker model that computes another loss than the driver's is refused, not retried
    other = mlp(seed=3, compile=False)
    other.compile(loss="mae")
    with pytest.raises(ModelError, match="workers' model computes the loss 'mae'"):
        evaluate_grid(model, x, y, d, XS, YS, executor=Remote(client, model_source=other))


def test_dask_killed_worker_mid_run_loses_no_cell(client, tmp_path):
    model = convnet(seed=1)
    x, y = images(64, seed=1)
    d = random_directions(model, seed=8)
    xs = ys = grid_coords(12, 1.0)
    want = evaluate_grid(model, x, y, d, xs, ys, progress=False)
    pids = client.run(os.getpid)
    store = tmp_path / "killed.h5"
    killed_at = None
    for update in iter_grid_distributed(model, x, y, d, xs, ys, client, store=store, chunk_size=2):
        if killed_at is None and update.done:
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed_at = update.done
    got = update.surface
    assert killed_at is not None and killed_at < 144
    assert got.complete and not np.isnan(got.Z).any()
    assert _rel(got.Z, want.Z) < 1e-5
    with SurfaceFile.open(store, "r") as f:
        assert f.done.all() and not np.isnan(f.loss).any()
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it
    assert victim not in client.run(os.getpid).values()
