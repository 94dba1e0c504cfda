"""Offline procedural images: oriented coloured gratings on noisy backgrounds.

Numpy only, deterministic from a seed. The demo convnet is trained on these images; its
class is the stripes' orientation (0, 45, 90, 135 degrees) times their colour (red-ish or
blue-ish), so a trained unit for "vertical red" has a checkable preferred stimulus.

Angle convention (used everywhere in nbviz.demo): ``angle_deg`` is the orientation of the
*stripes* as displayed (row 0 at the top), measured counter-clockwise from vertical.

* 0 -- vertical stripes: intensity varies along x (columns), constant along y (rows).
* 45 -- falling diagonal ``\\``: stripes run from the upper left to the lower right.
* 90 -- horizontal stripes: intensity varies along y (rows), constant along x.
* 135 -- rising diagonal ``/``: stripes run from the lower left to the upper right.

Equivalently the intensity varies along the unit vector ``(cos a, sin a)`` in coordinates
with x to the right and y *up*, so the grating's 2-D spectrum peaks on that axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ORIENTATIONS_DEG: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0)
ORIENTATION_NAMES: tuple[str, ...] = (
    "vertical",
    "falling diagonal",
    "horizontal",
    "rising diagonal",
)
COLOUR_NAMES: tuple[str, ...] = ("red", "blue")
#: The demo task's 8 class names; class k is orientation k // 2 and colour k % 2.
CLASS_NAMES: list[str] = [f"{o} {c}" for o in ORIENTATION_NAMES for c in COLOUR_NAMES]
NUM_CLASSES = len(CLASS_NAMES)

# Generation happens in fixed-size chunks, each with its own seeded generator, so that
# generate_dataset(k, seed) is exactly the first k images of generate_dataset(n, seed).
_CHUNK = 256

# Ranges of the random nuisance parameters (inclusive bounds of uniform draws).
_ANGLE_JITTER_DEG = 6.0
_PERIOD_PX = (5.0, 14.0)
_CONTRAST = (0.35, 1.0)
_SHARPNESS = (0.5, 4.0)  # 0.5: nearly sinusoidal; 4: nearly square bars (edges)
_PATCH_RADIUS_FRAC = (0.22, 0.60)  # of the image size; big patches can cover it all
_CENTRE_JITTER_FRAC = 0.20
_BACKGROUND = (0.15, 0.85)
_NOISE_STD = (0.0, 0.10)
_MAX_BLOBS = 3


def class_index(orientation: int, colour: int) -> int:
    """Class index for orientation index (0..3, see ORIENTATIONS_DEG) and colour (0 red, 1 blue)."""
    return int(orientation) * len(COLOUR_NAMES) + int(colour)


def class_parts(label: int) -> tuple[float, str]:
    """(angle in degrees, colour name) of a class index."""
    o, c = divmod(int(label), len(COLOUR_NAMES))
    return ORIENTATIONS_DEG[o], COLOUR_NAMES[c]


def _pixel_coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates relative to the image centre, x to the right and y up."""
    c = np.arange(size, dtype=np.float32) - (size - 1) / 2.0
    x = c[None, :]
    y_up = -c[:, None]
    return x, y_up


def _wave_phase(
    x: np.ndarray, y_up: np.ndarray, angle_deg: Any, period: Any, phase: Any
) -> np.ndarray:
    """Phase of the grating at each pixel; broadcasting over leading parameter axes."""
    a = np.deg2rad(angle_deg)
    u = x * np.cos(a) + y_up * np.sin(a)
    return np.asarray((2.0 * np.pi) * u / period + phase)


