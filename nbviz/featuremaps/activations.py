"""Activations of any image-like layer of a Keras model, computed once and cached.

The seed article builds a new ``keras.Model`` per filter and runs the network again for each
one. :class:`FeatureMaps` builds one extractor per layer (or per set of layers) that returns
*all* channels, runs it through a ``tf.function`` with a fixed input signature once the layer
is reused (new images never retrace; the first look is eager, to skip the tracing latency), and
keeps the resulting arrays in an LRU cache bounded in bytes, keyed
by (layer, image content). Showing another channel of the same layer is then a numpy slice.
Every lookup first checks a cheap fingerprint of the model's weights (:mod:`nbviz.fingerprint`,
~0.4 ms on VGG16) and drops the cache when ``fit``, ``set_weights``, ``load_weights`` or an
``assign`` changed them, so maps never show old weights.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import require_keras, require_tensorflow
from ..deprecation import renamed_keywords, warn_renamed
from ..errors import ChannelError, ImageError, LayerError, closest_names, format_choices
from ..fingerprint import WeightFingerprint
from ..layers import (
    LayerInfo,
    build_extractor,
    is_preprocessing,
    iter_layers,
    require_spatial,
    spatial_layers,
)
from ..scaling import input_scaling, resolve_input_range
from .preprocess import ImagePreparer, ImageSpec, Preprocess
from .reading import read_images

DEFAULT_CACHE_BYTES = 256 * 2**20


@dataclass
class CacheStats:
    """Counters that make the cache observable (tests assert on them)."""

    network_calls: int = 0  # forward passes through an extractor
    cache_hits: int = 0
    cache_misses: int = 0
    extractors_built: int = 0
    traces: int = 0  # tf.function traces: one per reused extractor (first calls are eager)
    weight_changes: int = 0  # times the cache was dropped because the model's weights changed


def image_key(images: Any) -> str:
    """A content hash of an image or batch (dtype, shape and bytes), used as cache key.

    Hashes the pixels as :func:`~nbviz.featuremaps.read_images` reads them (a file
    path by its content, a PIL image by its converted pixels, a list image by image).
    """
    h = hashlib.blake2b(digest_size=16)
    read = read_images(images)
    for part in read if isinstance(read, list) else [read]:
        a = np.ascontiguousarray(part)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.size and a.dtype.kind != "O":  # zero-size/object arrays fail later, clearly
            h.update(a.data.cast("B"))
    return h.hexdigest()


class _LRU:
    """A thread-safe LRU of numpy arrays bounded by total bytes (the newest entry always stays)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> np.ndarray | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: np.ndarray) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._data[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and len(self._data) > 1:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)


