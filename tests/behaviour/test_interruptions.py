"""Interruptions: KeyboardInterrupt (raised by user code, or delivered to the main thread like
Ctrl-C / a kernel interrupt), Stop and exceptions inside every long computation leave the
user's weights bit-identical, keep the results finished so far, and leave no nbviz thread.
"""

from __future__ import annotations

import _thread
import contextlib
import importlib
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import images, mlp, parabola

from nbviz.featuremaps import FeatureMaps
from nbviz.landscape import (
    SurfaceFile,
    WeightPathRecorder,
    evaluate_grid,
    grid_coords,
    iter_grid,
    random_directions,
)
from nbviz.optvis import Renderer

grid_module = importlib.import_module(
    "nbviz.landscape.grid"
)  # where evaluate_grid looks up iter_grid


def nbviz_threads(wait: float = 5.0) -> list[str]:
    """Names of live nbviz threads, after giving finishing ones ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        alive = [t for t in threading.enumerate() if t.name.startswith("nbviz") and t.is_alive()]
        if not alive or time.monotonic() > deadline:
            return [t.name for t in alive]
        alive[0].join(0.05)


@contextlib.contextmanager
def ctrl_c_when(condition, timeout: float = 300.0):
    """Deliver a KeyboardInterrupt to the main thread once ``condition()`` holds (polled), so
    the interrupt lands after real progress however busy the machine is.

    Ctrl-C raises KeyboardInterrupt only where Python handles SIGINT, as in a terminal or a
    kernel. A process started as a background job of a script inherits SIGINT *ignored*, and
    then Python never installs its handler and drops the interrupt; so the handler is put in
    place for the block (and the previous one restored after it).
    """
    done = threading.Event()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def watch():
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            if condition():
                _thread.interrupt_main()
                return
            done.wait(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)
        signal.signal(signal.SIGINT, previous)


class InterruptAfter:
    """A callable / callback that raises KeyboardInterrupt on its ``n``-th call."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def tick(self) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt


# -- feature maps ------------------------------------------------------------------------------------
def test_feature_maps_interrupted_in_preprocess_keep_cache_and_weights(tiny_convnet):
    stopper = InterruptAfter(2)

    def preprocess(x):
        stopper.tick()
        return x

    before = weights_snapshot(tiny_convnet)
    fm = FeatureMaps(tiny_convnet, preprocess=preprocess, input_range=(0, 1))
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 32, 32, 3), dtype=np.float32)
    done = fm.activations(a, "conv1").copy()
    with pytest.raises(KeyboardInterrupt):
        fm.activations(b, "conv2")
    assert_weights_identical(tiny_convnet, before)
    calls = fm.stats.network_calls
    np.testing.assert_array_equal(fm.activations(a, "conv1"), done)  # finished result kept
    assert fm.stats.network_calls == calls
    assert fm.activations(b, "conv2").shape == (1, 16, 16, 16)  # and it still works


def test_feature_map_explorer_survives_an_interrupt_on_its_worker(tiny_convnet):
    from nbviz.widgets import FeatureMapExplorer

    stopper = InterruptAfter(2)

    def preprocess(x):
        stopper.tick()
        return x

    before = weights_snapshot(tiny_convnet)
    rng = np.random.default_rng(0)
    w = FeatureMapExplorer(
        tiny_convnet,
        image=rng.random((32, 32, 3)),
        preprocess=preprocess,
        input_range=(0, 1),
        samples={},
    )
    try:
        assert w.wait(30)
        first = bytes(w.map_image.value)
        w.layer = "conv2"  # the computation of conv2 is interrupted on the worker thread
        assert w.wait(30)
        assert isinstance(w.error, KeyboardInterrupt) and "KeyboardInterrupt" in w.status.value
        assert bytes(w.map_image.value) == first  # the finished view stays
        w.layer = "conv1"
        w.layer = "conv2"  # retried: works
        assert w.wait(30) and w.error is None and bytes(w.map_image.value) != first
    finally:
        w.close()
    assert_weights_identical(tiny_convnet, before)
    assert not nbviz_threads()


# -- optvis ------------------------------------------------------------------------------------------
class _Recorder:
    def __init__(self, interrupt_at: int | None = None) -> None:
        self.steps: list[int] = []
        self.images: list[np.ndarray] = []
        self.interrupt_at = interrupt_at

    def on_step(self, step, loss, image):
        self.steps.append(step)
        if image is not None:
            self.images.append(image)
        if step == self.interrupt_at:
            raise KeyboardInterrupt


