"""The bundled demo: procedural data, the shipped trained convnet, sample images, parabola MLP."""

from __future__ import annotations

import time

import numpy as np
import pytest

import nbviz.demo as demo
from nbviz.demo import procedural
from nbviz.errors import DataError, ImageError


def _dominant_frequency(gray: np.ndarray) -> tuple[int, int]:
    """(ky, kx) of the strongest non-DC 2-D Fourier component (signed, fftshifted)."""
    spec = np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean())))
    iy, ix = np.unravel_index(np.argmax(spec), spec.shape)
    c = gray.shape[0] // 2
    return int(iy - c), int(ix - c)


# ---- procedural data -------------------------------------------------------------------


def test_make_grating_shape_range_and_colours():
    g = demo.make_grating(32, 0.0, 8.0, color=(1, 0, 0), background=(0, 0, 1))
    assert g.shape == (32, 32, 3) and g.dtype == np.float32
    assert 0.0 <= g.min() and g.max() <= 1.0
    # Only a mix of the two colours: green stays 0, red + blue = 1.
    assert np.allclose(g[..., 1], 0.0)
    assert np.allclose(g[..., 0] + g[..., 2], 1.0, atol=1e-6)
    flat = demo.make_grating(32, 0.0, 8.0, contrast=0.0, background=(0.2, 0.3, 0.4))
    assert np.allclose(flat, [0.2, 0.3, 0.4])


@pytest.mark.parametrize(
    ("angle", "axis"),
    [(0.0, "x"), (90.0, "y"), (45.0, "falling"), (135.0, "rising")],
)
def test_grating_orientation_convention(angle, axis):
    g = demo.make_grating(64, angle, period=8.0).mean(axis=-1)
    ky, kx = _dominant_frequency(g)
    if axis == "x":  # vertical stripes: varies along x, constant down each column
        assert ky == 0 and abs(kx) == 8
        assert np.allclose(g, g[:1, :], atol=1e-6)
    elif axis == "y":  # horizontal stripes: constant along each row
        assert kx == 0 and abs(ky) == 8
        assert np.allclose(g, g[:, :1], atol=1e-6)
    else:
        assert abs(kx) == abs(ky) and kx != 0
        # Falling "\" stripes are constant along the main diagonal (row and column grow together).
        along = np.diagonal(g) if axis == "falling" else np.diagonal(np.fliplr(g))
        across = np.diagonal(np.fliplr(g)) if axis == "falling" else np.diagonal(g)
        assert along.std() < 0.05 * across.std()


def test_dataset_is_deterministic_and_prefix_stable():
    x1, y1 = demo.generate_dataset(300, seed=7, size=32)
    x2, y2 = demo.generate_dataset(300, seed=7, size=32)
    assert x1.dtype == np.float32 and y1.dtype == np.int64
    assert x1.shape == (300, 32, 32, 3) and y1.shape == (300,)
    assert x1.tobytes() == x2.tobytes() and np.array_equal(y1, y2)
    x3, y3 = demo.generate_dataset(40, seed=7, size=32)
    assert x3.tobytes() == x1[:40].tobytes() and np.array_equal(y3, y1[:40])
    x4, _ = demo.generate_dataset(40, seed=8, size=32)
    assert not np.array_equal(x4, x3)
    assert 0.0 <= x1.min() and x1.max() <= 1.0


def test_dataset_labels_are_balanced_and_colour_matches_label():
    x, y = demo.generate_dataset(512, seed=0)
    assert np.array_equal(np.bincount(y, minlength=8), np.full(8, 64))
    red_minus_blue = (x[..., 0] - x[..., 2]).reshape(len(x), -1)
    # The most saturated pixels of each image carry the class colour.
    score = np.where(y % 2 == 0, 1, -1)[:, None] * red_minus_blue
    assert (np.percentile(score, 95, axis=1) > 0.2).mean() > 0.97


def _structure_tensor_angle(feature: np.ndarray) -> float:
    """Dominant gradient direction in degrees [0, 180), x right and y up (= grating angle)."""
    gy_down, gx = np.gradient(feature)
    gy = -gy_down
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    return float(np.rad2deg(0.5 * np.arctan2(2 * jxy, jxx - jyy)) % 180.0)


