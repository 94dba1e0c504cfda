"""``OptVisWidget``: feature visualization by gradient ascent, live in a notebook.

The settings live in traits (``layer``, ``channel``, ``kind``, ``parameterization``,
``decorrelate``, ``transforms``, ``steps``, ``learning_rate``, ``size``, ``seed``,
``gallery``, ``gallery_size``), linked to the controls. Start runs the compiled
:class:`~nbviz.optvis.Renderer` on the widget's :class:`~nbviz.worker.Worker` thread, so the
cell returns at once and Stop works while it runs. Frames stream into an ``ipywidgets.Image``
(JPEG while running, a lossless PNG at the end; latest frame wins, throttled), with a live
bqplot loss curve and a progress bar with steps/s.

One renderer is built (and traced) per *configuration* -- layer, objective kind, batch,
parameterization, transforms, size -- and kept: changing only the channel, the seed or the
learning rate reuses it (``Renderer.set_channels`` / ``reset`` / the optimizer's learning-rate
variable), so Start never retraces for those.

Gallery mode renders ``gallery_size`` channels of the layer (``channel``, ``channel + 1``, ...)
as one batch, shown as a grid of tiles that updates live; a tile's "open" button switches back
to one channel with that tile's image shown.

The widget is trait declarations and wiring: what may be chosen is checked by
``Choices`` (:mod:`nbviz.optvis.choices`), a run is an ``OptVisSession``
(:mod:`nbviz.optvis.session`: renderer cache, continue rule, frame log, exports), and the
controls and views live in :mod:`.optvis_controls` and :mod:`.optvis_views`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import export
from ..deprecation import renamed_attribute, renamed_keywords
from ..errors import ChannelError, ImageError
from ..imaging import to_uint8
from ..optvis import Objective, objectives
from ..optvis.choices import Choices, check_gallery_size
from ..optvis.session import (
    MODES,
    TRANSFORM_PRESETS,
    ObjectiveFactory,
    OptVisSession,
    RunConfig,
    RunSummary,
    Tick,
)
from ..worker import Worker
from .closing import close_widget_tree
from .optvis_controls import RunBar, SettingsControls
from .optvis_views import ResultViews
from .static_picture import StaticPicture, close_picture, enlarged_png

__all__ = ["OptVisWidget"]

KIND_LABELS = {name: mode.label for name, mode in MODES.items()}
DIVERSITY_WEIGHT = 1.0  # per-row gradients are RMS-normalized, so O(1) weights balance


class OptVisWidget(StaticPicture, widgets.VBox):
    """Interactive feature visualization of ``model``.

    Parameters
    ----------
    model:
        A Keras model with one image input; its weights are never changed.
    layer:
        Layer to visualize; ``None`` picks a convolutional layer about two thirds deep. Choices:
        layers with a channel axis (softmax outputs excluded -- use the logits before them).
    channel:
        The channel (a conv filter, a Dense neuron, a class) to render; in gallery mode the
        first of the tiles. ``filter=`` is its deprecated name.
    objective:
        Optional custom objective: an :class:`~nbviz.optvis.Objective` (or ``"layer:unit"``)
        used as is (the layer/channel/kind controls are then disabled), or a callable
        ``f(layer, channels) -> Objective`` called once per configuration (``channels`` is an
        int, or a list in gallery mode); the channel is then changed with
        ``Renderer.set_channels``.
    kind:
        ``"channel"``, ``"neuron"``, ``"class"`` (2-D layers such as ``"logits"``) or
        ``"diversity"`` (gallery mode: one channel, rows pushed apart); default by layer.
    steps, learning_rate, size, seed, parameterization, decorrelate, transforms:
        Initial settings (``parameterization``: ``"spectral"`` or ``"pixel"``; ``transforms``:
        ``"standard"``, ``"jitter"`` or ``"none"``; ``size`` default: the model's input size).
    gallery, gallery_size:
        Start in gallery mode with this many tiles.
    diversity_weight:
        Weight of the diversity term of the ``"diversity"`` kind (larger: more varied tiles,
        weaker activation).
    frame_every:
        Steps between frames taken from the renderer (also the granularity of Stop).
    max_frames:
        Frames kept for GIF export (thinned evenly when a run is longer).
    max_fps:
        Upper bound on view updates per second.
    preprocess, value_range:
        The model's input preprocessing, passed to :class:`~nbviz.optvis.Renderer` (default
        range: read from the model's own Rescaling/Normalization layer, see :mod:`nbviz.scaling`).

    Notes
    -----
    Errors (bad settings, an objective that raises, ...) are shown in :attr:`status` and kept in
    :attr:`error`; the widget stays usable. Call :meth:`close` to stop the worker thread.
    """

    layer = traitlets.Unicode()
    channel = traitlets.Int(0, help="the channel rendered (the first tile in gallery mode)")
    kind = traitlets.Enum(list(KIND_LABELS), default_value="channel")
    parameterization = traitlets.Enum(["spectral", "pixel"], default_value="spectral")
    decorrelate = traitlets.Bool(True)
    transforms = traitlets.Enum(list(TRANSFORM_PRESETS), default_value="standard")
    steps = traitlets.Int(256)
    learning_rate = traitlets.Float(0.05)
    size = traitlets.Int(64)
    seed = traitlets.Int(0)
    gallery = traitlets.Bool(False)
    gallery_size = traitlets.Int(8)
    running = traitlets.Bool(False, read_only=True)
    step = traitlets.Int(0, read_only=True)

    @renamed_keywords(filter="channel")
    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        channel: int = 0,
        *,
        objective: Objective | str | ObjectiveFactory | None = None,
        kind: str | None = None,
        steps: int = 256,
        learning_rate: float = 0.05,
        size: int | None = None,
        seed: int = 0,
        parameterization: str = "spectral",
        decorrelate: bool = True,
        transforms: str = "standard",
        gallery: bool = False,
        gallery_size: int = 8,
        diversity_weight: float = DIVERSITY_WEIGHT,
        frame_every: int = 4,
        max_frames: int = 100,
        max_fps: float = 12.0,
        preprocess: Callable[[Any], Any] | None = None,
        value_range: tuple[float, float] | None = None,
    ) -> None:
        input_shape = objectives.check_image_model(model)
        objectives.check_float_input(model)
        self.model = model
        #: What may be chosen (layers, channels, kinds), checked headless.
        self.choices = Choices(model)
        check_gallery_size(gallery_size)
        #: The headless run: objective modes, renderer cache, continue rule, frame log.
        self.session = OptVisSession(
            model, objective=objective, preprocess=preprocess, value_range=value_range,
            frame_every=frame_every, max_frames=max_frames, diversity_weight=diversity_weight,
        )  # fmt: skip
        self.frame_every = self.session.frame_every
        self.max_frames = self.session.log.max_frames
        self.diversity_weight = self.session.diversity_weight
        self.preprocess = preprocess
        self.value_range = value_range
        self._closed = False
        self._channels: tuple[int, ...] = ()
        self._worker = Worker(
            on_frame=self._on_frame,
            on_error=self._on_error,
            on_done=self._on_done,
            max_fps=max_fps,
            name="nbviz-optvis",
        )
        self._build(input_shape)

        # Initial state, then links (controls start consistent), then observers.
        model_size = int(input_shape[1]) if input_shape[1] is not None else 128
        self.layer = self.choices.default_layer() if layer is None else layer
        self._on_layer({})
        self.channel = channel
        self.steps = steps
        self.learning_rate = learning_rate
        self.size = model_size if size is None else size
        self.seed = seed
        self.parameterization = parameterization
        self.decorrelate = decorrelate
        self.transforms = transforms
        self.gallery_size = gallery_size
        self.gallery = gallery
        self._on_gallery({})
        self.kind = kind if kind is not None else self.choices.kinds(self.layer, False)[0]
        self._update_kinds()
        controls = self.settings.by_trait()
        self._links = [
            traitlets.link((self, name), (control, "value")) for name, control in controls.items()
        ]
        self.observe(self._on_layer, "layer")
        self.observe(self._on_gallery, ["gallery", "gallery_size"])
        self.observe(self._on_settings, list(controls))
        self._sync_buttons()
        self.run_bar.set_status("ready: press <b>Start</b>")

    # -- public API ------------------------------------------------------------------------
    def start(self) -> bool:
        """Start (or continue a stopped run) on the worker thread; returns at once.

        Returns False, and starts nothing, if a run is already going or the settings are
        invalid (the reason is shown in :attr:`status`). A stopped run continues if no setting
        changed; otherwise (or after it finished, or after :meth:`reset`) a new one starts.
        """
        if self._closed:
            raise RuntimeError("This OptVisWidget was closed. Fix: create a new one.")
        if self._worker.running:
            self.run_bar.set_status("already running: press <b>Stop</b> first", keep_error=True)
            return False
        try:
            cfg = self.choices.config(
                {name: getattr(self, name) for name in self.settings.by_trait()},
                self.session.fixed,
            )
        except Exception as exc:
            self._show_error(exc)
            return False
        self.run_bar.error = None
        self._channels = cfg.channels
        self._label_tiles(cfg)
        self.set_trait("running", True)
        self._sync_buttons()
        if not self._worker.start(lambda ctx: self._run(cfg, ctx)):
            self.set_trait("running", False)
            self._sync_buttons()
            return False
        return True

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the run to stop and wait up to ``timeout`` s; True once the worker has ended."""
        return self._worker.stop(timeout)

    def reset(self) -> None:
        """Stop, forget the current image, frames and loss curve; the next Start begins anew."""
        self.stop(timeout=30.0)
        self.session.forget()
        self.session.log.clear()
        self.set_trait("step", 0)
        self.views.clear()
        self.run_bar.clear()
        self.run_bar.set_status("reset: press <b>Start</b>")

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the run has ended (for scripts and tests); True if it has."""
        return self._worker.join(timeout)

    def close(self) -> None:
        """Stop the worker thread and close every child widget (safe to call twice)."""
        if getattr(self, "_closed", True):
            return
        close_picture(self)
        self._closed = True
        self._worker.stop(timeout=30.0)
        for link in self._links:
            link.unlink()
        close_widget_tree([*self.children, *self.views.widgets_to_close()])
        self.session.renderers.clear()
        super().close()

    @property
    def error(self) -> BaseException | None:
        """The last error shown in :attr:`status` (``None`` once a run starts cleanly)."""
        return self.run_bar.error

    @property
    def objective(self) -> Objective | ObjectiveFactory | None:
        """The custom objective (or factory), ``None`` for the built-in kinds."""
        return self.session.objective

    @objective.setter
    def objective(self, value: Objective | str | ObjectiveFactory | None) -> None:
        if self._worker.running:
            raise RuntimeError("Stop the run before changing the objective.")
        self.session.set_objective(value)
        self._sync_buttons()

    @property
    def frames(self) -> list[np.ndarray]:
        """Recorded frames, each (B, H, W, C) uint8 (at most ``max_frames``, evenly thinned)."""
        return self.session.log.snapshot()[0]

    @property
    def losses(self) -> np.ndarray:
        """Objective value per step and row, shape (steps, B)."""
        return self.session.log.loss_array(len(self._channels))

    @property
    def channels(self) -> tuple[int, ...]:
        """The channel of each row of the current (or last) run."""
        return self._channels

    filter = renamed_attribute("filter", "channel")
    units = renamed_attribute("units", "channels")
    filter_input = renamed_attribute("filter_input", "channel_input")

    def result_array(self) -> np.ndarray:
        """The current image(s), (B, H, W, C) float32 in [0, 1] (a copy)."""
        return self.session.log.result()

    def export_png(self, path: str | None = None) -> bytes:
        """PNG bytes of the result (a grid in gallery mode); also written to ``path`` if given."""
        return export.write_bytes(self.session.log.encode("png"), path)

    def _picture_key(self) -> Any:
        last = self.session.log.last
        return None if last is None else (id(last), self.step, self.running)

    def _picture_png(self) -> bytes:
        return enlarged_png(self.export_png())

    def export_gif(self, path: str | None = None, fps: float = 10.0) -> bytes:
        """Animated GIF (looping) of the recorded frames; also written to ``path`` if given."""
        return export.write_bytes(self.session.log.encode("gif", fps), path)

    def export_mp4(self, path: str | None = None, fps: float = 10.0) -> bytes:
        """MP4 of the recorded frames (needs ``imageio[ffmpeg]``); also written to ``path``."""
        return export.write_bytes(self.session.log.encode("mp4", fps), path)

    def open_tile(self, index: int) -> None:
        """Leave gallery mode and show tile ``index`` alone (its channel, image, frames, losses)."""
        channels = self._channels
        if not 0 <= index < len(channels):
            raise ChannelError(
                f"There are {len(channels)} tiles; valid tile indices are "
                f"0..{len(channels) - 1}. Fix: pass one of them."
            )
        self.stop(timeout=30.0)
        channel = channels[index]
        self.session.log.keep_row(index)
        self.session.forget()
        self._channels = (channel,)
        self.gallery = False
        if self.kind != "diversity":
            self.channel = channel
        self._show_final()
        self._draw_curve()
        self.run_bar.set_status(
            f"tile {index}: {html.escape(self.layer)} channel {channel} -- press <b>Start</b> "
            "to render it on its own"
        )

    # -- validation: a bad value is shown in the widget, raised to the caller, and not set ----
    def _checked(self, check: Callable[[], Any]) -> Any:
        try:
            return check()
        except Exception as exc:
            self._show_error(exc)
            raise

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        return self._checked(lambda: self.choices.check_layer(proposal["value"]))

    @traitlets.validate("channel")
    def _valid_channel(self, proposal: dict) -> int:
        if not self.layer or self.session.fixed is not None:
            return int(proposal["value"])
        return self._checked(lambda: self.choices.check_channel(self.layer, proposal["value"]))

    @traitlets.validate("gallery_size")
    def _valid_gallery_size(self, proposal: dict) -> int:
        return self._checked(lambda: check_gallery_size(proposal["value"]))

    @traitlets.validate("size")
    def _valid_size(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if value < 8:
            exc = ImageError(f"size must be at least 8 pixels, got {value}. Fix: pass e.g. 64.")
            self._show_error(exc)
            raise exc
        self.settings.offer_size(value)
        return value

    @traitlets.validate("kind")
    def _valid_kind(self, proposal: dict) -> str:
        value = proposal["value"]
        if not self.layer or self.session.fixed is not None:
            return value
        return self._checked(lambda: self.choices.check_kind(self.layer, value, self.gallery))

    # -- observers --------------------------------------------------------------------------
    def _on_layer(self, change: dict) -> None:
        n = self.choices.channel_count(self.layer)
        self.channel_input.max = n - 1
        if self.channel >= n:
            self.channel = n - 1
        self._update_kinds()

    def _on_gallery(self, change: dict) -> None:
        self._update_kinds()
        self._rebuild_tiles()
        self.views.show_mode(self.gallery)

    def _on_settings(self, change: dict) -> None:
        if self._worker.running:
            self.run_bar.set_status("settings apply at the next <b>Start</b>", keep_error=True)

    def _update_kinds(self) -> None:
        options = self.choices.kinds(self.layer, self.gallery)
        self.kind_dropdown.options = [(KIND_LABELS[k], k) for k in options]
        if self.kind not in options:
            self.kind = options[0]
        else:
            self.kind_dropdown.value = self.kind

    # -- the run (worker thread) ----------------------------------------------------------
    def _run(self, cfg: RunConfig, ctx: Any) -> RunSummary:
        return self.session.run(
            cfg,
            ctx.stop_event,
            ctx.publish,
            status=lambda text: self.run_bar.set_status(html.escape(text)),
        )

    # -- worker callbacks (worker thread: set traits only) ------------------------------------
    def _on_frame(self, tick: Tick) -> None:
        if self._closed:
            return
        self.views.show_images(tick.images, "jpeg", self.gallery)
        self.set_trait("step", tick.step)
        self.run_bar.show_tick(tick)
        self._draw_curve()

    def _on_error(self, exc: BaseException, tb: str) -> None:
        self._show_error(exc)

    def _on_done(self, summary: RunSummary | None, stopped: bool) -> None:
        if self._closed:
            return
        if summary is not None:
            self._show_final()
            self._draw_curve()
            self.run_bar.set_status(summary.describe())
        self.set_trait("running", False)
        self._sync_buttons()

    # -- views --------------------------------------------------------------------------------
    def _show_final(self) -> None:
        last = self.session.log.snapshot()[2]
        if last is not None:
            self.views.show_images(to_uint8(last), "png", self.gallery)

    def _draw_curve(self) -> None:
        self.views.draw_curve(self.session.log.snapshot()[1])

    def _rebuild_tiles(self) -> None:
        fixed = self.session.fixed
        self.views.set_tiles(self.choices.tiles(self.layer, self.gallery, self.gallery_size, fixed))

    def _label_tiles(self, cfg: RunConfig) -> None:
        if len(self.views.tile_buttons) != cfg.batch:
            self._rebuild_tiles()
        self.views.label_tiles(cfg.row_labels())

    def _open_clicked(self, index: int) -> None:
        try:
            self.open_tile(index)
        except Exception as exc:
            self._show_error(exc)

    def _sync_buttons(self) -> None:
        running, custom = self.running, self.session.fixed is not None
        self.run_bar.set_running(running)
        for control in self.settings.setup():
            control.disabled = running
        for control in (self.layer_dropdown, self.channel_input, self.kind_dropdown):
            control.disabled = running or custom

    def _show_error(self, exc: BaseException) -> None:
        self.run_bar.show_error(exc)

    # -- construction -------------------------------------------------------------------------
    def _build(self, input_shape: tuple) -> None:
        self.settings = SettingsControls(self.choices.layers)
        c = self.settings
        self.layer_dropdown, self.channel_input, self.kind_dropdown = c.layer, c.channel, c.kind
        self.size_dropdown, self.lr_input = c.size, c.learning_rate
        self.run_bar = RunBar(
            on_start=self.start,
            on_stop=lambda: self._worker.stop(timeout=0),
            on_reset=self.reset,
            encode=self.session.log.encode,
        )
        bar = self.run_bar
        self.start_button, self.stop_button, self.reset_button = bar.start, bar.stop, bar.reset
        self.export_buttons, self.download = bar.exports, bar.download
        self.progress, self.rate_label, self.status = bar.progress, bar.rate, bar.status
        self.views = ResultViews(on_open=self._open_clicked)
        self.image, self.gallery_grid = self.views.image, self.views.gallery_grid
        self.loss_line, self.loss_figure = self.views.loss_line, self.views.loss_figure
        super().__init__(children=[self.views.row(self.settings.panel()), *bar.rows()])
