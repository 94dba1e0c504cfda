"""``OptVisWidget``: feature visualization by gradient ascent, live in a notebook.

The settings live in traits (``layer``, ``filter``, ``kind``, ``parameterization``,
``decorrelate``, ``transforms``, ``steps``, ``learning_rate``, ``size``, ``seed``,
``gallery``, ``gallery_size``), linked to the controls. Start runs the compiled
:class:`~nbviz.optvis.Renderer` on the widget's :class:`~nbviz.worker.Worker` thread, so the
cell returns at once and Stop works while it runs. Frames stream into an ``ipywidgets.Image``
(JPEG while running, a lossless PNG at the end; latest frame wins, throttled), with a live
bqplot loss curve and a progress bar with steps/s.

One renderer is built (and traced) per *configuration* -- layer, objective kind, batch,
parameterization, transforms, size -- and kept: changing only the filter, the seed or the
learning rate reuses it (``Renderer.set_channels`` / ``reset`` / the optimizer's learning-rate
variable), so Start never retraces for those.

Gallery mode renders ``gallery_size`` filters of the layer (``filter``, ``filter + 1``, ...)
as one batch, shown as a grid of tiles that updates live; a tile's "open" button switches back
to one filter with that tile's image shown.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from .. import export
from ..errors import ImageError, LayerError, UnitError, format_choices
from ..imaging import encode_image, to_uint8
from ..optvis import Objective, objectives
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
from .optvis_controls import SettingsControls
from .optvis_views import ResultViews, picture
from .static_picture import StaticPicture, close_picture, enlarged_png
from .status import error_html, status_html

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
    filter:
        The unit (channel / neuron / class) to render; in gallery mode the first of the tiles.
    objective:
        Optional custom objective: an :class:`~nbviz.optvis.Objective` (or ``"layer:unit"``)
        used as is (the layer/filter/kind controls are then disabled), or a callable
        ``f(layer, units) -> Objective`` called once per configuration (``units`` is an int, or a
        list in gallery mode); the filter is then changed with ``Renderer.set_channels``.
    kind:
        ``"channel"``, ``"neuron"``, ``"class"`` (2-D layers such as ``"logits"``) or
        ``"diversity"`` (gallery mode: one filter, rows pushed apart); default by layer.
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
    filter = traitlets.Int(0)
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

    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        filter: int = 0,
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
        self._table = objectives.LayerTable(model)
        self._choices = _layer_choices(self._table)
        if not self._choices:
            raise LayerError(
                f"Model {model.name!r} has no layer with a channel axis to visualize. "
                "Fix: pass a convolutional model."
            )
        _check_gallery_size(gallery_size)
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
        self.error: BaseException | None = None
        self._closed = False
        self._units: tuple[int, ...] = ()
        self._worker = Worker(
            on_frame=self._on_frame,
            on_error=self._on_error,
            on_done=self._on_done,
            max_fps=max_fps,
            name="nbviz-optvis",
        )

        self._build_controls(input_shape)
        self._build_views()
        self._build_layout()

        # Initial state, then links (controls start consistent), then observers.
        model_size = int(input_shape[1]) if input_shape[1] is not None else 128
        self.layer = self._default_layer() if layer is None else layer
        self._on_layer({})
        self.filter = filter
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
        self.kind = kind if kind is not None else self._default_kind()
        self._update_kinds()
        self._links = [
            traitlets.link((self, name), (control, "value"))
            for name, control in self._controls().items()
        ]
        self.observe(self._on_layer, "layer")
        self.observe(self._on_gallery, ["gallery", "gallery_size"])
        self.observe(self._on_settings, list(self._controls()))
        self._sync_buttons()
        self._set_status("ready: press <b>Start</b>")

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
            self._set_status("already running: press <b>Stop</b> first", keep_error=True)
            return False
        try:
            cfg = self._config()
        except Exception as exc:
            self._show_error(exc)
            return False
        self.error = None
        self._units = cfg.units
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
        self.progress.value = 0
        self.download.value = ""
        self._set_status("reset: press <b>Start</b>")

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
        log = self.session.log
        with log.lock:
            return list(log.frames)

    @property
    def losses(self) -> np.ndarray:
        """Objective value per step and row, shape (steps, B)."""
        log = self.session.log
        with log.lock:
            if not log.losses:
                return np.zeros((0, max(1, len(self._units))), np.float32)
            return np.asarray(log.losses, np.float32)

    @property
    def units(self) -> tuple[int, ...]:
        """The unit index of each row of the current (or last) run."""
        return self._units

    def result_array(self) -> np.ndarray:
        """The current image(s), (B, H, W, C) float32 in [0, 1] (a copy)."""
        with self.session.log.lock:
            last = self.session.log.last
        if last is None:
            raise ImageError("Nothing rendered yet. Fix: press Start (or call start(); wait()).")
        return np.array(last, dtype=np.float32, copy=True)

    def export_png(self, path: str | None = None) -> bytes:
        """PNG bytes of the result (a grid in gallery mode); also written to ``path`` if given."""
        return export.write_bytes(encode_image(picture(self.result_array()), "png"), path)

    def _picture_key(self) -> Any:
        last = self.session.log.last
        return None if last is None else (id(last), self.step, self.running)

    def _picture_png(self) -> bytes:
        return enlarged_png(self.export_png())

    def export_gif(self, path: str | None = None, fps: float = 10.0) -> bytes:
        """Animated GIF (looping) of the recorded frames; also written to ``path`` if given."""
        frames = self.frames
        if not frames:
            raise ImageError("No frames recorded yet. Fix: press Start (or call start(); wait()).")
        return export.write_bytes(export.encode_gif([picture(f) for f in frames], fps), path)

    def export_mp4(self, path: str | None = None, fps: float = 10.0) -> bytes:
        """MP4 of the recorded frames (needs ``imageio[ffmpeg]``); also written to ``path``."""
        frames = self.frames
        if not frames:
            raise ImageError("No frames recorded yet. Fix: press Start (or call start(); wait()).")
        return export.write_bytes(export.encode_mp4([picture(f) for f in frames], fps), path)

    def open_tile(self, index: int) -> None:
        """Leave gallery mode and show tile ``index`` alone (its filter, image, frames, losses)."""
        units = self._units
        if not 0 <= index < len(units):
            raise UnitError(
                f"There are {len(units)} tiles; valid tile indices are 0..{len(units) - 1}."
            )
        self.stop(timeout=30.0)
        unit = units[index]
        self.session.log.keep_row(index)
        self.session.forget()
        self._units = (unit,)
        self.gallery = False
        if self.kind != "diversity":
            self.filter = unit
        self._show_final()
        self._draw_curve()
        self._set_status(
            f"tile {index}: {html.escape(self.layer)} unit {unit} -- press <b>Start</b> to "
            "render it on its own"
        )

    # -- settings ---------------------------------------------------------------------------
    def _config(self) -> RunConfig:
        """Validate the settings and freeze them for one run."""
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.size < 8:
            raise ImageError(f"size must be at least 8 pixels, got {self.size}.")
        fixed = self.session.fixed
        if fixed is not None:
            batch = fixed.rows or (max(1, self.gallery_size) if self.gallery else 1)
            units = tuple(range(batch))
            layer, kind = "<custom>", "custom"
        else:
            layer, kind, mode = self.layer, self.kind, MODES[self.kind]
            if mode.needs_gallery and not self.gallery:
                raise ValueError(
                    f"The {kind} objective needs several rows. Fix: turn on gallery mode or "
                    "pick another objective kind."
                )
            channels = self._channels(layer)
            rows = max(1, min(self.gallery_size, channels)) if self.gallery else 1
            units = mode.units(self.filter, channels, rows)
            batch = len(units)
        return RunConfig(
            layer=layer,
            kind=kind,
            units=units,
            batch=batch,
            fft=self.parameterization == "spectral",
            decorrelate=bool(self.decorrelate),
            transforms=self.transforms,
            size=int(self.size),
            learning_rate=float(self.learning_rate),
            seed=int(self.seed),
            steps=int(self.steps),
        )

    def _channels(self, layer: str) -> int:
        return int(self._table.output_shape(layer)[-1])

    def _default_layer(self) -> str:
        spatial = [n for n, s in self._choices if len(s) == 4]
        convs = [n for n in spatial if "Conv" in self._table.info(n).kind]
        layers = convs or spatial or [self._choices[0][0]]
        # About two thirds deep: past the edge detectors, before units that need whole objects.
        return layers[round((len(layers) - 1) * 2 / 3)]

    def _default_kind(self) -> str:
        return "class" if len(self._table.output_shape(self.layer)) == 2 else "channel"

    def _kind_options(self) -> list[str]:
        if len(self._table.output_shape(self.layer)) == 2:
            return ["class"]
        return ["channel", "neuron"] + (["diversity"] if self.gallery else [])

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        name = proposal["value"]
        valid = [n for n, _ in self._choices]
        try:
            full = self._table.info(name).name
            if full not in valid:
                raise LayerError(
                    f"Layer {full!r} cannot be visualized here (no channel axis, or a softmax "
                    f"output). Pick one of: {format_choices(valid)}."
                )
        except Exception as exc:
            self._show_error(exc)
            raise
        return full

    @traitlets.validate("filter")
    def _valid_filter(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if self.layer and self.session.fixed is None:
            n = self._channels(self.layer)
            if not 0 <= value < n:
                exc = UnitError(
                    f"Unit {value} is out of range for layer {self.layer!r}, which has {n} "
                    f"units. Valid units are 0..{n - 1}."
                )
                self._show_error(exc)
                raise exc
        return value

    @traitlets.validate("gallery_size")
    def _valid_gallery_size(self, proposal: dict) -> int:
        try:
            return _check_gallery_size(proposal["value"])
        except ValueError as exc:
            self._show_error(exc)
            raise

    @traitlets.validate("size")
    def _valid_size(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if value < 8:
            exc = ImageError(f"size must be at least 8 pixels (e.g. 64), got {value}.")
            self._show_error(exc)
            raise exc
        if value not in self.size_dropdown.options:
            self.size_dropdown.options = sorted({*self.size_dropdown.options, value})
        return value

    @traitlets.validate("kind")
    def _valid_kind(self, proposal: dict) -> str:
        value = proposal["value"]
        if self.layer and self.session.fixed is None and value not in self._kind_options():
            if value == "diversity" and not self.gallery:
                why = "it needs gallery mode (several rows)"
            else:
                why = f"layer {self.layer!r} offers {self._kind_options()}"
            exc = ValueError(f"Objective kind {value!r} is not available: {why}.")
            self._show_error(exc)
            raise exc
        return value

    # -- observers --------------------------------------------------------------------------
    def _on_layer(self, change: dict) -> None:
        n = self._channels(self.layer)
        self.filter_input.max = n - 1
        if self.filter >= n:
            self.filter = n - 1
        self._update_kinds()

    def _on_gallery(self, change: dict) -> None:
        self._update_kinds()
        self._rebuild_tiles()
        self._sync_views()

    def _on_settings(self, change: dict) -> None:
        if self._worker.running:
            self._set_status("settings apply at the next <b>Start</b>", keep_error=True)

    def _update_kinds(self) -> None:
        options = self._kind_options()
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
            status=lambda text: self._set_status(html.escape(text)),
        )

    # -- worker callbacks (worker thread: set traits only) ------------------------------------
    def _on_frame(self, tick: Tick) -> None:
        if self._closed:
            return
        self._show_images(tick.images, "jpeg")
        self.set_trait("step", tick.step)
        self.progress.max = max(1, tick.target)
        self.progress.value = min(tick.step, tick.target)
        self.rate_label.value = (
            f"step {tick.step} / {tick.target} &middot; {tick.steps_per_sec:.1f} steps/s"
        )
        self._draw_curve()

    def _on_error(self, exc: BaseException, tb: str) -> None:
        self._show_error(exc)

    def _on_done(self, summary: RunSummary | None, stopped: bool) -> None:
        if self._closed:
            return
        if summary is not None:
            self._show_final()
            self._draw_curve()
            rate = summary.steps_run / summary.seconds if summary.seconds > 0 else float("nan")
            if summary.step < summary.target:
                what = f"stopped at step {summary.step} of {summary.target} (Start continues)"
            else:
                what = f"done: {summary.step} steps"
            self._set_status(
                f"{what}, {summary.steps_run} steps in {summary.seconds:.1f} s ({rate:.0f} steps/s)"
            )
        self.set_trait("running", False)
        self._sync_buttons()

    # -- views --------------------------------------------------------------------------------
    def _show_images(self, images: np.ndarray, fmt: str) -> None:
        self.views.show_images(images, fmt, self.gallery)

    def _show_final(self) -> None:
        with self.session.log.lock:
            last = self.session.log.last
        if last is not None:
            self._show_images(to_uint8(last), "png")

    def _draw_curve(self) -> None:
        log = self.session.log
        with log.lock:
            losses = list(log.losses)
        self.views.draw_curve(losses)

    def _rebuild_tiles(self) -> None:
        n = 0
        if self.gallery:
            if self.session.fixed is not None:
                n = self.session.fixed.rows or self.gallery_size
            else:
                n = min(self.gallery_size, self._channels(self.layer))
        self.views.set_tiles(n)

    def _label_tiles(self, cfg: RunConfig) -> None:
        if len(self.views.tile_buttons) != cfg.batch:
            self._rebuild_tiles()
        self.views.label_tiles(
            [
                f"#{i}" if cfg.kind in ("diversity", "custom") else f"unit {u}"
                for i, u in enumerate(cfg.units)
            ]
        )

    def _open_clicked(self, index: int) -> None:
        try:
            self.open_tile(index)
        except Exception as exc:
            self._show_error(exc)

    def _sync_views(self) -> None:
        self.views.show_mode(self.gallery)

    def _sync_buttons(self) -> None:
        running = self.running
        self.start_button.disabled = running
        self.stop_button.disabled = not running
        custom = self.session.fixed is not None
        for control in self._setup_controls():
            control.disabled = running
        for control in (self.layer_dropdown, self.filter_input, self.kind_dropdown):
            control.disabled = running or custom

    def _set_status(self, text: str, keep_error: bool = False) -> None:
        if keep_error and self.error is not None:
            return
        self.status.value = status_html(text)

    def _show_error(self, exc: BaseException) -> None:
        self.error = exc
        self.status.value = error_html(exc)

    # -- export buttons -----------------------------------------------------------------------
    def _offer_download(self, what: str) -> None:
        try:
            if what == "png":
                data, name, mime = self.export_png(), "optvis.png", "image/png"
            elif what == "gif":
                data, name, mime = self.export_gif(), "optvis.gif", "image/gif"
            elif what == "mp4":
                data, name, mime = self.export_mp4(), "optvis.mp4", "video/mp4"
            else:
                data, name, mime = (
                    export.encode_npy(self.result_array()),
                    "optvis.npy",
                    "application/octet-stream",
                )
        except Exception as exc:
            self._show_error(exc)
            return
        self.download.value = (
            f"<a download='{name}' href='{export.data_uri(data, mime)}' target='_blank'>"
            f"&#11015; save {name}</a> ({len(data) / 1024:.0f} KiB)"
        )

    # -- construction -------------------------------------------------------------------------
    def _build_controls(self, input_shape: tuple) -> None:
        self.settings = SettingsControls(self._choices)
        c = self.settings
        self.layer_dropdown, self.filter_input, self.kind_dropdown = c.layer, c.channel, c.kind
        self.size_dropdown, self.lr_input = c.size, c.learning_rate
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.reset_button = widgets.Button(description="Reset", icon="refresh")
        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self._worker.stop(timeout=0))
        self.reset_button.on_click(lambda _b: self.reset())
        self.export_buttons = [
            widgets.Button(description=label, icon="download", layout=widgets.Layout(width="90px"))
            for label in ("PNG", "GIF", "MP4", "array")
        ]
        for button, what in zip(self.export_buttons, ("png", "gif", "mp4", "npy"), strict=True):
            button.on_click(lambda _b, what=what: self._offer_download(what))
        if not export.mp4_available():
            self.export_buttons[2].disabled = True
            self.export_buttons[2].tooltip = "needs pip install 'imageio[ffmpeg]'"
        self.download = widgets.HTML()

    def _controls(self) -> dict[str, widgets.Widget]:
        return self.settings.by_trait()

    def _setup_controls(self) -> list[widgets.Widget]:
        return self.settings.setup()

    def _build_views(self) -> None:
        self.views = ResultViews(on_open=self._open_clicked)
        self.image, self.gallery_grid = self.views.image, self.views.gallery_grid
        self.loss_line, self.loss_figure = self.views.loss_line, self.views.loss_figure
        self.progress = widgets.IntProgress(
            min=0, max=1, value=0, layout=widgets.Layout(width="300px")
        )
        self.rate_label = widgets.HTML()
        self.status = widgets.HTML()

    @property
    def _tile_images(self) -> list[widgets.Image]:
        return self.views.tile_images

    @property
    def _tile_buttons(self) -> list[widgets.Button]:
        return self.views.tile_buttons

    def _build_layout(self) -> None:
        settings = self.settings.panel()
        super().__init__(
            children=[
                widgets.HBox(
                    [
                        settings,
                        widgets.VBox(
                            [self.image, self.gallery_grid],
                            layout=widgets.Layout(flex="0 0 auto", margin="0 8px"),
                        ),
                        self.loss_figure,
                    ],
                    layout=widgets.Layout(
                        flex_flow="row wrap"
                    ),  # a narrow pane: the plot goes below
                ),
                widgets.HBox(
                    [
                        self.start_button,
                        self.stop_button,
                        self.reset_button,
                        self.progress,
                        self.rate_label,
                    ]
                ),
                widgets.HBox([*self.export_buttons, self.download]),
                self.status,
            ]
        )


def _layer_choices(table: objectives.LayerTable) -> list[tuple[str, tuple]]:
    """The backend's renderable layers (model order, no softmax outputs), minus whole nested
    models (their inner layers are offered instead)."""
    from .._tf import require_keras

    keras = require_keras()
    return [
        (name, tuple(table.output_shape(name)))
        for name in objectives.renderable_layers(table.model)
        if not isinstance(table.info(name).layer, keras.Model)
    ]


def _check_gallery_size(value: Any) -> int:
    """``gallery_size`` as an int >= 1, else a ValueError naming the fix."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"gallery_size is the number of units shown in gallery mode and must be an int "
            f">= 1, got {value!r}. Fix: pass e.g. gallery_size=8, or gallery=False for one unit."
        )
    return int(value)