def test_dataset_orientation_matches_label():
    x, y = demo.generate_dataset(256, seed=5)
    errors = []
    for image, label in zip(x, y, strict=True):
        expected, colour = procedural.class_parts(label)
        # Class colour minus green removes most of the grey/green distractor blobs.
        feature = image[..., 0 if colour == "red" else 2] - image[..., 1]
        d = abs(_structure_tensor_angle(feature) - expected)
        errors.append(min(d, 180.0 - d))
    errors = np.array(errors)
    assert np.median(errors) < 5.0  # angle jitter is +-6 degrees
    assert (errors < 15.0).mean() > 0.97


def test_structure_tensor_agrees_with_make_grating_convention():
    for angle in (0.0, 30.0, 45.0, 90.0, 135.0, 160.0):
        measured = _structure_tensor_angle(demo.make_grating(64, angle, 9.0).mean(-1))
        assert min(abs(measured - angle), 180 - abs(measured - angle)) < 2.0


def test_class_names():
    assert len(demo.CLASS_NAMES) == 8 and len(set(demo.CLASS_NAMES)) == 8
    assert demo.CLASS_NAMES[0] == "vertical red"
    assert demo.CLASS_NAMES[procedural.class_index(2, 1)] == "horizontal blue"


# ---- the shipped model -----------------------------------------------------------------


def test_demo_model_loads_fast_and_is_fresh_each_call():
    demo.load_demo_model(compile=False)  # warm-up: first Keras graph building
    t = time.perf_counter()
    model = demo.load_demo_model()
    elapsed = time.perf_counter() - t
    print(f"load_demo_model: {elapsed * 1000:.0f} ms")
    assert elapsed < 5.0  # generous: typically ~0.1 s on 2 shared cores
    assert model.input_shape == (None, 64, 64, 3)
    names = [layer.name for layer in model.layers]
    for name in ("conv1", "conv2", "conv3", "conv4", "pool1", "gap", "logits", "probs"):
        assert name in names
    assert model.get_layer("logits").get_config()["activation"] == "linear"
    other = demo.load_demo_model()
    assert other is not model
    model.get_layer("conv1").kernel.assign(np.zeros((3, 3, 3, 16), np.float32))
    assert np.abs(other.get_layer("conv1").kernel.numpy()).sum() > 0
    assert np.abs(demo.load_demo_model().get_layer("conv1").kernel.numpy()).sum() > 0


def test_demo_model_classifies_held_out_test_split():
    model = demo.load_demo_model()
    x, y = demo.load_demo_data("test", n=512)
    assert x.shape == (512, 64, 64, 3) and x.dtype == np.float32
    probs = model.predict(x, batch_size=256, verbose=0)
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-4)
    accuracy = float((probs.argmax(-1) == y).mean())
    print(f"demo model test accuracy on 512 held-out images: {accuracy:.4f}")
    assert accuracy >= 0.8  # chance is 0.125
    loss, compiled_accuracy = model.evaluate(x[:128], y[:128], verbose=0)  # compiled as promised
    assert compiled_accuracy >= 0.8 and np.isfinite(loss)
    info = demo.demo_model_info()
    assert info["test_accuracy"] >= 0.8 and info["n_test"] == 1024
    assert info["class_names"] == demo.CLASS_NAMES


def test_demo_model_recognises_clean_gratings():
    model = demo.load_demo_model(compile=False)
    images, labels = [], []
    for label in range(8):
        angle, colour = procedural.class_parts(label)
        rgb = (0.9, 0.1, 0.1) if colour == "red" else (0.1, 0.2, 0.9)
        for period in (6.0, 10.0):
            images.append(demo.make_grating(64, angle, period, color=rgb))
            labels.append(label)
    pred = model.predict(np.stack(images), verbose=0).argmax(-1)
    assert (pred == np.array(labels)).mean() >= 0.9


def test_demo_data_splits_match_metadata_and_differ():
    info = demo.demo_model_info()
    assert set(info["splits"]) == {"train", "val", "test"}
    xt, yt = demo.load_demo_data("test", n=16)
    xs, ys = demo.generate_dataset(16, info["splits"]["test"]["seed"])
    assert xt.tobytes() == xs.tobytes() and np.array_equal(yt, ys)
    xtr, _ = demo.load_demo_data("train", n=16)
    assert not np.array_equal(xtr, xt)
    xf, _ = demo.load_demo_data("test", n=16, seed=99)
    assert not np.array_equal(xf, xt)


def test_demo_data_errors():
    with pytest.raises(DataError, match="train"):
        demo.load_demo_data("testing")
    with pytest.raises(DataError, match="seed="):
        demo.load_demo_data("test", n=10**6)


