"""Attribution results: named value objects with the arrays and what they mean.

Every result holds a *batch* (leading axis ``N``, one row per explained image) and the
standardized images it explains (float32 in ``[0, 1]``, what the views display).
:meth:`AttributionMap.heatmaps` gives one non-negative ``(H, W)`` map per image in ``[0, 1]``
at the image's resolution, whatever the method; the raw values stay available for checks
(Integrated Gradients' completeness, Grad-CAM's channel weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._tf import require_tensorflow
from .cam import class_activation_map, grad_cam_plus_plus_weights, grad_cam_weights


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Scale each ``(H, W)`` map of a batch to ``[0, 1]`` by its maximum (all-zero stays 0)."""
    maps = np.asarray(maps, np.float32)
    peak = maps.reshape(len(maps), -1).max(axis=1) if maps.size else np.zeros(len(maps))
    peak = np.where(peak > 0, peak, 1.0).astype(np.float32)
    return maps / peak[:, None, None]


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``(N, h, w)`` maps to ``size`` (as Grad-CAM overlays do)."""
    if tuple(maps.shape[1:3]) == tuple(size):
        return np.asarray(maps, np.float32)
    tf = require_tensorflow()
    return tf.image.resize(np.asarray(maps, np.float32)[..., None], size, "bilinear").numpy()[
        ..., 0
    ]


@dataclass(frozen=True, kw_only=True)
class AttributionMap:
    """Where in the image a target comes from.

    ``method``: ``"saliency"``, ``"smoothgrad"``, ``"integrated_gradients"``, ``"grad_cam"``
    or ``"grad_cam++"``; ``target``: what was explained (e.g. ``"class 3 (horizontal red)"``);
    ``classes``: the class index per image (``None`` for objective targets); ``images``:
    ``(N, H, W, C)`` in ``[0, 1]``; ``values``: ``(N, H, W, C)`` per input value for gradient
    methods, ``(N, h, w)`` at the layer's resolution for CAM methods; ``scores``: ``(N,)``
    the target's value on each image; ``samples``: gradients averaged (SmoothGrad samples,
    IG steps) so far; ``complete``: False when stopped before all samples were done.
    """

    method: str
    target: str
    classes: list[int] | None
    images: np.ndarray
    values: np.ndarray
    scores: np.ndarray
    layer: str | None = None
    samples: int = 1
    complete: bool = True

    def __len__(self) -> int:
        """The number of images explained."""
        return len(self.values)

    def raw_maps(self) -> np.ndarray:
        """``(N, h, w)`` signed or non-negative maps before normalization (see subclasses):
        the largest absolute gradient over channels (Simonyan et al.'s saliency)."""
        return np.abs(self.values).max(axis=-1)

    def heatmaps(self) -> np.ndarray:
        """``(N, H, W)`` non-negative maps in ``[0, 1]`` at the images' resolution."""
        maps = np.maximum(self.raw_maps(), 0.0)
        return normalize_maps(upsample(maps, self.images.shape[1:3]))

    def heatmap(self, i: int = 0) -> np.ndarray:
        """The ``(H, W)`` heatmap of image ``i`` in ``[0, 1]``."""
        return self.heatmaps()[i]

    def mass_in(self, rows: slice, cols: slice, i: int = 0) -> float:
        """Share of image ``i``'s heatmap mass inside ``[rows, cols]`` (0..1; 0 for a blank map)."""
        h = self.heatmap(i)
        total = float(h.sum())
        return float(h[rows, cols].sum()) / total if total > 0 else 0.0


@dataclass(frozen=True, kw_only=True)
class IntegratedGradientsMap(AttributionMap):
    """Integrated Gradients: ``values`` sum (per image) to ``scores - baseline_scores``
    up to the path integral's discretization error, :attr:`completeness_gap`."""

    baselines: np.ndarray
    baseline_scores: np.ndarray
    steps: int

    def raw_maps(self) -> np.ndarray:
        """The absolute attribution summed over channels."""
        return np.abs(self.values.sum(axis=-1))

    @property
    def completeness_gap(self) -> np.ndarray:
        """``(N,)``: sum of attributions minus ``f(x) - f(baseline)`` (0 for exact integrals)."""
        total = self.values.reshape(len(self.values), -1).sum(axis=1, dtype=np.float64)
        return (total - (self.scores.astype(np.float64) - self.baseline_scores)).astype(np.float32)

    @property
    def completeness_error(self) -> np.ndarray:
        """``(N,)``: :attr:`completeness_gap` relative to ``|f(x) - f(baseline)|``."""
        diff = np.abs(self.scores - self.baseline_scores).astype(np.float64)
        gap = np.abs(self.completeness_gap.astype(np.float64))
        return np.where(diff > 0, gap / np.where(diff > 0, diff, 1.0), np.inf).astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class CamMap(AttributionMap):
    """Grad-CAM / Grad-CAM++: ``values`` is ``ReLU(sum_k weights_k A_k)`` at the layer's
    resolution; ``weights`` ``(N, K)`` are the channel weights."""

    weights: np.ndarray

    def raw_maps(self) -> np.ndarray:
        return self.values


@dataclass(frozen=True, kw_only=True)
class LayerAttribution:
    """How much each position and filter of ``layer`` contributes to the target.

    ``activations`` ``(N, h, w, K)`` are the layer's feature maps and ``gradients`` the
    target's gradient there (one forward and one backward pass). :attr:`values`, activation x
    gradient, is Olah et al.'s building block: summed over space it is the channel
    attribution (:attr:`channels`), over filters the spatial attribution (:attr:`spatial`).
    :meth:`cam` gives Grad-CAM / Grad-CAM++ from the same pass.
    """

    target: str
    classes: list[int] | None
    layer: str
    images: np.ndarray
    activations: np.ndarray
    gradients: np.ndarray
    scores: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """``(N, h, w, K)``: activation x gradient per position and filter."""
        return self.activations * self.gradients

    @property
    def channels(self) -> np.ndarray:
        """``(N, K)``: attribution of each filter, summed over space."""
        return self.values.sum(axis=(1, 2))

    @property
    def spatial(self) -> np.ndarray:
        """``(N, h, w)``: attribution of each position, summed over filters."""
        return self.values.sum(axis=-1)

    def top_channels(self, n: int = 8, i: int = 0) -> list[int]:
        """The ``n`` filters with the largest (positive) attribution for image ``i``."""
        order = np.argsort(-self.channels[i], kind="stable")
        return [int(k) for k in order[: int(n)]]

    def channel_map(self, channel: int, i: int = 0) -> np.ndarray:
        """``(h, w)`` attribution of one filter over space (the spatial x channel view)."""
        return self.values[i, :, :, int(channel)]

    def cam(self, plus_plus: bool = False) -> CamMap:
        """Grad-CAM (or Grad-CAM++) of this layer and target, from these arrays."""
        if plus_plus:
            weights = grad_cam_plus_plus_weights(self.activations, self.gradients)
        else:
            weights = grad_cam_weights(self.gradients)
        return CamMap(
            method="grad_cam++" if plus_plus else "grad_cam", target=self.target,
            classes=self.classes, images=self.images,
            values=class_activation_map(self.activations, weights), scores=self.scores,
            layer=self.layer, weights=weights.astype(np.float32),
        )  # fmt: skip
