"""Attribution backend: each method against its definition computed directly with a tape,
the axioms it promises (IG completeness), localization on a known stimulus, the model-
randomization sanity check, no retracing, and the user's weights left bit-identical."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz import attribution
from nbviz.attribution import Attributor
from nbviz.demo import (
    CLASS_NAMES,
    build_demo_convnet,
    load_demo_data,
    load_demo_model,
    make_grating,
)
from nbviz.optvis import channel


@pytest.fixture(scope="module")
def demo():
    return load_demo_model(compile=False)


@pytest.fixture(scope="module")
def data():
    return load_demo_data("test", n=8)


@pytest.fixture
def unchanged(demo):
    """The demo model's weights are bit-identical after the test."""
    snap = weights_snapshot(demo)
    yield demo
    assert_weights_identical(demo, snap)


def _tape_logit_grads(model, x, cls, layer=None):
    """Logit of class ``cls`` and its gradient w.r.t. the input (or ``layer``'s output),
    computed directly as the keras.io example does."""
    import keras
    import tensorflow as tf

    outs = [model.get_layer("logits").output]
    if layer is not None:
        outs.insert(0, model.get_layer(layer).output)
    grad_model = keras.Model(model.inputs, outs)
    x = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        res = grad_model(x)
        acts, logits = res if layer is not None else (None, res)
        score = logits[:, cls]
    wrt = x if layer is None else acts
    grads = tape.gradient(score, wrt)
    return score.numpy(), (None if acts is None else acts.numpy()), grads.numpy()


# -- definitions ----------------------------------------------------------------------------------
def test_saliency_equals_a_tape_gradient(unchanged, data):
    x, _ = data
    result = attribution.saliency(unchanged, x[0], target=5)
    score, _, grads = _tape_logit_grads(unchanged, x[:1], 5)
    np.testing.assert_allclose(result.values, grads, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.scores, score, rtol=1e-5)
    assert result.method == "saliency" and result.classes == [5]
    assert CLASS_NAMES[5] in result.target


def test_smoothgrad_with_zero_noise_equals_saliency(unchanged, data):
    x, _ = data
    sal = attribution.saliency(unchanged, x[:2], target=[1, 4])
    smooth = attribution.smoothgrad(unchanged, x[:2], target=[1, 4], samples=6, noise=0.0)
    np.testing.assert_allclose(smooth.values, sal.values, rtol=1e-4, atol=1e-6)
    noisy = attribution.smoothgrad(unchanged, x[:2], target=[1, 4], samples=6, noise=0.15)
    assert noisy.samples == 6 and not np.allclose(noisy.values, sal.values)


def test_grad_cam_equals_the_keras_io_formula(unchanged, data):
    x, y = data
    for i in range(3):
        cam = attribution.grad_cam(unchanged, x[i], target=int(y[i]), layer="conv4")
        _, acts, grads = _tape_logit_grads(unchanged, x[i : i + 1], int(y[i]), layer="conv4")
        # keras.io "Grad-CAM class activation visualization", verbatim in numpy
        pooled = grads.mean(axis=(0, 1, 2))
        heat = acts[0] @ pooled[..., None]
        heat = np.squeeze(heat)
        heat = np.maximum(heat, 0) / np.max(heat)
        np.testing.assert_allclose(cam.values[0] / cam.values[0].max(), heat, atol=1e-5)
        np.testing.assert_allclose(cam.weights[0], pooled, rtol=1e-4, atol=1e-7)
        assert cam.heatmap().shape == (64, 64) and cam.layer == "conv4"


def test_grad_cam_plus_plus_equals_its_closed_form_by_hand(unchanged, data):
    import tensorflow as tf

    x, y = data
    cls = int(y[0])
    cam = attribution.grad_cam_plus_plus(unchanged, x[0], target=cls, layer="conv3")
    _, a, g = _tape_logit_grads(unchanged, x[:1], cls, layer="conv3")
    # Chattopadhay et al. eq. 19 with Y = exp(S): dY/dA = exp(S) g, d2 = exp(S) g^2,
    # d3 = exp(S) g^3; exp(S) cancels in alpha and scales every weight alike.
    a, g = tf.constant(a, tf.float64), tf.constant(g, tf.float64)
    denom = 2.0 * g**2 + tf.reduce_sum(a, axis=(1, 2), keepdims=True) * g**3
    alpha = tf.where(denom != 0, g**2 / tf.where(denom != 0, denom, 1.0), 0.0)
    w = tf.reduce_sum(alpha * tf.nn.relu(g), axis=(1, 2))
    expected = tf.nn.relu(tf.einsum("nhwk,nk->nhw", a, w)).numpy()
    np.testing.assert_allclose(cam.values, expected, rtol=1e-4, atol=1e-6 * expected.max())
    assert cam.method == "grad_cam++" and cam.values.shape == (1, 16, 16)


