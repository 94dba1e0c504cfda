"""The compiled attribution engine: one :class:`Attributor` per (model, layer, target).

Design: every method is a gradient of one *score per row* through **one** forward pass of a
tap model (model input -> the layer's activations and the tensors the target needs, weights
shared with the user's model, ``training=False``). Four compiled functions
(``tf.function``) with fixed input signatures are traced once each, on first use: noisy input
gradients (saliency is SmoothGrad with one sample and no noise), path gradients (Integrated
Gradients), layer gradients (Grad-CAM, Grad-CAM++, activation x gradient) and logits. Class indices, noise level, sample
count and seeds are tensor arguments and the batch axis is left open, so switching classes,
images or settings never retraces; :attr:`Attributor.trace_count` shows it.

Images go in as users give them (see :class:`~nbviz.featuremaps.preprocess.ImagePreparer`)
and gradients are taken with respect to the standardized image in ``[0, 1]``: scaling to the
model's value range and its ``preprocess`` run inside the graph, so a black baseline is a
black image and maps line up with the picture shown. Sampling methods (SmoothGrad,
Integrated Gradients) are generators that run as many samples per compiled call as a
memory budget allows and can be stopped between calls (``threading.Event``), like
``Renderer.frames`` and ``landscape.iter_grid``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import require_keras, require_tensorflow
from ..errors import LayerError, ModelError, format_choices
from ..featuremaps.preprocess import ImagePreparer, ImageSpec, Preprocess
from ..layers import build_tap_model, find_layer, iter_layers
from ..optvis.objectives import Objective
from ..scaling import input_scaling, resolve_input_range
from .baselines import make_baselines
from .results import AttributionMap, CamMap, IntegratedGradientsMap, LayerAttribution
from .targets import ClassLogits, Tap, Target, resolve_target

#: SmoothGrad's default sample count (Smilkov et al. 2017 use about 50).
SMOOTHGRAD_SAMPLES = 50
#: SmoothGrad's default noise: standard deviation as a share of the [0, 1] input range
#: (Smilkov et al.: 10-20%).
SMOOTHGRAD_NOISE = 0.15
#: Integrated Gradients' default intervals (trapezoid rule): within 1% completeness on the
#: demo model (tested).
IG_STEPS = 64
#: Bytes of activations and gradients one compiled call may use (sets samples per call).
DEFAULT_MEMORY_BUDGET = 512 * 2**20
BYTES_PER_VALUE = 4 * 3  # float32 activation + its gradient + what backprop keeps


@dataclass(frozen=True)
class Progress:
    """A step of a sampling method: ``done`` of ``total`` samples, the result so far."""

    done: int
    total: int
    result: AttributionMap

    @property
    def fraction(self) -> float:
        """Share of the samples done, 0..1."""
        return self.done / self.total if self.total else 1.0


class Attributor:
    """Attribution maps of ``model`` for one target, compiled once.

    Parameters
    ----------
    model:
        A Keras model with one image input (Functional, Sequential, nested fine-tuning
        models); never modified.
    layer:
        The spatial layer for Grad-CAM, Grad-CAM++ and layer attributions (``"outer/inner"``
        inside nested models); default: the last spatial layer. Input-gradient methods
        (saliency, SmoothGrad, Integrated Gradients) do not need it.
    target:
        ``None``: class logits (pre-softmax; the class is chosen per call); or an optvis
        :class:`~nbviz.optvis.Objective` / ``"layer:unit"`` shorthand.
    logits_layer, class_names:
        The layer holding the class scores (default: found from the output), and names
        used in result descriptions.
    preprocess, input_range:
        The model's preprocessing, as for :class:`~nbviz.featuremaps.FeatureMaps` (by default
        the range is read from the model's own ``Rescaling``/``Normalization`` layer).
    memory_budget:
        Bytes one compiled call may use for activations and gradients; sets how many
        SmoothGrad / IG samples run per call (``batch_size`` overrides it).
    """

    def __init__(
        self,
        model: Any,
        layer: str | None = None,
        target: Objective | str | None = None,
        *,
        logits_layer: str | None = None,
        class_names: Sequence[str] | None = None,
        preprocess: Preprocess | None = None,
        input_range: tuple[float, float] | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        batch_size: int | None = None,
    ) -> None:
        tf = require_tensorflow()
        self.model = model
        # The model's value range as FeatureMaps reads it (its own Rescaling/Normalization
        # layer), unless given: gradients are then per [0, 1] image value all the same.
        scaling = input_scaling(model)
        self.preparer = ImagePreparer(
            ImageSpec.from_model(model),
            preprocess,
            resolve_input_range(input_range, preprocess, scaling),
        )
        if isinstance(target, (int, np.integer, list, tuple)):
            raise LayerError(
                "Attributor(target=...) takes an objective or None (class logits); the class "
                "is chosen per call. Fix: Attributor(model).grad_cam(image, classes=3)."
            )
        self.target: Target = resolve_target(model, target, logits_layer, class_names)
        self.layer = None if layer is None else spatial_layer(model, layer)
        self.memory_budget = int(memory_budget)
        self.batch_size = None if batch_size is None else max(1, int(batch_size))
        self._taps: tuple[Tap, ...] | None = None
        self._tap_model: Any = None
        spec = self.preparer.spec
        image = tf.TensorSpec([None, spec.height, spec.width, spec.channels], tf.float32)
        classes = tf.TensorSpec([None], tf.int32)
        scalar_i, scalar_f = tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)
        seed = tf.TensorSpec([2], tf.int32)
        steps = tf.TensorSpec([None], tf.float32)
        cls = type(self)
        self._noisy = self._compile(cls._noisy_grads, image, classes, scalar_i, scalar_f, seed)
        self._path = self._compile(cls._path_grads, image, image, steps, steps, classes)
        self._layer_fn = self._compile(cls._layer_grads, image, classes)
        self._logits_fn = self._compile(cls._logits, image)

    # -- compiled graph code -----------------------------------------------------------------
    def _compile(self, method: Callable, *signature: Any) -> Any:
        """``tf.function`` of a method; ``partial`` gives each instance its own function key,
        so many attributors (one per layer) do not trip TensorFlow's retracing warning."""
        tf = require_tensorflow()
        fn = functools.partial(method, self)
        return tf.function(fn, input_signature=list(signature), autograph=False)

    @property
    def trace_count(self) -> int:
        """Traces of the compiled functions so far (one per function used, never more)."""
        return sum(
            int(f.experimental_get_tracing_count())
            for f in (self._noisy, self._path, self._layer_fn, self._logits_fn)
        )

    def _ensure_taps(self) -> None:
        if self._tap_model is not None:
            return
        taps = list(self.target.taps)
        if self.layer is not None and (self.layer, "output") not in taps:
            taps.append((self.layer, "output"))
        self._taps = tuple(taps)
        self._tap_model = build_tap_model(self.model, self._taps, name="nbviz_attribution_taps")

    def _forward(self, x01: Any) -> dict[Tap, Any]:
        """Tapped tensors for a ``[0, 1]`` batch (value range and preprocess in-graph)."""
        self._ensure_taps()
        lo, hi = self.preparer.input_range
        x = x01 if (lo, hi) == (0.0, 1.0) else lo + (hi - lo) * x01
        if self.preparer.preprocess is not None:
            x = self.preparer.preprocess(x)
        outs = self._tap_model(x, training=False)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        taps = self._taps
        assert taps is not None  # set with the tap model
        return dict(zip(taps, outs, strict=True))

    def _input_grads(self, xs: Any, classes: Any) -> tuple[Any, Any]:
        tf = require_tensorflow()
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(xs)
            scores = self.target.scores(self._forward(xs), xs, classes)
            total = tf.reduce_sum(scores)
        grads = tape.gradient(total, xs)
        if grads is None:
            raise ModelError(
                f"The target {self.target.describe()} does not depend on the model's input "
                "(no gradient path), so no input attribution exists. Fix: pick a target "
                "computed from the image."
            )
        return grads, scores

    def _noisy_grads(
        self, x01: Any, classes: Any, samples: Any, sigma: Any, seed: Any
    ) -> tuple[Any, Any]:
        """Sum over ``samples`` noisy copies of each image of the input gradient, and of the
        scores: ``(N, H, W, C)``, ``(N,)``."""
        tf = require_tensorflow()
        xs = tf.repeat(x01, samples, axis=0)
        xs = xs + sigma * tf.random.stateless_normal(tf.shape(xs), seed)
        grads, scores = self._input_grads(xs, tf.repeat(classes, samples))
        shape = tf.concat([[-1, samples], tf.shape(x01)[1:]], 0)
        return (
            tf.reduce_sum(tf.reshape(grads, shape), axis=1),
            tf.reduce_sum(tf.reshape(scores, [-1, samples]), axis=1),
        )

    def _path_grads(self, x01: Any, baselines: Any, alphas: Any, weights: Any, classes: Any) -> Any:
        """``sum_k weights[k] * grad f(b + alphas[k] (x - b))`` per image ``(N, H, W, C)``."""
        tf = require_tensorflow()
        m = tf.shape(alphas)[0]
        a = tf.reshape(alphas, [1, -1, 1, 1, 1])
        xs = baselines[:, None] + a * (x01 - baselines)[:, None]
        xs = tf.reshape(xs, tf.concat([[-1], tf.shape(x01)[1:]], 0))
        grads, _ = self._input_grads(xs, tf.repeat(classes, m))
        grads = tf.reshape(grads, tf.concat([[-1, m], tf.shape(x01)[1:]], 0))
        return tf.einsum("nm...,m->n...", grads, weights)

    def _layer_grads(self, x01: Any, classes: Any) -> tuple[Any, Any, Any]:
        """Scores ``(N,)``, the layer's activations and the scores' gradient there."""
        tf = require_tensorflow()
        if self.layer is None:
            raise LayerError("This Attributor has no layer.")  # guarded by _need_layer
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x01)  # records the forward pass from the input on
            tapped = self._forward(x01)
            acts = tapped[(self.layer, "output")]
            tape.watch(acts)
            scores = self.target.scores(tapped, x01, classes)
        grads = tape.gradient(scores, acts)
        if grads is None:
            raise LayerError(
                f"The target {self.target.describe()} does not depend on layer {self.layer!r} "
                "(no gradient path from the layer to it). Fix: pick a layer before the target, "
                f"e.g. one of {[i.name for i in _spatial_before(self.model)][-3:]}."
            )
        return scores, tf.cast(acts, tf.float32), tf.cast(grads, tf.float32)

    def _logits(self, x01: Any) -> Any:
        target = self.target
        assert isinstance(target, ClassLogits)  # predict() and _classes() check it first
        return target.logits(self._forward(x01))

    # -- host side helpers ---------------------------------------------------------------------
    def images(self, images: Any) -> np.ndarray:
        """The standardized ``(N, H, W, C)`` batch in ``[0, 1]`` that maps are computed on."""
        self._ensure_taps()  # eagerly: building the tap model may not run inside a trace
        return self.preparer.standardize(images)[0]

    def predict(self, images: Any) -> np.ndarray:
        """``(N, classes)`` pre-softmax logits (class targets only)."""
        if not isinstance(self.target, ClassLogits):
            raise ModelError(
                f"predict() reads class logits; this Attributor explains {self.target.describe()}."
                " Fix: create Attributor(model) without a target for class predictions."
            )
        return self._logits_fn(self.images(images)).numpy()

    def top_classes(self, images: Any, k: int = 5, i: int = 0) -> list[tuple[int, float]]:
        """The ``k`` highest-scoring classes of image ``i``: ``[(class, probability), ...]``."""
        logits = self.predict(images)[i].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        order = np.argsort(-p, kind="stable")[: int(k)]
        return [(int(c), float(p[c])) for c in order]

    def _classes(self, x: np.ndarray, classes: Any) -> tuple[np.ndarray, list[int] | None]:
        """``(N,)`` int32 class per image (``None``: each image's top class)."""
        n = len(x)
        if not isinstance(self.target, ClassLogits):
            return np.zeros(n, np.int32), None
        if classes is None:
            values = [int(c) for c in self._logits_fn(x).numpy().argmax(axis=1)]
        else:
            values = self.target.check_classes(classes)
            if len(values) == 1:
                values = values * n
            elif len(values) != n:
                raise LayerError(
                    f"{len(values)} classes for {n} images. Fix: pass one class for all, or "
                    "one per image."
                )
        return np.asarray(values, np.int32), values

    def _need_layer(self) -> str:
        if self.layer is None:
            self.layer = default_layer(self.model)
            self._tap_model = None  # rebuilt with the layer's output among the taps
        return self.layer

    def samples_per_call(self) -> int:
        """Images (noisy samples or path points) per compiled call, from the memory budget."""
        if self.batch_size is not None:
            return self.batch_size
        per = bytes_per_sample(self.model, self.preparer.spec)
        return int(max(1, min(256, self.memory_budget // max(per, 1))))

    def _describe(self, classes: list[int] | None) -> str:
        return self.target.describe(sorted(set(classes)) if classes else None)

    @staticmethod
    def _check_all_zero(grads: np.ndarray, what: str, target: str) -> None:
        flat = grads.reshape(len(grads), -1)
        dead = [i for i in range(len(flat)) if not np.any(flat[i])]
        if dead:
            raise ModelError(
                f"The gradient of {target} with respect to {what} is exactly zero for image "
                f"{dead[0]}: the model is flat there (dead ReLUs, saturated activations, zero "
                "weights, or a target that ignores the image), so every gradient map would be "
                "blank. Fix: check the model is trained and gets inputs in the range it "
                "expects (input_range=, preprocess=), or explain another class or layer."
            )

    # -- methods -------------------------------------------------------------------------------
    def saliency(self, images: Any, classes: Any = None) -> AttributionMap:
        """Vanilla gradients (Simonyan et al. 2014): ``d score / d image``."""
        return self.smoothgrad(images, classes, samples=1, noise=0.0)

    def smoothgrad(
        self,
        images: Any,
        classes: Any = None,
        samples: int = SMOOTHGRAD_SAMPLES,
        noise: float = SMOOTHGRAD_NOISE,
        seed: int = 0,
    ) -> AttributionMap:
        """SmoothGrad (Smilkov et al. 2017): the mean gradient over ``samples`` copies with
        Gaussian noise of standard deviation ``noise`` (in the image's ``[0, 1]`` scale)."""
        return last_result(self.iter_smoothgrad(images, classes, samples, noise, seed))

    def iter_smoothgrad(
        self,
        images: Any,
        classes: Any = None,
        samples: int = SMOOTHGRAD_SAMPLES,
        noise: float = SMOOTHGRAD_NOISE,
        seed: int = 0,
        stop_event: threading.Event | None = None,
    ) -> Iterator[Progress]:
        """SmoothGrad as a generator: a :class:`Progress` after each compiled call."""
        tf = require_tensorflow()
        samples, noise = _positive_int(samples, "samples"), _noise(noise)
        x = self.images(images)
        cls, values = self._classes(x, classes)
        per_image = max(1, self.samples_per_call() // len(x))
        total = np.zeros_like(x, dtype=np.float64)
        score = np.zeros(len(x), np.float64)
        done = 0
        target = self._describe(values)
        method = "saliency" if samples == 1 and noise == 0.0 else "smoothgrad"
        while done < samples:
            if stop_event is not None and stop_event.is_set():
                return
            k = min(per_image, samples - done)
            g, s = self._noisy(
                tf.constant(x),
                tf.constant(cls),
                tf.constant(k, tf.int32),
                tf.constant(noise, tf.float32),
                tf.constant([int(seed), done], tf.int32),
            )
            total += g.numpy()
            score += s.numpy()
            done += k
            if done == samples:
                self._check_all_zero(total, "the image", target)
            result = AttributionMap(
                method=method, target=target, classes=values, images=x,
                values=(total / done).astype(np.float32), scores=(score / done).astype(np.float32),
                samples=done, complete=done == samples,
            )  # fmt: skip
            yield Progress(done, samples, result)

    def integrated_gradients(
        self,
        images: Any,
        classes: Any = None,
        baseline: Any = "black",
        steps: int = IG_STEPS,
        blur_sigma: float | None = None,
    ) -> IntegratedGradientsMap:
        """Integrated Gradients (Sundararajan et al. 2017) from ``baseline`` (``"black"``,
        ``"blurred"`` or an image), ``steps`` intervals of the trapezoid rule; the result
        reports its completeness error."""
        return last_result(
            self.iter_integrated_gradients(images, classes, baseline, steps, blur_sigma)
        )

    def iter_integrated_gradients(
        self,
        images: Any,
        classes: Any = None,
        baseline: Any = "black",
        steps: int = IG_STEPS,
        blur_sigma: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> Iterator[Progress]:
        """Integrated Gradients as a generator: a :class:`Progress` after each compiled call
        (the partial result integrates the path so far)."""
        tf = require_tensorflow()
        steps = _positive_int(steps, "steps")
        x = self.images(images)
        base = make_baselines(x, baseline, blur_sigma)
        cls, values = self._classes(x, classes)
        target = self._describe(values)
        alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
        weights = np.full(steps + 1, 1.0 / steps, np.float32)
        weights[[0, -1]] *= 0.5  # trapezoid rule
        x_t, b_t, c_t = tf.constant(x), tf.constant(base), tf.constant(cls)
        scores = self._scores(x, cls)
        base_scores = self._scores(base, cls)
        per_image = max(1, self.samples_per_call() // len(x))
        total = np.zeros_like(x, dtype=np.float64)
        done = 0
        while done < len(alphas):
            if stop_event is not None and stop_event.is_set():
                return
            k = min(per_image, len(alphas) - done)
            g = self._path(
                x_t,
                b_t,
                tf.constant(alphas[done : done + k]),
                tf.constant(weights[done : done + k]),
                c_t,
            )
            total += g.numpy()
            done += k
            attributions = ((x - base) * total).astype(np.float32)
            if done == len(alphas):
                self._check_all_zero(total, "the images on the path from the baseline", target)
            result = IntegratedGradientsMap(
                method="integrated_gradients", target=target, classes=values, images=x,
                values=attributions, scores=scores, samples=done, complete=done == len(alphas),
                baselines=base, baseline_scores=base_scores, steps=steps,
            )  # fmt: skip
            yield Progress(done, len(alphas), result)

    def _scores(self, x: np.ndarray, cls: np.ndarray) -> np.ndarray:
        """The target's value on each image (no noise)."""
        tf = require_tensorflow()
        _, s = self._noisy(
            tf.constant(x),
            tf.constant(cls),
            tf.constant(1, tf.int32),
            tf.constant(0.0),
            tf.constant([0, 0], tf.int32),
        )
        return s.numpy()

    def grad_cam(self, images: Any, classes: Any = None) -> CamMap:
        """Grad-CAM (Selvaraju et al. 2017): ``ReLU(sum_k w_k A_k)`` with ``w_k`` the spatial
        mean of ``d score / d A_k``, at the layer's resolution (``heatmaps()`` upsamples)."""
        return self.layer_attribution(images, classes).cam()

    def grad_cam_plus_plus(self, images: Any, classes: Any = None) -> CamMap:
        """Grad-CAM++ (Chattopadhay et al. 2018), its closed form for ``exp(score)`` (see
        :mod:`nbviz.attribution.cam`)."""
        return self.layer_attribution(images, classes).cam(plus_plus=True)

    def layer_attribution(self, images: Any, classes: Any = None) -> LayerAttribution:
        """The layer's activations and the target's gradient there (one forward and one
        backward pass): activation x gradient per position and filter, with channel and
        spatial sums (Olah et al.'s building blocks), and Grad-CAM from the same arrays."""
        tf = require_tensorflow()
        layer = self._need_layer()
        x = self.images(images)
        cls, values = self._classes(x, classes)
        scores, acts, grads = self._layer_fn(tf.constant(x), tf.constant(cls))
        acts, grads = acts.numpy(), grads.numpy()
        target = self._describe(values)
        self._check_all_zero(grads, f"layer {self.layer!r}", target)
        dead = [i for i in range(len(acts)) if not np.any(acts[i])]
        if dead:
            raise ModelError(
                f"Layer {self.layer!r} is zero everywhere for image {dead[0]} (all its units "
                "are off: dead ReLUs, or an input far outside the range the model expects), so "
                "there is nothing to weight. Fix: check input_range= / preprocess=, or pick "
                "another layer."
            )
        return LayerAttribution(
            target=target,
            classes=values,
            layer=layer,
            images=x,
            activations=acts,
            gradients=grads,
            scores=scores.numpy(),
        )


def last_result(progress: Iterator[Progress]) -> Any:
    """Run a sampling generator to its end; its final result."""
    result = None
    for step in progress:
        result = step.result
    return result


def _spatial_before(model: Any) -> list[Any]:
    """Spatial layers of ``model`` (nested included), in order, nested models left out."""
    keras = require_keras()
    return [
        i
        for i in iter_layers(model)
        if i.is_spatial
        and not isinstance(i.layer, keras.Model)
        and not isinstance(i.layer, keras.layers.InputLayer)
    ]


def default_layer(model: Any) -> str:
    """Grad-CAM's usual layer: the last spatial layer that is not a pooling layer (VGG's
    ``block5_conv3``, ResNet's ``conv5_block3_out``), nested layers included."""
    spatial = _spatial_before(model)
    if not spatial:
        raise LayerError(
            f"Model {model.name!r} has no spatial (batch, height, width, channels) layer for "
            "Grad-CAM. Fix: use saliency, SmoothGrad or Integrated Gradients."
        )
    unpooled = [i for i in spatial if "Pooling" not in i.kind]
    return (unpooled or spatial)[-1].name


def bytes_per_sample(model: Any, spec: ImageSpec) -> int:
    """Rough bytes one image needs in a forward + backward pass (all layer outputs)."""
    values = 0
    for info in iter_layers(model):
        shape = info.output_shape
        if shape is None:
            continue
        dims = [d for d in shape[1:] if d is not None]
        values += int(np.prod(dims)) if dims else 0
    h, w, c = (d or 224 for d in (spec.height, spec.width, spec.channels))
    return max(values, h * w * c) * BYTES_PER_VALUE


def _positive_int(n: Any, name: str) -> int:
    if isinstance(n, bool) or int(n) != n or int(n) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}.")
    return int(n)


def _noise(noise: Any) -> float:
    value = float(noise)
    if not value >= 0.0 or not np.isfinite(value):
        raise ValueError(
            f"noise is the standard deviation in the image's [0, 1] scale, >= 0 (Smilkov et "
            f"al. use 0.1-0.2); got {noise!r}."
        )
    return value


def spatial_layer(model: Any, layer: str) -> str:
    """The full name of ``layer`` if its output is a map (batch, h, w, channels), else a
    :class:`LayerError` naming the layers that are."""
    keras = require_keras()
    info = find_layer(model, layer)
    if info.is_spatial and not isinstance(info.layer, keras.Model):
        return info.name
    valid = [i.name for i in _spatial_before(model)]
    raise LayerError(
        f"Grad-CAM and layer attributions need a spatial layer, whose output is a (batch, "
        f"height, width, channels) map; {info.name!r} ({info.kind}) outputs {info.output_shape}."
        f" Fix: pick one of {format_choices(valid)} (the last one is Grad-CAM's usual choice)."
    )
