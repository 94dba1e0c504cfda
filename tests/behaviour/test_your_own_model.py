"""The models users really bring: fine-tuned Functional models around a nested base (at any
depth, Sequential or Functional), preprocessing layers inside the model, integer inputs,
undefined image sizes, mixed precision and subclassed models.

Inner-layer results are checked against the base's own sub-model fed the outer
preprocessing by hand; weights stay bit-identical after every operation.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot

from nbviz import layers, optvis
from nbviz.errors import ModelError
from nbviz.featuremaps import FeatureMaps
from nbviz.landscape import evaluate_grid, grid_coords, random_directions
from nbviz.scaling import input_scaling

SIZE = 24


def _base(keras, kind: str, name: str = "base"):
    """A small conv base (Functional or Sequential) with a channel-rich inner layer."""
    keras.utils.set_random_seed(1)
    convs = [
        keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2"),
    ]
    if kind == "sequential":
        return keras.Sequential([keras.Input((SIZE, SIZE, 3)), *convs], name=name)
    inp = keras.Input((SIZE, SIZE, 3))
    x = inp
    for layer in convs:
        x = layer(x)
    return keras.Model(inp, x, name=name)


def _finetune(keras, base, outer: str = "functional"):
    """The keras.io transfer-learning recipe around ``base``."""
    head = [
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dropout(0.2, name="drop"),
        keras.layers.Dense(5, name="dense"),
    ]
    if outer == "sequential":
        return keras.Sequential(
            [keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1), base,
             *head], name="finetuned",
        )  # fmt: skip
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.RandomFlip(name="augment")(inputs)
    x = keras.layers.GaussianNoise(0.9, name="noise")(x)  # changes every value when training
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(x)
    x = base(x, training=False)
    for layer in head:
        x = layer(x)
    return keras.Model(inputs, x, name="finetuned")


def _sub(keras, model, layer):
    return keras.Model(model.inputs[0], model.get_layer(layer).output)


def _case(keras, kind):
    """``(fine-tuned model, inner layer name, reference)``; ``reference(pixels)`` is the inner
    layer's output from the innermost model's own graph, fed the outer Rescaling by hand."""
    if kind == "two-level":  # Functional outer -> Functional middle -> Sequential base
        base = _base(keras, "sequential", name="inner")
        inp = keras.Input((SIZE, SIZE, 3))
        middle = keras.Model(inp, keras.layers.Conv2D(4, 1, name="mix")(base(inp)), name="base")
        name = "base/inner/c2"
    else:
        base_kind, outer = {
            "functional-in-functional": ("functional", "functional"),
            "sequential-in-functional": ("sequential", "functional"),
            "functional-in-sequential": ("functional", "sequential"),
        }[kind]
        base = middle = _base(keras, base_kind)
        name = "base/c2"
    model = _finetune(
        keras, middle, "sequential" if kind == "functional-in-sequential" else "functional"
    )
    sub = _sub(keras, base, "c2")
    return model, name, lambda px: sub(px.astype(np.float32) / 127.5 - 1.0, training=False).numpy()


KINDS = [
    "functional-in-functional",
    "sequential-in-functional",
    "functional-in-sequential",
    "two-level",
]


@pytest.fixture
def pixels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_inner_feature_maps_equal_the_base_fed_the_outer_preprocessing(keras, kind, pixels):
    model, name, reference = _case(keras, kind)
    before = weights_snapshot(model)
    fm = FeatureMaps(model)
    assert name in [n for n, _ in fm.layer_choices()]
    assert fm.preparer.input_range == (0.0, 255.0)  # read from the Rescaling layer
    got = fm.activations(pixels, name)
    want = reference(pixels)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_weights_identical(model, before)


def test_inner_activations_and_logits_come_from_one_forward_pass(keras, pixels):
    calls = []

    class Counting(keras.layers.Layer):
        def call(self, x):
            calls.append(1)
            return x

    base_in = keras.Input((SIZE, SIZE, 3))
    y = Counting(name="count")(keras.layers.Conv2D(4, 3, name="c1")(base_in))
    base = keras.Model(base_in, keras.layers.Conv2D(5, 3, name="c2")(y), name="base")
    model = _finetune(keras, base)
    ex = layers.build_extractor(model, ["base/c1", "base/c2", "dense"])
    calls.clear()
    feats1, feats2, logits = ex(pixels.astype(np.float32), training=False)
    assert len(calls) == 1  # the base ran once for the inner maps and the logits
    np.testing.assert_allclose(
        logits, model(pixels.astype(np.float32), training=False), rtol=1e-5, atol=1e-6
    )
    assert {id(w) for w in ex.weights} <= {id(w) for w in model.weights}  # shared, not copied


def test_an_early_inner_tap_does_not_run_the_rest_of_the_network(keras):
    model, _, _ = _case(keras, "functional-in-functional")
    early = layers.build_extractor(model, ["base/c1"])
    full = layers.build_extractor(model, ["dense"])
    assert len(early.weights) == 2 < len(full.weights)  # c1's kernel and bias only


def test_optvis_objective_mixes_inner_channel_and_outer_logit(keras):
    model, name, _ = _case(keras, "functional-in-functional")
    before = weights_snapshot(model)
    objective = optvis.class_logit("dense", 2) - 0.5 * optvis.channel(name, 7)
    r = optvis.Renderer(model, objective, transforms="none", seed=0)
    assert r.value_range == (0.0, 255.0)
    x = np.random.default_rng(1).uniform(0, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    got = float(r.evaluate(x)[0])
    pixels = x * 255.0
    logit = model(pixels, training=False).numpy()[0, 2]
    c2 = model.get_layer("base").get_layer("c2")
    into_c2 = keras.Model(model.get_layer("base").inputs[0], c2.input)(pixels / 127.5 - 1.0)
    pre = keras.ops.conv(into_c2, c2.kernel, padding="same") + c2.bias  # read before the ReLU
    want = logit - 0.5 * float(np.mean(pre.numpy()[..., 7]))
    assert got == pytest.approx(want, rel=1e-4, abs=1e-4)
    result = optvis.visualize(model, objective, steps=4, seed=0)
    assert np.isfinite(result.losses).all()
    assert_weights_identical(model, before)


def test_mobilenetv2_finetuning_recipe(keras):
    """The keras.io recipe with a real (random-weight) MobileNetV2 base."""
    base = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35
    )
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="dense")(x))
    before = weights_snapshot(model)
    name = f"{base.name}/block_5_add"
    fm = FeatureMaps(model)
    image = np.random.default_rng(2).integers(0, 256, (96, 96, 3)).astype(np.uint8)
    got = fm.activations(image, name)
    ref = keras.Model(base.inputs[0], base.get_layer("block_5_add").output)
    want = ref(image[None].astype(np.float32) / 127.5 - 1.0, training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    objective = optvis.class_logit("dense", 2) - 0.5 * optvis.channel(name, 7)
    assert np.isfinite(optvis.visualize(model, objective, steps=2, size=96).losses).all()
    assert_weights_identical(model, before)


def test_loss_grid_on_a_finetuning_model(keras, pixels):
    model, _, _ = _case(keras, "functional-in-functional")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = weights_snapshot(model)
    y = np.array([0, 3])
    surface = evaluate_grid(
        model,
        pixels.astype(np.float32),
        y,
        random_directions(model, seed=0),
        grid_coords(3),
        grid_coords(3),
    )
    centre = surface.loss[1, 1]
    assert centre == pytest.approx(
        model.evaluate(pixels.astype(np.float32), y, verbose=0), rel=1e-4
    )
    assert_weights_identical(model, before)


# -- the model's own input scaling -------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (lambda k: k.layers.Rescaling(1 / 255.0), (0.0, 255.0)),
        (lambda k: k.layers.Rescaling(1 / 127.5, offset=-1), (0.0, 255.0)),
        (lambda k: k.layers.Rescaling(2.0, offset=-1), (0.0, 1.0)),
        (
            lambda k: k.layers.Normalization(mean=[124.0, 116, 104], variance=[3364.0, 3249, 3316]),
            (0.0, 255.0),
        ),
        (
            lambda k: k.layers.Normalization(
                mean=[0.485, 0.456, 0.406], variance=[0.052, 0.05, 0.051]
            ),
            (0.0, 1.0),
        ),
    ],
)
def test_input_range_is_read_from_the_models_preprocessing(keras, first, expected):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.RandomFlip(),
            first(keras),
            keras.layers.Conv2D(2, 3, name="c"),
        ]
    )
    assert input_scaling(model).range == expected
    fm = FeatureMaps(model)
    assert fm.preparer.input_range == expected
    assert FeatureMaps(model, input_range=(0, 1)).preparer.input_range == (
        0.0,
        1.0,
    )  # explicit wins
    assert optvis.Renderer(model, "c:0", value_range=(-1, 1)).value_range == (-1.0, 1.0)


def test_keras_applications_with_built_in_preprocessing_take_0_to_255(keras):
    base = keras.applications.EfficientNetB0(
        weights=None, include_top=False, input_shape=(32, 32, 3)
    )
    assert input_scaling(base).range == (0.0, 255.0)
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    assert input_scaling(plain) is None
    assert FeatureMaps(plain).preparer.input_range == (0.0, 1.0)


def test_uint8_pixels_reach_a_rescaling_model_as_0_to_255(keras):
    inp = keras.Input((8, 8, 3))
    model = keras.Model(
        inp,
        keras.layers.Rescaling(1.0, name="seen")(
            keras.layers.Rescaling(1 / 255.0, name="scale")(inp)
        ),
    )
    image = np.full((8, 8, 3), 200, np.uint8)
    seen = FeatureMaps(model).activations(image, "scale")
    np.testing.assert_allclose(seen, 200 / 255.0, rtol=1e-6)


def test_integer_input_models_get_rounded_integers_and_a_clear_optvis_error(keras):
    inp = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inp)
    model = keras.Model(inp, keras.layers.Conv2D(2, 3, name="c")(x))
    image = np.full((8, 8, 3), 0.5, np.float32)  # 0..1 float: becomes 127.5 -> 128
    seen = FeatureMaps(model).activations(image, "scale")
    np.testing.assert_allclose(seen, 128 / 255.0, rtol=1e-6)
    with pytest.raises(ModelError, match="clone_model"):
        optvis.Renderer(model, "c:0")


def test_undefined_image_size(keras):
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same", name="c")(inp))
    fm = FeatureMaps(model)
    assert fm.activations(np.zeros((20, 30, 3), np.uint8), "c").shape == (1, 20, 30, 4)
    assert fm.activations(np.zeros((12, 10, 3), np.uint8), "c").shape == (1, 12, 10, 4)
    assert optvis.visualize(model, "c:1", steps=2, size=40).images.shape == (1, 40, 40, 3)


@pytest.fixture
def mixed_precision(keras):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_in_all_three_backends(keras, mixed_precision, pixels):
    model, name, _ = _case(keras, "functional-in-functional")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model.get_layer("dense").compute_dtype == "float16"
    before = weights_snapshot(model)
    acts = FeatureMaps(model).activations(pixels, name)
    assert acts.dtype == np.float32 and np.isfinite(acts).all()
    r = optvis.Renderer(
        model, optvis.channel(name, 3) + optvis.class_logit("dense", 1), transforms="none"
    )
    assert r.table.uses_preactivation(name)  # honoured under mixed precision
    res = r.run(3)
    assert res.losses.dtype == np.float32 and np.isfinite(res.losses).all()
    surface = evaluate_grid(
        model,
        pixels.astype(np.float32),
        np.array([0, 1]),
        random_directions(model, seed=0),
        grid_coords(3),
        grid_coords(3),
    )
    assert np.isfinite(surface.loss).all()
    assert_weights_identical(model, before)


def test_subclassed_models_get_landscapes_and_a_precise_error_for_layers(keras):
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.dense = keras.layers.Dense(8, activation="relu")
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.dense(x))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1)).astype(np.float32)
    y = x**2
    net = Net()
    net.compile(loss="mse")
    net(x[:1])
    before = weights_snapshot(net)
    surface = evaluate_grid(
        net, x, y, random_directions(net, seed=0), grid_coords(3), grid_coords(3)
    )
    assert surface.loss[1, 1] == pytest.approx(net.evaluate(x, y, verbose=0), rel=1e-4)
    with pytest.raises(ModelError, match="Functional API"):
        FeatureMaps(net)
    assert_weights_identical(net, before)


def test_widgets_on_a_model_of_undefined_size(keras):
    from nbviz import FeatureMapExplorer, OptVisWidget

    inp = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c")(x)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    image = np.zeros((40, 80, 3), np.uint8)
    explorer = FeatureMapExplorer(model, image=image)
    try:
        assert explorer.layer == "c"  # not the Rescaling layer
        labels = [label for label, _ in explorer.layer_dropdown.options]
        assert "c  ?x?x4" in labels and not any("None" in label for label in labels)
        assert explorer.backend.display_image(image).shape == (112, 224, 3)  # longer side 224
        explorer.size_dropdown.value = 0  # each image keeps its own size
        assert explorer.backend.display_image(image).shape == (40, 80, 3)
        assert explorer.wait(timeout=120)
        assert explorer.error is None
    finally:
        explorer.close()
    opt = OptVisWidget(model)
    try:
        assert not any("None" in label for label, _ in opt.layer_dropdown.options)
    finally:
        opt.close()


def test_all_three_widgets_on_the_finetuning_recipe(keras, pixels, no_thread_leak):
    from nbviz import FeatureMapExplorer, LossLandscapeWidget, OptVisWidget

    model, name, reference = _case(keras, "functional-in-functional")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = weights_snapshot(model)
    explorer = FeatureMapExplorer(model, image=pixels[0], layer=name)
    opt = OptVisWidget(model, layer=name, steps=8)
    land = LossLandscapeWidget(
        model, pixels.astype(np.float32), np.array([0, 3]), directions="random", resolution=5
    )
    try:
        assert explorer.wait(120) and explorer.error is None, explorer.status.value
        np.testing.assert_allclose(
            explorer.backend.activations(pixels[0], name),
            reference(pixels[:1]),
            rtol=1e-5,
            atol=1e-5,
        )
        assert name in [n for _, n in opt.layer_dropdown.options]
        assert opt.start() and opt.wait(120) and opt.error is None, opt.status.value
        assert opt.result_array().shape == (1, SIZE, SIZE, 3)
        assert land.compute() and land.wait(120) and land.error is None, land.status.value
        assert np.isfinite(land.surface.loss).all()
    finally:
        for w in (explorer, opt, land):
            w.close()
    assert_weights_identical(model, before)