def test_integrated_gradients_is_complete_within_one_percent_at_the_default_steps(unchanged, data):
    x, y = data
    ig = attribution.integrated_gradients(unchanged, x, target=list(y))
    diff = np.abs(ig.scores - ig.baseline_scores)
    assert (diff >= 1.0).sum() >= 6, f"too few images with a 1-logit difference: {diff}"
    err = ig.completeness_error[diff >= 1.0]
    assert err.max() < 0.01, f"completeness error {err} at {ig.steps} steps"
    assert ig.steps == attribution.IG_STEPS and ig.complete
    np.testing.assert_allclose(ig.baselines, 0.0)


def test_integrated_gradients_does_not_depend_on_how_the_path_is_batched(unchanged, data):
    x, y = data
    whole = Attributor(unchanged).integrated_gradients(x[:2], list(y[:2]), steps=16)
    chunked = Attributor(unchanged, batch_size=3).integrated_gradients(x[:2], list(y[:2]), steps=16)
    np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-4, atol=1e-6)


def test_blurred_and_user_baselines(unchanged, data):
    x, _ = data
    from scipy.ndimage import gaussian_filter

    blurred = attribution.integrated_gradients(unchanged, x[0], baseline="blurred", steps=8)
    expected = gaussian_filter(x[0], (6.4, 6.4, 0), mode="nearest", truncate=3.0)  # 64 px / 10
    np.testing.assert_allclose(blurred.baselines[0], expected, atol=1e-5)
    grey = np.full((64, 64, 3), 0.5, np.float32)
    user = attribution.integrated_gradients(unchanged, x[0], baseline=grey, steps=8)
    np.testing.assert_allclose(user.baselines[0], grey)
    np.testing.assert_allclose(user.values.sum(), user.scores - user.baseline_scores, rtol=0.05)


def test_layer_attribution_is_activation_times_gradient(unchanged, data):
    x, y = data
    la = attribution.layer_attribution(unchanged, x[0], target=int(y[0]), layer="conv3")
    _, acts, grads = _tape_logit_grads(unchanged, x[:1], int(y[0]), layer="conv3")
    np.testing.assert_allclose(la.values, acts * grads, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(la.channels, (acts * grads).sum(axis=(1, 2)), rtol=1e-4, atol=1e-6)
    assert la.spatial.shape == (1, 16, 16)
    top = la.top_channels(3)
    assert la.channels[0, top[0]] == la.channels[0].max() and len(top) == 3


# -- targets --------------------------------------------------------------------------------------
def test_objective_targets_compose_like_optvis(unchanged, data):
    x, _ = data
    a = attribution.saliency(unchanged, x[0], channel("conv3", 5))
    b = attribution.saliency(unchanged, x[0], channel("conv3", 9))
    both = attribution.saliency(unchanged, x[0], channel("conv3", 5) + 2 * channel("conv3", 9))
    np.testing.assert_allclose(both.values, a.values + 2 * b.values, rtol=1e-3, atol=1e-6)
    assert both.classes is None and "conv3" in both.target
    cam = attribution.grad_cam(unchanged, x[0], "conv3:5", layer="conv2")
    assert cam.values.shape == (1, 32, 32)


def test_class_scores_are_read_before_a_fused_softmax(keras):
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    h = keras.layers.GlobalAveragePooling2D()(h)
    fused = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(h))
    separate = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="head"),
            keras.layers.Softmax(),
        ]
    )
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    for model in (fused, separate):
        snap = weights_snapshot(model)
        head = model.get_layer("head")
        logits_model = keras.Model(model.inputs[0], head.input)
        z = logits_model(x).numpy() @ head.kernel.numpy() + head.bias.numpy()
        sal = attribution.saliency(model, x, target=[0, 2])
        np.testing.assert_allclose(sal.scores, z[[0, 1], [0, 2]], rtol=1e-5)
        a = Attributor(model)
        np.testing.assert_allclose(a.predict(x), z, rtol=1e-5, atol=1e-6)
        assert_weights_identical(model, snap)


