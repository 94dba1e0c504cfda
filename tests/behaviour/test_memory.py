"""Memory: path recording and grids stay inside their stated budgets on a 1M-parameter model,
repeated widget creation does not grow memory without bound (RSS), and rapid events are
coalesced (latest wins), not queued.

Measured numbers are printed (``pytest -s``) so the README can quote them.
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import psutil
import pytest
from helpers import assert_weights_identical, weights_snapshot

MiB = 2**20


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def big_mlp(n_in: int = 1000, width: int = 1000):
    """About 1M parameters (1000x1000 kernel), compiled with MSE."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(width, name="big"),
            keras.layers.Dense(1, name="out"),
        ],
        name="mlp_1m",
    )
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_path_recorder_stays_in_budget_over_10k_steps():
    from nbviz.landscape import WeightLayout, WeightPathRecorder

    model = big_mlp()
    n_params = WeightLayout.from_model(model).n_params
    assert n_params > 1_000_000
    budget_mb = 64.0
    rec = WeightPathRecorder(every_k_batches=1, memory_budget_mb=budget_mb)
    rec.set_model(model)
    start = rss()
    rec.on_train_begin()
    big = model.get_layer("big").kernel
    for step in range(10_000):
        rec.on_train_batch_begin(step)
        if step % 500 == 0:  # the weights move, so rows differ (as in training)
            big.assign_add(np.full(big.shape, 1e-3, np.float32))
    rec.on_train_end()
    grown = rss() - start
    print(
        f"\npath recorder 1M params x 10k steps: store {rec.nbytes / MiB:.1f} MiB, "
        f"{len(rec)} snapshots, stride {rec.stride}, RSS growth {grown / MiB:.1f} MiB "
        f"(budget {budget_mb} MiB)"
    )
    assert rec.nbytes <= budget_mb * MiB
    assert grown < (budget_mb + 64) * MiB  # the store, plus TensorFlow's own buffers
    assert 8 <= len(rec) <= rec.nbytes // (4 * n_params)
    steps = rec.steps
    assert steps[0] == 0 and steps[-1] == 10_000 and np.all(np.diff(steps) > 0)


def test_path_recorder_spill_keeps_memory_flat(tmp_path):
    from nbviz.landscape import WeightPathRecorder

    model = big_mlp()
    rec = WeightPathRecorder(memory_budget_mb=32.0, overflow="spill", spill_dir=tmp_path)
    rec.set_model(model)
    start = rss()
    rec.on_train_begin()
    for step in range(40):  # 41 snapshots of 4 MiB: past the 8-row budget
        rec.on_train_batch_begin(step)
    rec.on_train_end()
    grown = rss() - start
    print(f"\npath recorder spill: {len(rec)} snapshots on disk, RSS growth {grown / MiB:.1f} MiB")
    assert len(rec) == 41 and rec.nbytes == 0 and rec.spill_path is not None
    assert grown < 96 * MiB
    rec.close()


def test_grid_chunks_respect_the_memory_budget_on_1m_params():
    from nbviz.landscape import evaluate_grid, grid_coords, random_directions

    model = big_mlp(n_in=1000, width=1000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1000)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    dirs = random_directions(model, seed=0)
    before = weights_snapshot(model)
    budget = 48 * MiB
    start = rss()
    s = evaluate_grid(
        model,
        x,
        y,
        dirs,
        grid_coords(4),
        grid_coords(4),
        memory_budget=budget,
        strategy="vectorized",
        jit_compile=False,
    )
    grown = rss() - start
    chunk, n = s.metadata["chunk"], s.metadata["n_params"]
    print(
        f"\ngrid on {n} params: chunk {chunk} points "
        f"({chunk * 2 * 4 * n / MiB:.0f} MiB of perturbed weights), RSS growth "
        f"{grown / MiB:.1f} MiB, budget {budget / MiB:.0f} MiB"
    )
    assert s.complete and np.isfinite(s.Z).all()
    assert 1 <= chunk and chunk * 2 * 4 * n <= budget
    assert grown < 4 * budget  # budget for the chunk, plus directions and the traced graph
    assert_weights_identical(model, before)


# -- repeated widget creation ----------------------------------------------------------------------
def _cycle(make, n: int) -> list[int]:
    samples = []
    for _ in range(n):
        w = make()
        w.close()
        del w
        samples.append(rss())
    return samples


