"""Feature-visualization quality on the shipped demo convnet (trained on oriented coloured
gratings): the rendered images must show what the units and classes detect.

Orientation is measured from 2-D FFT energy with the demo's convention (nbviz.demo.procedural):
an angle is the stripes' orientation counter-clockwise from vertical, which is also the angle
of the grating's frequency vector with x to the right and y *up*. Angles wrap modulo 180.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import nbviz.demo as demo_mod
from nbviz.optvis import Renderer, channel, class_logit


@pytest.fixture(scope="module")
def demo():
    """The shipped demo model: its weights are package data, so a missing file is a failure."""
    return demo_mod, demo_mod.load_demo_model()


def dominant_orientation(image: np.ndarray) -> tuple[float, float]:
    """(angle in degrees in [0, 180), coherence in [0, 1]) of an (H, W, C) image's stripes.

    Power-weighted mean of the doubled frequency-vector angle over the Hann-windowed
    spectrum (DC and the lowest ring excluded).
    """
    g = np.asarray(image, np.float64).mean(-1)
    h, w = g.shape
    g = (g - g.mean()) * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(g)) ** 2
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    theta = np.arctan2(-fy, fx)  # rows grow downwards: y up is -fy
    power = np.where(np.hypot(fx, fy) > 1.5 / max(h, w), power, 0.0)
    z = (power * np.exp(2j * theta)).sum() / power.sum()
    return float(np.degrees(np.angle(z) / 2) % 180.0), float(abs(z))


def angle_diff(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def high_frequency_fraction(image: np.ndarray, cutoff: float = 0.375) -> float:
    """Share of the (mean-removed) spectral energy above ``cutoff`` cycles per pixel."""
    g = np.asarray(image, np.float64)
    g = g - g.mean(axis=(0, 1))
    power = (np.abs(np.fft.fft2(g, axes=(0, 1))) ** 2).sum(-1)
    h, w = power.shape
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    return float(power[radius > cutoff].sum() / power.sum())


def orientation_tuning(demo_mod, model, layer: str, top: int):
    """The ``top`` most orientation-selective units of ``layer`` and their preferred angles.

    Mean response to gratings at 12 angles (3 periods x 4 phases averaged, best of red, blue
    and white); selectivity = |sum r(a) e^{2ia}| / sum r(a); preference = half its angle.
    """
    from nbviz.layers import build_extractor

    angles = np.arange(0, 180, 15)
    stimuli = np.stack(
        [
            demo_mod.make_grating(64, a, period=p, phase=ph, color=c)
            for a in angles
            for p in (6, 9, 12)
            for ph in (0.0, np.pi / 2, np.pi, 1.5 * np.pi)
            for c in ((1, 0, 0), (0, 0, 1), (1, 1, 1))
        ]
    )
    acts = build_extractor(model, [layer])(stimuli, training=False)
    acts = acts[0] if isinstance(acts, (list, tuple)) else acts
    resp = tf.reduce_mean(acts, [1, 2]).numpy().reshape(len(angles), 3, 4, 3, -1)
    r = np.clip(resp.mean(axis=(1, 2)).max(axis=1), 0.0, None)  # (angles, units)
    z = (r * np.exp(2j * np.radians(angles))[:, None]).sum(0) / (r.sum(0) + 1e-9)
    selectivity = np.abs(z) * (r.max(0) > 0.05 * r.max())  # ignore (nearly) silent units
    order = np.argsort(-selectivity)[:top]
    return [int(u) for u in order], np.degrees(np.angle(z[order]) / 2) % 180.0, selectivity[order]


def test_orientation_estimator_reads_the_demo_gratings(demo):
    demo_mod, _ = demo
    for angle in (0.0, 30.0, 45.0, 90.0, 135.0, 170.0):
        est, coherence = dominant_orientation(demo_mod.make_grating(64, angle, period=8))
        assert angle_diff(est, angle) < 1.0 and coherence > 0.9


def test_orientation_units_render_their_orientation_and_rise(demo):
    demo_mod, model = demo
    units, preferred, selectivity = orientation_tuning(demo_mod, model, "conv3", top=4)
    assert selectivity[0] > 0.3, "the demo model should have orientation-tuned conv3 units"
    result = Renderer(model, channel("conv3", units), seed=0).run(128, every=64)
    diffs = [
        angle_diff(dominant_orientation(img)[0], p)
        for img, p in zip(result.images, preferred, strict=True)
    ]
    assert diffs[0] <= 15.0, f"most selective unit {units[0]}: {diffs}"
    assert sum(d <= 15.0 for d in diffs) >= 3, f"units {units} preferred {preferred}: {diffs}"
    # The objective rises on average, for every row, and block by block.
    losses = result.losses
    assert (losses[-10:].mean(0) > losses[:10].mean(0)).all()
    blocks = losses.reshape(8, -1, len(units)).mean(axis=1)
    assert (np.diff(blocks, axis=0) > 0).mean() >= 0.8, blocks


def test_class_renders_show_the_class_colour_and_orientation(demo):
    demo_mod, model = demo
    names = demo_mod.CLASS_NAMES
    result = Renderer(model, class_logit("logits", list(range(len(names)))), seed=0).run(
        192, every=96
    )
    within = []
    for k, img in enumerate(result.images):
        angle, colour = demo_mod.procedural.class_parts(k)
        red, _, blue = img.mean(axis=(0, 1))
        assert (red > blue) if colour == "red" else (blue > red), (
            f"{names[k]}: mean RGB {img.mean((0, 1))}"
        )
        within.append(angle_diff(dominant_orientation(img)[0], angle) <= 15.0)
    assert sum(within) >= 6, list(zip(names, within, strict=True))


def test_spectral_decorrelated_images_have_less_high_frequency_energy(demo):
    _, model = demo
    units = list(range(6))  # not cherry-picked
    spectral = Renderer(model, channel("conv3", units), seed=0).run(128, every=128).images
    pixel = Renderer(model, channel("conv3", units), seed=0, fft=False, decorrelate=False)
    pixel_images = pixel.run(128, every=128).images
    hf_spectral = np.mean([high_frequency_fraction(x) for x in spectral])
    hf_pixel = np.mean([high_frequency_fraction(x) for x in pixel_images])
    assert hf_spectral < 0.9 * hf_pixel, (hf_spectral, hf_pixel)
