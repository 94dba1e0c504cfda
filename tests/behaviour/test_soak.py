"""Soak tier (slow): long runs on the demo model with flat memory.

- optvis: 5,000 steps of the compiled renderer, RSS sampled every 100 steps.
- landscape: a 100x100 grid on the demo convnet with a 32-image subset, RSS sampled per chunk.

"Flat" means the RSS growth over the second half of the run is below ``FLAT_MB`` (the first
half absorbs tracing, allocator warm-up and caches). Run with ``pytest -m slow -s`` to see the
measured numbers.
"""

from __future__ import annotations

import gc
import time

import numpy as np
import psutil
import pytest
from helpers import assert_weights_identical, weights_snapshot

pytestmark = pytest.mark.slow

MiB = 2**20
FLAT_MB = 50


def rss() -> int:
    return psutil.Process().memory_info().rss


def _second_half_growth(samples: list[int]) -> float:
    half = samples[len(samples) // 2 :]
    return (max(half) - half[0]) / MiB


def test_optvis_5000_steps_has_flat_memory():
    from nbviz.demo import load_demo_model
    from nbviz.optvis import Renderer

    model = load_demo_model()
    before = weights_snapshot(model)
    r = Renderer(model, "conv3:5").compile()
    gc.collect()
    samples, t0 = [], time.perf_counter()
    for frame in r.frames(5000, every=100):
        samples.append(rss())
        assert np.isfinite(frame.loss).all()
    took = time.perf_counter() - t0
    growth = _second_half_growth(samples)
    print(
        f"\noptvis 5000 steps: {took:.0f} s, RSS {samples[0] / MiB:.0f} -> {samples[-1] / MiB:.0f} "
        f"MiB, second-half growth {growth:.1f} MiB"
    )
    assert r.step == 5000 and len(r.history) == 5000
    assert growth < FLAT_MB
    assert_weights_identical(model, before)


def test_100x100_grid_on_the_demo_convnet_has_flat_memory():
    from nbviz.demo import load_demo_data, load_demo_model
    from nbviz.landscape import grid_coords, iter_grid, random_directions

    model = load_demo_model()
    x, y = load_demo_data("test")
    before = weights_snapshot(model)
    dirs = random_directions(model, seed=0)
    xs = grid_coords(100, 1.0)
    gc.collect()
    samples, last, t0 = [], None, time.perf_counter()
    for update in iter_grid(model, x, y, dirs, xs, xs, subset=32, seed=0):
        samples.append(rss())
        last = update
    took = time.perf_counter() - t0
    growth = _second_half_growth(samples)
    s = last.surface
    print(
        f"\n100x100 grid, demo convnet, 32 images: {took:.0f} s ({len(samples)} chunks), RSS "
        f"{samples[0] / MiB:.0f} -> {samples[-1] / MiB:.0f} MiB, second-half growth "
        f"{growth:.1f} MiB"
    )
    assert s.complete and s.Z.shape == (100, 100) and np.isfinite(s.Z).all()
    assert growth < FLAT_MB
    assert_weights_identical(model, before)
