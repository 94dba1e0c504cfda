"""Export rendered arrays: animated GIF / MP4 of frames, ``.npy`` bytes, ``data:`` URIs.

Backend-side (no widget imports): the widgets call these to offer downloads, and scripts can
call them directly. Images are uint8 or float in ``[0, 1]``, shaped (H, W), (H, W, 1) or (H, W, 3).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ImageError
from .imaging import to_uint8


def _rgb_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(frames) == 0:
        raise ImageError("No frames to export. Fix: render something first (press Start).")
    out = []
    for f in frames:
        a = to_uint8(np.asarray(f))
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        if a.ndim != 3 or a.shape[-1] != 3:
            raise ImageError(
                f"Frames are (H, W), (H, W, 1) or (H, W, 3) images; got shape {a.shape}."
            )
        out.append(a)
    if len({f.shape for f in out}) != 1:
        raise ImageError(f"All frames must have one size; got {sorted({f.shape for f in out})}.")
    return out


def encode_gif(frames: Sequence[np.ndarray], fps: float = 10.0, loop: int = 0) -> bytes:
    """An animated GIF of ``frames`` (each with its own adaptive 256-colour palette).

    ``loop=0`` repeats forever. Consecutive frames that are identical after quantization are
    merged by Pillow (their durations add up), so pass distinct frames if the count matters.
    """
    from PIL import Image

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}.")
    images = [
        Image.fromarray(a).quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        for a in _rgb_frames(frames)
    ]
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(20, int(round(1000.0 / fps))),
        loop=loop,
        disposal=1,
    )
    return buf.getvalue()


def decode_gif(data: bytes) -> np.ndarray:
    """All frames of a GIF as one (N, H, W, 3) uint8 array."""
    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(data)) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])


def mp4_available() -> bool:
    """True if ``imageio`` with its ffmpeg plugin is installed (``pip install imageio[ffmpeg]``)."""
    try:
        import imageio.v3  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def encode_mp4(frames: Sequence[np.ndarray], fps: float = 10.0) -> bytes:
    """An H.264 MP4 of ``frames``; needs ``imageio[ffmpeg]`` (a clear ImportError otherwise)."""
    if not mp4_available():
        raise ImportError(
            "MP4 export needs imageio with ffmpeg. Fix: pip install 'imageio[ffmpeg]', or "
            "export an animated GIF instead."
        )
    import imageio.v3 as iio

    rgb = _rgb_frames(frames)
    # H.264 with yuv420p needs even sides: pad by one pixel where needed.
    h, w = rgb[0].shape[:2]
    stack = np.stack(rgb)
    stack = np.pad(stack, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return iio.imwrite("<bytes>", stack, extension=".mp4", fps=fps)


def encode_npy(array: np.ndarray) -> bytes:
    """``np.save`` bytes of ``array`` (load back with ``np.load(io.BytesIO(data))``)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    """A ``data:`` URI for ``data`` (for download links in notebook HTML)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def write_bytes(data: bytes, path: str | os.PathLike | None) -> bytes:
    """Write ``data`` to ``path`` (creating parent folders) if a path is given; return ``data``."""
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return data
