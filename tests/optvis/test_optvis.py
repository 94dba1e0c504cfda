"""nbviz.optvis on tiny models: parameterizations, transforms, objectives, render loop, errors.

Quality on a trained network is in test_optvis_quality.py (the demo convnet).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

tf = pytest.importorskip("tensorflow")

from nbviz import optvis  # noqa: E402
from nbviz.errors import ChannelError, ImageError, LayerError, ModelError  # noqa: E402
from nbviz.optvis import objectives as obj  # noqa: E402
from nbviz.optvis import param  # noqa: E402
from nbviz.optvis import transforms as T  # noqa: E402
from nbviz.optvis.render import preactivation_fn  # noqa: E402

BARE = dict(fft=False, decorrelate=False, sigmoid=False, transforms="none", grad_norm=None)


def _rng(seed: int = 0):
    return tf.random.Generator.from_seed(seed)


# ---- param -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("b", "h", "w"), [(1, 16, 16), (2, 17, 23), (3, 12, 9)])
def test_fft_image_is_lucids_scaled_inverse_rfft(b, h, w):
    p = param.fft_image((b, h, w, 3), seed=1)
    v = p.variables[0].numpy()  # (2H, B, K, C): real parts, then imaginary parts
    k = w // 2 + 1
    assert v.shape == (2 * h, b, k, 3)
    spec = (v[:h] + 1j * v[h:]).transpose(1, 3, 0, 2)  # (B, C, H, K)
    freqs = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    scale = np.sqrt(h * w) / np.maximum(freqs, 1.0 / max(h, w))
    expected = np.fft.irfft2(spec * scale, s=(h, w)).transpose(0, 2, 3, 1) / 4.0
    got = p.image().numpy()
    assert got.shape == (b, h, w, 3)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_image_param_range_channels_and_reset():
    rgb = param.image(20, 24, batch=2, seed=3)
    a = rgb.image().numpy()
    assert a.shape == (2, 20, 24, 3) and 0.0 <= a.min() and a.max() <= 1.0
    assert "decorrelate=True" in rgb.description
    gray = param.image(16, batch=1, channels=1)
    assert gray.image().numpy().shape == (1, 16, 16, 1)
    assert "decorrelate=False" in gray.description  # no colour decorrelation for 1 channel
    rgb.variables[0].assign(tf.zeros_like(rgb.variables[0]))
    rgb.reset(3)
    np.testing.assert_array_equal(rgb.image().numpy(), a)  # same seed, same start
    variables, image_fn = param.image(8, fft=False)  # unpacks like Lucid's pair
    assert variables[0].shape == (1, 8, 8, 3) and image_fn().shape == (1, 8, 8, 3)


def test_to_valid_rgb_decorrelation_and_clipping():
    t = tf.constant(np.random.default_rng(0).normal(0, 3, (1, 4, 4, 3)).astype(np.float32))
    out = param.to_valid_rgb(t, decorrelate=True, sigmoid=True).numpy()
    lin = t.numpy() @ param.COLOR_CORRELATION_NORMALIZED.T
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-lin)), atol=1e-6)
    assert np.linalg.norm(param.COLOR_CORRELATION_NORMALIZED, axis=0).max() == pytest.approx(1.0)
    x = tf.Variable(tf.constant([[2.0, -1.0, 0.3]]))
    with tf.GradientTape() as tape:
        y = param.to_valid_rgb(x, decorrelate=False, sigmoid=False)
    np.testing.assert_allclose(y.numpy(), [[1.0, 0.0, 0.8]], atol=1e-6)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[1.0, 1.0, 1.0]])  # straight through
    with pytest.raises(ImageError, match="decorrelate=False"):
        param.to_valid_rgb(tf.zeros((1, 2, 2, 1)), decorrelate=True)
    with pytest.raises(ImageError, match="batch, height, width, channels"):
        param.pixel_image((4, 4))


# ---- transforms ------------------------------------------------------------------------------


def test_transforms_without_randomness_are_exact_identity():
    img = tf.random.uniform([2, 20, 24, 3], seed=1)
    frozen = T.lucid(jitter1=0, scales=[1.0], angles=[0.0], jitter2=0)
    out = T.apply(frozen, img, _rng(), out_hw=(20, 24))
    np.testing.assert_array_equal(out.numpy(), img.numpy())
    assert T.apply([], img, _rng(), out_hw=(20, 24)) is img  # nothing to do: no op at all


def test_jitter_is_an_integer_crop_of_the_padded_image():
    img = np.random.default_rng(0).uniform(size=(3, 10, 12, 2)).astype(np.float32)
    out = T.apply([T.pad(2, 0.25), T.jitter(4)], tf.constant(img), _rng(5), out_hw=None).numpy()
    assert out.shape == (3, 10, 12, 2)
    padded = np.pad(img, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=0.25)
    for b in range(3):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(padded[b, dy : dy + 10, dx : dx + 12], out[b])
        ]
        assert len(matches) == 1


def test_rotate_90_degrees_is_a_rot90_and_resize_is_bilinear():
    img = np.random.default_rng(1).uniform(size=(1, 9, 9, 3)).astype(np.float32)
    out = T.apply([T.random_rotate([90.0])], tf.constant(img), _rng(), out_hw=(9, 9)).numpy()
    candidates = [np.rot90(img[0], k) for k in (1, 3)]
    assert min(np.abs(out[0] - c).max() for c in candidates) < 1e-5
    expected = tf.image.resize(img, (5, 7)).numpy()
    for pipeline in ([], [T.jitter(0)]):  # plain resize, and the fused resampling's fit step
        small = T.apply(pipeline, tf.constant(img), _rng(), out_hw=(5, 7)).numpy()
        np.testing.assert_allclose(small, expected, atol=1e-5)


def test_standard_preset_is_seeded_in_graph_and_varies_per_step():
    img = tf.random.uniform([4, 32, 32, 3], seed=2)
    a = T.apply(T.standard, img, _rng(7), out_hw=(32, 32)).numpy()
    b = T.apply(T.standard, img, _rng(7), out_hw=(32, 32)).numpy()
    np.testing.assert_array_equal(a, b)
    rng = _rng(7)
    f = tf.function(lambda x: T.apply(T.standard, x, rng, out_hw=(24, 24)), autograph=False)
    c, d = f(img).numpy(), f(img).numpy()
    assert c.shape == (4, 24, 24, 3) and np.isfinite(c).all() and not np.array_equal(c, d)
    assert T.resolve("standard") == T.standard and T.resolve("none") == [] == T.resolve(None)
    with pytest.raises(ValueError, match="Unknown transform preset"):
        T.resolve("lucidd")
    with pytest.raises(ValueError, match="shrink"):
        T.apply([T.jitter(40)], img, _rng(), out_hw=None)


def test_custom_callable_transform_between_affine_ones():
    img = tf.random.uniform([1, 16, 16, 3], seed=3)
    flip = lambda x, rng: x[:, :, ::-1, :]  # noqa: E731
    out = T.apply([T.pad(2), flip, T.jitter(0)], img, _rng(), out_hw=(16, 16)).numpy()
    np.testing.assert_allclose(out, img.numpy()[:, :, ::-1, :], atol=1e-6)


# ---- objectives ------------------------------------------------------------------------------


def test_objectives_compose_union_layers_and_name_themselves():
    a = optvis.channel("conv1", 2)
    penalty = 1e-3 * optvis.total_variation()
    combo = a - penalty + 0.5 * optvis.diversity("conv2")
    assert combo.layers == frozenset({"conv1", "conv2"})
    assert (
        repr(combo) == "channel('conv1', 2) - 0.001 * total_variation() + 0.5 * diversity('conv2')"
    )
    assert sum([a, optvis.neuron("conv2", 1)]).layers == {"conv1", "conv2"}
    assert -a is not a and repr(a / 2) == "0.5 * channel('conv1', 2)"
    assert optvis.as_objective("conv2:1,3,5").rows == 3
    assert isinstance(optvis.as_objective("logits:3"), obj.Channel)
    with pytest.raises(ChannelError, match="different numbers of batch rows"):
        _ = optvis.channel("conv1", [0, 1]) + optvis.channel("conv2", [0, 1, 2])
    for bad in ("conv1", "conv1:x", ":3"):
        with pytest.raises(ChannelError, match=r"'layer:unit'|'conv3:12'"):
            optvis.as_objective(bad)


def _values(model, objective, images, **kw):
    kw = {**BARE, "batch": images.shape[0], "size": images.shape[1:3], **kw}
    r = optvis.Renderer(model, objective, **kw)
    return r.evaluate(images)


def test_objective_values_match_direct_computation(tiny_convnet, keras):
    model = tiny_convnet
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 32, 32, 3)).astype(np.float32)
    probe = keras.Model(
        model.inputs[0], [model.get_layer(n).output for n in ("conv1", "conv2", "logits")]
    )
    c1, c2, logits = (t.numpy() for t in probe(x))
    got = _values(model, optvis.channel("conv2", [3, 0, 7]), x, preactivation=False)
    np.testing.assert_allclose(
        got, [c2[0, ..., 3].mean(), c2[1, ..., 0].mean(), c2[2, ..., 7].mean()], rtol=1e-5
    )
    # Channel objectives compute their channel alone; with a full-map reader on the same
    # layer they pick it from the full map: same numbers.
    full_too = 0.0 * optvis.diversity("conv2") + optvis.channel("conv2", [3, 0, 7])
    np.testing.assert_allclose(_values(model, full_too, x, preactivation=False), got, rtol=1e-5)
    got = _values(model, optvis.channel("conv1", 5, crop=4), x, preactivation=False)
    np.testing.assert_allclose(got, c1[:, 4:-4, 4:-4, 5].mean(axis=(1, 2)), rtol=1e-5)
    got = _values(model, optvis.neuron("conv2", [1, 2, 3]), x, preactivation=False)
    np.testing.assert_allclose(got, [c2[0, 8, 8, 1], c2[1, 8, 8, 2], c2[2, 8, 8, 3]], rtol=1e-5)
    got = _values(model, optvis.class_logit("logits", [0, 1, 2]), x)
    np.testing.assert_allclose(got, logits[[0, 1, 2], [0, 1, 2]], rtol=1e-5)
    vec = rng.normal(size=16).astype(np.float32)
    got = _values(model, optvis.direction("conv2", vec), x, preactivation=False)
    np.testing.assert_allclose(got, (c2 @ vec).mean(axis=(1, 2)), rtol=1e-4)
    got = _values(model, optvis.total_variation() + 2 * optvis.l1(0.5) - optvis.l2(), x)
    tv = np.abs(np.diff(x, axis=1)).sum((1, 2, 3)) + np.abs(np.diff(x, axis=2)).sum((1, 2, 3))
    l1 = np.abs(x - 0.5).sum((1, 2, 3))
    l2 = np.sqrt(1e-6 + (x**2).sum((1, 2, 3)))
    np.testing.assert_allclose(got, tv + 2 * l1 - l2, rtol=1e-4)


def test_diversity_matches_lucid_and_penalizes_identical_rows(tiny_convnet, keras):
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(3, 32, 32, 3)).astype(np.float32)
    acts = keras.Model(tiny_convnet.inputs[0], tiny_convnet.get_layer("conv1").output)(x).numpy()
    flat = acts.reshape(3, -1, 8)
    grams = np.einsum("bnc,bnd->bcd", flat, flat).reshape(3, -1)
    grams /= np.linalg.norm(grams, axis=1, keepdims=True)
    lucid = -sum(grams[i] @ grams[j] for i in range(3) for j in range(3) if i != j) / 3
    got = _values(tiny_convnet, optvis.diversity("conv1"), x, preactivation=False)
    assert got.sum() == pytest.approx(lucid, rel=1e-5)
    same = _values(
        tiny_convnet, optvis.diversity("conv1"), np.repeat(x[:1], 3, 0), preactivation=False
    )
    assert same.sum() < got.sum()  # identical rows are the least diverse


def test_preactivation_reads_before_the_fused_activation(keras):
    keras.utils.set_random_seed(2)
    inp = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1")(inp)
    h = keras.layers.Conv2D(5, 3, dilation_rate=2, activation="tanh", name="c2")(h)
    out = keras.layers.Dense(3, activation="softmax", name="d")(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype(np.float32)
    for name, act in (("c1", tf.nn.relu), ("c2", tf.nn.tanh), ("d", tf.nn.softmax)):
        layer = model.get_layer(name)
        layer_in = keras.Model(model.inputs[0], layer.input)(x)
        pre = preactivation_fn(layer)(layer_in)
        full = keras.Model(model.inputs[0], layer.output)(x)
        np.testing.assert_allclose(act(pre).numpy(), full.numpy(), atol=1e-6)
        # One channel per row, computed without the others.
        units = preactivation_fn(layer, tf.constant([2, 0]))(layer_in).numpy()
        np.testing.assert_allclose(units, np.stack([pre[0, ..., 2], pre[1, ..., 0]]), atol=1e-6)
    pre_c2 = preactivation_fn(model.get_layer("c2"))(
        keras.Model(model.inputs[0], model.get_layer("c1").output)(x)
    )
    got = _values(model, optvis.channel("c2", 1), x[:1])
    np.testing.assert_allclose(got, pre_c2.numpy()[:1, ..., 1].mean(), rtol=1e-5)
    # A softmax Dense read before its softmax is a fine class objective.
    assert _values(model, optvis.class_logit("d", 0), x[:1]).shape == (1,)
    with pytest.raises(LayerError, match="softmax"):
        optvis.Renderer(model, optvis.class_logit("d", 0), preactivation=False)


# ---- errors ----------------------------------------------------------------------------------


def test_bad_layers_units_and_models_get_clear_errors(tiny_convnet, keras):
    with pytest.raises(LayerError, match=r"No layer named 'conv9'.*Did you mean.*Valid layers"):
        optvis.Renderer(tiny_convnet, "conv9:1")
    with pytest.raises(ChannelError, match=r"Channel 16 is out of range.*16 channels.*0\.\.15"):
        optvis.Renderer(tiny_convnet, "conv2:16")
    with pytest.raises(ChannelError, match="out of range"):
        optvis.Renderer(tiny_convnet, optvis.channel("conv2", [1, -1]))
    with pytest.raises(ChannelError, match="integer"):
        optvis.channel("conv2", 1.5)
    with pytest.raises(LayerError, match=r"neuron\(\) needs a spatial"):
        optvis.Renderer(tiny_convnet, optvis.neuron("logits", 1))
    with pytest.raises(ChannelError, match="x=99 is outside"):
        optvis.Renderer(tiny_convnet, optvis.neuron("conv2", 1, x=99))
    with pytest.raises(LayerError, match=r"class_logit\(\) needs a \(batch, classes\)"):
        optvis.Renderer(tiny_convnet, optvis.class_logit("conv2", 1))
    with pytest.raises(ChannelError, match="8 channels"):
        optvis.Renderer(tiny_convnet, optvis.direction("conv1", np.ones(3)))
    with pytest.raises(LayerError, match="crop=8 removes all"):
        optvis.Renderer(tiny_convnet, optvis.channel("conv2", 1, crop=8))
    with pytest.raises(ChannelError, match="3 rows"):
        optvis.Renderer(tiny_convnet, "conv2:1,2,3", batch=2)

    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, name="conv")(inp)
    score = keras.layers.Lambda(lambda t: keras.ops.sum(t, axis=(1, 2, 3)), name="score")(h)
    no_channels = keras.Model(inp, score)
    with pytest.raises(
        LayerError, match=r"'score'.*no channels.*Pick a layer with channels: 'conv'"
    ):
        optvis.Renderer(no_channels, "score:0")

    probs = keras.layers.Softmax(name="probs")(tiny_convnet.output)
    with_softmax = keras.Model(tiny_convnet.inputs[0], probs)
    with pytest.raises(LayerError, match=r"softmax.*pre-softmax layer 'logits'"):
        optvis.Renderer(with_softmax, "probs:1")
    assert "probs" not in optvis.renderable_layers(with_softmax)

    mlp = keras.Sequential([keras.Input((1,)), keras.layers.Dense(4, name="hidden")])
    with pytest.raises(ModelError, match=r"image batch.*takes \(None, 1\)"):
        optvis.Renderer(mlp, "hidden:1")
    with pytest.raises(ModelError, match="no defined input"):
        optvis.Renderer(keras.Sequential([keras.layers.Dense(2)]), "dense:0")
    with pytest.raises(ImageError, match="too small"):
        optvis.Renderer(tiny_convnet, "conv1:0", size=4)


# ---- the render loop -------------------------------------------------------------------------


def test_frames_every_k_steps_with_images_and_never_touches_weights(tiny_convnet):
    snap = weights_snapshot(tiny_convnet)
    r = optvis.Renderer(tiny_convnet, optvis.channel("conv2", [1, 2, 3]), size=24)
    frames = list(r.frames(10, every=4))
    assert [f.step for f in frames] == [4, 8, 10]
    assert [f.final for f in frames] == [False, False, True]
    assert [f.losses.shape for f in frames] == [(4, 3), (4, 3), (2, 3)]
    last = frames[-1]
    assert last.image.shape == (3, 24, 24, 3) and last.image.dtype == np.float32
    assert 0.0 <= last.image.min() and last.image.max() <= 1.0
    np.testing.assert_array_equal(last.loss, last.losses[-1])
    np.testing.assert_allclose(last.image, r.image(), atol=1e-6)  # the image after the step
    assert last.steps_per_sec > 0 and r.step == 10 and len(r.history) == 10
    assert r.trace_count == 1
    assert_weights_identical(tiny_convnet, snap)


def test_changing_units_and_weights_does_not_retrace(tiny_convnet):
    tv = 0.01 * optvis.total_variation()
    r = optvis.Renderer(tiny_convnet, optvis.channel("conv2", [0, 1]) - tv, size=16)
    r.run(2)
    before = r.evaluate()
    r.set_channels([5, 6], reset=False)
    assert r.unit_objectives()[0].indices == [5, 6]
    changed = r.evaluate()
    tv.set_weight(0.0)
    r.run(2)
    assert r.trace_count == 1  # new filters and weights, same compiled step
    assert not np.allclose(before, changed)
    r.set_channels(3)  # one unit for every row
    assert r.step == 0 and r.unit_objectives()[0].indices == [3]
    r.run(1)
    assert r.trace_count == 1
    with pytest.raises(ChannelError, match="out of range"):
        r.set_channels([0, 99])
    with pytest.raises(ChannelError, match="2 rows"):
        r.set_channels([1, 2, 3])
    combo = optvis.Renderer(
        tiny_convnet, optvis.channel("conv1", 1) + optvis.channel("conv2", 1), size=16
    )
    with pytest.raises(ChannelError, match="exactly one"):
        combo.set_channels(2)


def test_same_seed_same_run_other_seed_other_run(tiny_convnet):
    def losses(seed):
        r = optvis.Renderer(tiny_convnet, "conv2:4", size=24, seed=seed)
        return r.run(3, every=3).losses

    a, b, c = losses(11), losses(11), losses(12)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(a, c, rtol=1e-3)
    r = optvis.Renderer(tiny_convnet, "conv2:4", size=24, seed=11)
    r.run(3)
    r.reset()
    np.testing.assert_allclose(r.run(3, every=3).losses, a, rtol=1e-6)  # reset = fresh start


class _Recorder:
    def __init__(self, fail_at: int | None = None):
        self.calls: list = []
        self.fail_at = fail_at

    def on_begin(self, renderer):
        self.calls.append(("begin", renderer.step))

    def on_step(self, step, loss, image):
        if step == self.fail_at:
            raise RuntimeError("callback failed")
        self.calls.append(("step", step, loss.shape, None if image is None else image.shape))

    def on_end(self, result):
        self.calls.append(("end", result.step, result.losses.shape, result.stopped))


def test_callbacks_protocol_and_result(tiny_convnet):
    rec = _Recorder()
    result = optvis.visualize(tiny_convnet, "conv1:2", steps=5, size=16, every=2, callbacks=[rec])
    assert rec.calls[0] == ("begin", 0)
    steps = [c for c in rec.calls if c[0] == "step"]
    assert [c[1] for c in steps] == [1, 2, 3, 4, 5]
    assert [c[3] is not None for c in steps] == [False, True, False, True, True]
    assert steps[1][3] == (1, 16, 16, 3) and steps[0][2] == (1,)
    assert rec.calls[-1] == ("end", 5, (5, 1), False)
    assert result.images.shape == (1, 16, 16, 3) and result.losses.shape == (5, 1)
    assert result.steps_per_sec > 0 and "channel('conv1', 2)" == result.objective
    assert optvis.visualize is optvis.render.render


def test_stop_criteria_and_failing_callback_leave_weights_alone(tiny_convnet):
    snap = weights_snapshot(tiny_convnet)
    r = optvis.Renderer(tiny_convnet, "conv2:1", size=16)
    stop = threading.Event()
    seen = []
    for f in r.frames(None, every=3, stop_event=stop):
        seen.append(f.step)
        if f.step >= 6:
            stop.set()
    assert seen == [3, 6]
    result = r.run(50, every=2, should_stop=lambda step, loss: step >= 10)
    assert result.stopped and len(result.losses) == 4 and r.step == 10
    with pytest.raises(RuntimeError, match="callback failed"):
        r.run(10, every=2, callbacks=[_Recorder(fail_at=13)])
    assert_weights_identical(tiny_convnet, snap)
    with pytest.raises(ValueError, match="every"):
        next(r.frames(4, every=0))


def test_inference_mode_with_dropout_and_batchnorm(keras):
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="top")(h)
    model = keras.Model(inp, h)
    snap = weights_snapshot(model)
    r = optvis.Renderer(model, "top:2", size=16)
    first, second = r.evaluate(), r.evaluate()
    np.testing.assert_array_equal(first, second)  # Dropout is off
    r.run(4)
    assert_weights_identical(model, snap)  # BatchNorm statistics untouched


def test_grayscale_variable_size_and_resized_models(keras):
    gray = keras.Sequential(
        [keras.Input((20, 20, 1)), keras.layers.Conv2D(3, 3, activation="relu", name="c")]
    )
    res = optvis.visualize(gray, "c:1", steps=3, every=3)
    assert res.images.shape == (1, 20, 20, 1)
    anysize = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3, name="c")])
    r = optvis.Renderer(anysize, "c:0", size=(24, 28))
    assert r.run(2).images.shape == (1, 24, 28, 3)
    assert optvis.Renderer(anysize, "c:0").size == (128, 128)
    bigger = optvis.Renderer(gray, "c:1", size=40, transforms="none")  # resized to 20x20
    assert bigger.run(2).images.shape == (1, 40, 40, 1)


def test_nested_model_preprocess_and_value_range(keras, tiny_convnet):
    outer = keras.Sequential([keras.Input((32, 32, 3)), tiny_convnet], name="outer")
    calls = []

    def preprocess(x):
        calls.append(x.shape)  # traced once, in-graph
        return x - 100.0

    r = optvis.Renderer(
        outer, "tiny_convnet/conv2:3", size=32, value_range=(0.0, 255.0), preprocess=preprocess
    )
    r.run(3)
    assert calls == [(1, 32, 32, 3)]
    x = np.full((1, 32, 32, 3), 0.5, np.float32)
    conv2 = tiny_convnet.get_layer("conv2")
    inner = keras.Model(tiny_convnet.inputs[0], conv2.input)
    pre = keras.ops.conv(inner(x * 255.0 - 100.0), conv2.kernel, padding=conv2.padding)
    expected = (pre + conv2.bias).numpy()[..., 3].mean()
    # nested layers are read before their ReLU, like outer ones
    assert r.evaluate(x)[0] == pytest.approx(expected, rel=1e-5)
    assert r.table.uses_preactivation("tiny_convnet/conv2")


def test_batched_rows_are_independent(tiny_convnet):
    """Each row optimizes its own unit: a batch of 2 gives the rows of two single renders."""
    together = optvis.Renderer(tiny_convnet, optvis.channel("conv2", [2, 9]), size=16, **BARE)
    x = np.random.default_rng(4).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    both = together.evaluate(x)
    for row, unit in enumerate((2, 9)):
        alone = optvis.Renderer(tiny_convnet, optvis.channel("conv2", unit), size=16, **BARE)
        assert alone.evaluate(x[row : row + 1])[0] == pytest.approx(both[row], rel=1e-5)
    grads_ok = together.run(5).losses
    assert np.isfinite(grads_ok).all()


def test_penalty_only_objective_and_xla_option(tiny_convnet):
    noisy = param.image(16, fft=False, decorrelate=False, sd=1.0, seed=0)
    smooth = optvis.Renderer(
        tiny_convnet, -optvis.total_variation(), param=noisy, transforms="none"
    )
    losses = smooth.run(20, every=10).losses[:, 0]
    assert losses[-1] > 1.5 * losses[0]  # a noisy start loses most of its total variation
    xla = optvis.Renderer(tiny_convnet, "conv1:1", size=16, transforms="none", jit_compile=True)
    assert np.isfinite(xla.run(2).losses).all()
    with pytest.raises(ValueError, match="jit_compile"):
        optvis.Renderer(tiny_convnet, "conv1:1", size=16, jit_compile=True)


# ---- fast paths: fused spectrum/colour, sparse resampling, chunked sampling -----------------


def test_fft_image_folds_the_colour_mix_into_the_inverse_transform():
    plain = param.fft_image((2, 12, 10, 3), seed=4)
    mixed = param.fft_image((2, 12, 10, 3), seed=4, color=param.COLOR_CORRELATION_NORMALIZED)
    expected = plain.image().numpy() @ param.COLOR_CORRELATION_NORMALIZED.T
    np.testing.assert_allclose(mixed.image().numpy(), expected, atol=1e-6)
    full = param.image(12, 10, batch=2, seed=4)  # fft + decorrelate + sigmoid
    np.testing.assert_allclose(full.image().numpy(), 1 / (1 + np.exp(-expected)), atol=1e-6)
    with pytest.raises(ImageError, match=r"\(3, 3\) matrix"):
        param.fft_image((1, 8, 8, 3), color=np.eye(2))


def test_sparse_resampling_matches_tensorflows_bilinear_warp_and_its_adjoint():
    rng = np.random.default_rng(2)
    img = rng.uniform(size=(2, 11, 13, 3)).astype(np.float32)
    a = np.deg2rad([7.0, -9.0])
    m = np.zeros((2, 3, 3), np.float32)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = 1.07 * np.cos(a), -np.sin(a), [1.3, -2.6]
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = np.sin(a), 0.95 * np.cos(a), [-0.4, 3.2]
    m[:, 2, 2] = 1.0
    x = tf.constant(img)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = T.resample(x, tf.constant(m), (9, 12), 0.3)
        weights = tf.constant(rng.normal(size=(2, 9, 12, 3)).astype(np.float32))
        loss = tf.reduce_sum(out * weights)
    reference = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=m.reshape(2, 9)[:, :8], output_shape=[9, 12],
        fill_value=0.3, interpolation="BILINEAR", fill_mode="CONSTANT",
    )  # fmt: skip
    np.testing.assert_allclose(out.numpy(), reference.numpy(), atol=1e-5)
    # The gradient is the exact adjoint: <S x, w> == <x, S^T w> for any x.
    grad = tape.gradient(loss, x).numpy()
    probe = rng.uniform(size=img.shape).astype(np.float32)
    fill_part = T.resample(tf.zeros_like(x), tf.constant(m), (9, 12), 0.3).numpy()
    lhs = np.sum(
        (T.resample(tf.constant(probe), tf.constant(m), (9, 12), 0.3).numpy() - fill_part)
        * weights.numpy()
    )
    np.testing.assert_allclose(lhs, np.sum(probe * grad), rtol=1e-4)


def test_render_chunks_capped_by_sampling_memory_give_the_same_run(tiny_convnet, monkeypatch):
    from nbviz.optvis import render as render_mod

    whole = optvis.Renderer(tiny_convnet, "conv2:4", size=24, seed=3).run(6, every=6)
    per_step_entries = optvis.Renderer(tiny_convnet, "conv2:4", size=24)._fused.entries_per_step(1)
    monkeypatch.setattr(
        render_mod, "MAX_SAMPLING_ENTRIES", 2 * per_step_entries
    )  # 2 steps per call
    capped = optvis.Renderer(tiny_convnet, "conv2:4", size=24, seed=3)
    assert capped._max_chunk == 2
    result = capped.run(6, every=6)
    assert result.losses.shape == whole.losses.shape and capped.trace_count == 1
    assert np.isfinite(result.losses).all()
    monkeypatch.setattr(render_mod, "MAX_SAMPLING_ENTRIES", 10)  # one step does not fit
    per_step = optvis.Renderer(tiny_convnet, "conv2:4", size=24, seed=3)
    assert not per_step._chunk_sampling and per_step.run(4, every=2).losses.shape == (4, 1)


def test_spectrum_gradient_is_the_transpose_of_the_inverse_transform():
    """The spectrum's hand-written gradient (stored transposes) equals TF's own of irfft2d."""
    h, w = 10, 7
    p = param.fft_image((2, h, w, 3), seed=5, color=param.COLOR_CORRELATION_NORMALIZED)
    var = p.variables[0]
    probe = tf.constant(np.random.default_rng(1).normal(size=(2, h, w, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(p.image() * probe)
    got = tape.gradient(loss, var).numpy()
    k = w // 2 + 1
    freqs = param.rfft2d_freqs(h, w)
    scale = np.sqrt(h * w) / np.maximum(freqs, 1.0 / max(h, w))
    v = tf.constant(var.numpy())
    with tf.GradientTape() as tape:
        tape.watch(v)
        spec = tf.complex(v[:h], v[h:]) * tf.cast(scale[:, None, :, None], tf.complex64)
        img = tf.signal.irfft2d(tf.transpose(spec, (1, 3, 0, 2)), fft_length=[h, w]) / 4.0
        img = tf.einsum("bchw,dc->bhwd", img, param.COLOR_CORRELATION_NORMALIZED)
        reference = tf.reduce_sum(img * probe)
    expected = tape.gradient(reference, v).numpy()
    assert got.shape == (2 * h, 2, k, 3)
    np.testing.assert_allclose(loss.numpy(), reference.numpy(), rtol=1e-5)
    # irfft2d's gradient ignores the imaginary parts of the DC and Nyquist columns too
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


def test_chunk_sampling_is_built_by_one_shared_compiled_function(tiny_convnet):
    fused = T.fuse(T.standard, (20, 20), (24, 24))
    u = tf.random.Generator.from_seed(0).uniform([6, fused.n_random])
    builder = T._sampling_builder(fused, 2)
    indices, values = builder(u)  # XLA
    eager = T.sampling_matrix(T._flat(fused.draw(u), 6), 2, (20, 20), (24, 24))
    np.testing.assert_array_equal(indices.numpy(), eager.indices.numpy())
    np.testing.assert_allclose(
        values.numpy(), eager.values.numpy(), atol=2e-5
    )  # XLA rounds its own way
    # Renderers with the same transforms and batch share it (each chunk size compiles once).
    a = optvis.Renderer(tiny_convnet, "conv2:1", size=24, seed=1)
    b = optvis.Renderer(tiny_convnet, "conv2:2", size=24, seed=2)
    assert a._fused == b._fused
    assert T._sampling_builder(a._fused, 1) is T._sampling_builder(b._fused, 1)

    @dataclass  # eq without frozen: not hashable, so it cannot share a cached builder
    class Shift(T.AffineTransform):
        dx: float

        def matrix(self, batch, hw, u):
            return np.array([[1, 0, self.dx], [0, 1, 0], [0, 0, 1]], np.float32)

    custom = optvis.Renderer(tiny_convnet, "conv2:1", size=24, transforms=[T.pad(2), Shift(1.5)])
    assert custom._chunk_sampling and np.isfinite(custom.run(3).losses).all()


def test_sampling_built_ahead_makes_a_seeded_run_independent_of_how_it_is_split(tiny_convnet):
    r = optvis.Renderer(tiny_convnet, "conv2:3", size=24, seed=7)
    assert r._max_chunk > 16
    by_three = r.run(16, every=3)  # calls of 3, 3, ..., 1 steps take from one build
    r.reset()
    by_eight = r.run(16, every=8)
    np.testing.assert_allclose(by_three.losses, by_eight.losses, rtol=1e-5)
    np.testing.assert_allclose(by_three.images, by_eight.images, atol=1e-5)
    assert r.trace_count == 1
    # More steps than the buffer holds: it refills (new random transforms, not a replay).
    r.reset()
    long = r.run(r._max_chunk + 5, every=r._max_chunk + 5)
    assert long.losses.shape == (r._max_chunk + 5, 1) and np.isfinite(long.losses).all()
    first = r._sampling._indices.numpy()
    r.run(r._max_chunk, every=r._max_chunk)
    assert not np.array_equal(first, r._sampling._indices.numpy())


def test_from_function_objective_equals_the_built_in_and_composes(tiny_convnet):
    import tensorflow as tf

    from nbviz.errors import LayerError

    mean_c3 = optvis.from_function(
        lambda T: tf.reduce_mean(T("conv2")[..., 3], axis=[1, 2]),
        layers=["conv2"],
        name="mean(conv2:3)",
    )
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    plain = dict(transforms="none", preactivation=False, seed=0)
    want = optvis.Renderer(tiny_convnet, optvis.channel("conv2", 3), **plain).evaluate(x)
    got = optvis.Renderer(tiny_convnet, mean_c3, **plain).evaluate(x)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    mixed = optvis.Renderer(tiny_convnet, mean_c3 - 0.5 * optvis.channel("conv1", 1), **plain)
    assert np.isfinite(mixed.run(3).losses).all()
    with pytest.raises(LayerError, match="conv2"):
        optvis.Renderer(tiny_convnet, optvis.from_function(lambda T: T("cnv2"), ["cnv2"]))


def test_headless_session_continues_a_stopped_run_and_restarts_when_settings_change(tiny_convnet):
    import dataclasses
    import threading

    from nbviz.optvis.session import MODES, OptVisSession, RunConfig

    session = OptVisSession(tiny_convnet, frame_every=4)
    channels = MODES["channel"].row_channels(3, 16, 2)
    cfg = RunConfig("conv2", "channel", channels, 2, True, True, "none", 32, 0.05, 0, 16)
    stop, ticks = threading.Event(), []

    def publish(tick):
        ticks.append(tick.step)
        if tick.step >= 8:
            stop.set()

    first = session.run(cfg, stop, publish)
    assert 8 <= first.step < 16 and ticks[-1] == first.step
    again = session.run(cfg, None, lambda t: None)  # same settings: continues
    assert again.step == 16 and again.steps_run == 16 - first.step
    assert session.log.losses and len(session.log.losses) == 16
    fresh = session.run(dataclasses.replace(cfg, seed=1), None, lambda t: None)
    assert fresh.steps_run == 16 and len(session.renderers) == 1  # new seed: same trace
    assert MODES["diversity"].row_channels(5, 16, 3) == (5, 5, 5)
