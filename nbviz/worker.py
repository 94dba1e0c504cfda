"""One worker abstraction for every long computation behind a widget.

A :class:`Worker` runs a *job* on a daemon thread. The job is a callable that receives a
:class:`JobContext`; it checks ``ctx.stopped`` (or ``ctx.stop_event``) to stop early and
calls ``ctx.publish(frame)`` to hand results to the view. Publishing never blocks and never
queues: the latest frame wins, and the ``on_frame`` callback runs at most ``max_fps`` times a
second (plus once at the end, so the final frame is never dropped). Exceptions raised by the
job are caught and handed to ``on_error``; the worker is then idle and can start again.

The worker knows nothing about widgets: views pass callbacks that set traits. Never use
``with output:`` from these callbacks (output capture is not thread-safe); set traits.

The rate limit is a :class:`Throttle` of its own, also used by views that gather updates
from several threads (a training callback, a worker) and redraw a few times a second: with
``trailing=True`` a timer delivers the last offer when its time comes, so a burst's final
state is never left waiting for an offer that does not come.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Job = Callable[["JobContext"], Any]


@dataclass
class JobContext:
    """What a running job sees: a stop flag and a non-blocking publish."""

    stop_event: threading.Event
    _publish: Callable[[Any], None]
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        """True once Stop was requested."""
        return self.stop_event.is_set()

    def publish(self, frame: Any) -> None:
        """Offer ``frame`` to the view; only the newest unseen frame is delivered."""
        self._publish(frame)


class Throttle:
    """Latest wins, at most ``max_fps`` deliveries a second; deliveries never overlap.

    ``offer(item)`` delivers at once (on the calling thread) when the last delivery started
    at least ``1 / max_fps`` s ago and none is running; otherwise ``item`` waits, replacing
    any older waiting one. A waiting item is delivered by the next offer that may deliver,
    by :meth:`flush`, or (``trailing=True``) by a timer when its time comes. An offer never
    waits for a delivery running on another thread.
    """

    def __init__(
        self,
        deliver: Callable[[Any], None],
        max_fps: float,
        *,
        trailing: bool = False,
        name: str = "nbviz-throttle",
    ) -> None:
        self.deliver = deliver
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.trailing = trailing
        self.name = name
        self._lock = threading.Lock()  # the state below
        self._delivering = threading.Lock()  # one delivery at a time
        self._pending: Any = _NOTHING
        self._last = -float("inf")
        self._timer: threading.Timer | None = None
        self.offered = 0
        self.delivered = 0

    def reset(self) -> None:
        """Drop a waiting item and the counts; the next offer delivers at once."""
        with self._lock:
            self._pending, self._last = _NOTHING, -float("inf")
            self.offered = self.delivered = 0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def offer(self, item: Any) -> None:
        """Hand over ``item``: delivered now if the rate allows, else it waits (latest wins)."""
        with self._lock:
            self.offered += 1
            self._pending = item
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0 or self._delivering.locked():
                if self.trailing and self._timer is None:
                    self._timer = threading.Timer(max(wait, 0.0), self._on_timer)
                    self._timer.name, self._timer.daemon = self.name, True
                    self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        """Deliver the waiting item now (after a delivery running elsewhere); none: no-op."""
        with self._delivering:
            with self._lock:
                item, self._pending = self._pending, _NOTHING
                if item is _NOTHING:
                    return
                self._last = time.monotonic()
                self.delivered += 1
            self.deliver(item)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()
        with self._lock:  # an offer made during that delivery found the timer still set
            again = self._pending is not _NOTHING and self._timer is None and self.trailing
            if again:
                wait = max(self._last + self.min_interval - time.monotonic(), 0.0)
                self._timer = threading.Timer(wait, self._on_timer)
                self._timer.name, self._timer.daemon = self.name, True
                self._timer.start()


class Worker:
    """Thread + stop event + latest-frame-wins throttle + error surfacing.

    Parameters
    ----------
    on_frame:
        Called (on a delivery thread) with the newest frame, at most ``max_fps`` times a second.
    on_error:
        Called with ``(exception, formatted_traceback)`` when the job raises.
    on_done:
        Called with ``(result, stopped)`` after the job finished (also after an error, with
        ``result=None``), after the last frame was delivered.
    max_fps:
        Upper bound on frame deliveries per second.
    name:
        Thread name prefix (shows up in ``threading.enumerate()``).
    """

    def __init__(
        self,
        on_frame: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException, str], None] | None = None,
        on_done: Callable[[Any, bool], None] | None = None,
        max_fps: float = 12.0,
        name: str = "nbviz-worker",
    ) -> None:
        self.on_frame = on_frame
        self.on_error = on_error
        self.on_done = on_done
        self.name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._throttle = Throttle(self._deliver, max_fps, name=f"{name}-frames")
        self.frames_published = 0
        self.result: Any = None
        self.error: BaseException | None = None

    # -- state -------------------------------------------------------------------------------
    @property
    def min_interval(self) -> float:
        """Seconds between frame deliveries, at least."""
        return self._throttle.min_interval

    @property
    def frames_delivered(self) -> int:
        """Frames handed to ``on_frame`` in the current (or last) job."""
        return self._throttle.delivered

    @property
    def running(self) -> bool:
        """True while the job's thread is alive."""
        t = self._thread
        return t is not None and t.is_alive()

    # -- control -----------------------------------------------------------------------------
    def start(self, job: Job) -> bool:
        """Start ``job`` on a new thread. Returns False (and does nothing) if one is running."""
        with self._lock:
            if self.running:
                return False
            self._stop = threading.Event()
            self._throttle.reset()
            self.frames_published = 0
            self.result = None
            self.error = None
            ctx = JobContext(self._stop, self._offer)
            self._thread = threading.Thread(
                target=self._run, args=(job, ctx), name=self.name, daemon=True
            )
            self._thread.start()
            return True

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the job to stop and wait up to ``timeout`` s. Returns True if it has ended."""
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job's thread. Returns True if it is no longer running."""
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        return not self.running

    # -- internals ---------------------------------------------------------------------------
    def _offer(self, frame: Any) -> None:
        self.frames_published += 1
        self._throttle.offer(frame)

    def _deliver(self, frame: Any) -> None:
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception as exc:  # a broken view must not kill the computation silently
                self._report(exc)

    def _flush(self) -> None:
        self._throttle.flush()

    def _report(self, exc: BaseException) -> None:
        self.error = exc
        if self.on_error is not None:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            try:
                self.on_error(exc, tb)
            except Exception:  # pragma: no cover - last resort, never raise from the thread
                traceback.print_exc()

    def _run(self, job: Job, ctx: JobContext) -> None:
        result = None
        try:
            result = job(ctx)
            self.result = result
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt from the job included
            self._flush()
            self._report(exc)
        else:
            self._flush()
        finally:
            if self.on_done is not None:
                try:
                    self.on_done(result, self._stop.is_set())
                except Exception as exc:
                    self._report(exc)