def test_optvis_interrupted_by_a_callback_keeps_its_progress(tiny_convnet):
    before = weights_snapshot(tiny_convnet)
    r = Renderer(tiny_convnet, "conv2:3", transforms="none")
    cb = _Recorder(interrupt_at=10)
    with pytest.raises(KeyboardInterrupt):
        r.run(100, callbacks=[cb], every=4)
    assert_weights_identical(tiny_convnet, before)
    assert r.step == 12 and len(r.history) == 12  # the frame (steps 9-12) being reported is kept
    assert len(cb.images) == 2 and np.isfinite(r.image()).all()
    result = r.run(4, every=4)  # continues from step 12
    assert r.step == 16 and result.losses.shape == (4, 1)
    assert not nbviz_threads()


def test_optvis_ctrl_c_in_the_main_thread(tiny_convnet):
    before = weights_snapshot(tiny_convnet)
    r = Renderer(tiny_convnet, "conv2:1", transforms="none").compile()
    with pytest.raises(KeyboardInterrupt), ctrl_c_when(lambda: r.step > 0):
        r.run(10**6, every=8)
    assert_weights_identical(tiny_convnet, before)
    assert r.step > 0 and r.step % 8 == 0 and len(r.history) == r.step
    assert np.isfinite(r.image()).all()
    assert r.run(8, every=8).step == r.step  # still usable
    assert not nbviz_threads()


def test_optvis_widget_stop_keeps_frames_and_continues(tiny_convnet):
    from nbviz.widgets import OptVisWidget

    before = weights_snapshot(tiny_convnet)
    w = OptVisWidget(
        tiny_convnet,
        layer="conv2",
        steps=10**6,
        size=32,
        transforms="none",
        frame_every=4,
        max_fps=50,
    )
    try:
        assert w.start()
        deadline = time.monotonic() + 60
        while w.step < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.stop(30) and not w.running
        step, n_losses, n_frames = w.step, len(w.losses), len(w.frames)
        assert step >= 12 and n_losses == step and n_frames >= 1
        assert w.export_gif()[:6] == b"GIF89a"
        assert w.result_array().shape == (1, 32, 32, 3)
        assert_weights_identical(tiny_convnet, before)
        assert not nbviz_threads(0.5)
        w.steps = step + 8  # Start continues the stopped run
        assert w.start() and w.wait(60)
        assert w.step == step + 8 and len(w.losses) == step + 8 and w.error is None
    finally:
        w.close()
    assert_weights_identical(tiny_convnet, before)
    assert not nbviz_threads()


def test_optvis_widget_survives_interrupt_and_errors_on_its_worker(tiny_convnet):
    from nbviz.optvis import channel
    from nbviz.widgets import OptVisWidget

    raised = iter([KeyboardInterrupt(), RuntimeError("objective broke")])

    def factory(layer, units):
        exc = next(raised, None)
        if exc is not None:
            raise exc
        return channel(layer, units)

    w = OptVisWidget(
        tiny_convnet,
        layer="conv2",
        steps=4,
        size=32,
        transforms="none",
        objective=factory,
        frame_every=2,
    )
    try:
        for kind in (KeyboardInterrupt, RuntimeError):
            w.start()
            assert w.wait(30) and isinstance(w.error, kind) and kind.__name__ in w.status.value
            assert not w.running and not nbviz_threads(1.0)
        assert w.start() and w.wait(60) and w.error is None and len(w.losses) == 4
    finally:
        w.close()
    assert not nbviz_threads()


# -- landscape grid -----------------------------------------------------------------------------------
@pytest.fixture
def mlp_data():
    model = mlp(seed=2, width=8)
    x, y = parabola(64, seed=2)
    return model, x, y, random_directions(model, seed=1)


