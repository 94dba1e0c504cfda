"""Shared fixtures. Tiers: default (fast), ``slow``, ``notebook``, ``browser`` (see pyproject).

The ``slow`` tier runs only when asked for (``--slow``, a ``-m`` expression naming ``slow``, or a
test file or node id named on the command line), so the default run stays within its budget;
CI runs it as a step of its own."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

# Tests live in sub-folders mirroring the package; the shared helper modules stay here.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("NBVIZ_FAST", "1")  # notebooks shrink steps and grids


@pytest.fixture(scope="session")
def keras():
    import keras as _keras

    return _keras


@pytest.fixture
def tiny_convnet(keras):
    """A small, untrained, functional convnet with readable layer names (fresh per test)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inp, out, name="tiny_convnet")
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def weights_snapshot(model) -> list[np.ndarray]:
    """Copies of every weight (trainable and not), for bit-identity checks."""
    return [np.array(w.numpy(), copy=True) for w in model.weights]


def assert_weights_identical(model, snapshot) -> None:
    now = [w.numpy() for w in model.weights]
    assert len(now) == len(snapshot)
    for a, b in zip(now, snapshot, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), "the user's model weights changed"


@pytest.fixture
def no_thread_leak():
    """Fails the test if it leaves nbviz threads running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leftover = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and t.name.startswith("nbviz")
    ]
    deadline = time.monotonic() + 30.0  # generous: a busy machine may be slow to wind down
    for t in leftover:
        t.join(max(0.0, deadline - time.monotonic()))
    leftover = [t for t in leftover if t.is_alive()]
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the slow tier (training, soak, exact Hessians)",
    )


def _asks_for_slow(config) -> bool:
    if config.getoption("--slow") or "slow" in (config.option.markexpr or ""):
        return True
    # Naming a test file or node id runs what it names, slow or not.
    return any(a.endswith(".py") or "::" in a for a in config.args)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if _asks_for_slow(config):
        return
    slow = [i for i in items if i.get_closest_marker("slow") is not None]
    if slow:
        items[:] = [i for i in items if i.get_closest_marker("slow") is None]
        config.hook.pytest_deselected(items=slow)
        config._nbviz_slow_left_out = len(slow)


#: Time budgets per tier on CI's 2-core machine (README "Test time budgets"); the summary at the
#: end of each run prints what every tier took against them.
TIER_BUDGETS_S = {"fast": 7 * 60, "notebook": 3 * 60, "browser": 6 * 60, "slow": 15 * 60}
_tier_seconds: dict[str, float] = {}


def _tier(item: pytest.Item) -> str:
    for tier in ("slow", "browser", "notebook"):  # a slow browser test runs in the slow run
        if item.get_closest_marker(tier) is not None:
            return tier
    return "fast"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0 = time.monotonic()
    yield
    tier = _tier(item)
    _tier_seconds[tier] = _tier_seconds.get(tier, 0.0) + time.monotonic() - t0


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    left_out = getattr(config, "_nbviz_slow_left_out", 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} slow-tier tests not run (add --slow, or run: bash dev.sh test -m slow)"
        )
    if not _tier_seconds:
        return
    terminalreporter.section("time per tier (budget)")
    for tier, spent in sorted(_tier_seconds.items(), key=lambda kv: -kv[1]):
        budget = TIER_BUDGETS_S[tier]
        flag = "  OVER BUDGET" if spent > budget else ""
        terminalreporter.write_line(
            f"{tier:9s} {spent / 60:5.1f} min  (budget {budget / 60:.0f} min){flag}"
        )