def test_default_class_is_the_top_prediction(unchanged, data):
    x, _ = data
    a = Attributor(unchanged, class_names=CLASS_NAMES)
    top = [c for c, _ in a.top_classes(x[2], k=3)]
    assert a.grad_cam(x[2]).classes == [top[0]]
    probs = [p for _, p in a.top_classes(x[2], k=8)]
    assert abs(sum(probs) - 1.0) < 1e-5 and probs == sorted(probs, reverse=True)


# -- compiled once ---------------------------------------------------------------------------------
def test_switching_class_image_or_settings_does_not_retrace(unchanged, data):
    x, y = data
    a = Attributor(unchanged, layer="conv4")
    a.grad_cam(x[0], 0)
    a.smoothgrad(x[0], 1, samples=2)
    a.integrated_gradients(x[0], 1, steps=4)
    first = a.trace_count
    assert first == 3  # layer, noisy and path gradients: one trace each
    for i in range(1, 4):
        a.grad_cam(x[i], int(y[i]))
        a.grad_cam_plus_plus(x[i], (i + 3) % 8)
        a.layer_attribution(x[:i], i)
        a.saliency(x[i], i)
        a.smoothgrad(x[:2], [i, 7 - i], samples=3, noise=0.1 * i)
        a.integrated_gradients(x[i], i, steps=3 + i, baseline="blurred")
    assert a.trace_count == first
    objective = channel("conv3", 5)
    b = Attributor(unchanged, target=objective)
    b.saliency(x[0])
    traced = b.trace_count
    objective.set_index(11)
    b.saliency(x[1])
    assert b.trace_count == traced


def test_one_call_functions_reuse_the_compiled_attributor(unchanged, data):
    x, _ = data
    attribution.grad_cam(unchanged, x[0], 2)
    a = attribution.attributor(unchanged)
    before = a.trace_count
    attribution.grad_cam(unchanged, x[3], 6)
    attribution.saliency(unchanged, x[4], 1)
    assert attribution.attributor(unchanged) is a and a.trace_count <= before + 1


# -- generators: progress, budget, stop ------------------------------------------------------------
def test_sampling_runs_in_budgeted_batches_with_progress_and_stops_on_an_event(unchanged, data):
    x, _ = data
    a = Attributor(unchanged, batch_size=4)
    steps = list(a.iter_smoothgrad(x[0], 3, samples=10))
    assert [s.done for s in steps] == [4, 8, 10] and steps[-1].result.complete
    assert not steps[0].result.complete and steps[0].fraction == 0.4
    stop = threading.Event()
    seen = []
    for p in a.iter_integrated_gradients(x[0], 3, steps=20, stop_event=stop):
        seen.append(p.done)
        stop.set()
    assert seen == [4]
    small = Attributor(
        unchanged, memory_budget=attribution.engine.bytes_per_sample(unchanged, a.preparer.spec) * 5
    )
    assert small.samples_per_call() == 5


# -- trust -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("quadrant", [(0, 0), (32, 32)])
def test_a_grating_patch_in_one_quadrant_gets_most_of_the_mass(unchanged, quadrant):
    r, c = quadrant
    image = np.full((64, 64, 3), 0.5, np.float32)
    image[r : r + 32, c : c + 32] = make_grating(32, angle_deg=0, period=6, color=(1, 0, 0))
    rows, cols = slice(r, r + 32), slice(c, c + 32)
    cam = attribution.grad_cam(unchanged, image)
    ig = attribution.integrated_gradients(unchanged, image)
    assert cam.classes == [0], "the demo model should see vertical red stripes"
    assert cam.mass_in(rows, cols) > 0.5, cam.mass_in(rows, cols)
    assert ig.mass_in(rows, cols) > 0.5, ig.mass_in(rows, cols)


# Spearman rank correlation of |map| between the trained demo model and the same architecture
# re-initialized (Adebayo et al. 2018), mean over 8 test images: maps that survive the
# randomization explain the image, not the model. Measured: saliency 0.14, SmoothGrad -0.02,
# Grad-CAM -0.19, IG 0.07 (IG keeps the input's structure by design: reported, no bound).
RANDOMIZATION_BOUNDS = {
    "saliency": 0.4,
    "smoothgrad": 0.4,
    "grad_cam": 0.5,
    "integrated_gradients": None,
}


