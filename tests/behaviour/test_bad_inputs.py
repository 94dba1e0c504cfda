"""Bad-input matrix: every public entry point, fed wrong input, gives a documented error that
names the fix (or handles the input in a stated way), and never leaves a widget dead or an
nbviz thread running.

One table, ``CASES``: (id, call, expected error type, substring of the message that names the
fix). ``call`` receives the module-wide :class:`Env` of small models and data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import mlp, parabola

from nbviz import attribution, layers
from nbviz.demo import load_application
from nbviz.errors import (
    ChannelError,
    DataError,
    ImageError,
    LayerError,
    ModelError,
    NbvizError,
    PathError,
    SurfaceFileError,
    WeightsUnavailableError,
)
from nbviz.featuremaps import FeatureMaps, prepare_image
from nbviz.landscape import (
    HessianOperator,
    SurfaceFile,
    WeightLayout,
    WeightPathRecorder,
    evaluate_grid,
    evaluate_line,
    grid_coords,
    hessian_eigen,
    iter_grid,
    pca_directions,
    project_path,
    random_directions,
)
from nbviz.landscape.sharpness import SharpnessTracker
from nbviz.optvis import Renderer, channel, class_logit, direction, neuron, visualize


def _convnet(keras, shape=(16, 16, 3), name="conv", data_format="channels_last"):
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape, name="image")
    x = keras.layers.Conv2D(
        4, 3, padding="same", activation="relu", name="conv1", data_format=data_format
    )(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap", data_format=data_format)(x)
    out = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inp, out, name=name)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _Subclassed(keras):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.c = keras.layers.Conv2D(3, 3, name="c")
            self.gap = keras.layers.GlobalAveragePooling2D()

        def call(self, x):
            return self.gap(self.c(x))

    return Subclassed()


def _uint8_model(keras):
    inp = keras.Input((8, 8, 3), dtype="uint8")
    return keras.Model(
        inp, keras.layers.Conv2D(2, 3, name="c")(keras.layers.Rescaling(1 / 255)(inp))
    )


@dataclass
class Env:
    keras: Any
    conv: Any  # (16, 16, 3) convnet, compiled
    chw_input: Any  # channels-last layers on a (3, 16, 16) input: a mistaken CHW model
    chw_layers: Any  # data_format="channels_first" layers
    unbuilt: Any
    two_inputs: Any
    nested_functional: Any
    nested_sequential: Any
    shared_base: Any  # one nested base called on two inputs
    subclassed: Any  # a built subclassed keras.Model
    mlp: Any  # compiled parabola MLP
    mlp_no_loss: Any
    x: np.ndarray
    y: np.ndarray
    dirs: Any  # 2 random directions of mlp
    tmp: Any
    surface_path: str  # a finished 3x3 surface of mlp


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import keras

    conv = _convnet(keras)
    i1, i2 = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model(
        [i1, i2],
        keras.layers.Conv2D(2, 3, name="c")(keras.layers.Add()([i1, i2])),
        name="two_inputs",
    )
    inner = _convnet(keras, name="inner")
    outer_in = keras.Input((16, 16, 3))
    nested_functional = keras.Model(
        outer_in, keras.layers.Dense(2)(inner(outer_in)), name="outer_functional"
    )
    nested_sequential = keras.Sequential(
        [keras.Input((16, 16, 3)), _convnet(keras, name="base"), keras.layers.Dense(2)],
        name="outer_sequential",
    )
    shared_in = [keras.Input((16, 16, 3)), keras.Input((16, 16, 3))]
    twice = _convnet(keras, name="twice")
    shared_base = keras.Model(
        shared_in[0],
        keras.layers.Add()([twice(shared_in[0]), twice(shared_in[0] * 0.5)]),
        name="shared_base",
    )
    subclassed = _Subclassed(keras)
    subclassed(np.zeros((1, 16, 16, 3), np.float32))
    m = mlp(seed=0, width=8)
    x, y = parabola(32)
    tmp = tmp_path_factory.mktemp("bad_inputs")
    dirs = random_directions(m, seed=0)
    surface_path = str(tmp / "ok.h5")
    evaluate_grid(m, x, y, dirs, grid_coords(3), grid_coords(3), store=surface_path)
    return Env(
        keras=keras,
        conv=conv,
        chw_input=_convnet(keras, (3, 16, 16), "chw_input"),
        chw_layers=_convnet(keras, (3, 16, 16), "chw_layers", data_format="channels_first"),
        unbuilt=keras.Sequential([keras.layers.Conv2D(4, 3)], name="unbuilt"),
        two_inputs=two,
        nested_functional=nested_functional,
        nested_sequential=nested_sequential,
        shared_base=shared_base,
        subclassed=subclassed,
        mlp=m,
        mlp_no_loss=mlp(seed=0, width=8, compile=False),
        x=x,
        y=y,
        dirs=dirs,
        tmp=tmp,
        surface_path=surface_path,
    )


IMG = np.zeros((16, 16, 3), np.float32)


def _fm(e, model=None):
    return FeatureMaps(model if model is not None else e.conv)


def _grid(e, **kw):
    kw.setdefault("xs", grid_coords(3))
    kw.setdefault("ys", grid_coords(3))
    model, x, y, dirs = (
        kw.pop(k, d) for k, d in (("model", e.mlp), ("x", e.x), ("y", e.y), ("dirs", e.dirs))
    )
    return evaluate_grid(model, x, y, dirs, **kw)


def _file(e, name: str, content: bytes | None = None) -> str:
    path = e.tmp / name
    if content is not None:
        path.write_bytes(content)
    return str(path)


def _foreign_h5(e) -> str:
    path = str(e.tmp / "foreign.h5")
    with h5py.File(path, "w") as f:
        f["weights"] = np.zeros(3)
    return path


def _truncated(e) -> str:
    data = open(e.surface_path, "rb").read()
    return _file(e, "truncated.h5", data[: len(data) // 2])


def _missing_dataset(e) -> str:
    import shutil

    path = str(e.tmp / "no_loss.h5")
    shutil.copy(e.surface_path, path)
    with h5py.File(path, "r+") as f:
        del f["loss"]
    return path


def _recorder_on(e, model, **kw):
    rec = WeightPathRecorder(**kw)
    rec.set_model(model)
    rec.on_train_begin()
    return rec


def _tracker_on(e, model, **kw):
    tracker = SharpnessTracker(e.x, e.y, background=False, **kw)
    tracker.set_model(model)
    tracker.on_train_begin()  # what fit calls first: the checks run on the training thread
    return tracker


def _rounded_loss(y_true, y_pred):
    import tensorflow as tf

    return tf.round(tf.abs(y_true - y_pred))


def _int_weight_model(e):
    class Counter(e.keras.layers.Layer):
        def build(self, shape):
            self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros")

        def call(self, x):
            return x

    model = e.keras.Sequential([e.keras.Input((1,)), Counter(), e.keras.layers.Dense(1)])
    model.compile(loss="mse")
    return model


FIX = "Fix"
CASES: list[tuple[str, Any, type, str]] = [
    # -- layers ---------------------------------------------------------------------------------
    (
        "find_layer/typo",
        lambda e: layers.find_layer(e.conv, "cnov1"),
        LayerError,
        "Did you mean 'conv1'",
    ),
    (
        "find_layer/int",
        lambda e: layers.find_layer(e.conv, 1),
        LayerError,
        "Layer names are strings",
    ),
    (
        "find_layer/nested-ambiguous-or-missing",
        lambda e: layers.find_layer(e.nested_sequential, "base/nope"),
        LayerError,
        "Valid layers",
    ),
    (
        "build_extractor/unknown",
        lambda e: layers.build_extractor(e.conv, ["nope"]),
        LayerError,
        "Valid layers",
    ),
    (
        "build_extractor/unbuilt",
        lambda e: layers.build_extractor(e.unbuilt, ["x"]),
        ModelError,
        "model.build(",
    ),
    (
        "build_extractor/two-inputs",
        lambda e: layers.build_extractor(e.two_inputs, ["c"]),
        ModelError,
        "single-input keras.Model",
    ),
    (
        "build_extractor/base-called-twice",
        lambda e: layers.build_extractor(e.shared_base, ["twice/conv1"]),
        ModelError,
        "keras.Model around the one call",
    ),
    (
        "build_extractor/subclassed",
        lambda e: layers.build_extractor(e.subclassed, ["c"]),
        ModelError,
        "Functional API",
    ),
    ("FeatureMaps/subclassed", lambda e: _fm(e, e.subclassed), ModelError, "Functional API"),
    ("Renderer/subclassed", lambda e: Renderer(e.subclassed, "c:0"), ModelError, "Functional API"),
    (
        "Renderer/integer-input",
        lambda e: Renderer(_uint8_model(e.keras), "c:0"),
        ModelError,
        "clone_model",
    ),
    # -- feature maps ---------------------------------------------------------------------------
    ("FeatureMaps/unbuilt", lambda e: _fm(e, e.unbuilt), ModelError, "keras.Input("),
    ("FeatureMaps/two-inputs", lambda e: _fm(e, e.two_inputs), ModelError, "single-input"),
    (
        "FeatureMaps/not-an-image-model",
        lambda e: _fm(e, e.mlp),
        ModelError,
        "keras.Input((64, 64, 3))",
    ),
    (
        "FeatureMaps/channels-first-input",
        lambda e: _fm(e, e.chw_input),
        ModelError,
        "keras.Input((16, 16, 3))",
    ),
    (
        "FeatureMaps/channels-first-layers",
        lambda e: _fm(e, e.chw_layers),
        ModelError,
        "data_format='channels_last'",
    ),
    (
        "FeatureMaps/unknown-layer",
        lambda e: _fm(e).activations(IMG, "conv9"),
        LayerError,
        "Did you mean 'conv1'",
    ),
    ("FeatureMaps/layer-type", lambda e: _fm(e).activations(IMG, 3), LayerError, "strings"),
    (
        "FeatureMaps/dense-layer",
        lambda e: _fm(e).activations(IMG, "logits"),
        LayerError,
        "Pick one of the spatial layers: 'conv1'",
    ),
    (
        "FeatureMaps/channel-too-big",
        lambda e: _fm(e).feature_map(IMG, "conv1", 4),
        ChannelError,
        "0..3",
    ),
    (
        "FeatureMaps/channel-negative",
        lambda e: _fm(e).feature_map(IMG, "conv1", -1),
        ChannelError,
        "0..3",
    ),
    (
        "FeatureMaps/channel-float",
        lambda e: _fm(e).feature_map(IMG, "conv1", 1.5),
        ChannelError,
        "pass an int in 0..3",
    ),
    (
        "FeatureMaps/rank-1",
        lambda e: _fm(e).activations(np.zeros(5), "conv1"),
        ImageError,
        "reshape it to (height, width",
    ),
    (
        "FeatureMaps/rank-5",
        lambda e: _fm(e).activations(np.zeros((1, 1, 16, 16, 3)), "conv1"),
        ImageError,
        "np.squeeze",
    ),
    (
        "FeatureMaps/5-channels",
        lambda e: _fm(e).activations(np.zeros((16, 16, 5)), "conv1"),
        ImageError,
        "np.moveaxis",
    ),
    (
        "FeatureMaps/chw-image",
        lambda e: _fm(e).activations(np.zeros((3, 16, 16)), "conv1"),
        ImageError,
        "np.moveaxis(image, 0, -1)",
    ),
    (
        "FeatureMaps/string-dtype",
        lambda e: _fm(e).activations(np.full((4, 4), "a"), "conv1"),
        ImageError,
        "np.asarray(image, dtype=np.float32)",
    ),
    (
        "FeatureMaps/complex-dtype",
        lambda e: _fm(e).activations(IMG.astype(complex), "conv1"),
        ImageError,
        "dtype complex128",
    ),
    (
        "FeatureMaps/empty-batch",
        lambda e: _fm(e).activations(np.zeros((0, 16, 16, 3)), "conv1"),
        ImageError,
        "pass at least one image",
    ),
    (
        "FeatureMaps/zero-size-image",
        lambda e: _fm(e).activations(np.zeros((0, 16, 3)), "conv1"),
        ImageError,
        "no pixels",
    ),
    (
        "FeatureMaps/batch-to-feature_map",
        lambda e: _fm(e).feature_map(np.zeros((2, 16, 16, 3)), "conv1", 0),
        ImageError,
        "images[i]",
    ),
    (
        "FeatureMaps/resize-off",
        lambda e: FeatureMaps(e.conv, resize=False).activations(np.zeros((8, 8, 3)), "conv1"),
        ImageError,
        "leave resize=True",
    ),
    (
        "prepare_image/rank-1",
        lambda e: prepare_image(np.zeros(5), (None, 16, 16, 3)),
        ImageError,
        "reshape",
    ),
    (
        "prepare_image/batch",
        lambda e: prepare_image(np.zeros((2, 16, 16, 3)), (None, 16, 16, 3)),
        ImageError,
        "ImagePreparer.prepare",
    ),
    (
        "prepare_image/not-image-shape",
        lambda e: prepare_image(IMG, (None, 16)),
        ModelError,
        "(batch, height, width, channels)",
    ),
    (
        "prepare_image/channels-first-shape",
        lambda e: prepare_image(IMG, (None, 3, 16, 16)),
        ModelError,
        "keras.Input((16, 16, 3))",
    ),
    (
        "prepare_image/input-range-reversed",
        lambda e: prepare_image(IMG, (None, 16, 16, 3), input_range=(1, 0)),
        ValueError,
        "high > low",
    ),
    # -- optvis -----------------------------------------------------------------------------------
    ("Renderer/unbuilt", lambda e: Renderer(e.unbuilt, "conv1:0"), ModelError, "keras.Input("),
    ("Renderer/two-inputs", lambda e: Renderer(e.two_inputs, "c:0"), ModelError, "single-input"),
    (
        "Renderer/not-an-image-model",
        lambda e: Renderer(e.mlp, "h1:0"),
        ModelError,
        "pass an image model",
    ),
    (
        "Renderer/channels-first-input",
        lambda e: Renderer(e.chw_input, "conv1:0"),
        ModelError,
        "channels-last",
    ),
    (
        "Renderer/channels-first-layers",
        lambda e: Renderer(e.chw_layers, "conv1:0"),
        ModelError,
        "data_format='channels_last'",
    ),
    (
        "Renderer/unknown-layer",
        lambda e: Renderer(e.conv, channel("cnov1", 0)),
        LayerError,
        "Did you mean 'conv1'",
    ),
    ("Renderer/unit-too-big", lambda e: Renderer(e.conv, "conv1:4"), ChannelError, "0..3"),
    (
        "Renderer/unit-negative",
        lambda e: Renderer(e.conv, channel("conv1", -1)),
        ChannelError,
        "0..3",
    ),
    (
        "Renderer/shorthand-without-unit",
        lambda e: Renderer(e.conv, "conv1"),
        ChannelError,
        "add the unit index after a colon",
    ),
    (
        "Renderer/shorthand-bad-unit",
        lambda e: Renderer(e.conv, "conv1:x"),
        ChannelError,
        "'conv3:12'",
    ),
    ("Renderer/objective-type", lambda e: Renderer(e.conv, 42), TypeError, "'layer:unit'"),
    ("channel/layer-type", lambda e: channel(3, 0), LayerError, "strings"),
    (
        "class_logit/on-conv",
        lambda e: Renderer(e.conv, class_logit("conv1", 0)),
        LayerError,
        "use channel()",
    ),
    (
        "neuron/on-dense",
        lambda e: Renderer(e.conv, neuron("logits", 0)),
        LayerError,
        "class_logit()",
    ),
    (
        "direction/length",
        lambda e: Renderer(e.conv, direction("conv1", np.ones(7))),
        ChannelError,
        "vector of length 4",
    ),
    (
        "Renderer/size-zero",
        lambda e: Renderer(e.conv, "conv1:0", size=0),
        ImageError,
        "at least 8x8",
    ),
    (
        "Renderer/size-negative",
        lambda e: Renderer(e.conv, "conv1:0", size=-5),
        ImageError,
        "at least 8x8",
    ),
    ("Renderer/batch-zero", lambda e: Renderer(e.conv, "conv1:0", batch=0), ImageError, ">= 1"),
    (
        "Renderer/batch-vs-units",
        lambda e: Renderer(e.conv, "conv1:0,1", batch=3),
        ChannelError,
        "leave batch unset",
    ),
    (
        "Renderer/set_channels-out-of-range",
        lambda e: Renderer(e.conv, "conv1:0").set_channels(9),
        ChannelError,
        "0..3",
    ),
    (
        "Renderer/evaluate-shape",
        lambda e: Renderer(e.conv, "conv1:0").evaluate(np.zeros((2, 2))),
        ImageError,
        "(1, 16, 16, 3)",
    ),
    (
        "Renderer/every-zero",
        lambda e: list(Renderer(e.conv, "conv1:0").frames(2, every=0)),
        ValueError,
        "every must be >= 1",
    ),
    (
        "render/steps-negative",
        lambda e: visualize(e.conv, "conv1:0", steps=-1),
        ValueError,
        "steps must be >= 0",
    ),
    # -- landscape --------------------------------------------------------------------------------
    (
        "random_directions/unbuilt",
        lambda e: random_directions(e.unbuilt),
        ModelError,
        "give it an Input",
    ),
    ("random_directions/n-zero", lambda e: random_directions(e.mlp, n=0), ValueError, ">= 1"),
    (
        "random_directions/normalization",
        lambda e: random_directions(e.mlp, normalization="bogus"),
        ValueError,
        "'filter'",
    ),
    ("evaluate_grid/no-loss", lambda e: _grid(e, model=e.mlp_no_loss), ModelError, "pass loss="),
    ("evaluate_grid/unknown-loss", lambda e: _grid(e, loss="bogus"), ModelError, "Keras loss name"),
    (
        "evaluate_grid/x-shape",
        lambda e: _grid(e, x=np.zeros((32, 3), np.float32)),
        DataError,
        "expected shape (N, 1)",
    ),
    (
        "evaluate_grid/x-y-lengths",
        lambda e: _grid(e, y=e.y[:5]),
        DataError,
        "same number of examples",
    ),
    (
        "evaluate_grid/empty-data",
        lambda e: _grid(e, x=e.x[:0], y=e.y[:0]),
        DataError,
        "at least one example",
    ),
    (
        "evaluate_grid/tf-dataset",
        lambda e: _grid(e, x=__import__("tensorflow").data.Dataset.from_tensor_slices(e.x)),
        DataError,
        "take a fixed sample",
    ),
    ("evaluate_grid/zero-size-grid", lambda e: _grid(e, xs=[]), ValueError, "see grid_coords"),
    (
        "evaluate_grid/2-d-coords",
        lambda e: _grid(e, xs=np.zeros((2, 2))),
        ValueError,
        "1-D coordinate arrays",
    ),
    (
        "evaluate_grid/one-direction",
        lambda e: _grid(e, dirs=random_directions(e.mlp, n=1)),
        ValueError,
        "evaluate_line for one direction",
    ),
    (
        "evaluate_grid/other-models-directions",
        lambda e: _grid(e, dirs=random_directions(e.conv)),
        ModelError,
        "make the directions from this model",
    ),
    ("evaluate_grid/subset-zero", lambda e: _grid(e, subset=0), DataError, ">= 1 example"),
    ("evaluate_grid/subset-negative", lambda e: _grid(e, subset=-3), DataError, ">= 1 example"),
    ("evaluate_grid/subset-fraction", lambda e: _grid(e, subset=1.5), DataError, "(0, 1]"),
    (
        "iter_grid/zero-size-grid",
        lambda e: next(iter_grid(e.mlp, e.x, e.y, e.dirs, [], [0.0])),
        ValueError,
        "grid_coords",
    ),
    ("grid_coords/zero", lambda e: grid_coords(0), ValueError, "n >= 1"),
    ("grid_coords/negative-range", lambda e: grid_coords(5, -1.0), ValueError, "lo < hi"),
    ("grid_coords/reversed-range", lambda e: grid_coords(5, (1.0, -1.0)), ValueError, "lo < hi"),
    (
        "evaluate_line/two-directions",
        lambda e: evaluate_line(e.mlp, e.x, e.y, e.dirs, [0.0, 1.0]),
        ValueError,
        "1 direction",
    ),
    (
        "evaluate_line/x-shape",
        lambda e: evaluate_line(e.mlp, np.zeros((32, 2)), e.y),
        DataError,
        "reshape or preprocess x",
    ),
    ("project_path/empty", lambda e: project_path([], e.dirs), PathError, "record at least two"),
    (
        "project_path/wrong-width",
        lambda e: project_path(np.zeros((3, 5)), e.dirs),
        PathError,
        "WeightLayout.flatten",
    ),
    (
        "project_path/rank-1",
        lambda e: project_path(np.zeros(5), e.dirs),
        PathError,
        "(n_snapshots,",
    ),
    (
        "project_path/other-model",
        lambda e: project_path([e.conv.get_weights()], e.dirs),
        PathError,
        "weights taken from this model",
    ),
    (
        "pca_directions/one-snapshot",
        lambda e: pca_directions([e.mlp.get_weights()], e.mlp),
        PathError,
        "at least 3 snapshots",
    ),
    (
        "pca_directions/nan-path",
        lambda e: pca_directions(
            np.full((5, WeightLayout.from_model(e.mlp).n_params), np.nan, np.float32), e.mlp
        ),
        PathError,
        "cut the path before it",
    ),
    (
        "pca_directions/constant-path",
        lambda e: pca_directions(
            np.zeros((5, WeightLayout.from_model(e.mlp).n_params), np.float32), e.mlp
        ),
        PathError,
        "record more training steps",
    ),
    (
        "WeightPathRecorder/k-zero",
        lambda e: WeightPathRecorder(every_k_batches=0),
        PathError,
        ">= 1",
    ),
    (
        "WeightPathRecorder/overflow",
        lambda e: WeightPathRecorder(overflow="x"),
        PathError,
        "'thin'",
    ),
    (
        "WeightPathRecorder/budget-too-small",
        lambda e: _recorder_on(e, e.conv, memory_budget_mb=1e-4),
        PathError,
        "raise memory_budget_mb",
    ),
    (
        "WeightPathRecorder/unbuilt",
        lambda e: _recorder_on(e, e.unbuilt),
        ModelError,
        "give it an Input",
    ),
    (
        "WeightPathRecorder/other-model",
        lambda e: _reuse_recorder(e),
        PathError,
        "new WeightPathRecorder",
    ),
    (
        "WeightPathRecorder/nothing-recorded",
        lambda e: WeightPathRecorder().snapshots(),
        PathError,
        "model.fit(callbacks",
    ),
    (
        "SurfaceFile.open/missing",
        lambda e: SurfaceFile.open(str(e.tmp / "nope.h5")),
        SurfaceFileError,
        "check the path",
    ),
    (
        "SurfaceFile.open/not-hdf5",
        lambda e: SurfaceFile.open(_file(e, "junk.h5", b"junk" * 64)),
        SurfaceFileError,
        "not an HDF5 file",
    ),
    (
        "SurfaceFile.open/truncated",
        lambda e: SurfaceFile.open(_truncated(e)),
        SurfaceFileError,
        "delete it or choose another path",
    ),
    (
        "SurfaceFile.open/foreign-hdf5",
        lambda e: SurfaceFile.open(_foreign_h5(e)),
        SurfaceFileError,
        "leave that file be",
    ),
    (
        "SurfaceFile.open/missing-dataset",
        lambda e: SurfaceFile.open(_missing_dataset(e)),
        SurfaceFileError,
        "incomplete",
    ),
    (
        "SurfaceFile.open/a-directory",
        lambda e: SurfaceFile.open(str(e.tmp)),
        SurfaceFileError,
        "choose another path",
    ),
    (
        "SurfaceFile.open/other-model",
        lambda e: SurfaceFile.open(e.surface_path, model=e.conv),
        SurfaceFileError,
        "use another file path for this model",
    ),
    (
        "evaluate_grid/store-in-missing-directory",
        lambda e: _grid(e, store=str(e.tmp / "no" / "such" / "dir" / "s.h5")),
        SurfaceFileError,
        "os.makedirs",
    ),
    (
        "evaluate_grid/ragged-list-data",
        lambda e: _grid(e, x=[[0.0], [1.0, 2.0]] * 16),
        DataError,
        "every example the same shape",
    ),
    (
        "FeatureMaps/missing-image-file",
        lambda e: _fm(e).activations(str(e.tmp / "nope.png"), "conv1"),
        ImageError,
        "check the path",
    ),
    (
        "FeatureMaps/different-sizes-any-size-model",
        lambda e: FeatureMaps(_any_size_convnet(e.keras)).activations(
            [np.zeros((8, 8, 3)), np.zeros((9, 9, 3))], "conv1"
        ),
        ImageError,
        "resize them to one size",
    ),
    (
        "FeatureMaps/negative-int-pixels",
        lambda e: _fm(e).activations(np.full((16, 16, 3), -3), "conv1"),
        ImageError,
        "scale it to floats in [0, 1]",
    ),
    (
        "evaluate_grid/store-of-another-grid",
        lambda e: _grid(e, xs=grid_coords(4), store=e.surface_path),
        SurfaceFileError,
        "use another file path",
    ),
    # -- attribution ------------------------------------------------------------------------------
    (
        "attribution/unknown-class",
        lambda e: attribution.grad_cam(e.conv, IMG, target=3),
        ChannelError,
        "class index in 0..2",
    ),
    (
        "attribution/negative-class",
        lambda e: attribution.saliency(e.conv, IMG, target=-1),
        ChannelError,
        "0..2",
    ),
    (
        "attribution/class-not-an-int",
        lambda e: attribution.saliency(e.conv, IMG, target=[1.5]),
        ChannelError,
        "0..2",
    ),
    (
        "attribution/grad-cam-on-dense",
        lambda e: attribution.grad_cam(e.conv, IMG, layer="logits"),
        LayerError,
        "pick one of 'conv1'",
    ),
    (
        "attribution/grad-cam-unknown-layer",
        lambda e: attribution.grad_cam(e.conv, IMG, layer="cnov1"),
        LayerError,
        "Did you mean",
    ),
    (
        "attribution/baseline-shape",
        lambda e: attribution.integrated_gradients(e.conv, IMG, baseline=np.zeros((8, 8, 3))),
        ImageError,
        "baseline of shape (16, 16, 3)",
    ),
    (
        "attribution/baseline-name",
        lambda e: attribution.integrated_gradients(e.conv, IMG, baseline="white"),
        ImageError,
        "'black', 'blurred'",
    ),
    (
        "attribution/zero-gradient-saliency",
        lambda e: attribution.saliency(_dead_relu_model(e), IMG),
        ModelError,
        "model is flat there",
    ),
    (
        "attribution/zero-gradient-grad-cam",
        lambda e: attribution.grad_cam(_dead_relu_model(e), IMG, target=0),
        ModelError,
        "nothing to weight",
    ),
    (
        "attribution/zero-gradient-ig",
        lambda e: attribution.integrated_gradients(_dead_relu_model(e), IMG, steps=4),
        ModelError,
        "input_range=",
    ),
    (
        "attribution/not-a-classifier",
        lambda e: attribution.saliency(e.mlp, np.zeros((4, 4))),
        ModelError,
        "keras.Input((64, 64, 3))",
    ),
    (
        "attribution/objective-rows",
        lambda e: attribution.saliency(e.conv, IMG, "conv1:0,1"),
        ChannelError,
        "single index",
    ),
    (
        "attribution/objective-unknown-layer",
        lambda e: attribution.saliency(e.conv, IMG, channel("cnov1", 0)),
        LayerError,
        "Did you mean 'conv1'",
    ),
    (
        "attribution/smoothgrad-negative-noise",
        lambda e: attribution.smoothgrad(e.conv, IMG, noise=-0.1),
        ValueError,
        "0.1-0.2",
    ),
    (
        "attribution/ig-steps-zero",
        lambda e: attribution.integrated_gradients(e.conv, IMG, steps=0),
        ValueError,
        ">= 1",
    ),
    # -- curvature --------------------------------------------------------------------------------
    (
        "HessianOperator/no-loss",
        lambda e: HessianOperator(e.mlp_no_loss, e.x, e.y),
        ModelError,
        "Fix: pass loss=",
    ),
    (
        "HessianOperator/non-differentiable-loss",
        lambda e: HessianOperator(e.mlp, e.x, e.y, loss=_rounded_loss),
        ModelError,
        "Fix: pass a differentiable loss",
    ),
    (
        "HessianOperator/integer-weights",
        lambda e: HessianOperator(_int_weight_model(e), e.x, e.y),
        ModelError,
        "Fix: create it with trainable=False",
    ),
    (
        "hessian_eigen/k-too-large",
        lambda e: hessian_eigen(e.mlp, e.x, e.y, k=10**6),
        ModelError,
        "Fix: pass k <=",
    ),
    (
        "SharpnessTracker/every-k-zero",
        lambda e: SharpnessTracker(e.x, e.y, every_k_batches=0),
        ValueError,
        "Fix: pass every_k_batches=",
    ),
    ("SharpnessTracker/no-loss", lambda e: _tracker_on(e, e.mlp_no_loss), ModelError, "pass loss="),
    (
        "SharpnessTracker/integer-weights",
        lambda e: _tracker_on(e, _int_weight_model(e)),
        ModelError,
        "Fix: create it with trainable=False",
    ),
    # -- demo -------------------------------------------------------------------------------------
    ("load_application/unknown", lambda e: load_application("VGG17"), ModelError, "Did you mean"),
    (
        "load_application/weights-file-missing",
        lambda e: load_application("VGG16", weights=str(e.tmp / "none.h5")),
        WeightsUnavailableError,
        "weights=None",
    ),
    (
        "load_application/classes-vs-imagenet",
        lambda e: load_application("VGG16", classes=10),
        ModelError,
        "include_top=False",
    ),
]


def _dead_relu_model(e):
    """A convnet whose ReLUs are off for every image: every gradient is exactly zero."""
    model = _convnet(e.keras, name="dead")
    kernel, bias = model.get_layer("conv1").get_weights()
    model.get_layer("conv1").set_weights([np.zeros_like(kernel), np.full_like(bias, -1.0)])
    return model


def _any_size_convnet(keras):
    inp = keras.Input((None, None, 3))
    return keras.Model(inp, keras.layers.Conv2D(2, 3, name="conv1")(inp), name="any_size")


def _reuse_recorder(e):
    """A recorder that holds the MLP's path cannot record another model."""
    rec = _recorder_on(e, e.mlp)
    rec.set_model(e.conv)
    rec.on_train_begin()


