"""A run of the optimization visualization as an interactive view drives it, without the view.

The widget (:class:`~nbviz.widgets.OptVisWidget`) only turns controls into a
:class:`RunConfig` and draws what a :class:`OptVisSession` publishes. The session owns what
makes Start/Stop/Start feel instant and keeps a run's history:

* **objective modes** (:data:`MODES`): what "channel", "neuron", "class" and "diversity" mean
  -- which channels the rows get and which objective they build -- as small objects instead of
  branches spread through the widget;
* **a renderer cache**: one compiled :class:`~nbviz.optvis.Renderer` per configuration that
  needs a new trace (:attr:`RunConfig.renderer_key`); channels, seed and learning rate only set
  variables;
* **the continue rule**: a stopped run continues when nothing that shapes the image changed
  (:attr:`RunConfig.state_key`), else a new one starts;
* **a frame log** (:class:`FrameLog`): the frames, evenly thinned to a bound, the per-step
  objective values and the last image, guarded by a lock (the run writes them on its thread).

It imports no widget code: it can drive a run from a script or another front end too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import export
from ..errors import ImageError
from ..imaging import encode_image, mosaic, to_uint8
from . import objectives, transforms
from .objectives import Objective, as_objective
from .render import Renderer

TRANSFORM_PRESETS: dict[str, Any] = {
    "standard": "standard",  # Lucid's pad/jitter/scale/rotate/jitter
    "jitter": [transforms.jitter(4)],
    "none": "none",
}
GALLERY_COLUMNS = 4  # tiles per row of a gallery picture
MAX_RENDERERS = 6  # compiled renderers kept per session (each holds a traced graph)

ObjectiveFactory = Callable[[str, Any], "Objective | str"]


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, frozen when Start is pressed (``layer``/``kind`` are
    ``"<custom>"``/``"custom"`` for a fixed custom objective)."""

    layer: str
    kind: str
    channels: tuple[int, ...]  # one per row (a single entry in single mode)
    batch: int
    fft: bool
    decorrelate: bool
    transforms: str
    size: int
    learning_rate: float
    seed: int
    steps: int

    @property
    def renderer_key(self) -> tuple:
        """What needs a new renderer (a new trace); channels, seed and learning rate do not."""
        return (
            self.layer,
            self.kind,
            self.batch,
            self.fft,
            self.decorrelate,
            self.transforms,
            self.size,
        )

    @property
    def state_key(self) -> tuple:
        """What a paused run must share with the next Start for it to continue."""
        return (*self.renderer_key, self.channels, self.seed, self.learning_rate)

    def row_labels(self) -> list[str]:
        """A label per row, for gallery tiles ("channel 3", "class 2", "#0" ...)."""
        if self.kind not in MODES:
            return [f"#{i}" for i in range(self.batch)]
        return [MODES[self.kind].row_label(i, c) for i, c in enumerate(self.channels)]


@dataclass
class Tick:
    """One published frame: what a view needs, computed on the run's thread."""

    step: int
    target: int
    images: np.ndarray  # (B, H, W, C) uint8
    steps_per_sec: float


@dataclass
class RunSummary:
    """How a run ended: the step reached of ``target``, and this run's own time and steps."""

    step: int
    target: int
    seconds: float
    steps_run: int

    def describe(self) -> str:
        """One line for the status: where the run ended and how fast it went."""
        rate = self.steps_run / self.seconds if self.seconds > 0 else float("nan")
        if self.step < self.target:
            what = f"stopped at step {self.step} of {self.target} (Start continues)"
        else:
            what = f"done: {self.step} steps"
        return f"{what}, {self.steps_run} steps in {self.seconds:.1f} s ({rate:.0f} steps/s)"


# -- objective modes -----------------------------------------------------------------------------
class ObjectiveMode:
    """What one objective kind means: the rows' channels and the objective they build."""

    name = ""
    label = ""
    needs_gallery = False  # several rows are required

    def row_channels(self, channel: int, count: int, rows: int) -> tuple[int, ...]:
        """The channel of each row: ``rows`` neighbouring channels (of ``count``) starting
        near ``channel``."""
        first = max(0, min(channel, count - rows))
        return tuple(range(first, first + rows))

    def build(self, layer: str, channels: Any, diversity_weight: float) -> Objective:
        raise NotImplementedError

    def renderer_channels(self, channels: tuple[int, ...]) -> Any:
        """What :meth:`~nbviz.optvis.Renderer.set_channels` gets for these rows."""
        return list(channels)

    def row_label(self, index: int, channel: int) -> str:
        """How a gallery tile of this kind is labelled."""
        return f"channel {channel}"


