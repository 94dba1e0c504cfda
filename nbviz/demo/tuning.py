"""Orientation tuning: measured, not asserted, which stripe angle a channel prefers.

The demo convnet was trained on oriented gratings, so its channels have preferred stripe
orientations -- but which channel prefers which angle is a fact about the trained weights,
to be measured. :func:`orientation_tuning` shows a layer full-frame gratings at many angles
(several phases and both colours, averaged) and reads each channel's mean response;
:func:`dominant_orientation` reads the stripe orientation of any image (an optimized one, say)
from its structure tensor, so the two can be compared. Angles follow the convention of
:mod:`nbviz.demo.procedural`: the stripes' orientation, counter-clockwise from vertical, in
[0, 180).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .procedural import make_grating

DEFAULT_COLOURS: tuple[tuple[float, float, float], ...] = ((0.9, 0.15, 0.1), (0.1, 0.25, 0.9))


@dataclass(frozen=True)
class OrientationTuning:
    """Mean responses of every channel of ``layer`` to gratings at ``angles`` (degrees)."""

    layer: str
    angles: np.ndarray  # (n_angles,)
    responses: np.ndarray  # (n_angles, channels)

    def preferred_angle(self, channel: int) -> float:
        """The channel's preferred stripe orientation in degrees, [0, 180): the angle of the
        response-weighted mean of the doubled angles (orientation is periodic in 180)."""
        r = self.responses[:, channel] - self.responses[:, channel].min()
        doubled = np.deg2rad(2.0 * self.angles)
        angle = np.rad2deg(np.arctan2((r * np.sin(doubled)).sum(), (r * np.cos(doubled)).sum()))
        return float((angle / 2.0) % 180.0)

    def selectivity(self, channel: int) -> float:
        """0 (responds equally to every orientation) .. 1 (responds to one orientation only)."""
        r = self.responses[:, channel] - self.responses[:, channel].min()
        if r.sum() <= 0:
            return 0.0
        doubled = np.deg2rad(2.0 * self.angles)
        return float(np.hypot((r * np.sin(doubled)).sum(), (r * np.cos(doubled)).sum()) / r.sum())

    def most_selective(self, near: float | None = None, tolerance: float = 30.0) -> int:
        """The most orientation-selective channel that clearly responds (peak at least a tenth
        of the layer's strongest); with ``near``, only channels preferring an angle within
        ``tolerance`` degrees of it."""
        peaks = self.responses.max(axis=0)
        best, best_score = -1, -1.0
        for c in range(self.responses.shape[1]):
            if peaks[c] < 0.1 * peaks.max():
                continue
            if near is not None and angle_difference(self.preferred_angle(c), near) > tolerance:
                continue
            if self.selectivity(c) > best_score:
                best, best_score = c, self.selectivity(c)
        if best < 0:
            raise ValueError(
                f"No responding channel of {self.layer!r} prefers {near} +- {tolerance} degrees. "
                "Fix: widen the tolerance or pass near=None."
            )
        return best


def angle_difference(a: float, b: float) -> float:
    """The difference between two orientations in degrees, 0..90 (periodic in 180)."""
    d = abs(a - b) % 180.0
    return float(min(d, 180.0 - d))


def orientation_tuning(
    model: Any,
    layer: str,
    angles: Sequence[float] | None = None,
    period: float = 8.0,
    phases: int = 4,
    colours: Sequence[Sequence[float]] = DEFAULT_COLOURS,
) -> OrientationTuning:
    """Measure each channel's mean response of ``layer`` to full-frame gratings.

    Every angle (default 0, 7.5, ..., 172.5 degrees) is shown at ``phases`` phases in each of
    ``colours``; responses are averaged over space, phases and colours. The model is only read.
    """
    import keras

    angle_list = np.arange(0.0, 180.0, 7.5) if angles is None else np.asarray(angles, float)
    size = int(model.input.shape[1])
    batch = np.stack(
        [
            make_grating(size, a, period, phase=2 * np.pi * k / phases, color=c)
            for a in angle_list
            for c in colours
            for k in range(phases)
        ]
    )
    extractor = keras.Model(model.input, model.get_layer(layer).output)
    acts = np.asarray(extractor(batch, training=False))
    means = acts.mean(axis=(1, 2)).reshape(len(angle_list), len(colours) * phases, -1)
    return OrientationTuning(layer, angle_list, means.mean(axis=1))


def dominant_orientation(image: np.ndarray) -> float:
    """The dominant stripe orientation of an (H, W[, C]) image in degrees, [0, 180).

    From the structure tensor of the luminance: the mean outer product of the intensity
    gradient gives the gradient's dominant axis; stripes run perpendicular to it.
    """
    img = np.asarray(image, np.float64)
    gray = img.mean(axis=-1) if img.ndim == 3 else img
    gy_down, gx = np.gradient(gray)
    gy = -gy_down  # y up, as in the angle convention
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    gradient_axis = 0.5 * np.degrees(np.arctan2(2.0 * jxy, jxx - jyy))
    # The grating's intensity varies along (cos a, sin a): the gradient axis *is* angle a.
    return float(gradient_axis % 180.0)