class FeatureMaps:
    """Cached feature maps of a Keras image model.

    Parameters
    ----------
    model:
        Any Keras model with one image input: Functional or Sequential, with nested base
        models at any depth as in transfer learning (nested layers are named
        ``"outer/inner"``; their activations come from the *outer* input in one forward pass).
        It is never modified: extractors share its weights and run with ``training=False``.
    preprocess, input_range, resize:
        Image preprocessing hooks, see :class:`~nbviz.featuremaps.preprocess.ImagePreparer`.
        Without ``input_range`` or ``preprocess`` the range comes from the model's own leading
        ``Rescaling``/``Normalization`` layer (``self.scaling``, see :mod:`nbviz.scaling`), so
        the keras.io fine-tuning recipe gets 0..255 pixels; else ``(0, 1)``.
    cache_bytes:
        Upper bound of the activation cache (the most recent result is always kept).
    batch_size:
        Images per forward pass for large batches (bounds peak memory).

    Examples
    --------
    >>> fm = FeatureMaps(model)
    >>> fm.layer_choices()                 # [(name, (H, W, C)), ...]
    >>> acts = fm.activations(image, "conv1")   # (1, H, W, C), all channels
    >>> fm.feature_map(image, "conv1", 3)       # (H, W), from the cache
    """

    def __init__(
        self,
        model: Any,
        preprocess: Preprocess | None = None,
        input_range: tuple[float, float] | None = None,
        resize: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        batch_size: int = 32,
    ) -> None:
        self.model = model
        self.spec = ImageSpec.from_model(model)
        #: The value range read from the model's own preprocessing layers (``None``: none).
        self.scaling = input_scaling(model)
        self.preparer = ImagePreparer(
            self.spec,
            preprocess,
            resolve_input_range(input_range, preprocess, self.scaling),
            resize,
            input_dtype=str(model.inputs[0].dtype),
        )
        self.batch_size = max(1, int(batch_size))
        self.stats = CacheStats()
        self._cache = _LRU(cache_bytes)
        self._extractors: dict[tuple[str, ...], Any] = {}
        self._build_lock = threading.RLock()
        self._infos: dict[str, LayerInfo] = {}
        self._weights_seen = WeightFingerprint(model)

    # -- layers ------------------------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        """The layers with image-like output (nested models included), in model order."""
        return spatial_layers(self.model)

    def set_longest_side(self, pixels: int | None) -> None:
        """For models of undefined image size: resize images so their longer side has
        ``pixels`` pixels (``None``: each image keeps its own size). Clears the cache."""
        if self.spec.size is not None:
            raise ImageError(
                f"Model {self.model.name!r} takes {self.spec.describe()} images: they are always "
                "resized to that size. Fix: only set a size for models whose input size is "
                "undefined, e.g. keras.Input((None, None, 3))."
            )
        self.preparer.longest_side = None if not pixels else int(pixels)
        self.clear_cache()

    def default_layer(self) -> str:
        """Where a picker starts: the first image-like layer that is not input preprocessing
        (a Rescaling or augmentation layer shows the input, not what the network learned)."""
        infos = self.layers()
        learned = [i for i in infos if not is_preprocessing(i)]
        return (learned or infos)[0].name

    def layer_choices(self) -> list[tuple[str, tuple]]:
        """``(name, output shape without the batch axis)`` of every image-like layer."""
        return [(i.name, tuple((i.output_shape or ())[1:])) for i in self.layers()]

    def layer_info(self, layer: str) -> LayerInfo:
        """The layer named ``layer``, checked to have an image-like output (clear error if not)."""
        if not isinstance(layer, str):
            return require_spatial(self.model, layer)  # raises a LayerError naming the type
        info = self._infos.get(layer)
        if info is None:  # looking a layer up walks the whole model: do it once per name
            known = [i.name for i in iter_layers(self.model)]
            if layer not in known and not any(n.rsplit("/", 1)[-1] == layer for n in known):
                raise self._unknown_layer(layer)
            info = require_spatial(self.model, layer)
            self._infos[layer] = info
        return info

    def _unknown_layer(self, layer: str) -> LayerError:
        valid = [i.name for i in self.layers()]
        hint = closest_names(layer, valid)
        return LayerError(
            f"No layer named {layer!r} in model {self.model.name!r}."
            + (f" Did you mean {format_choices(hint)}?" if hint else "")
            + f" Layers with feature maps: {format_choices(valid)}."
        )

    def channels(self, layer: str) -> int:
        """Number of channels (filters) of ``layer``'s output."""
        channels = self.layer_info(layer).channels
        assert channels is not None  # image-like layers have a channel axis
        return int(channels)

    # -- images ------------------------------------------------------------------------------
    def display_image(self, image: Any) -> np.ndarray:
        """The image as the network sees it before ``preprocess``: float (H, W, C) in [0, 1]."""
        batch, _ = self.preparer.standardize(image)
        return np.asarray(batch[0])

    # -- activations -------------------------------------------------------------------------
    def cached(self, layer: str, key: str) -> np.ndarray | None:
        """The cached activations of ``layer`` for the image with key ``key``, or ``None``."""
        name = self.layer_info(layer).name
        self._drop_if_weights_changed()
        return self._cache.get((name, key))

    def activations(self, images: Any, layer: str, key: str | None = None) -> np.ndarray:
        """All channels of ``layer`` for an image or batch: float32 array (N, H, W, C).

        A single image gives ``N == 1``. Results are cached by (layer, image content); pass
        ``key`` (from :func:`image_key`) to skip hashing an image that is reused.
        """
        return self.activations_many(images, [layer], key=key)[self.layer_info(layer).name]

    def activations_many(
        self, images: Any, layers: Sequence[str], key: str | None = None
    ) -> dict[str, np.ndarray]:
        """Activations of several layers from *one* forward pass: ``{full name: (N, H, W, C)}``."""
        names = [self.layer_info(n).name for n in layers]
        if key is None:
            images = read_images(images)  # a path or PIL image is read once, for key and pixels
            key = image_key(images)
        self._drop_if_weights_changed()
        out: dict[str, np.ndarray] = {}
        missing: list[str] = []
        for n in dict.fromkeys(names):
            hit = self._cache.get((n, key))
            if hit is None:
                missing.append(n)
            else:
                out[n] = hit
        self.stats.cache_hits += len(out)
        if missing:
            self.stats.cache_misses += len(missing)
            batch = self.preparer.prepare(images)
            for n, value in zip(missing, self._run(batch, tuple(missing)), strict=True):
                value.setflags(write=False)  # shared by every reader of the cache
                self._cache.put((n, key), value)
                out[n] = value
        return out

    @renamed_keywords(filter="channel")
    def feature_map(
        self, image: Any, layer: str, channel: int, key: str | None = None
    ) -> np.ndarray:
        """The (H, W) map of channel ``channel`` of ``layer`` for one image (cached)."""
        acts = self.activations(image, layer, key=key)
        if acts.shape[0] != 1:
            raise ImageError(
                f"feature_map takes one image; got a batch of {acts.shape[0]}. "
                "Fix: pass images[i], or use activations() for batches."
            )
        return acts[0, :, :, check_channel(channel, acts.shape[-1], layer)]

    def clear_cache(self) -> None:
        """Forget cached activations (extractors are kept)."""
        self._cache.clear()

    @property
    def cache_nbytes(self) -> int:
        """Bytes held by the activation cache."""
        return self._cache.nbytes

    # -- internals ---------------------------------------------------------------------------
    def _drop_if_weights_changed(self) -> None:
        """Forget every cached activation once the model's weights changed since last look."""
        if self._weights_seen.changed():
            self._cache.clear()
            self.stats.weight_changes += 1

    def _extractor(self, names: tuple[str, ...]) -> _Extractor:
        with self._build_lock:
            ex = self._extractors.get(names)
            if ex is None:
                model = images_in(build_extractor(self.model, list(names)), self.spec)
                ex = _Extractor(model, self.spec, self.stats, dtype=model.inputs[0].dtype)
                self._extractors[names] = ex
                self.stats.extractors_built += 1
            return ex

    def _run(self, batch: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        ex = self._extractor(names)
        parts: list[list[np.ndarray]] = []
        for start in range(0, batch.shape[0], self.batch_size):
            self.stats.network_calls += 1
            outs = ex.run(batch[start : start + self.batch_size])
            parts.append([np.asarray(o.numpy(), dtype=np.float32) for o in outs])
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate(chunk, axis=0) for chunk in zip(*parts, strict=True)]