class _Channel(ObjectiveMode):
    name, label = "channel", "channel (mean over space)"

    def build(self, layer: str, channels: Any, diversity_weight: float) -> Objective:
        return objectives.channel(layer, channels)


class _Neuron(ObjectiveMode):
    name, label = "neuron", "neuron (centre position)"

    def build(self, layer: str, channels: Any, diversity_weight: float) -> Objective:
        return objectives.neuron(layer, channels)


class _ClassLogit(ObjectiveMode):
    name, label = "class", "class logit / neuron"

    def row_label(self, index: int, channel: int) -> str:
        return f"class {channel}"

    def build(self, layer: str, channels: Any, diversity_weight: float) -> Objective:
        return objectives.class_logit(layer, channels)


class _Diversity(ObjectiveMode):
    """One channel on every row, pushed apart by a diversity term (Lucid's recipe)."""

    name, label, needs_gallery = "diversity", "channel + diversity", True

    def row_channels(self, channel: int, count: int, rows: int) -> tuple[int, ...]:
        return (channel,) * rows

    def build(self, layer: str, channels: Any, diversity_weight: float) -> Objective:
        one = channels[0] if isinstance(channels, (list, tuple)) else channels
        return objectives.channel(layer, one) + diversity_weight * objectives.diversity(layer)

    def renderer_channels(self, channels: tuple[int, ...]) -> Any:
        return channels[0]

    def row_label(self, index: int, channel: int) -> str:
        return f"#{index}"


MODES: dict[str, ObjectiveMode] = {
    m.name: m for m in (_Channel(), _Neuron(), _ClassLogit(), _Diversity())
}


