"""Turn activations into pictures: normalization, colormaps, overlays, mosaics, PNG bytes.

Everything here works on numpy arrays of one image's activations, ``(H, W, C)``, and returns
uint8 RGB arrays (or PNG bytes for widgets). Matplotlib figures are built on request only
(:func:`feature_map_figure`, :func:`show_feature_map`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..deprecation import renamed_keywords
from ..imaging import apply_colormap, colormap_lut, encode_image, mosaic, to_uint8
from .activations import check_channel, feature_maps_for
from .preprocess import Preprocess

#: ``"map"``: each map stretched to its own min..max; ``"layer"``: one min..max for all maps of
#: the layer (maps stay comparable); a ``(vmin, vmax)`` pair: fixed, like the article's (0, 1).
NORMALIZATIONS = ("map", "layer")
Normalization = str | tuple[float, float]
DEFAULT_CMAP = "magma"


def check_normalization(normalization: Any) -> Normalization:
    """Validate a normalization mode (see :data:`NORMALIZATIONS`)."""
    if isinstance(normalization, str) and normalization in NORMALIZATIONS:
        return normalization
    if (
        isinstance(normalization, (tuple, list))
        and len(normalization) == 2
        and all(isinstance(v, (int, float, np.number)) for v in normalization)
        and float(normalization[1]) > float(normalization[0])
    ):
        return (float(normalization[0]), float(normalization[1]))
    raise ValueError(
        f"Unknown normalization {normalization!r}. Use 'map' (each map to its own range), "
        "'layer' (one range for the whole layer) or a fixed (vmin, vmax) with vmax > vmin."
    )


@renamed_keywords(filter="channel")
def value_range(
    acts: np.ndarray, channel: int | None, normalization: Normalization
) -> tuple[float, float]:
    """The (low, high) that maps to the ends of the colormap.

    ``acts`` is one image's activations ``(H, W, C)``; ``channel`` selects the map for ``"map"``
    normalization (``None``: the whole array).
    """
    norm = check_normalization(normalization)
    if isinstance(norm, tuple):
        return norm
    values = acts if norm == "layer" or channel is None else acts[..., channel]
    return float(np.min(values)), float(np.max(values))


def to_unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale ``values`` so ``low -> 0`` and ``high -> 1`` (clipped); a constant map gives 0."""
    v = np.asarray(values, dtype=np.float32)
    if not high > low:
        return np.zeros_like(v)
    return np.asarray(np.clip((v - np.float32(low)) / np.float32(high - low), 0.0, 1.0))


def normalize_maps(acts: np.ndarray, normalization: Normalization = "map") -> np.ndarray:
    """All maps of ``acts`` (H, W, C) scaled to [0, 1]: per map, per layer, or fixed."""
    a = np.asarray(acts, dtype=np.float32)
    norm = check_normalization(normalization)
    if isinstance(norm, tuple):
        return to_unit(a, *norm)
    if norm == "layer":
        return to_unit(a, float(a.min()), float(a.max()))
    lo = a.min(axis=(0, 1), keepdims=True)
    span = a.max(axis=(0, 1), keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0).astype(np.float32)
    return np.where(span > 0, (a - lo) / safe, 0.0).astype(np.float32)


def colorize(map01: np.ndarray, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Values in [0, 1] to uint8 RGB with a matplotlib colormap (magma by default)."""
    return apply_colormap(map01, cmap)


def enlarge(rgb: np.ndarray, min_size: int = 128) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor until the short side is ``min_size``.

    Browsers smooth small images when they stretch them; a 4x4 map should look like 16 cells.
    """
    h, w = rgb.shape[:2]
    k = max(1, int(np.ceil(min_size / max(1, min(h, w)))))
    if k == 1:
        return rgb
    return np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)


def overlay(
    image: np.ndarray, map01: np.ndarray, cmap: str = DEFAULT_CMAP, alpha: float = 0.6
) -> np.ndarray:
    """Blend a colored map over ``image`` (H, W[, C], uint8 or float in [0, 1]) at image size."""
    from PIL import Image

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}.")
    base = to_uint8(image)
    if base.ndim == 3 and base.shape[-1] == 1:
        base = base[..., 0]
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=-1)
    base = base[..., :3]
    h, w = base.shape[:2]
    m = np.asarray(map01, dtype=np.float32)
    if m.shape != (h, w):
        m = np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.BILINEAR))
    color = colorize(m, cmap).astype(np.float32)
    out = (1.0 - alpha) * base.astype(np.float32) + alpha * color
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@renamed_keywords(filter="channel")
def render_map(
    acts: np.ndarray,
    channel: int,
    cmap: str = DEFAULT_CMAP,
    normalization: Normalization = "map",
    image: np.ndarray | None = None,
    alpha: float = 0.6,
) -> np.ndarray:
    """One colored map of ``acts`` (H, W, C) as uint8 RGB, optionally over ``image``."""
    f = check_channel(channel, acts.shape[-1])
    lo, hi = value_range(acts, f, normalization)
    map01 = to_unit(acts[..., f], lo, hi)
    if image is not None:
        return overlay(image, map01, cmap, alpha)
    return colorize(map01, cmap)


