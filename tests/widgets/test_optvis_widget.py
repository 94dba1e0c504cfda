"""OptVisWidget, headless: runs stream frames from the worker thread, Stop is prompt, errors show
in the widget, gallery tiles, exports, renderer reuse, and the user's weights never change."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz import optvis
from nbviz.errors import ChannelError, ImageError, LayerError
from nbviz.export import decode_gif, encode_gif
from nbviz.imaging import decode_image, to_uint8
from nbviz.widgets.optvis import OptVisWidget


def _optvis_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nbviz-optvis") and t.is_alive()]


@pytest.fixture
def make_widget(tiny_convnet, no_thread_leak):
    """Builds widgets on the tiny convnet; closes them and checks the weights afterwards."""
    snap = weights_snapshot(tiny_convnet)
    made: list[OptVisWidget] = []

    def make(**kw) -> OptVisWidget:
        kw.setdefault("steps", 24)
        kw.setdefault("layer", "conv2")
        w = OptVisWidget(tiny_convnet, **kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
    assert not _optvis_threads()
    assert_weights_identical(tiny_convnet, snap)


def _wait_for(pred, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


class Boom(optvis.Objective):
    """A user objective with a bug: raises while the render step is traced."""

    name = "boom()"

    @property
    def layers(self):
        return frozenset(["conv2"])

    def value(self, ctx):
        raise ValueError("boom: this objective is broken")


def test_start_returns_at_once_and_frames_stream_in(make_widget, tiny_convnet):
    w = make_widget(steps=40, frame_every=2, max_fps=1000)
    values: list[bytes] = []
    w.image.observe(lambda c: values.append(c["new"]), "value")
    t0 = time.perf_counter()
    assert w.start()
    assert time.perf_counter() - t0 < 0.5  # the cell returns while the worker computes
    assert w.running
    assert w.wait(60)
    assert not w.running and w.error is None
    assert w.step == 40 and w.progress.value == 40
    assert len(values) >= 3 and len(set(values)) >= 3  # several distinct frames arrived
    assert w.image.format == "png"  # the final frame is lossless
    result = w.result_array()
    assert result.shape == (1, 32, 32, 3) and result.dtype == np.float32
    np.testing.assert_array_equal(decode_image(w.image.value), to_uint8(result[0]))
    assert w.losses.shape == (40, 1)
    assert w.losses[-8:].mean() > w.losses[:8].mean()  # gradient ascent raises the objective
    assert len(w.loss_line.x) == 40 and len(w.loss_line.y) == 40
    assert "done: 40 steps" in w.status.value and "steps/s" in w.rate_label.value
    assert not w.start_button.disabled and w.stop_button.disabled


def test_stop_ends_the_thread_and_start_continues(make_widget):
    # Stop latency (one compiled chunk of steps) is timed by benchmarks, not asserted here:
    # on a busy machine a chunk can take seconds.
    w = make_widget(steps=100_000)
    assert w.start()
    assert _wait_for(lambda: w.step > 0)
    assert w.stop(timeout=60.0)
    assert not _optvis_threads()
    assert not w.running and "stopped at step" in w.status.value
    stopped_at = w.step
    n_losses = len(w.losses)
    # Start again without changing anything: the run continues where it stopped.
    assert w.start()
    assert _wait_for(lambda: w.step > stopped_at + 8)
    w.stop_button.click()  # the button only signals; the thread ends after its current chunk
    assert w.wait(60.0)
    assert len(w.losses) > n_losses and w.losses.shape[0] == w.step


def test_second_start_while_running_starts_nothing(make_widget):
    w = make_widget(steps=100_000)
    assert w.start()
    assert not w.start()
    assert len(_optvis_threads()) == 1
    assert w.start_button.disabled and not w.stop_button.disabled
    assert w.stop(timeout=60.0)


def test_error_in_objective_is_shown_and_widget_stays_usable(make_widget):
    w = make_widget(objective=lambda layer, units: Boom())
    assert w.start()
    assert w.wait(60)
    assert isinstance(w.error, ValueError)
    assert "boom: this objective is broken" in w.status.value
    assert not w.running and not w.start_button.disabled
    assert not _optvis_threads()
    # Back to the built-in objective: the same widget renders.
    w.objective = None
    assert w.start() and w.wait(60)
    assert w.error is None and w.step == 24 and "done" in w.status.value


def test_renderer_is_reused_when_only_channel_seed_or_lr_change(make_widget):
    w = make_widget(steps=8)
    assert w.start() and w.wait(60)
    (renderer,) = w.session.renderers.values()
    first = w.result_array()
    w.channel, w.seed, w.learning_rate = 5, 3, 0.1
    assert w.start() and w.wait(60)
    assert list(w.session.renderers.values()) == [renderer]
    assert renderer.trace_count == 1
    assert renderer.unit_objectives()[0].indices == [5]
    assert float(renderer.optimizer.learning_rate.numpy()) == pytest.approx(0.1)
    assert w.step == 8 and not np.array_equal(first, w.result_array())
    w.size = 48  # a new image size needs a new renderer
    assert w.start() and w.wait(60)
    assert len(w.session.renderers) == 2 and w.result_array().shape == (1, 48, 48, 3)


def test_same_settings_give_the_same_image(make_widget):
    w = make_widget(steps=6)
    assert w.start() and w.wait(60)
    a = w.result_array()
    w.reset()
    assert w.step == 0 and w.frames == [] and w.image.value == b""
    assert w.start() and w.wait(60)
    np.testing.assert_allclose(w.result_array(), a, atol=1e-5)


def test_gallery_of_four_channels_gives_four_live_tiles(make_widget):
    w = make_widget(gallery=True, gallery_size=4, channel=2, steps=16)
    assert len(w.views.tile_images) == 4
    assert w.image.layout.display == "none" and w.gallery_grid.layout.display == ""
    assert w.start() and w.wait(60)
    assert w.channels == (2, 3, 4, 5)
    result = w.result_array()
    assert result.shape == (4, 32, 32, 3)
    for tile, row in zip(w.views.tile_images, result, strict=True):
        np.testing.assert_array_equal(decode_image(tile.value), to_uint8(row))
    assert [b.description for b in w.views.tile_buttons] == [
        f"open channel {u}" for u in (2, 3, 4, 5)
    ]
    assert w.losses.shape == (16, 4)
    (renderer,) = w.session.renderers.values()
    assert renderer.batch == 4 and renderer.unit_objectives()[0].indices == [2, 3, 4, 5]

    w.views.tile_buttons[1].click()  # open tile 1
    assert not w.gallery and w.channel == 3
    np.testing.assert_array_equal(w.result_array(), result[1:2])
    np.testing.assert_array_equal(decode_image(w.image.value), to_uint8(result[1]))
    assert w.losses.shape == (16, 1) and all(f.shape[0] == 1 for f in w.frames)
    assert len(w.views.tile_images) == 0


def test_gallery_is_clipped_to_the_layer(make_widget):
    w = make_widget(layer="conv1", gallery=True, gallery_size=4, channel=7, steps=4)
    assert w.start() and w.wait(60)
    assert w.channels == (4, 5, 6, 7)


def test_diversity_needs_gallery_and_renders_one_channel_on_all_rows(make_widget):
    w = make_widget(steps=8)
    with pytest.raises(ValueError, match="gallery"):
        w.kind = "diversity"
    w.gallery_size, w.gallery = 3, True
    w.kind = "diversity"
    w.channel = 4
    assert w.start() and w.wait(60)
    assert w.error is None and w.channels == (4, 4, 4)
    images = w.result_array()
    assert images.shape[0] == 3 and not np.allclose(images[0], images[1])
    w.gallery = False  # leaving gallery mode drops the diversity kind
    assert w.kind == "channel"


def test_gif_export_round_trips_with_the_right_frame_count(make_widget, tmp_path):
    w = make_widget(steps=24, frame_every=2)
    assert w.start() and w.wait(60)
    frames = w.frames
    assert len(frames) == 12  # every 2 steps, none identical
    data = w.export_gif(tmp_path / "run.gif", fps=12)
    assert (tmp_path / "run.gif").read_bytes() == data
    decoded = decode_gif(data)
    assert decoded.shape == (12, 32, 32, 3)
    # Palette quantization changes colours a little, not the picture.
    assert np.abs(decoded[-1].astype(int) - frames[-1][0].astype(int)).mean() < 6


def test_frames_are_thinned_to_max_frames(make_widget):
    w = make_widget(steps=64, frame_every=1, max_frames=10)
    assert w.start() and w.wait(60)
    frames = w.frames
    assert 5 <= len(frames) <= 10
    np.testing.assert_array_equal(frames[-1], to_uint8(w.result_array()))  # final frame kept
    assert len(decode_gif(w.export_gif())) == len(frames)


def test_gallery_gif_and_png_are_grids(make_widget):
    w = make_widget(gallery=True, gallery_size=4, steps=8, frame_every=4)
    assert w.start() and w.wait(60)
    png = decode_image(w.export_png())
    assert png.shape == (32, 4 * 32 + 3 * 2, 3)
    gif = decode_gif(w.export_gif())
    assert gif.shape == (2, *png.shape)


def test_png_and_array_exports(make_widget, tmp_path):
    w = make_widget(steps=4)
    with pytest.raises(ImageError, match="Start"):
        w.export_png()
    assert w.start() and w.wait(60)
    png = w.export_png(tmp_path / "out" / "x.png")
    np.testing.assert_array_equal(decode_image(png), to_uint8(w.result_array()[0]))
    assert (tmp_path / "out" / "x.png").read_bytes() == png
    w.run_bar.offer_download("array")
    assert "download='optvis.npy'" in w.download.value
    w.run_bar.offer_download("GIF")
    assert "data:image/gif;base64," in w.download.value
    from nbviz.export import encode_npy

    back = np.load(io.BytesIO(encode_npy(w.result_array())))
    np.testing.assert_array_equal(back, w.result_array())


def test_bad_settings_are_shown_and_leave_the_widget_usable(make_widget):
    w = make_widget(steps=4)
    with pytest.raises(LayerError, match="conv1"):
        w.layer = "nope"
    assert "LayerError" in w.status.value and w.layer == "conv2"
    with pytest.raises(ChannelError, match="0..15"):
        w.channel = 16
    assert "ChannelError" in w.status.value and w.channel == 0
    with pytest.raises(ImageError):
        w.size = 4
    assert w.start() and w.wait(60)
    assert w.error is None and "done" in w.status.value


def test_layer_choices_kinds_and_logits(tiny_convnet, no_thread_leak):
    w = OptVisWidget(tiny_convnet, steps=8)
    try:
        names = [v for _, v in w.layer_dropdown.options]
        assert names == ["conv1", "pool1", "conv2", "gap", "logits"]
        assert w.layer == "conv2" and w.kind == "channel"  # ~2/3 deep among conv layers
        w.layer = "logits"
        assert w.kind == "class" and w.channel_input.max == 3
        with pytest.raises(ValueError):
            w.kind = "neuron"
        w.channel = 2
        assert w.start() and w.wait(60)
        assert w.error is None and w.losses[-1, 0] > w.losses[0, 0]
    finally:
        w.close()


def test_fixed_custom_objective(make_widget):
    obj = optvis.channel("conv1", [1, 2]) - 1e-3 * optvis.total_variation()
    w = make_widget(objective=obj, steps=6)
    assert w.layer_dropdown.disabled and w.channel_input.disabled
    assert w.start() and w.wait(60)
    assert w.error is None and w.result_array().shape == (2, 32, 32, 3)


def test_demo_model_defaults(no_thread_leak):
    import nbviz.demo as demo

    model = demo.load_demo_model()
    snap = weights_snapshot(model)
    w = OptVisWidget(model, steps=32)
    try:
        names = [v for _, v in w.layer_dropdown.options]
        assert "probs" not in names and "logits" in names
        assert w.layer == "conv3" and w.size == 64
        assert w.start() and w.wait(120)
        assert w.result_array().shape == (1, 64, 64, 3)
        assert w.losses[-4:].mean() > w.losses[:4].mean()
    finally:
        w.close()
    assert_weights_identical(model, snap)


def test_close_stops_the_worker_and_closes_children(make_widget):
    w = make_widget(steps=100_000, gallery=True, gallery_size=2)
    children = [w.image, w.loss_figure, w.loss_line, w.status, w.start_button, *w.views.tile_images]
    assert w.start()
    assert _wait_for(lambda: w.step > 0)
    w.close()
    assert not _optvis_threads()
    assert all(c.comm is None for c in children)
    w.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        w.start()


def test_encode_gif_rejects_mixed_sizes():
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ImageError, match="one size"):
        encode_gif([a, np.zeros((9, 8, 3), np.uint8)])
    with pytest.raises(ImageError, match="No frames"):
        encode_gif([])
    assert decode_gif(encode_gif([a, a + 100], fps=5)).shape == (2, 8, 8, 3)


def test_widgets_left_open_at_exit_close_without_errors():
    """Python closes widgets still alive at exit (``Widget.__del__``); that must be quiet."""
    script = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import nbviz
        model = nbviz.load_demo_model()
        w = nbviz.OptVisWidget(model, steps=8, size=32)
        assert w.start() and w.wait(120)
        print("ran", w.step)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ran 8" in out.stdout
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr[
        -3000:
    ]