def _nbviz_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nbviz") and t.is_alive()]


# Known bugs in files owned by other engineers (reported; remove the entry once fixed).
XFAIL: dict[str, str] = {}  # case id -> reason, for known bugs awaiting a fix


def _params():
    for name, call, error, fix in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[name])] if name in XFAIL else []
        yield pytest.param(call, error, fix, id=name, marks=marks)


@pytest.mark.parametrize(("call", "error", "fix"), list(_params()))
def test_bad_input_gives_documented_error_naming_the_fix(env, call, error, fix):
    models = [env.conv, env.mlp]
    before = [weights_snapshot(m) for m in models]
    with pytest.raises(error) as info:
        call(env)
    assert fix in str(info.value), f"the message does not name the fix {fix!r}: {info.value}"
    if error not in (ValueError, TypeError):
        assert isinstance(info.value, NbvizError)
    for m, snap in zip(models, before, strict=True):
        assert_weights_identical(m, snap)
    assert not _nbviz_threads()


def test_every_nbviz_error_type_is_in_the_matrix():
    covered = {c[2] for c in CASES}
    for err in (
        DataError,
        ImageError,
        LayerError,
        ModelError,
        PathError,
        SurfaceFileError,
        ChannelError,
        WeightsUnavailableError,
    ):
        assert err in covered