# -- the frame log ---------------------------------------------------------------------------------
class FrameLog:
    """Frames (thinned evenly to at most ``max_frames``), per-step values and the last image.

    Written by the run's thread, read by the view and exports: every access holds the lock.
    """

    def __init__(self, frame_every: int, max_frames: int) -> None:
        self.frame_every = int(frame_every)
        self.max_frames = int(max_frames)
        self.lock = threading.Lock()
        self.frames: list[np.ndarray] = []
        self.steps: list[int] = []
        self.losses: list[np.ndarray] = []  # one (B,) row per step
        self.last: np.ndarray | None = None  # (B, H, W, C) float32
        self.stride = 1

    def clear(self, planned_steps: int | None = None) -> None:
        """Forget everything; ``planned_steps`` sets the recording stride for a new run."""
        with self.lock:
            self.frames, self.steps, self.losses, self.last = [], [], [], None
            if planned_steps is not None:
                per_frame = self.max_frames * self.frame_every
                self.stride = max(1, -(-int(planned_steps) // per_frame))

    def add(
        self, step: int, image: np.ndarray, images: np.ndarray, losses: np.ndarray, final: bool
    ) -> None:
        """One frame of the run: its float image, uint8 picture and the steps' values."""
        with self.lock:
            self.last = image
            self.losses.extend(np.asarray(losses, np.float32))
            self._record(step, images, final)

    def close_run(self, step: int, images: np.ndarray) -> None:
        """Keep the last frame of a run (a stopped run too: a GIF after Stop ends there)."""
        with self.lock:
            if not self.steps or self.steps[-1] != step:
                self._record(step, images, final=True)

    def keep_row(self, index: int) -> None:
        """Keep row ``index`` alone (a gallery tile opened on its own)."""
        with self.lock:
            if self.last is not None and self.last.shape[0] > index:
                self.last = self.last[index : index + 1]
                self.frames = [f[index : index + 1] for f in self.frames]
                self.losses = [row[index : index + 1] for row in self.losses]

    # -- reading (views, exports) -------------------------------------------------------------
    def snapshot(self) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """Copies of ``(frames, losses, last)`` taken under the lock."""
        with self.lock:
            return list(self.frames), list(self.losses), self.last

    def loss_array(self, rows: int) -> np.ndarray:
        """Objective value per step and row, ``(steps, B)`` (``(0, rows)`` before a run)."""
        _, losses, _ = self.snapshot()
        if not losses:
            return np.zeros((0, max(1, rows)), np.float32)
        return np.asarray(losses, np.float32)

    def result(self) -> np.ndarray:
        """The current image(s), ``(B, H, W, C)`` float32 in [0, 1] (a copy)."""
        _, _, last = self.snapshot()
        if last is None:
            raise ImageError("Nothing rendered yet. Fix: press Start (or call start(); wait()).")
        return np.array(last, dtype=np.float32, copy=True)

    def encode(self, fmt: str, fps: float = 10.0) -> bytes:
        """The result as ``"png"`` (a grid in gallery mode) or ``"npy"``, or the recorded
        frames as an animated ``"gif"`` / ``"mp4"`` (needs ``imageio[ffmpeg]``)."""
        if fmt == "png":
            return encode_image(picture(self.result()), "png")
        if fmt == "npy":
            return export.encode_npy(self.result())
        frames, _, _ = self.snapshot()
        if not frames:
            raise ImageError("No frames recorded yet. Fix: press Start (or call start(); wait()).")
        encoders = {"gif": export.encode_gif, "mp4": export.encode_mp4}
        if fmt not in encoders:
            raise ValueError(f"Unknown format {fmt!r}. Fix: use 'png', 'npy', 'gif' or 'mp4'.")
        return encoders[fmt]([picture(f) for f in frames], fps)

    def _record(self, step: int, images: np.ndarray, final: bool) -> None:
        """Keep every ``stride``-th frame; halve the list when it overflows."""
        if (step // self.frame_every) % self.stride and not final:
            return
        if self.frames and np.array_equal(self.frames[-1], images):
            return  # a GIF merges identical frames anyway; keep counts honest
        self.frames.append(images)
        self.steps.append(step)
        if len(self.frames) > self.max_frames:
            keep = list(range(0, len(self.frames) - 1, 2)) + [len(self.frames) - 1]
            self.frames = [self.frames[i] for i in keep]
            self.steps = [self.steps[i] for i in keep]
            self.stride *= 2


def picture(images: np.ndarray) -> np.ndarray:
    """One image for a batch: the image itself, or a grid of the rows."""
    if images.shape[0] == 1:
        return images[0]
    fill = 255 if images.dtype == np.uint8 else 1.0
    return mosaic(images, cols=min(GALLERY_COLUMNS, images.shape[0]), pad=2, fill=fill)


# -- the session -------------------------------------------------------------------------------------
class OptVisSession:
    """Runs of one model's optimization visualization: objective, renderers, continue rule, log.

    ``objective``: ``None`` (the built-in modes), a fixed :class:`Objective` (or shorthand), or
    a factory ``f(layer, channels) -> Objective``. ``preprocess``/``value_range`` go to every
    :class:`~nbviz.optvis.Renderer`.
    """

    def __init__(
        self,
        model: Any,
        *,
        objective: Any = None,
        preprocess: Any = None,
        value_range: tuple[float, float] | None = None,
        frame_every: int = 4,
        max_frames: int = 100,
        diversity_weight: float = 1.0,
    ) -> None:
        if int(frame_every) < 1 or int(max_frames) < 2:
            raise ValueError("frame_every must be >= 1 and max_frames >= 2.")
        self.model = model
        self.table = objectives.LayerTable(model)
        self.preprocess = preprocess
        self.value_range = value_range
        self.frame_every = int(frame_every)
        self.diversity_weight = float(diversity_weight)
        self.log = FrameLog(frame_every, max_frames)
        self.fixed: Objective | None = None
        self.factory: ObjectiveFactory | None = None
        self.renderers: dict[tuple, Renderer] = {}
        self.state_key: tuple | None = None  # the configuration of the current image
        self.fresh = True
        self.set_objective(objective)

    # -- objective -------------------------------------------------------------------------
    def set_objective(self, value: Any) -> None:
        """Use ``value`` from the next run on (see the class docstring); drops the renderers."""
        fixed, factory = None, None
        if isinstance(value, (Objective, str)):
            fixed = as_objective(value)
            fixed.check(self.table)
        elif callable(value):
            factory = value
        elif value is not None:
            raise TypeError(
                f"objective is an Objective, a 'layer:unit' string or a callable "
                f"f(layer, channels) -> Objective; got {type(value).__name__}."
            )
        self.fixed, self.factory = fixed, factory
        self.renderers.clear()
        self.fresh = True

    @property
    def objective(self) -> Objective | ObjectiveFactory | None:
        return self.fixed or self.factory

    def make_objective(self, cfg: RunConfig) -> Objective:
        if self.fixed is not None:
            return self.fixed
        channels: Any = list(cfg.channels) if cfg.batch > 1 else cfg.channels[0]
        if self.factory is not None:
            return as_objective(self.factory(cfg.layer, channels))
        return MODES[cfg.kind].build(cfg.layer, channels, self.diversity_weight)

    # -- renderers and the continue rule ----------------------------------------------------
    def renderer_for(self, cfg: RunConfig) -> Renderer:
        """The compiled renderer for ``cfg`` (cached per :attr:`RunConfig.renderer_key`)."""
        renderer = self.renderers.get(cfg.renderer_key)
        if renderer is not None:
            return renderer
        renderer = Renderer(
            self.model, self.make_objective(cfg), size=cfg.size, batch=cfg.batch, fft=cfg.fft,
            decorrelate=cfg.decorrelate, transforms=TRANSFORM_PRESETS[cfg.transforms],
            learning_rate=cfg.learning_rate, seed=cfg.seed, preprocess=self.preprocess,
            value_range=self.value_range,
        ).compile()  # fmt: skip
        while len(self.renderers) >= MAX_RENDERERS:  # oldest first: dicts keep insertion order
            self.renderers.pop(next(iter(self.renderers)))
        self.renderers[cfg.renderer_key] = renderer  # only once it traced without error
        return renderer

    def continues(self, cfg: RunConfig, renderer: Renderer) -> bool:
        """True when a stopped run with the same image-shaping settings can go on."""
        return not self.fresh and self.state_key == cfg.state_key and 0 < renderer.step < cfg.steps

    def forget(self) -> None:
        """The next run starts anew (Reset, or the rows changed)."""
        self.fresh, self.state_key = True, None

    # -- a run --------------------------------------------------------------------------------
    def run(
        self,
        cfg: RunConfig,
        stop_event: threading.Event | None,
        publish: Callable[[Tick], None],
        status: Callable[[str], None] = lambda text: None,
    ) -> RunSummary:
        """Run (or continue) ``cfg`` until its steps or ``stop_event``; frames go to ``publish``.

        ``status`` gets short plain-text notes ("building the renderer ...", "running: ...").
        """
        if cfg.renderer_key not in self.renderers:
            status(f"building the renderer for {cfg.layer} ...")
        renderer = self.renderer_for(cfg)
        continuing = self.continues(cfg, renderer)
        if not continuing:
            if self.fixed is None:
                renderer.set_channels(
                    MODES[cfg.kind].renderer_channels(cfg.channels)
                    if cfg.kind in MODES
                    else list(cfg.channels),
                    reset=False,
                )
            renderer.reset(cfg.seed)
            # After reset(): it restores every optimizer variable, the learning rate included.
            renderer.optimizer.learning_rate = cfg.learning_rate
            self.log.clear(planned_steps=cfg.steps)
            self.state_key, self.fresh = cfg.state_key, False
        status(f"{'continuing' if continuing else 'running'}: {describe(cfg, renderer)}")
        start_step, t0 = renderer.step, time.perf_counter()
        images = None
        for frame in renderer.frames(
            cfg.steps - renderer.step, every=self.frame_every, stop_event=stop_event
        ):
            assert frame.image is not None  # frames() was asked with images
            images = to_uint8(frame.image)
            self.log.add(frame.step, frame.image, images, frame.losses, frame.final)
            rate = (frame.step - start_step) / max(time.perf_counter() - t0, 1e-9)
            publish(Tick(frame.step, cfg.steps, images, rate))
        if images is not None:
            self.log.close_run(renderer.step, images)
        return RunSummary(
            renderer.step, cfg.steps, time.perf_counter() - t0, renderer.step - start_step
        )


def describe(cfg: RunConfig, renderer: Renderer) -> str:
    """One line for the status: what is optimized, on how many rows, how."""
    what = cfg.kind if cfg.kind != "custom" else repr(renderer.objective)
    rows = cfg.channels[0] if cfg.batch == 1 else f"{cfg.batch} rows"
    return (
        f"{cfg.layer} {what} {rows}, {cfg.size}px, "
        f"{'spectral' if cfg.fft else 'pixel'}, transforms {cfg.transforms}, {cfg.steps} steps"
    )