def test_iter_grid_consumer_breaking_early_keeps_finished_cells(mlp_data, tmp_path):
    model, x, y, dirs = mlp_data
    before = weights_snapshot(model)
    store = tmp_path / "grid.h5"
    xs = grid_coords(6)
    gen = iter_grid(model, x, y, dirs, xs, xs, store=store, max_chunk=6, strategy="per_point")
    seen = []
    for update in gen:
        seen.append(update)
        if update.done >= 12:
            break  # cancellation
    gen.close()
    assert_weights_identical(model, before)
    last = seen[-1]
    with SurfaceFile.open(store, "r") as f:
        assert int(f.done.sum()) == last.done < 36
        np.testing.assert_array_equal(f.done, last.surface.done)
        np.testing.assert_array_equal(f.loss[f.done], last.surface.Z[last.surface.done])
    resumed = list(
        iter_grid(model, x, y, dirs, xs, xs, store=store, max_chunk=6, strategy="per_point")
    )
    assert resumed[0].done == last.done and len(resumed[0].iy) == 0  # only missing cells computed
    assert sum(len(u.iy) for u in resumed) == 36 - last.done
    full = evaluate_grid(model, x, y, dirs, xs, xs)
    np.testing.assert_allclose(resumed[-1].surface.Z, full.Z, rtol=1e-5)
    assert not nbviz_threads()


def test_keyboard_interrupt_in_the_grid_consumer_closes_the_file_for_a_resume(mlp_data, tmp_path):
    model, x, y, dirs = mlp_data
    store = tmp_path / "grid.h5"
    xs = grid_coords(5)
    with pytest.raises(KeyboardInterrupt) as info:
        for update in iter_grid(
            model, x, y, dirs, xs, xs, store=store, max_chunk=5, strategy="per_point"
        ):
            if update.done >= 10:
                raise KeyboardInterrupt
    # The traceback (kept by Jupyter as sys.last_traceback) holds the generator: the next
    # cell must still be able to resume from the file.
    keep = info.value.__traceback__  # noqa: F841
    s = evaluate_grid(model, x, y, dirs, xs, xs, store=store)
    assert s.complete and s.metadata["nonfinite_cells"] == 0


def test_a_loss_that_raises_leaves_weights_and_no_threads(mlp_data):
    model, x, y, dirs = mlp_data
    before = weights_snapshot(model)

    def loss(y_true, y_pred):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_grid(model, x, y, dirs, grid_coords(3), grid_coords(3), loss=loss)
    assert_weights_identical(model, before)
    assert evaluate_grid(model, x, y, dirs, grid_coords(3), grid_coords(3)).complete
    assert not nbviz_threads()


def test_ctrl_c_during_a_convnet_grid_keeps_the_finished_cells(tmp_path, monkeypatch):
    from landscape_support import convnet

    model = convnet(seed=3)
    x, y = images(48, seed=3)
    dirs = random_directions(model, seed=3)
    before = weights_snapshot(model)
    store = tmp_path / "conv.h5"
    xs = grid_coords(41)
    evaluate_grid(model, x, y, dirs, xs[:2], xs[:2])  # trace outside the timed part
    updates = []

    def counted_iter_grid(*args, **kwargs):  # observes the real generator, changes nothing
        for update in real_iter_grid(*args, **kwargs):
            updates.append(update.done)
            yield update

    real_iter_grid = grid_module.iter_grid
    monkeypatch.setattr(grid_module, "iter_grid", counted_iter_grid)
    with pytest.raises(KeyboardInterrupt), ctrl_c_when(lambda: len(updates) >= 2):
        evaluate_grid(model, x, y, dirs, xs, xs, store=store, strategy="per_point")
    sys.last_traceback = None
    assert_weights_identical(model, before)
    with SurfaceFile.open(store, "r") as f:
        done = int(f.done.sum())
        assert 0 < done < 41 * 41 and np.isfinite(f.loss[f.done]).all()
    t0 = time.perf_counter()
    first = next(iter_grid(model, x, y, dirs, xs, xs, store=store, strategy="per_point"))
    assert first.done == done, "the resume must start from the finished cells"
    assert time.perf_counter() - t0 < 30
    assert not nbviz_threads()


def test_landscape_widget_stop_keeps_finished_cells(mlp_data):
    from nbviz.widgets import LossLandscapeWidget

    model, x, y, _ = mlp_data
    before = weights_snapshot(model)
    w = LossLandscapeWidget(
        model, x, y, directions="random", resolution=101, order="raster", view3d=None, max_chunk=16
    )
    try:
        w.compute()
        deadline = time.monotonic() + 60
        while (w.surface is None or w.surface.n_done < 32) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.stop(wait=True) and not w.computing
        n = w.surface.n_done
        assert 32 <= n < 101 * 101
        assert np.isfinite(w.surface.Z[w.surface.done]).all()
        assert_weights_identical(model, before)
        assert not nbviz_threads(0.5)
        w.resolution = 5
        assert w.compute() and w.wait(60) and w.surface.complete and w.error is None
    finally:
        w.close()
    assert_weights_identical(model, before)
    assert not nbviz_threads()


