"""The shared worker: start/stop, latest-frame-wins throttling, error surfacing."""

from __future__ import annotations

import threading
import time

from nbviz.worker import Worker


def test_frames_are_coalesced_latest_wins(no_thread_leak):
    got = []
    w = Worker(on_frame=got.append, max_fps=10)

    def job(ctx):
        for i in range(1000):
            ctx.publish(i)
        return "ok"

    assert w.start(job)
    assert w.join(5)
    assert w.result == "ok"
    assert w.frames_published == 1000
    assert len(got) < 10, "frames were queued instead of coalesced"
    assert got[-1] == 999, "the final frame must always be delivered"


def test_stop_ends_job_quickly_and_second_start_is_refused(no_thread_leak):
    done = []
    w = Worker(on_done=lambda r, stopped: done.append(stopped))

    def job(ctx):
        while not ctx.stopped:
            time.sleep(0.01)

    assert w.start(job)
    assert not w.start(job), "a second start while running must not start a second loop"
    t0 = time.monotonic()
    assert w.stop(timeout=30.0)  # generous: the job checks its stop flag every 10 ms
    assert time.monotonic() - t0 < 30.0
    assert done == [True]


def test_errors_are_surfaced_and_worker_restarts(no_thread_leak):
    errors = []
    w = Worker(on_error=lambda exc, tb: errors.append((exc, tb)))

    def bad(ctx):
        raise RuntimeError("objective exploded")

    w.start(bad)
    w.join(5)
    assert isinstance(errors[0][0], RuntimeError)
    assert "objective exploded" in errors[0][1]
    assert w.start(lambda ctx: 42)
    w.join(5)
    assert w.result == 42
    assert not any(t.name == "nbviz-worker" and t.is_alive() for t in threading.enumerate())


def test_latest_request_wins_and_one_loop_handles_the_rest():
    from nbviz.worker import LatestRequestLoop

    gate, handled = threading.Event(), []

    def handle(ctx, request):
        gate.wait(60)
        handled.append(request)

    w = Worker()
    loop = LatestRequestLoop(w, handle)
    assert loop.submit(1)
    for r in (2, 3, 4):  # while 1 is handled: each replaces the waiting one
        assert loop.submit(r)
    assert not loop.submit(5, only_if_idle=True)  # a periodic refresh is dropped while busy
    gate.set()
    deadline = time.monotonic() + 60
    while loop.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.join(60)
    assert handled == [1, 4] and not loop.active
    assert loop.submit(6) and w.join(60) and handled[-1] == 6