# -- handled, not raised: NaN / inf stay NaN, negative ranges are just coordinates -----------------
def test_nan_and_inf_data_give_nan_cells_not_garbage(env):
    x = env.x.copy()
    x[0] = np.nan
    s = _grid(env, x=x)
    assert np.isnan(s.Z).all() and s.metadata["nonfinite_cells"] == 9
    x[0] = np.inf
    assert np.isnan(_grid(env, x=x).Z).all()


def test_a_loss_that_is_nan_in_part_of_the_plane_keeps_the_rest(env):
    import keras

    def loss(y_true, y_pred):  # NaN where the prediction is large: part of the grid
        mse = keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)
        return keras.ops.where(mse > 50.0, np.nan, mse)

    s = _grid(env, loss=loss, xs=grid_coords(5, 20.0), ys=grid_coords(5, 20.0))
    bad = np.isnan(s.Z)
    assert bad.any() and (~bad).any() and s.Z[2, 2] == pytest.approx(s.Z[2, 2])
    assert s.metadata["nonfinite_cells"] == int(bad.sum()) and s.complete


def test_descending_and_negative_coordinates_are_plain_coordinates(env):
    up = _grid(env, xs=[-2.0, -1.0, 0.0], ys=[-1.0, 0.5])
    down = _grid(env, xs=[0.0, -1.0, -2.0], ys=[-1.0, 0.5])
    np.testing.assert_allclose(down.Z, up.Z[:, ::-1], rtol=1e-6)