class LatestRequestLoop:
    """ "Latest request wins" on one worker: a request made while another is computed replaces
    any older one still waiting, and one loop on the worker's thread handles them until none
    is left (a slider dragged over ten layers computes the first and the last).

    ``handle(ctx, request)`` runs on the worker's thread for each request taken; it renders
    its own result, so anything a render requests lands here while the loop still owns the
    thread. The loop ends when no request waits, or when the worker is stopped.
    """

    def __init__(self, worker: Worker, handle: Callable[[JobContext, Any], None]) -> None:
        self.worker = worker
        self.handle = handle
        self._lock = threading.Lock()
        self._pending: Any = _NOTHING
        self._active = False

    @property
    def active(self) -> bool:
        """True while the loop owns the worker (a request is being handled or waits)."""
        with self._lock:
            return self._active

    def submit(self, request: Any, *, only_if_idle: bool = False) -> bool:
        """Queue ``request`` (replacing a waiting one); start the loop when it is not running.

        ``only_if_idle``: drop the request while the loop runs (a periodic refresh that the
        next one catches up with). Returns False when the request was dropped.
        """
        with self._lock:
            if self._active and only_if_idle:
                return False
            self._pending = request
            if self._active:
                return True
            self._active = True
        self.worker.join()  # a previous loop has given up the flag; let its thread end
        self.worker.start(self._loop)
        return True

    def clear(self) -> None:
        """Drop the waiting request (the one being handled finishes or sees the stop)."""
        with self._lock:
            self._pending = _NOTHING

    def _loop(self, ctx: JobContext) -> None:
        try:
            while not ctx.stopped:
                with self._lock:
                    request, self._pending = self._pending, _NOTHING
                    if request is _NOTHING:
                        self._active = False
                        return
                self.handle(ctx, request)
        finally:
            with self._lock:
                self._active = False


class _Nothing:
    __slots__ = ()

    def __repr__(self) -> str:  # pragma: no cover
        return "<nothing>"


_NOTHING = _Nothing()
