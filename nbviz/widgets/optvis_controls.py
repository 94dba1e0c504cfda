"""The optvis widget's controls: the settings (one object that builds them, names them by the
widget trait each one edits, and lays them out as a panel) and the run bar (Start / Stop /
Reset, progress, status, export buttons and the download link)."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from .. import export
from ..layers import shape_label
from ..optvis.session import TRANSFORM_PRESETS, Tick
from .status import error_html, status_html

SIZES = [32, 48, 64, 96, 128, 160, 224, 256]


class SettingsControls:
    """Layer, channel, objective kind, parameterization, transforms, steps, learning rate,
    size, seed and gallery controls. ``choices`` are the layers as ``(name, shape)``."""

    def __init__(self, choices: list[tuple[str, tuple]]) -> None:
        wide = widgets.Layout(width="300px")
        self.layer = widgets.Dropdown(
            options=[(f"{n}  {shape_label(shape[1:])}", n) for n, shape in choices],
            description="layer", layout=wide,
        )  # fmt: skip
        self.channel = widgets.BoundedIntText(min=0, max=0, description="channel", layout=wide)
        self.kind = widgets.Dropdown(description="objective", layout=wide)
        self.parameterization = widgets.ToggleButtons(
            options=[("spectral", "spectral"), ("pixel", "pixel")], style={"button_width": "80px"},
            layout=widgets.Layout(width="175px", flex="0 0 auto"),
            tooltips=["Fourier-space parameterization (Lucid)", "one variable per pixel"],
        )  # fmt: skip
        self.decorrelate = widgets.Checkbox(
            description="decorrelate", indent=False, layout=widgets.Layout(width="auto"),
            tooltip="colour decorrelation: ImageNet's colour correlation (Lucid)",
        )  # fmt: skip
        self.transforms = widgets.Dropdown(
            options=list(TRANSFORM_PRESETS), description="transforms", layout=wide
        )
        self.steps = widgets.BoundedIntText(min=1, max=100_000, description="steps", layout=wide)
        self.learning_rate = widgets.BoundedFloatText(
            min=1e-5, max=10.0, step=0.01, description="learning rate", layout=wide,
            style={"description_width": "initial"},
        )  # fmt: skip
        self.size = widgets.Dropdown(options=SIZES, description="size", layout=wide)
        self.seed = widgets.IntText(description="seed", layout=wide)
        self.gallery = widgets.Checkbox(description="gallery", indent=False)
        self.gallery_size = widgets.BoundedIntText(
            min=1, max=64, description="tiles", layout=widgets.Layout(width="160px")
        )

    def offer_size(self, value: int) -> None:
        """Make ``value`` one of the size options (a size set in code, not in the list)."""
        if value not in self.size.options:
            self.size.options = sorted({*self.size.options, value})

    def by_trait(self) -> dict[str, widgets.Widget]:
        """Each control under the name of the widget trait it edits."""
        return {
            "layer": self.layer,
            "channel": self.channel,
            "kind": self.kind,
            "parameterization": self.parameterization,
            "decorrelate": self.decorrelate,
            "transforms": self.transforms,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "size": self.size,
            "seed": self.seed,
            "gallery": self.gallery,
            "gallery_size": self.gallery_size,
        }

    def setup(self) -> list[widgets.Widget]:
        """The controls that shape a run (all but what to optimize: layer, channel, kind)."""
        return [c for n, c in self.by_trait().items() if n not in ("layer", "channel", "kind")]

    def panel(self) -> widgets.VBox:
        return widgets.VBox(
            [
                self.layer, self.channel, self.kind,
                widgets.HBox(
                    [self.parameterization, self.decorrelate],
                    layout=widgets.Layout(flex_flow="row nowrap", align_items="center"),
                ),
                self.transforms, self.steps, self.learning_rate, self.size, self.seed,
                widgets.HBox([self.gallery, self.gallery_size]),
            ],
            layout=widgets.Layout(flex="0 0 auto", width="310px"),
        )  # fmt: skip


EXPORTS = {  # button label: (format, file name, MIME type)
    "PNG": ("png", "optvis.png", "image/png"),
    "GIF": ("gif", "optvis.gif", "image/gif"),
    "MP4": ("mp4", "optvis.mp4", "video/mp4"),
    "array": ("npy", "optvis.npy", "application/octet-stream"),
}


class RunBar:
    """Start / Stop / Reset, the progress bar with steps/s, the export buttons with their
    download link, and the status line. ``on_start`` etc. are called on a click;
    ``encode(fmt)`` gives the bytes of an export (an exception is shown in the status)."""

    def __init__(
        self,
        on_start: Callable[[], object],
        on_stop: Callable[[], object],
        on_reset: Callable[[], object],
        encode: Callable[[str], bytes],
    ) -> None:
        self.encode = encode
        self.start = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.reset = widgets.Button(description="Reset", icon="refresh")
        self.start.on_click(lambda _b: on_start())
        self.stop.on_click(lambda _b: on_stop())
        self.reset.on_click(lambda _b: on_reset())
        self.progress = widgets.IntProgress(
            min=0, max=1, value=0, layout=widgets.Layout(width="300px")
        )
        self.rate = widgets.HTML()
        self.status = widgets.HTML()
        self.error: BaseException | None = None
        self.exports = [
            widgets.Button(description=label, icon="download", layout=widgets.Layout(width="90px"))
            for label in EXPORTS
        ]
        for button in self.exports:
            button.on_click(lambda b: self.offer_download(b.description))
        if not export.mp4_available():
            self.exports[2].disabled = True
            self.exports[2].tooltip = "needs pip install 'imageio[ffmpeg]'"
        self.download = widgets.HTML()

    def set_running(self, running: bool) -> None:
        self.start.disabled = running
        self.stop.disabled = not running

    def show_tick(self, tick: Tick) -> None:
        """Progress and rate of a published frame."""
        self.progress.max = max(1, tick.target)
        self.progress.value = min(tick.step, tick.target)
        self.rate.value = (
            f"step {tick.step} / {tick.target} &middot; {tick.steps_per_sec:.1f} steps/s"
        )

    def clear(self) -> None:
        self.progress.value = 0
        self.download.value = ""

    def set_status(self, text: str, keep_error: bool = False) -> None:
        """A note (HTML); with ``keep_error`` an error shown since the last run stays."""
        if keep_error and self.error is not None:
            return
        self.status.value = status_html(text)

    def show_error(self, exc: BaseException) -> None:
        self.error = exc
        self.status.value = error_html(exc)

    def offer_download(self, label: str) -> None:
        """Encode the export behind button ``label`` and offer it as a download link."""
        fmt, name, mime = EXPORTS[label]
        try:
            data = self.encode(fmt)
        except Exception as exc:
            self.show_error(exc)
            return
        self.download.value = (
            f"<a download='{name}' href='{export.data_uri(data, mime)}' target='_blank'>"
            f"&#11015; save {name}</a> ({len(data) / 1024:.0f} KiB)"
        )

    def rows(self) -> list[widgets.Widget]:
        """The buttons and progress, the exports, and the status, as three rows."""
        return [
            widgets.HBox([self.start, self.stop, self.reset, self.progress, self.rate]),
            widgets.HBox([*self.exports, self.download]),
            self.status,
        ]