class _Extractor:
    """An extractor model, eager on its first call and compiled from the second on.

    Tracing costs several forward passes of a mid-sized layer (VGG16 block3 at 128 px: ~100-250
    ms against ~40 ms for the pass), so a layer looked at once is answered eagerly; once a layer
    is reused (another image) it runs through a ``tf.function`` whose input signature is fixed,
    so new images and batch sizes never retrace.
    """

    def __init__(self, model: Any, spec: ImageSpec, stats: CacheStats, dtype: str = "float32"):
        tf = require_tensorflow()
        self.model = model
        self.stats = stats
        self.calls = 0
        signature = [tf.TensorSpec((None, spec.height, spec.width, spec.channels), dtype)]
        # Traced through this *instance* (it has no __code__): TF groups its "excessive
        # retracing" warning by code object, and one trace per layer is not excessive.
        self._compiled = tf.function(
            self, input_signature=signature, autograph=False, reduce_retracing=True
        )

    def __call__(self, x: Any) -> list[Any]:
        self.stats.traces += 1  # runs only while tracing
        return self._outputs(x)

    def run(self, x: np.ndarray) -> list[Any]:
        """All outputs for the batch ``x``."""
        self.calls += 1
        return self._outputs(x) if self.calls == 1 else self._compiled(x)

    def _outputs(self, x: Any) -> list[Any]:
        out = self.model(x, training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]


def images_in(extractor: Any, spec: ImageSpec) -> Any:
    """``extractor`` taking ``spec``'s images: for a model that reshapes a non-image input
    into images (``spec.input_shape``), images are reshaped back to that input first."""
    if spec.input_shape is None:
        return extractor
    keras = require_keras()
    inp = keras.Input((spec.height, spec.width, spec.channels), name="nbviz_image")
    flat = keras.layers.Reshape(spec.input_shape, name="nbviz_to_model_input")(inp)
    return keras.Model(inp, extractor(flat), name=f"{extractor.name}_on_images")


def check_channel(channel: Any, channels: int, layer: str = "") -> int:
    """Return ``channel`` as an int in ``[0, channels)`` or raise :class:`ChannelError`."""
    where = f" of layer {layer!r}" if layer else ""
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise ChannelError(
            f"Channel indices are integers; got {type(channel).__name__} {channel!r}. "
            f"Fix: pass an int in 0..{channels - 1}."
        )
    c = int(channel)
    if not 0 <= c < channels:
        raise ChannelError(
            f"Channel {c} is out of range{where}: it has {channels} channels. "
            f"Fix: pick a channel in 0..{channels - 1}."
        )
    return c


def check_filter(filter: Any, channels: int, layer: str = "") -> int:
    """Deprecated name of ``check_channel``."""
    warn_renamed("nbviz.featuremaps.check_filter", "check_channel")
    return check_channel(filter, channels, layer)


_SHARED: OrderedDict[int, tuple[weakref.ref, Any, FeatureMaps]] = OrderedDict()
_SHARED_LOCK = threading.Lock()


def feature_maps_for(model: Any, preprocess: Preprocess | None = None) -> FeatureMaps:
    """A shared :class:`FeatureMaps` for ``model`` (kept for the few most recent models).

    Lets function-style helpers such as ``show_feature_map`` reuse extractors and cached
    activations across calls without the caller holding an object.
    """
    k = id(model)
    with _SHARED_LOCK:
        entry = _SHARED.get(k)
        if entry is not None and entry[0]() is model and entry[1] is preprocess:
            _SHARED.move_to_end(k)
            return entry[2]
    fm = FeatureMaps(model, preprocess=preprocess)
    with _SHARED_LOCK:
        _SHARED[k] = (weakref.ref(model), preprocess, fm)
        while len(_SHARED) > 4:
            _SHARED.popitem(last=False)
    return fm
