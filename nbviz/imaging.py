"""Array <-> image helpers shared by the backends and widgets: colormaps and encoders."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def colormap_lut(name: str = "magma") -> np.ndarray:
    """A (256, 3) uint8 lookup table for a matplotlib colormap name."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        from .errors import closest_names

        valid = sorted(matplotlib.colormaps)
        hint = closest_names(name, valid)
        raise ValueError(
            f"Unknown colormap {name!r}."
            + (f" Did you mean {', '.join(map(repr, hint))}?" if hint else "")
            + " Use any matplotlib colormap name, e.g. 'magma', 'viridis', 'gray'."
        ) from None
    lut = cmap(np.linspace(0.0, 1.0, 256))[:, :3]
    return np.ascontiguousarray((lut * 255.0 + 0.5).astype(np.uint8))


def apply_colormap(values01: np.ndarray, name: str = "magma") -> np.ndarray:
    """Map values in [0, 1] (any shape) to uint8 RGB (shape + (3,)). NaN maps to 0."""
    v = np.nan_to_num(np.asarray(values01, dtype=np.float32), nan=0.0)
    idx = np.clip(v * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return colormap_lut(name)[idx]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a float image in [0, 1] (or uint8) to uint8, keeping its shape."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    return np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 85) -> bytes:
    """Encode an (H, W), (H, W, 1) or (H, W, 3) image (uint8 or float in [0, 1]) to bytes."""
    from PIL import Image

    a = to_uint8(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    buf = io.BytesIO()
    fmt = fmt.lower()
    if fmt in ("jpg", "jpeg"):
        Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    elif fmt == "png":
        Image.fromarray(a).save(buf, format="PNG", compress_level=1)
    else:
        raise ValueError(f"Unknown image format {fmt!r}; use 'png' or 'jpeg'.")
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG bytes to a uint8 array."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def mosaic(
    tiles: np.ndarray, cols: int | None = None, pad: int = 1, fill: float = 0.0
) -> np.ndarray:
    """Arrange ``tiles`` of shape (N, H, W[, C]) into one grid image with ``pad`` pixel gaps."""
    t = np.asarray(tiles)
    n, h, w = t.shape[:3]
    extra = t.shape[3:]
    if cols is None:
        cols = int(np.ceil(np.sqrt(n)))
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *extra), fill, dtype=t.dtype)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = t[i]
    return out
