"""Orientation tuning: measured, not asserted, which stripe angle a channel prefers.

The demo convnet was trained on oriented gratings, so its channels have preferred stripe
orientations -- but which channel prefers which angle is a fact about the trained weights,
to be measured. :func:`orientation_tuning` shows a layer full-frame gratings at many angles
(several periods, phases and colours) and reads each channel's mean response;
:func:`dominant_orientation` reads the stripe orientation of any image (an optimized one, say)
from its spectrum, so the two can be compared. Angles follow the convention of
:mod:`nbviz.demo.procedural`: the stripes' orientation, counter-clockwise from vertical, in
[0, 180).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .procedural import make_grating

DEFAULT_COLOURS: tuple[tuple[float, float, float], ...] = ((1, 0, 0), (0, 0, 1), (1, 1, 1))


@dataclass(frozen=True)
class OrientationTuning:
    """Mean responses of every channel of ``layer`` to gratings at ``angles`` (degrees)."""

    layer: str
    angles: np.ndarray  # (n_angles,)
    responses: np.ndarray  # (n_angles, channels)

    def preferred_angle(self, channel: int) -> float:
        """The channel's preferred stripe orientation in degrees, [0, 180): the angle of the
        response-weighted mean of the doubled angles (orientation is periodic in 180)."""
        return float(np.degrees(np.angle(self._resultant(channel)) / 2.0) % 180.0)

    def selectivity(self, channel: int) -> float:
        """0 (responds equally to every orientation) .. 1 (responds to one orientation only)."""
        return float(abs(self._resultant(channel)))

    def _resultant(self, channel: int) -> complex:
        """Mean of ``e^{2ia}`` weighted by the (non-negative) responses: its angle is twice
        the preferred orientation, its length the selectivity."""
        r = np.clip(self.responses[:, channel], 0.0, None)
        z = (r * np.exp(2j * np.radians(self.angles))).sum() / (r.sum() + 1e-9)
        return complex(z)

    def most_selective(self, top: int = 1) -> list[int]:
        """The ``top`` most orientation-selective channels, most selective first, among those
        that clearly respond (peak at least 5% of the layer's strongest)."""
        peaks = self.responses.max(axis=0)
        score = [
            self.selectivity(c) if peaks[c] > 0.05 * peaks.max() else -1.0
            for c in range(self.responses.shape[1])
        ]
        return [int(c) for c in np.argsort(score)[::-1][:top]]


def angle_difference(a: float, b: float) -> float:
    """The difference between two orientations in degrees, 0..90 (periodic in 180)."""
    d = abs(a - b) % 180.0
    return float(min(d, 180.0 - d))


def orientation_tuning(
    model: Any,
    layer: str,
    angles: Sequence[float] | None = None,
    periods: Sequence[float] = (6.0, 9.0, 12.0),
    phases: int = 4,
    colours: Sequence[Sequence[float]] = DEFAULT_COLOURS,
) -> OrientationTuning:
    """Measure each channel's mean response of ``layer`` to full-frame gratings.

    Every angle (default 0, 15, ..., 165 degrees) is shown at each of ``periods`` (pixels) and
    ``phases`` phases in each of ``colours`` (default red, blue, white); a channel's response
    to an angle is its mean over space, periods and phases in its best colour. The model is
    only read.
    """
    from ..layers import build_extractor

    angle_list = np.arange(0.0, 180.0, 15.0) if angles is None else np.asarray(angles, float)
    size = int(model.input.shape[1])
    stimuli = np.stack(
        [
            make_grating(size, a, period=p, phase=2 * np.pi * k / phases, color=c)
            for a in angle_list
            for p in periods
            for k in range(phases)
            for c in colours
        ]
    )
    acts = build_extractor(model, [layer])(stimuli, training=False)
    acts = np.asarray(acts[0] if isinstance(acts, (list, tuple)) else acts)
    means = acts.mean(axis=(1, 2)).reshape(len(angle_list), len(periods) * phases, len(colours), -1)
    return OrientationTuning(layer, angle_list, means.mean(axis=1).max(axis=1))


@dataclass(frozen=True)
class Orientation:
    """The dominant stripe orientation of an image and how clearly it dominates."""

    angle: float  # degrees in [0, 180), counter-clockwise from vertical
    coherence: float  # 0 (no preferred orientation) .. 1 (one orientation only)


def dominant_orientation(image: np.ndarray) -> Orientation:
    """The dominant stripe orientation of an (H, W[, C]) image.

    The power-weighted mean of the doubled angle of the frequency vector over the
    Hann-windowed spectrum (DC and the lowest ring left out): a grating's spectrum peaks on
    the axis of its orientation angle (see nbviz.demo.procedural).
    """
    img = np.asarray(image, np.float64)
    g = img.mean(axis=-1) if img.ndim == 3 else img
    h, w = g.shape
    g = (g - g.mean()) * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(g)) ** 2
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    theta = np.arctan2(-fy, fx)  # rows grow downwards: y up is -fy
    power = np.where(np.hypot(fx, fy) > 1.5 / max(h, w), power, 0.0)
    z = (power * np.exp(2j * theta)).sum() / (power.sum() + 1e-12)
    return Orientation(float(np.degrees(np.angle(z) / 2) % 180.0), float(abs(z)))