def make_grating(
    size: int = 64,
    angle_deg: float = 0.0,
    period: float = 8.0,
    phase: float = 0.0,
    color: Sequence[float] = (1.0, 0.0, 0.0),
    background: Sequence[float] = (0.5, 0.5, 0.5),
    contrast: float = 1.0,
) -> np.ndarray:
    """A full-frame sinusoidal grating, (size, size, 3) float32 in [0, 1].

    ``angle_deg`` is the stripes' orientation, counter-clockwise from vertical: 0 gives
    vertical stripes (intensity varies along x), 90 horizontal ones (see the module
    docstring). ``period`` is in pixels, ``phase`` in radians (0 puts a ``color`` crest
    through the image centre). Each pixel is a mix of ``color`` and ``background`` with
    weight ``contrast * (1 + cos(phase)) / 2``.
    """
    if size < 2:
        raise ValueError(f"size must be >= 2 pixels, got {size}.")
    if not period > 0:
        raise ValueError(f"period must be a positive number of pixels, got {period}.")
    col = np.asarray(color, dtype=np.float32).reshape(3)
    bg = np.asarray(background, dtype=np.float32).reshape(3)
    x, y_up = _pixel_coords(size)
    weight = (
        float(np.clip(contrast, 0.0, 1.0))
        * 0.5
        * (1.0 + np.cos(_wave_phase(x, y_up, angle_deg, period, phase)))
    )
    img = bg + (col - bg) * weight[..., None]
    return np.asarray(np.clip(img, 0.0, 1.0), dtype=np.float32)


