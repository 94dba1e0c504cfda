"""Directions: filter/layer/tensor normalization on Keras' axes, selection, seeding,
interpolation between models, saving."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_weights_identical, weights_snapshot
from landscape_support import convnet, mlp

from nbviz.errors import ModelError, SurfaceFileError
from nbviz.landscape import (
    WeightLayout,
    interpolation_directions,
    load_directions,
    plane_directions,
    random_directions,
    save_directions,
)
from nbviz.landscape.weights import output_axes


def _by_name(directions, layout, suffix, which=0):
    i = next(i for i, t in enumerate(layout.tensors) if t.name.endswith(suffix))
    return i, directions.vectors[which][i], directions.origin[i]


def _slice_norms(a, keep):
    reduce = tuple(ax for ax in range(a.ndim) if ax not in keep)
    return np.sqrt(np.sum(np.square(a.astype(np.float64)), axis=reduce))


@pytest.mark.parametrize(
    "suffix, axes",
    [
        ("conv1/kernel", (3,)),  # Conv2D (kh, kw, in, out): output last
        ("deconv/kernel", (2,)),  # Conv2DTranspose (kh, kw, out, in): output on axis -2
        ("logits/kernel", (1,)),  # Dense (in, out)
    ],
)
def test_filter_normalization_matches_weight_slices_on_keras_axes(suffix, axes):
    model = convnet()
    layout = WeightLayout.from_model(model)
    d = random_directions(model, seed=3)
    i, v, w = _by_name(d, layout, suffix)
    assert layout.tensors[i].output_axes == axes
    np.testing.assert_allclose(_slice_norms(v, axes), _slice_norms(w, axes), rtol=1e-5)
    # and not on PyTorch's axis 0, which a literal port would use
    assert not np.allclose(_slice_norms(v, (0,)), _slice_norms(w, (0,)), rtol=1e-3)


def test_output_axes_of_depthwise_and_embedding():
    assert output_axes("DepthwiseConv2D", "dw/kernel", 4) == (2, 3)
    assert output_axes("SeparableConv2D", "sep/depthwise_kernel", 4) == (2, 3)
    assert output_axes("SeparableConv2D", "sep/pointwise_kernel", 4) == (3,)
    assert output_axes("Embedding", "emb/embeddings", 2) == (0,)
    assert output_axes("Conv1DTranspose", "t/kernel", 3) == (1,)


def test_default_leaves_1d_and_batchnorm_unperturbed():
    model = convnet()
    layout = WeightLayout.from_model(model)
    d = random_directions(model)
    for t, v in zip(layout.tensors, d.vectors[0], strict=True):
        moved = bool(np.any(v))
        assert moved == (len(t.shape) >= 2), t.name
    d1 = random_directions(model, perturb_1d=True)
    for t, v in zip(layout.tensors, d1.vectors[0], strict=True):
        if not t.trainable:  # BatchNorm moving statistics: never by default
            assert not np.any(v), t.name
        elif t.name.endswith("bias"):
            # filter normalization of a bias: each element keeps its weight's magnitude
            w = d1.origin[layout.tensors.index(t)]
            np.testing.assert_allclose(np.abs(v), np.abs(w), rtol=1e-5)
    d2 = random_directions(model, perturb_1d=True, perturb_non_trainable=True)
    mv = [
        v for t, v in zip(layout.tensors, d2.vectors[0], strict=True) if "moving_variance" in t.name
    ]
    assert np.any(mv[0])


def test_layer_and_tensor_normalization():
    model = mlp()
    layout = WeightLayout.from_model(model)
    d = random_directions(model, normalization="layer", perturb_1d=True, seed=1)
    for layer in ("h1", "h2", "out"):
        idx = [i for i, t in enumerate(layout.tensors) if t.layer == layer]
        dn = np.sqrt(sum(np.sum(d.vectors[0][i].astype(float) ** 2) for i in idx))
        wn = np.sqrt(sum(np.sum(d.origin[i].astype(float) ** 2) for i in idx))
        assert dn == pytest.approx(wn, rel=1e-5)
        if len(idx) == 2:  # kernel and bias scaled together, not each to its own norm
            k, b = idx
            assert np.linalg.norm(d.vectors[0][k]) != pytest.approx(
                np.linalg.norm(d.origin[k]), rel=1e-3
            )
    t = random_directions(model, normalization="tensor", perturb_1d=True, seed=1)
    for v, w in zip(t.vectors[1], t.origin, strict=True):
        if np.any(w):
            assert np.linalg.norm(v) == pytest.approx(np.linalg.norm(w), rel=1e-5)


def test_seeded_and_reproducible():
    model = mlp()
    a, b = random_directions(model, seed=7), random_directions(model, seed=7)
    c = random_directions(model, seed=8)
    assert a.hash() == b.hash() != c.hash()
    # each (direction, tensor) has its own stream: selecting biases does not change kernels
    e = random_directions(model, seed=7, perturb_1d=True)
    np.testing.assert_array_equal(a.vectors[0][0], e.vectors[0][0])
    assert a.describe()["seed"] == 7 and a.describe()["normalization"] == "filter"


def test_making_directions_leaves_model_identical():
    model = convnet()
    snap = weights_snapshot(model)
    d = random_directions(model, perturb_1d=True, perturb_non_trainable=True)
    d.point((1.0, -2.0))
    assert_weights_identical(model, snap)
    # the origin is a copy, not a view of the live variables
    d.origin[0][...] = 123.0
    assert_weights_identical(model, snap)


def test_interpolation_and_plane_hit_the_models():
    a, b, c = mlp(0), mlp(1), mlp(2)
    line = interpolation_directions(a, b)
    for got, want in zip(line.point([1.0]), b.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    plane = plane_directions(a, b, c)
    for got, want in zip(plane.point([0.0, 1.0]), c.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    ortho = plane_directions(a, b, c, orthogonalize=True)
    f = ortho.flat().astype(np.float64)
    assert abs(f[0] @ f[1]) < 1e-6 * (f[0] @ f[0])
    anchor = ortho.metadata["anchors"]["c"]
    for got, want in zip(ortho.point(anchor), c.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_wrong_model_and_weights_are_refused():
    with pytest.raises(ModelError, match="shape"):
        interpolation_directions(mlp(0), mlp(0, width=8).get_weights(), model=mlp(0))
    with pytest.raises(ModelError, match="made for model"):
        random_directions(mlp(0)).check_model(mlp(0, width=8))


def test_save_and_load_directions(tmp_path):
    model = mlp()
    d = random_directions(model, seed=5, normalization="layer")
    save_directions(tmp_path / "d.h5", d)
    back = load_directions(tmp_path / "d.h5", model=model)
    assert back.hash() == d.hash()
    assert back.kind == "random" and back.seed == 5 and back.normalization == "layer"
    with pytest.raises(SurfaceFileError, match="written for model"):
        load_directions(tmp_path / "d.h5", model=mlp(0, width=8))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(SurfaceFileError, match="not an HDF5 file"):
        load_directions(tmp_path / "junk.h5")
