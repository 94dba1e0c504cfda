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


def test_throttle_spaces_deliveries_and_a_timer_delivers_the_last_offer(no_thread_leak):
    from nbviz.worker import Throttle

    got, times, last = [], [], threading.Event()

    def deliver(item):
        got.append(item)
        times.append(time.monotonic())
        if item == 99:
            last.set()

    throttle = Throttle(deliver, max_fps=5, trailing=True)
    t0 = time.monotonic()
    for i in range(100):
        throttle.offer(i)
    offering = time.monotonic() - t0
    assert last.wait(30), "the last offer was never delivered"
    assert got[0] == 0 and got[-1] == 99  # the first at once, the last by the timer
    assert len(got) <= 2 + offering * 5, (len(got), offering)  # latest wins, nothing queued
    assert all(b - a >= 0.2 - 1e-3 for a, b in zip(times, times[1:], strict=False)), times
    assert throttle.offered == 100 and throttle.delivered == len(got)


def test_an_offer_does_not_wait_for_a_delivery_on_another_thread(no_thread_leak):
    from nbviz.worker import Throttle

    gate, started, got = threading.Event(), threading.Event(), []

    def deliver(item):
        started.set()
        gate.wait(60)
        got.append(item)

    throttle = Throttle(deliver, max_fps=1000, trailing=True)
    first = threading.Thread(target=throttle.offer, args=("first",))
    first.start()
    assert started.wait(30)
    throttle.offer("second")  # returns while "first" is still being delivered
    throttle.offer("third")
    assert not gate.is_set() and got == []
    gate.set()
    first.join(30)
    throttle.flush()  # waits for a delivery in progress; the timer may have sent "third"
    assert got[0] == "first" and got[-1] == "third" and "second" not in got


def test_without_trailing_a_waiting_offer_is_delivered_by_flush():
    from nbviz.worker import Throttle

    got = []
    throttle = Throttle(got.append, max_fps=0.01)  # one delivery per 100 s
    throttle.offer(1)
    throttle.offer(2)
    throttle.offer(3)
    assert got == [1]
    throttle.flush()
    assert got == [1, 3]
    throttle.flush()  # nothing waits: nothing delivered
    assert got == [1, 3]