def test_nan_image_gives_nan_maps_and_the_widget_still_renders(env, no_thread_leak):
    from nbviz.widgets import FeatureMapExplorer

    image = np.full((16, 16, 3), np.nan, np.float32)
    assert np.isnan(_fm(env).activations(image, "conv1")).all()
    w = FeatureMapExplorer(env.conv, image=image, samples={"zeros": IMG})
    try:
        assert w.wait(30)
        assert bytes(w.map_image.value).startswith(b"\x89PNG")
        assert w.error is None, w.status.value
    finally:
        w.close()


def test_empty_line_is_an_empty_line(env):
    line = evaluate_line(env.mlp, env.x, env.y, None, [])
    assert line.loss.shape == (0,)


# -- widgets: error shown, widget still works, no thread left -----------------------------------
def _map_changes(w, action) -> bool:
    before = w.map_image.value
    action()
    assert w.wait(30)
    return w.map_image.value != before and w.error is None


@pytest.mark.parametrize(
    ("attr", "value", "error", "fix"),
    [
        ("layer", "cnov1", LayerError, "Did you mean 'conv1'"),
        ("layer", "logits", LayerError, "spatial layers"),
        ("channel", 4, ChannelError, "0..3"),
        ("channel", -1, ChannelError, "0..3"),
        ("cmap", "no-such-map", ValueError, "no-such-map"),
        ("image", np.zeros((16, 16, 7)), ImageError, "np.moveaxis"),
        ("image", np.zeros(12), ImageError, "reshape"),
        ("image", np.full((4, 4), "a"), ImageError, "dtype"),
    ],
)
def test_feature_map_explorer_survives_bad_values(env, no_thread_leak, attr, value, error, fix):
    from nbviz.widgets import FeatureMapExplorer

    before = weights_snapshot(env.conv)
    w = FeatureMapExplorer(env.conv, image=IMG, samples={"zeros": IMG})
    try:
        assert w.wait(30)
        with pytest.raises(error) as info:
            setattr(w, attr, value)
        assert fix in str(info.value)
        assert fix.split("'")[0] in w.status.value or html_has(w.status.value, str(info.value))
        assert w.error is info.value
        # still usable: a valid action renders
        rng = np.random.default_rng(0)
        assert _map_changes(w, lambda: w.set_image(rng.random((16, 16, 3), dtype=np.float32)))
        assert _map_changes(w, lambda: setattr(w, "channel", 2))
    finally:
        w.close()
    assert_weights_identical(env.conv, before)
    assert not _nbviz_threads()


