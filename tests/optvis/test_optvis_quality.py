"""Feature-visualization quality on the shipped demo convnet (trained on oriented coloured
gratings): the rendered images must show what the units and classes detect.

Orientation is measured by nbviz.demo.tuning (the functions the notebooks use): a unit's
tuning from its responses to gratings, an image's stripes from its 2-D FFT energy, with the
demo's convention (nbviz.demo.procedural): an angle is the stripes' orientation
counter-clockwise from vertical. Angles wrap modulo 180.
"""

from __future__ import annotations

import numpy as np
import pytest

import nbviz.demo as demo_mod
from nbviz.demo.tuning import angle_difference as angle_diff
from nbviz.demo.tuning import dominant_orientation, orientation_tuning
from nbviz.optvis import Renderer, channel, class_logit


@pytest.fixture(scope="module")
def demo():
    """The shipped demo model: its weights are package data, so a missing file is a failure."""
    return demo_mod, demo_mod.load_demo_model()


def high_frequency_fraction(image: np.ndarray, cutoff: float = 0.375) -> float:
    """Share of the (mean-removed) spectral energy above ``cutoff`` cycles per pixel."""
    g = np.asarray(image, np.float64)
    g = g - g.mean(axis=(0, 1))
    power = (np.abs(np.fft.fft2(g, axes=(0, 1))) ** 2).sum(-1)
    h, w = power.shape
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    return float(power[radius > cutoff].sum() / power.sum())


def test_orientation_estimator_reads_the_demo_gratings(demo):
    demo_mod, _ = demo
    for angle in (0.0, 30.0, 45.0, 90.0, 135.0, 170.0):
        est = dominant_orientation(demo_mod.make_grating(64, angle, period=8))
        assert angle_diff(est.angle, angle) < 1.0 and est.coherence > 0.9


def test_orientation_units_render_their_orientation_and_rise(demo):
    demo_mod, model = demo
    tuning = orientation_tuning(model, "conv3")
    units = tuning.most_selective(4)
    preferred = [tuning.preferred_angle(u) for u in units]
    assert tuning.selectivity(units[0]) > 0.3, "the demo model should have tuned conv3 units"
    result = Renderer(model, channel("conv3", units), seed=0).run(128, every=64)
    diffs = [
        angle_diff(dominant_orientation(img).angle, p)
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
        within.append(angle_diff(dominant_orientation(img).angle, angle) <= 15.0)
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


def test_the_tours_channel_renders_the_orientation_it_was_measured_to_prefer(demo):
    """The tour shows the most orientation-selective conv4 channel, chosen from measured
    tuning; its optimized image (the tour's fast-mode run) shows stripes within 15 degrees."""
    _, model = demo
    tuning = orientation_tuning(model, "conv4")
    (unit,) = tuning.most_selective()
    assert tuning.selectivity(unit) > 0.5, tuning.selectivity(unit)
    image = Renderer(model, channel("conv4", unit), seed=0).run(64, every=64).images[0]
    seen = dominant_orientation(image)
    assert angle_diff(seen.angle, tuning.preferred_angle(unit)) <= 15.0, (
        unit,
        tuning.preferred_angle(unit),
        seen,
    )


def test_preferred_angle_and_selectivity_read_a_tuning_curve():
    from nbviz.demo.tuning import OrientationTuning

    angles = np.arange(0.0, 180.0, 15.0)
    sharp = np.exp(4 * np.cos(np.radians(2 * (angles - 120.0))))  # peaks at 120 degrees
    flat = np.ones_like(angles)
    tuning = OrientationTuning("x", angles, np.stack([sharp, flat], axis=1))
    assert angle_diff(tuning.preferred_angle(0), 120.0) < 0.5
    assert tuning.selectivity(0) > 0.8 and tuning.selectivity(1) < 1e-6
    assert tuning.most_selective(2) == [0, 1]