def render_grid(
    acts: np.ndarray,
    cmap: str = DEFAULT_CMAP,
    normalization: Normalization = "map",
    cols: int | None = None,
    pad: int = 1,
) -> np.ndarray:
    """A mosaic of all channels of ``acts`` (H, W, C) as uint8 RGB, white gaps between maps."""
    maps01 = np.moveaxis(normalize_maps(acts, normalization), -1, 0)  # (C, H, W)
    tiles = colorize(maps01, cmap)
    return mosaic(tiles, cols=cols, pad=pad, fill=255)


@renamed_keywords(filter="channel")
def render_view(
    acts: np.ndarray,
    channel: int | None,
    cmap: str = DEFAULT_CMAP,
    normalization: Normalization = "map",
    image: np.ndarray | None = None,
    overlay_alpha: float | None = None,
    min_size: int = 192,
    max_grid_side: int = 768,
) -> np.ndarray:
    """What a viewer shows for ``acts`` (H, W, C): one map (``channel``) or the grid (``None``).

    With ``overlay_alpha`` and ``image`` the map is blended over the image; small results are
    enlarged (nearest neighbour) to ``min_size`` pixels. Grid tiles are block-averaged so the
    mosaic stays within ``max_grid_side`` pixels (a viewer shows it smaller anyway, and PNG
    encoding time grows with the pixel count). Returns uint8 RGB.
    """
    if channel is None:
        h, w, c = acts.shape
        cols = int(np.ceil(np.sqrt(c)))
        factor = int(np.ceil(max(h, w) * cols / max_grid_side))
        if factor > 1:
            acts = block_mean(acts, factor)
        return enlarge(render_grid(acts, cmap, normalization), min_size)
    if overlay_alpha is not None and image is not None:
        return enlarge(
            render_map(acts, channel, cmap, normalization, image, overlay_alpha), min_size
        )
    return enlarge(render_map(acts, channel, cmap, normalization), min_size)


def block_mean(acts: np.ndarray, factor: int) -> np.ndarray:
    """Downsample (H, W, C) maps by averaging ``factor`` x ``factor`` blocks (edges cropped)."""
    h, w, c = acts.shape
    hf, wf = max(1, h // factor), max(1, w // factor)
    fy, fx = min(factor, h), min(factor, w)
    return np.asarray(acts[: hf * fy, : wf * fx].reshape(hf, fy, wf, fx, c).mean(axis=(1, 3)))


def to_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB (or gray) array, for ``ipywidgets.Image``."""
    return encode_image(rgb, "png")


def map_stats(values: np.ndarray) -> dict[str, Any]:
    """Shape, min, max, mean and fraction of zeros of a map (or of all maps)."""
    v = np.asarray(values)
    return {
        "shape": tuple(v.shape),
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "zeros": float(np.mean(v == 0)),
    }


@renamed_keywords(filter="channel")
def feature_map_figure(
    image: np.ndarray | None,
    acts: np.ndarray,
    channel: int | None,
    title: str = "",
    cmap: str = DEFAULT_CMAP,
    normalization: Normalization = "map",
    overlay_alpha: float | None = None,
) -> Any:
    """A matplotlib ``Figure``: the input image (if given) beside one map or the grid.

    ``channel=None`` shows the mosaic of all maps. Built without pyplot, so it never touches
    global figure state; notebooks display a returned ``Figure`` inline.
    """
    from matplotlib.figure import Figure

    colormap_lut(cmap)  # clear error for an unknown colormap before drawing
    panels = 2 if image is not None else 1
    fig = Figure(figsize=(4.2 * panels, 4.0), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    if image is not None:
        shown = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        axes[0].imshow(np.clip(shown, 0, 1) if shown.dtype != np.uint8 else shown, cmap="gray")
        axes[0].set_title("input")
    ax = axes[-1]
    if channel is None:
        ax.imshow(render_grid(acts, cmap, normalization))
        ax.set_title(f"{title}: all {acts.shape[-1]} maps" if title else f"{acts.shape[-1]} maps")
    elif overlay_alpha is not None and image is not None:
        ax.imshow(render_map(acts, channel, cmap, normalization, image=image, alpha=overlay_alpha))
        ax.set_title(f"{title} channel {channel}".strip())
    else:
        f = check_channel(channel, acts.shape[-1])
        lo, hi = value_range(acts, f, normalization)
        im = ax.imshow(acts[..., f], cmap=cmap, vmin=lo, vmax=hi)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(f"{title} channel {channel}".strip())
    for a in axes:
        a.set_axis_off()
    return fig


@renamed_keywords(filter="channel")
def show_feature_map(
    image: Any,
    model: Any,
    layer_name: str,
    channel: int,
    ax: Any = None,
    cmap: str = DEFAULT_CMAP,
    normalization: Normalization = "map",
    preprocess: Preprocess | None = None,
) -> Any:
    """Draw one feature map on ``ax`` (a new pyplot axes if ``None``) and return the axes.

    The seed article's ``show_feature_map(image, model, layer_name, filter)`` (here the
    index is called ``channel``; ``filter=`` still works, deprecated), on the cached path: the
    first call for a layer and image runs the network once; other channels of the
    same layer and image are slices of the cached activations.
    """
    fm = feature_maps_for(model, preprocess)
    acts = fm.activations(image, layer_name)[0]
    f = check_channel(channel, acts.shape[-1], layer_name)
    lo, hi = value_range(acts, f, normalization)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    ax.imshow(acts[..., f], cmap=cmap, vmin=lo, vmax=hi)
    ax.set_title(f"{fm.layer_info(layer_name).name} channel {f}")
    ax.set_axis_off()
    return ax