def html_has(status: str, message: str) -> bool:
    import html

    return html.escape(message) in status


@pytest.mark.parametrize(
    ("bad", "error", "fix"),
    [
        ({"layer": "cnov1"}, LayerError, "Did you mean 'conv1'"),
        ({"channel": 9}, ChannelError, "0..3"),
        ({"size": 4}, ImageError, "at least 8 pixels"),
        ({"kind": "diversity"}, ValueError, "gallery mode"),
    ],
)
def test_optvis_widget_survives_bad_settings(env, no_thread_leak, bad, error, fix):
    from nbviz.widgets import OptVisWidget

    before = weights_snapshot(env.conv)
    w = OptVisWidget(env.conv, layer="conv1", steps=4, size=16, transforms="none", frame_every=2)
    try:
        with pytest.raises(error) as info:
            for k, v in bad.items():
                setattr(w, k, v)
        assert fix in str(info.value) and w.error is info.value
        assert html_has(w.status.value, str(info.value)) or fix in w.status.value
        assert w.start() and w.wait(60)
        assert w.error is None and w.losses.shape == (4, 1) and len(w.frames) >= 1
    finally:
        w.close()
    assert_weights_identical(env.conv, before)
    assert not _nbviz_threads()


def test_optvis_widget_survives_an_objective_that_raises(env, no_thread_leak):
    from nbviz.widgets import OptVisWidget

    calls = {"n": 0}

    def factory(layer, units):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ChannelError("custom objective refused. Fix: try again.")
        return channel(layer, units)

    w = OptVisWidget(
        env.conv,
        layer="conv1",
        steps=4,
        size=16,
        transforms="none",
        objective=factory,
        frame_every=2,
    )
    try:
        w.start()
        assert w.wait(60)
        assert isinstance(w.error, ChannelError) and "try again" in w.status.value
        assert w.start() and w.wait(60) and w.error is None and len(w.losses) == 4
    finally:
        w.close()