def _report(name: str, samples: list[int], warmup: int) -> float:
    growth = (samples[-1] - samples[warmup - 1]) / MiB
    print(
        f"\n{name}: RSS after warm-up {samples[warmup - 1] / MiB:.0f} MiB, after "
        f"{len(samples)} cycles {samples[-1] / MiB:.0f} MiB (growth {growth:.1f} MiB)"
    )
    return growth


WIDGET_CYCLES = 50
WIDGET_WARMUP = 5
WIDGET_GROWTH_MB = 150


@pytest.mark.slow  # 15-35 s each on 2 cores
@pytest.mark.parametrize("widget", ["FeatureMapExplorer", "OptVisWidget", "LossLandscapeWidget"])
def test_repeated_widget_creation_does_not_grow_memory(tiny_convnet, widget, no_thread_leak):
    from landscape_support import mlp, parabola

    import nbviz.widgets as nw

    before = weights_snapshot(tiny_convnet)
    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    if widget == "FeatureMapExplorer":

        def make():
            w = nw.FeatureMapExplorer(tiny_convnet, image=image, samples={})
            assert w.wait(30) and w.error is None
            return w
    elif widget == "OptVisWidget":

        def make():
            return nw.OptVisWidget(tiny_convnet, layer="conv2", steps=4, size=32)
    else:
        model = mlp(seed=0, width=8)
        x, y = parabola(64)

        def make():
            return nw.LossLandscapeWidget(
                model, x, y, directions="random", resolution=5, view3d=None
            )

    samples = _cycle(make, WIDGET_CYCLES)
    growth = _report(f"{widget} x{WIDGET_CYCLES}", samples, WIDGET_WARMUP)
    assert growth < WIDGET_GROWTH_MB
    assert_weights_identical(tiny_convnet, before)


# -- coalescing ------------------------------------------------------------------------------------
def test_1000_slider_events_render_the_latest_and_compute_once(tiny_convnet, no_thread_leak):
    from nbviz.widgets import FeatureMapExplorer

    image = np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)
    w = FeatureMapExplorer(tiny_convnet, image=image, layer="conv2", samples={})
    try:
        assert w.wait(30)
        calls = w.backend.stats.network_calls
        t0 = time.perf_counter()
        for i in range(1000):
            w.channel_slider.value = i % 16  # what the browser sends while dragging
        w.channel_slider.value = 11
        took = time.perf_counter() - t0
        assert w.wait(30)
        print(
            f"\n1000 slider events: {took:.2f} s, network calls {w.backend.stats.network_calls - calls}"
        )
        assert w.backend.stats.network_calls == calls  # slicing the cached layer only
        assert w.channel == 11 and "channel 11 of 16" in w.status.value
        acts = w.backend.activations(image, "conv2")[0, :, :, 11]
        np.testing.assert_array_equal(w.current_map(), acts)
    finally:
        w.close()


def test_1000_rapid_image_changes_are_coalesced_latest_wins(tiny_convnet, no_thread_leak):
    from nbviz.widgets import FeatureMapExplorer

    rng = np.random.default_rng(2)
    w = FeatureMapExplorer(tiny_convnet, image=rng.random((32, 32, 3)), layer="conv2", samples={})
    try:
        assert w.wait(30)
        calls = w.backend.stats.network_calls
        last = None
        for _ in range(1000):
            last = rng.random((32, 32, 3), dtype=np.float32)
            w.set_image(last)
        assert w.wait(60)
        computed = w.backend.stats.network_calls - calls
        print(f"\n1000 image changes: {computed} forward passes")
        assert computed < 1000, "every request was computed: queued, not coalesced"
        expected = w.backend.activations(last, "conv2")[0, :, :, w.channel]
        np.testing.assert_array_equal(w.current_map(), expected)
        assert w.error is None
    finally:
        w.close()


def test_worker_coalesces_1000_publishes():
    from nbviz.worker import Worker

    delivered: list[int] = []
    w = Worker(on_frame=delivered.append, max_fps=10.0, name="nbviz-test-worker")

    def job(ctx):
        for i in range(1000):
            ctx.publish(i)
            time.sleep(0.0005)

    t0 = time.monotonic()
    assert w.start(job) and w.join(30)
    took = time.monotonic() - t0
    print(f"\nworker: 1000 publishes in {took:.2f} s, {len(delivered)} delivered")
    assert w.frames_published == 1000
    assert len(delivered) <= took * 10 + 2
    assert delivered[-1] == 999 and delivered == sorted(delivered)
    assert not [t for t in threading.enumerate() if t.name == "nbviz-test-worker" and t.is_alive()]