# -- path recording --------------------------------------------------------------------------------------
class _InterruptAtBatch:
    def __init__(self, batch: int) -> None:
        self.batch = batch

    def __call__(self, batch, logs=None):
        if batch == self.batch:
            raise KeyboardInterrupt


def test_path_recording_interrupted_keeps_the_recorded_path():
    import keras

    model = mlp(seed=4, width=8)
    x, y = parabola(256, seed=4)
    rec = WeightPathRecorder(every_k_batches=1)
    stop = keras.callbacks.LambdaCallback(on_train_batch_end=_InterruptAtBatch(5))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[rec, stop])
    n = len(rec)
    assert n >= 5 and list(rec.steps) == list(range(n))
    assert np.isfinite(rec.snapshots()).all()
    rows_before = rec.snapshots()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[rec])  # recording goes on
    np.testing.assert_array_equal(rec.snapshots()[:n], rows_before)
    assert len(rec) > n and np.all(np.diff(rec.steps) > 0)
    from nbviz.landscape import WeightLayout

    np.testing.assert_array_equal(
        rec.latest(), WeightLayout.from_model(model).flatten(model.get_weights())
    )
    assert not nbviz_threads()


def test_watch_interrupted_during_fit_leaves_no_thread():
    import keras

    from nbviz.landscape.watch import LandscapeWatcher

    model = mlp(seed=5, width=8)
    x, y = parabola(256, seed=5)
    frames = []
    watcher = LandscapeWatcher(
        x,
        y,
        directions="random",
        resolution=5,
        every_k_batches=1,
        recompute_s=0.0,
        on_surface=frames.append,
    )
    stop = keras.callbacks.LambdaCallback(on_train_batch_end=_InterruptAtBatch(12))
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[watcher, stop])
        assert watcher.wait(60)
        assert len(watcher) >= 12
    finally:
        watcher.close()
    assert not nbviz_threads()


# -- a real kernel interrupt -------------------------------------------------------------------------
KERNEL_SETUP = """
import threading, numpy as np, keras
from nbviz.optvis import Renderer
from nbviz.landscape import evaluate_grid, grid_coords, random_directions
keras.utils.set_random_seed(0)
inp = keras.Input((16, 16, 3))
h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
out = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling2D()(h))
model = keras.Model(inp, out)
model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
before = [w.numpy().copy() for w in model.weights]
r = Renderer(model, "conv1:1", transforms="none").compile()
x = np.random.default_rng(0).random((16, 16, 16, 3), dtype=np.float32)
y = np.arange(16) % 2
dirs = random_directions(model)
def same():
    return all(a.tobytes() == w.numpy().tobytes() for a, w in zip(before, model.weights))
def nbviz_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("nbviz") and t.is_alive()]
print("ready")
"""


def _execute(kc, code: str, timeout: float = 60.0) -> tuple[str, str | None]:
    """Run ``code``; return (stdout, error name or None)."""
    msg_id = kc.execute(code)
    out, error = [], None
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            error = content["ename"]
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out), error


@pytest.mark.parametrize(
    ("computation", "progress"),
    [
        ("r.run(10**7, every=8)", "r.step"),
        (
            "evaluate_grid(model, x, y, dirs, grid_coords(301), grid_coords(301), strategy='per_point')",
            "0",
        ),
    ],
    ids=["optvis", "grid"],
)
def test_kernel_interrupt_leaves_weights_and_a_usable_kernel(computation, progress):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        out, err = _execute(kc, KERNEL_SETUP, timeout=120)
        assert err is None and "ready" in out
        msg_id = kc.execute(f"print('started', flush=True)\n{computation}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the computation is really running
            msg = kc.get_iopub_msg(timeout=30)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "busy"
            ):
                break
        while True:  # the computation's first line printed: it is running now
            msg = kc.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        km.interrupt_kernel()
        error = None
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "error":
                error = msg["content"]["ename"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert error == "KeyboardInterrupt"
        out, err = _execute(kc, f"print(same(), nbviz_threads(), {progress} >= 0)")
        assert err is None and out.strip() == "True [] True", out
        out, err = _execute(
            kc, "print(float(r.run(8, every=8).losses[-1, 0]) == float(r.history[-1][0]), same())"
        )
        assert err is None and out.strip() == "True True", out  # the kernel is still usable
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