@pytest.mark.parametrize(
    ("model", "error", "fix"),
    [
        ("unbuilt", ModelError, "keras.Input("),
        ("two_inputs", ModelError, "single-input"),
        ("mlp", ModelError, "pass an image model"),
        ("chw_layers", ModelError, "channels_last"),
    ],
)
def test_widgets_refuse_unusable_models_up_front(env, no_thread_leak, model, error, fix):
    from nbviz.widgets import FeatureMapExplorer, OptVisWidget

    for widget in (FeatureMapExplorer, OptVisWidget):
        with pytest.raises(error) as info:
            widget(getattr(env, model))
        assert fix in str(info.value) or "keras.Input" in str(info.value)
    assert not _nbviz_threads()


@pytest.mark.parametrize(
    ("change", "error", "fix"),
    [
        ({"x": np.zeros((32, 3), np.float32)}, DataError, "reshape or preprocess x"),
        ({"y": np.zeros(5, np.float32)}, DataError, "same number of examples"),
        ({"directions": "pca"}, PathError, "watch()"),
    ],
)
def test_landscape_widget_survives_bad_data(env, no_thread_leak, change, error, fix):
    from nbviz.widgets import LossLandscapeWidget

    before = weights_snapshot(env.mlp)
    w = LossLandscapeWidget(env.mlp, env.x, env.y, directions="random", resolution=5, view3d=None)
    try:
        good = {k: getattr(w, k) for k in change}
        for k, v in change.items():
            setattr(w, k, v)
        w.compute()
        assert w.wait(60)
        assert isinstance(w.error, error), w.status.value
        assert fix in str(w.error) and "#9888" in w.status.value
        for k, v in good.items():
            setattr(w, k, v)
        assert w.compute() and w.wait(60)
        assert w.error is None and w.surface is not None and w.surface.complete
    finally:
        w.close()
    assert_weights_identical(env.mlp, before)
    assert not _nbviz_threads()


def test_landscape_widget_refuses_bad_path_and_unbuilt_model(env, no_thread_leak):
    from nbviz.widgets import LossLandscapeWidget

    with pytest.raises(PathError, match="weights taken from this model"):
        LossLandscapeWidget(env.mlp, env.x, env.y, path=[env.conv.get_weights()] * 3, view3d=None)
    with pytest.raises(ModelError, match="give it an Input"):
        LossLandscapeWidget(env.unbuilt, env.x, env.y, view3d=None)
    with pytest.raises(PathError):
        LossLandscapeWidget(env.mlp, env.x, env.y, directions="pca", autostart=True, view3d=None)
    assert not _nbviz_threads()


def test_landscape_widget_load_of_a_corrupted_file_is_a_clear_error(env, no_thread_leak):
    from nbviz.widgets import LossLandscapeWidget

    with pytest.raises(SurfaceFileError, match="choose another path"):
        LossLandscapeWidget.load(
            _file(env, "bad.h5", b"\x00" * 256), model=env.mlp, x=env.x, y=env.y, view3d=None
        )
    assert not _nbviz_threads()