def test_maps_change_when_the_weights_are_randomized(unchanged, data, keras, capsys):
    from scipy.stats import spearmanr

    x, y = data
    keras.utils.set_random_seed(1)
    random = build_demo_convnet(compile=False)
    report = {}
    for method, bound in RANDOMIZATION_BOUNDS.items():
        fn = getattr(attribution, method)
        trained, randomized = fn(unchanged, x, list(y)), fn(random, x, list(y))
        rho = []
        for a, b in zip(trained.heatmaps(), randomized.heatmaps(), strict=True):
            blank = a.std() == 0 or b.std() == 0  # a blank map keeps no structure
            rho.append(0.0 if blank else spearmanr(a.ravel(), b.ravel())[0])
        report[method] = float(np.mean(rho))
        if bound is not None:
            assert report[method] < bound, f"{method}: rank correlation {report[method]:.2f}"
    with capsys.disabled():
        print(
            "\nmodel randomization, mean Spearman rho:", {k: round(v, 2) for k, v in report.items()}
        )


# -- your own model: a Functional fine-tuning model around a nested base ---------------------------
def _fine_tuning_model(keras):
    """Rescaling -> nested base (two convs) -> GlobalAveragePooling2D -> softmax Dense, as in
    the Keras transfer-learning guide; takes uint8-range images."""
    keras.utils.set_random_seed(3)
    base = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        ],
        name="base",
    )
    inp = keras.Input((32, 32, 3), name="image")
    h = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inp)
    h = base(h, training=False)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(5, activation="softmax", name="head")(h)
    model = keras.Model(inp, out, name="fine_tuned")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model, base


def test_attribution_works_on_a_functional_fine_tuning_model(keras):
    import tensorflow as tf

    model, base = _fine_tuning_model(keras)
    snap = weights_snapshot(model)
    x = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    a = Attributor(model, layer="base/conv2", input_range=(0, 255))
    cam = a.grad_cam(x, [1, 4])
    # Direct: the same computation written out layer by layer with a tape.
    xs = tf.constant(x.astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xs)
        h = model.get_layer("rescale")(xs)
        acts = base.get_layer("conv2")(base.get_layer("pool")(base.get_layer("conv1")(h)))
        head = model.get_layer("head")
        logits = model.get_layer("gap")(acts) @ head.kernel + head.bias
        score = tf.reduce_sum(tf.gather(logits, [1, 4], axis=1, batch_dims=1))
    grads = tape.gradient(score, acts).numpy()
    weights = grads.mean(axis=(1, 2))
    expected = np.maximum(np.einsum("nhwk,nk->nhw", acts.numpy(), weights), 0)
    np.testing.assert_allclose(cam.values, expected, rtol=1e-4, atol=1e-6 * expected.max())
    np.testing.assert_allclose(
        cam.scores, tf.gather(logits, [1, 4], axis=1, batch_dims=1), rtol=1e-5
    )
    # Input gradients are with respect to the image in [0, 1]: 255 x d/d(pixel value).
    sal = a.saliency(x, [1, 4])
    pixel_grads = tape.gradient(score, xs).numpy()
    np.testing.assert_allclose(sal.values, 255.0 * pixel_grads, rtol=1e-3, atol=1e-6)
    ig = a.integrated_gradients(x, [1, 4])
    diff = np.abs(ig.scores - ig.baseline_scores)
    assert np.all(np.abs(ig.completeness_gap) < 0.01 * np.maximum(diff, 1.0)), ig.completeness_gap
    la = a.layer_attribution(x, [1, 4])
    assert la.layer == "base/conv2" and la.channels.shape == (2, 16)
    assert attribution.grad_cam(model, x[0], 2, input_range=(0, 255)).layer == "base/conv2"
    # Without input_range the range is read from the model's Rescaling layer, as FeatureMaps does.
    assert Attributor(model).preparer.input_range == (0.0, 255.0)
    np.testing.assert_allclose(
        Attributor(model, layer="base/conv2").grad_cam(x, [1, 4]).values,
        cam.values,
        rtol=1e-5,
        atol=1e-7,
    )
    assert_weights_identical(model, snap)
