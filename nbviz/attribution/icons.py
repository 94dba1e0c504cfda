"""Feature-visualization icons for the building-blocks view, rendered once and cached.

Olah et al. show each filter that carries a decision with the image that filter wants to
see. :class:`ChannelIcons` renders those with :mod:`nbviz.optvis` (its default recipe:
spectral, decorrelated image, Lucid's transforms; :data:`ICON_STEPS` steps), all the
missing filters of a layer as one batch (one row each), and keeps them per (layer, filter)
for the life of the object: ranking another class or image only renders filters not seen yet.
:meth:`ChannelIcons.iter_render` is a generator with a stop event, like ``Renderer.frames``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Optimization steps per icon: the optvis recipe's images are recognizable from about 128 on.
ICON_STEPS = 128


@dataclass(frozen=True)
class IconFrame:
    """Icons of ``channels`` of ``layer`` after ``step`` of ``steps`` (``(B, H, W, 3)`` in
    ``[0, 1]``, one row per channel); ``final`` once they are cached."""

    layer: str
    channels: list[int]
    images: np.ndarray
    step: int
    steps: int
    final: bool


class ChannelIcons:
    """Optimized images of single filters of ``model``, cached per (layer, filter).

    ``value_range`` / ``preprocess``: how a ``[0, 1]`` image reaches the model (as for
    :class:`~nbviz.optvis.render.Renderer`); ``size``: icon size in pixels (default the
    model's input size); ``steps``: optimization steps per icon (at least 128).
    """

    def __init__(
        self,
        model: Any,
        *,
        steps: int = ICON_STEPS,
        size: int | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
        preprocess: Callable[[Any], Any] | None = None,
        seed: int = 0,
    ) -> None:
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps!r}.")
        self.model = model
        self.steps = int(steps)
        self.size = size
        self.value_range = value_range
        self.preprocess = preprocess
        self.seed = seed
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._lock = threading.Lock()
        self.renders = 0  # Renderer runs started (tests count them)

    @property
    def recipe(self) -> str:
        """What the icons are, for the view to state."""
        return (
            f"nbviz.optvis default recipe, {self.steps} steps (spectral decorrelated "
            "image, Lucid's transforms, pre-activation)"
        )

    def get(self, layer: str, channel: int) -> np.ndarray | None:
        """The cached icon ``(H, W, 3)`` in ``[0, 1]``, or ``None``."""
        with self._lock:
            return self._cache.get((layer, int(channel)))

    def missing(self, layer: str, channels: Sequence[int]) -> list[int]:
        """The filters of ``channels`` that have no icon yet (in order, no repeats)."""
        out: list[int] = []
        for c in channels:
            if self.get(layer, c) is None and int(c) not in out:
                out.append(int(c))
        return out

    def iter_render(
        self,
        layer: str,
        channels: Sequence[int],
        every: int = 32,
        stop_event: threading.Event | None = None,
    ) -> Iterator[IconFrame]:
        """Render the missing icons of ``channels`` as one batch, an :class:`IconFrame` every
        ``every`` steps; stopped runs cache nothing."""
        from ..optvis import Renderer, channel

        todo = self.missing(layer, channels)
        if not todo:
            return
        self.renders += 1
        renderer = Renderer(
            self.model,
            channel(layer, todo if len(todo) > 1 else todo[0]),
            batch=len(todo),
            size=self.size,
            value_range=self.value_range,
            preprocess=self.preprocess,
            seed=self.seed,
        )
        for frame in renderer.frames(self.steps, every=every, stop_event=stop_event):
            assert frame.image is not None  # frames() fetches images by default
            if frame.final:
                with self._lock:
                    for c, img in zip(todo, frame.image, strict=True):
                        self._cache[(layer, c)] = img
            yield IconFrame(layer, todo, frame.image, frame.step, self.steps, frame.final)