def _class_colours(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """Random red-ish (colour 0) or blue-ish (colour 1) RGB values, shape (n, 3)."""
    n = int(colour.shape[0])
    dominant = rng.uniform(0.75, 1.0, n)
    other = rng.uniform(0.0, 0.35, (n, 2))
    rgb = np.empty((n, 3), np.float32)
    red = colour == 0
    rgb[red, 0] = dominant[red]
    rgb[red, 1:] = other[red]
    blue = ~red
    rgb[blue, 2] = dominant[blue]
    rgb[blue, :2] = other[blue]
    return rgb


def _distractor_colours(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Greens, yellows-greens and greys: colours that belong to neither class."""
    g = rng.uniform(0.4, 1.0, shape)
    r = g * rng.uniform(0.0, 0.9, shape)
    b = g * rng.uniform(0.0, 0.6, shape)
    grey = rng.random(shape) < 0.3
    r = np.where(grey, g, r)
    b = np.where(grey, g, b)
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def _generate_chunk(seed: int, chunk: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of _CHUNK images; parameters are drawn in a fixed order from its own stream."""
    rng = np.random.default_rng([int(seed), int(chunk)])
    n = _CHUNK
    labels = rng.permutation(np.arange(n) % NUM_CLASSES)
    orient, colour = np.divmod(labels, len(COLOUR_NAMES))
    angle = np.asarray(ORIENTATIONS_DEG, np.float32)[orient] + rng.uniform(
        -_ANGLE_JITTER_DEG, _ANGLE_JITTER_DEG, n
    )
    period = rng.uniform(*_PERIOD_PX, n)
    phase = rng.uniform(0.0, 2.0 * np.pi, n)
    contrast = rng.uniform(*_CONTRAST, n)
    sharp = rng.uniform(*_SHARPNESS, n)
    radius = rng.uniform(*_PATCH_RADIUS_FRAC, n) * size
    centre = rng.uniform(-_CENTRE_JITTER_FRAC, _CENTRE_JITTER_FRAC, (n, 2)) * size
    bg_level = rng.uniform(*_BACKGROUND, n)
    bg_tint = rng.uniform(-0.05, 0.05, (n, 3))
    noise_std = rng.uniform(*_NOISE_STD, n)
    fg = _class_colours(rng, colour)
    n_blobs = rng.integers(0, _MAX_BLOBS + 1, n)
    blob_centre = rng.uniform(-0.45, 0.45, (n, _MAX_BLOBS, 2)) * size
    blob_sigma = rng.uniform(0.04, 0.12, (n, _MAX_BLOBS)) * size
    blob_colour = _distractor_colours(rng, (n, _MAX_BLOBS))
    blob_alpha = rng.uniform(0.5, 0.9, (n, _MAX_BLOBS)) * (np.arange(_MAX_BLOBS) < n_blobs[:, None])
    noise = rng.random((n, 3, size, size), dtype=np.float32)

    f32 = np.float32
    x, y_up = _pixel_coords(size)

    def p(a: Any) -> np.ndarray:  # (n,) -> (n, 1, 1)
        return np.asarray(a, f32)[:, None, None]

    # Every image is a stack of layers composited "over" each other: background, grating,
    # blobs. Only per-pixel layer opacities are computed on (n, H, W) planes; one batched
    # matmul with the layer colours then makes the RGB images (far cheaper than RGB blending).
    wave = np.cos(_wave_phase(x, y_up, p(angle), p(period), p(phase)))
    s = p(sharp)
    profile = 0.5 * (1.0 + np.tanh(s * wave) / np.tanh(s))  # in [0, 1], 1 on crests
    # Soft-edged disc window: the grating is a patch, not always the whole frame.
    dist = np.hypot(x - p(centre[:, 0]), y_up - p(centre[:, 1]))
    window = 1.0 / (1.0 + np.exp((dist - p(radius)) / 2.0))
    opacity = [np.ones((n, size, size), f32), p(contrast) * window * profile]
    for b in range(_MAX_BLOBS):
        # Separable Gaussian: exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2).
        inv = p(-0.5 / blob_sigma[:, b] ** 2)
        gx = np.exp(inv * (x - p(blob_centre[:, b, 0])) ** 2)
        gy = np.exp(inv * (y_up - p(blob_centre[:, b, 1])) ** 2)
        opacity.append(p(blob_alpha[:, b]) * gx * gy)
    # "Over" compositing: a layer's final weight is its opacity times the transmission
    # (1 - opacity) of every layer above it.
    k = len(opacity)
    weights = np.empty((n, k, size, size), f32)
    above = np.ones((n, size, size), f32)
    for i in range(k - 1, -1, -1):
        np.multiply(opacity[i], above, out=weights[:, i])
        above *= 1.0 - opacity[i]
    colours = np.concatenate(
        [(bg_level[:, None] + bg_tint)[:, None], fg[:, None], blob_colour], axis=1
    ).astype(f32)  # (n, k, 3)
    img = np.matmul(colours.transpose(0, 2, 1), weights.reshape(n, k, size * size))
    img = img.reshape(n, 3, size, size)
    # Uniform noise with the drawn standard deviation (std of U(-0.5, 0.5) is 1/sqrt(12)).
    noise -= 0.5
    noise *= np.asarray(noise_std * np.sqrt(12.0), f32)[:, None, None, None]
    img += noise
    np.clip(img, 0.0, 1.0, out=img)
    return img.transpose(0, 2, 3, 1), labels.astype(np.int64)


def generate_dataset(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` labelled grating images: x (n, size, size, 3) float32 in [0, 1], y (n,) int64.

    Deterministic from ``seed`` and prefix-stable: the first k images of a bigger set are
    the set of size k. Labels index CLASS_NAMES (orientation k // 2, colour k % 2); every
    aligned block of 256 images holds each class equally often. Nuisances: angle jitter of
    +-6 degrees, period 5..14 px, phase, contrast, sinusoid-to-bar sharpness, a soft disc
    window with jittered centre and radius, background level and tint, up to three
    green/grey blobs as distractors, and uniform pixel noise.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}.")
    x = np.empty((n, size, size, 3), np.float32)
    y = np.empty((n,), np.int64)
    for chunk, start in enumerate(range(0, n, _CHUNK)):
        stop = min(n, start + _CHUNK)
        cx, cy = _generate_chunk(seed, chunk, size)
        x[start:stop] = cx[: stop - start]
        y[start:stop] = cy[: stop - start]
    return x, y