# ---- sample images ---------------------------------------------------------------------


def test_sample_images_offline():
    images = demo.sample_images()
    for name in ("china", "flower", "grace_hopper", "grating_vertical_red"):
        assert name in images
    for name, image in images.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3, name
    assert images["china"].shape == (427, 640, 3)
    # Fresh copies: mutating one result does not change the next.
    images["china"][:] = 0
    assert demo.sample_images()["china"].max() > 0
    g = images["grating_vertical_red"]
    assert np.array_equal(g, np.broadcast_to(g[:1], g.shape))  # vertical: constant down columns
    assert g[..., 0].max() > 200 and g[..., 2].max() < 128


def test_sample_image_resize_and_errors():
    assert demo.sample_image("flower", size=64).shape == (64, 64, 3)
    assert demo.sample_image("china", size=(48, 80)).shape == (48, 80, 3)
    with pytest.raises(ImageError, match="china"):
        demo.sample_image("chinaa")


# ---- seed article's parabola -----------------------------------------------------------


def test_parabola_data():
    x, y = demo.parabola_data(256, seed=3)
    assert x.shape == (256, 1) and y.shape == (256,)
    assert x.dtype == np.float32 and y.dtype == np.float32
    x2, y2 = demo.parabola_data(256, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    residual = y - x[:, 0] ** 2
    assert abs(residual.std() - 0.25) < 0.05
    _, y0 = demo.parabola_data(256, seed=3, noise=0.0)
    assert np.allclose(y0, x[:, 0] ** 2)


def test_parabola_mlp():
    model = demo.build_parabola_mlp(seed=1)
    assert model.input_shape == (None, 1) and model.output_shape == (None, 1)
    dense = [layer for layer in model.layers]
    assert [layer.units for layer in dense] == [64, 64, 64, 1]
    assert [layer.get_config()["activation"] for layer in dense] == ["relu"] * 3 + ["linear"]
    assert model.count_params() == (1 * 64 + 64) + 2 * (64 * 64 + 64) + (64 + 1)
    same = demo.build_parabola_mlp(seed=1)
    for a, b in zip(model.get_weights(), same.get_weights(), strict=True):
        assert np.array_equal(a, b)
    x, y = demo.parabola_data(64, seed=0)
    loss = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss)


# ---- shipped files and the training script ---------------------------------------------


def test_shipped_json_describes_shipped_weights():
    import hashlib

    from nbviz.demo import pretrained

    info = demo.demo_model_info()
    digest = hashlib.sha256(pretrained.WEIGHTS_PATH.read_bytes()).hexdigest()
    assert info["weights_sha256"] == digest, "weights and json are from different runs"
    assert info["num_params"] == demo.load_demo_model(compile=False).count_params()
    assert sum(map(sum, info["test_confusion"])) == info["n_test"]


def test_missing_weights_error_says_how_to_fix(tmp_path, monkeypatch):
    from nbviz.demo import pretrained
    from nbviz.errors import WeightsUnavailableError

    monkeypatch.setattr(pretrained, "WEIGHTS_PATH", tmp_path / "gone.weights.h5")
    monkeypatch.setattr(pretrained, "INFO_PATH", tmp_path / "gone.json")
    for call in (demo.load_demo_model, demo.demo_model_info):
        with pytest.raises(WeightsUnavailableError, match="python -m nbviz.demo.train"):
            call()


def test_demo_package_imports_no_widgets_and_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, nbviz.demo; "
        "print(sorted(m for m in ('ipywidgets', 'bqplot', 'ipyvolume', 'tensorflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_training_script_runs_and_writes_loadable_weights(tmp_path, keras):
    from nbviz.demo import train

    train.main(["--out", str(tmp_path), "--epochs", "1", "--seed", "5"])
    import json

    info = json.loads((tmp_path / train.INFO_NAME).read_text())
    assert info["epochs"] == 1 and info["train_seed"] == 5 and info["n_test"] == 1024
    assert 0.0 <= info["test_accuracy"] <= 1.0
    model = demo.build_demo_convnet(compile=False)
    model.load_weights(tmp_path / train.WEIGHTS_NAME)
    x, y = demo.load_demo_data("test", n=256)
    accuracy = float((model.predict(x, verbose=0).argmax(-1) == y).mean())
    assert abs(accuracy - info["test_accuracy"]) < 0.1  # 256 of the same 1024 images
