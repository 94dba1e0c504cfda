"""The optvis widget's settings controls: one object that builds them, names them by the
widget trait each one edits, and lays them out as a panel."""

from __future__ import annotations

import ipywidgets as widgets

from ..layers import shape_label
from ..optvis.session import TRANSFORM_PRESETS

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
        self.channel = widgets.BoundedIntText(min=0, max=0, description="unit", layout=wide)
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

    def by_trait(self) -> dict[str, widgets.Widget]:
        """Each control under the name of the widget trait it edits."""
        return {
            "layer": self.layer,
            "filter": self.channel,
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
        return [c for n, c in self.by_trait().items() if n not in ("layer", "filter", "kind")]

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
