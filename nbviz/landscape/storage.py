"""Resumable surface files (HDF5) and saved directions.

A surface file holds the coordinates, the loss grid (NaN-filled), a ``done`` mask (a diverged
cell is done and NaN, a missing one is not done), optional metric and standard-error grids,
the directions with their origin and metadata, the data's fingerprint, and optionally a
projected training path. All datasets are created, fully allocated and contiguous when the
file is made; afterwards only their values change (values first, flush, then the ``done``
flags, flush), so a process killed at any moment leaves a readable file in which every cell
marked done is complete. Reopening it with the same settings computes only missing cells.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import SurfaceFileError
from .directions import Directions
from .surface import Surface
from .weights import WeightLayout

FORMAT = "nbviz-surface"
DIRECTIONS_FORMAT = "nbviz-directions"
VERSION = 1


def _h5py() -> Any:
    import h5py

    return h5py


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CORRUPT_MARKERS = (
    "truncated file",
    "file signature not found",
    "bad object header",
    "bad symbol table",
    "unable to read",
)


def _has_hdf5_signature(path: str) -> bool:
    """True when ``path`` starts like an HDF5 file (signature at 0, 512, 1024, ...)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head == HDF5_SIGNATURE:
                return True
            size, offset = os.path.getsize(path), 512
            while offset + 8 <= size and offset <= 2**20:
                f.seek(offset)
                if f.read(8) == HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


def open_error(path: str | os.PathLike, mode: str, exc: BaseException) -> SurfaceFileError:
    """The :class:`SurfaceFileError` that names why ``path`` could not be opened or created.

    Only a file that is provably not a (complete) HDF5 file is called corrupted and may be
    deleted; a locked, unreadable or unwritable file is healthy and is never to be deleted.
    """
    name = os.fspath(path)
    text = str(exc)
    errno_ = getattr(exc, "errno", None)
    parent = os.path.dirname(os.path.abspath(name))
    writing = mode != "r"
    if "unable to lock file" in text or errno_ in (11, 35):  # EAGAIN / EWOULDBLOCK
        return SurfaceFileError(
            f"{name!r} is locked by another process (another notebook, script or nbviz run "
            "has it open, e.g. still computing that grid). The file is not damaged: do not "
            "delete it. Fix: let that run finish or close it there (SurfaceFile.close(), or "
            "restart that kernel), then retry; or use another path for this run."
        )
    if isinstance(exc, IsADirectoryError) or os.path.isdir(name):
        return SurfaceFileError(
            f"{name!r} is a directory. Fix: choose another path, a file "
            "name such as 'surface.h5' inside it."
        )
    if isinstance(exc, FileNotFoundError) or errno_ == 2:
        if not os.path.isdir(parent):
            return SurfaceFileError(
                f"Cannot {'create' if writing else 'open'} {name!r}: the directory {parent!r} "
                "does not exist. Fix: create it first (os.makedirs(path, exist_ok=True)) or "
                "choose another path."
            )
        return SurfaceFileError(
            f"Cannot {'create' if writing else 'open'} {name!r} ({text}). "
            "Fix: choose a path in a normal, writable directory."
        )
    if isinstance(exc, PermissionError) or errno_ in (1, 13, 30):  # EPERM / EACCES / EROFS
        what = "write" if writing else "read"
        return SurfaceFileError(
            f"No permission to {what} {name!r} ({text.split('(')[0].strip() or 'denied'}; "
            f"a read-only location or file). Fix: choose a writable path, e.g. in your home "
            f"or working directory, or change its permissions"
            + ("; to only read an existing surface, open it with mode='r'." if writing else ".")
        )
    if os.path.isfile(name) and not _has_hdf5_signature(name):
        return SurfaceFileError(
            f"{name!r} is not an HDF5 file (another format, or overwritten): {text}. Fix: "
            "choose another path, or delete it if you do not need it; it will be recomputed."
        )
    if any(m in text.lower() for m in CORRUPT_MARKERS):
        return SurfaceFileError(
            f"{name!r} is an HDF5 file that cannot be read (corrupted or truncated, e.g. a "
            f"copy that did not finish): {text}. Fix: delete it or choose another path; it "
            "will be recomputed."
        )
    return SurfaceFileError(
        f"{name!r} could not be opened ({type(exc).__name__}: {text}). It may be in use by "
        "another program or on a failing disk. Fix: close other programs that use it and "
        "retry, or choose another path."
    )


def _open_h5(path: str | os.PathLike, mode: str) -> Any:
    h5py = _h5py()
    try:
        return h5py.File(path, mode)
    except (OSError, ValueError) as exc:
        raise open_error(path, mode, exc) from exc


# -- directions <-> HDF5 group -------------------------------------------------------------------
def write_directions(group: Any, directions: Directions) -> None:
    """Store directions (arrays, origin, layout, metadata) in an HDF5 group."""
    group.attrs["layout"] = json.dumps(directions.layout.to_dict())
    group.attrs["meta"] = json.dumps(directions.describe())
    group.attrs["hash"] = directions.hash()
    group.create_dataset("vectors", data=directions.flat())
    origin = group.create_group("origin")
    for i, w in enumerate(directions.origin):
        origin.create_dataset(str(i), data=np.asarray(w))


def read_directions(group: Any) -> Directions:
    """Directions written by :func:`write_directions` (the exact arrays)."""
    try:
        layout = WeightLayout.from_dict(json.loads(group.attrs["layout"]))
        meta = dict(json.loads(group.attrs["meta"]))
        flat = np.asarray(group["vectors"][...], dtype=np.float32)
        origin = [np.asarray(group["origin"][str(i)][...]) for i in range(len(layout))]
    except (KeyError, ValueError, TypeError) as exc:
        raise SurfaceFileError(
            f"The directions in {group.file.filename!r} are incomplete or unreadable ({exc}). "
            "Fix: delete the file and make the directions again."
        ) from exc
    vectors = [[np.array(a) for a in layout.unflatten(row, cast=False)] for row in flat]
    ev = meta.pop("explained_variance", None)
    core = {k: meta.pop(k, None) for k in ("kind", "seed", "normalization")}
    for k in ("n", "origin_hash", "model_name", "n_params"):
        meta.pop(k, None)
    return Directions(
        vectors,
        origin,
        layout,
        kind=core["kind"] or "custom",
        seed=core["seed"],
        normalization=core["normalization"],
        explained_variance=None if ev is None else np.asarray(ev),
        metadata=meta,
    )


def save_directions(path: str | os.PathLike, directions: Directions) -> None:
    """Save directions to their own HDF5 file (reload with :func:`load_directions`)."""
    with _open_h5(path, "w") as f:
        f.attrs["format"] = DIRECTIONS_FORMAT
        write_directions(f, directions)


def load_directions(path: str | os.PathLike, model: Any | None = None) -> Directions:
    """Directions saved by :func:`save_directions`; with ``model``, refuse another architecture."""
    with _open_h5(path, "r") as f:
        if f.attrs.get("format") != DIRECTIONS_FORMAT:
            raise SurfaceFileError(
                f"{os.fspath(path)!r} is not an nbviz directions file. Fix: save directions "
                "with save_directions(path, directions)."
            )
        d = read_directions(f)
    if model is not None:
        _check_layout(d.layout, model, path)
    return d


def _check_layout(layout: WeightLayout, model: Any, path: Any) -> None:
    mine = WeightLayout.from_model(model)
    if not mine.matches(layout):
        raise SurfaceFileError(
            f"{os.fspath(path)!r} was written for model {layout.model_name!r} "
            f"({layout.n_params} parameters in {len(layout)} tensors), not for model "
            f"{mine.model_name!r} ({mine.n_params} parameters in {len(mine)} tensors). "
            "Fix: use another file path for this model (that file holds the other model's "
            "surface)."
        )


def regularization_included(info: dict) -> bool:
    """Whether a run's loss included regularization losses (files from before nbviz recorded
    it, and models without any, count as not)."""
    return bool(info.get("regularization", False)) and int(info.get("regularization_terms", 0)) > 0


# -- surface files ---------------------------------------------------------------------------------
class SurfaceFile:
    """A resumable loss-surface file. Use :meth:`create`, :meth:`open` or :meth:`for_grid`."""

    def __init__(self, h5: Any, path: str | os.PathLike) -> None:
        self._f = h5
        self.path = os.fspath(path)
        try:
            if h5.attrs.get("format") != FORMAT:
                raise KeyError("format")
            self.xs = np.asarray(h5["xs"][...], dtype=float)
            self.ys = np.asarray(h5["ys"][...], dtype=float)
            self.loss = np.asarray(h5["loss"][...], dtype=float)
            self.done = np.asarray(h5["done"][...]).astype(bool)
            self.stderr = np.asarray(h5["stderr"][...], dtype=float)
            self.metrics = {k: np.asarray(v[...], dtype=float) for k, v in h5["metrics"].items()}
            self.info: dict[str, Any] = json.loads(h5.attrs["info"])
        except (KeyError, ValueError, TypeError) as exc:
            ours = h5.attrs.get("format") == FORMAT
            h5.close()
            if not ours:
                raise SurfaceFileError(
                    f"{self.path!r} is an HDF5 file but not an nbviz surface file (it holds "
                    "other data). Fix: choose another path for the surface; leave that file be."
                ) from exc
            raise SurfaceFileError(
                f"{self.path!r} is an nbviz surface file but incomplete (missing {exc}; written "
                "by a run that was killed while creating it, or edited). Fix: delete it or "
                "choose another path; it will be recomputed."
            ) from exc
        self._directions: Directions | None = None

    # -- making and opening ------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        directions: Directions,
        xs: ArrayLike,
        ys: ArrayLike,
        metrics: Sequence[str] = (),
        info: dict | None = None,
        overwrite: bool = False,
    ) -> SurfaceFile:
        """Make a new file with NaN-filled grids. ``info``: JSON-able run settings (loss, data...)."""
        if Path(path).exists() and not overwrite:
            raise SurfaceFileError(
                f"{os.fspath(path)!r} exists. Fix: open it to resume (SurfaceFile.open), "
                "pass overwrite=True, or choose another path."
            )
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        shape = (len(ys), len(xs))
        nan = np.full(shape, np.nan)
        with _open_h5(path, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            desc = directions.describe()
            f.attrs["model_name"] = directions.layout.model_name
            f.attrs["n_params"] = directions.layout.n_params
            f.attrs["origin_hash"] = desc["origin_hash"]
            f.attrs["directions_hash"] = directions.hash()
            f.attrs["seed"] = -1 if directions.seed is None else int(directions.seed)
            f.attrs["explained_variance"] = np.asarray(desc["explained_variance"] or [], float)
            f.attrs["info"] = json.dumps(info or {})
            f.create_dataset("xs", data=xs)
            f.create_dataset("ys", data=ys)
            # Contiguous, fully written now: later writes change values, never structure.
            f.create_dataset("loss", data=nan)
            f.create_dataset("stderr", data=nan)
            f.create_dataset("done", data=np.zeros(shape, np.uint8))
            g = f.create_group("metrics")
            for m in metrics:
                g.create_dataset(m, data=nan)
            write_directions(f.create_group("directions"), directions)
        return cls.open(path)

    @classmethod
    def open(
        cls, path: str | os.PathLike, mode: str = "r+", model: Any | None = None
    ) -> SurfaceFile:
        """Open an existing file (``mode="r"`` to only read); with ``model``, refuse a file made
        for another architecture."""
        if not Path(path).exists():
            raise SurfaceFileError(f"No surface file at {os.fspath(path)!r}. Fix: check the path.")
        sf = cls(_open_h5(path, mode), path)
        if model is not None:
            try:
                _check_layout(sf.directions.layout, model, path)
            except SurfaceFileError:
                sf.close()
                raise
        return sf

    @classmethod
    def for_grid(
        cls,
        path: str | os.PathLike,
        directions: Directions,
        xs: ArrayLike,
        ys: ArrayLike,
        metrics: Sequence[str],
        info: dict,
    ) -> SurfaceFile:
        """Create the file, or reopen it to resume when it holds the same grid.

        Raises :class:`SurfaceFileError` naming every difference (origin, directions, grid,
        loss, metrics, data) when the file belongs to another computation.
        """
        if not Path(path).exists() or Path(path).stat().st_size == 0:
            return cls.create(path, directions, xs, ys, metrics, info, overwrite=True)
        sf = cls.open(path)
        try:
            sf.check_same(directions, xs, ys, metrics, info)
        except SurfaceFileError:
            sf.close()
            raise
        return sf

    def check_same(
        self,
        directions: Directions,
        xs: ArrayLike,
        ys: ArrayLike,
        metrics: Sequence[str],
        info: dict,
    ) -> None:
        """Raise :class:`~nbviz.errors.SurfaceFileError` naming every difference when this
        file was made for another model, origin, directions, grid, metrics or settings."""
        problems = []
        mine = self._f.attrs
        if mine["n_params"] != directions.layout.n_params or not self.directions.layout.matches(
            directions.layout
        ):
            problems.append(
                f"it was made for model {mine['model_name']!r} ({mine['n_params']} parameters), "
                f"not {directions.layout.model_name!r} ({directions.layout.n_params})"
            )
        elif mine["origin_hash"] != directions.origin_hash():
            problems.append("its origin weights differ (the model trained on or is another one)")
        elif mine["directions_hash"] != directions.hash():
            problems.append("its directions differ (other seed, normalization or path)")
        if not (
            np.array_equal(self.xs, np.asarray(xs, float))
            and np.array_equal(self.ys, np.asarray(ys, float))
        ):
            problems.append(f"its grid is {len(self.xs)}x{len(self.ys)} over other coordinates")
        if sorted(self.metrics) != sorted(metrics):
            problems.append(f"its metrics are {sorted(self.metrics)}, not {sorted(metrics)}")
        for key in ("loss", "data_fingerprint", "n_examples"):
            if self.info.get(key) != info.get(key):
                problems.append(f"its {key} is {self.info.get(key)!r}, not {info.get(key)!r}")
        if regularization_included(self.info) != regularization_included(info):
            problems.append(
                "its loss "
                + ("includes" if regularization_included(self.info) else "leaves out")
                + " the model's regularization losses (regularization="
                + f"{regularization_included(self.info)})"
            )
        if problems:
            raise SurfaceFileError(
                f"{self.path!r} holds another surface: " + "; ".join(problems) + ". Fix: use "
                "another file path for this one; to resume that one, pass the same model, data, "
                "loss and grid, with the directions stored in it (SurfaceFile.open(path).directions)."
            )

    # -- reading -----------------------------------------------------------------------------
    @property
    def directions(self) -> Directions:
        """The exact directions (and origin) this surface was computed with."""
        if self._directions is None:
            self._directions = read_directions(self._f["directions"])
        return self._directions

    def missing_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """``(iy, ix)`` of the cells not computed yet."""
        iy, ix = np.nonzero(~self.done)
        return iy, ix

    def surface(self) -> Surface:
        """Everything computed so far as a :class:`Surface` (copies)."""
        stderr = self.stderr.copy() if self.info.get("subset") is not None else None
        return Surface(
            self.xs.copy(),
            self.ys.copy(),
            self.loss.copy(),
            self.done.copy(),
            {k: v.copy() for k, v in self.metrics.items()},
            stderr,
            self.directions,
            {**self.info, "file": self.path},
        )

    def read_path(self) -> dict[str, np.ndarray] | None:
        """The projected training path stored with :meth:`write_path`, or None."""
        if "path" not in self._f:
            return None
        return {k: np.asarray(v[...]) for k, v in self._f["path"].items()}

    # -- writing -----------------------------------------------------------------------------
    def write_cells(
        self,
        iy: np.ndarray,
        ix: np.ndarray,
        loss: np.ndarray,
        metrics: dict[str, np.ndarray],
        stderr: np.ndarray | None,
    ) -> None:
        """Store finished cells and flush (values first, then their ``done`` flags)."""
        iy, ix = np.asarray(iy), np.asarray(ix)
        if iy.size == 0:
            return
        self.loss[iy, ix] = loss
        if stderr is not None:
            self.stderr[iy, ix] = stderr
        for k, v in metrics.items():
            self.metrics[k][iy, ix] = v
        rows = slice(int(iy.min()), int(iy.max()) + 1)
        self._f["loss"][rows] = self.loss[rows]
        self._f["stderr"][rows] = self.stderr[rows]
        for k in metrics:
            self._f["metrics"][k][rows] = self.metrics[k][rows]
        self._f.flush()
        self.done[iy, ix] = True
        self._f["done"][rows] = self.done[rows].astype(np.uint8)
        self._f.flush()

    def write_path(
        self,
        coords: np.ndarray,
        steps: np.ndarray | None = None,
        residual: np.ndarray | None = None,
    ) -> None:
        """Store a projected training path (replaces any stored one)."""
        if "path" in self._f:
            del self._f["path"]
        g = self._f.create_group("path")
        g.create_dataset("coords", data=np.asarray(coords, float))
        if steps is not None:
            g.create_dataset("steps", data=np.asarray(steps, np.int64))
        if residual is not None:
            g.create_dataset("residual", data=np.asarray(residual, float))
        self._f.flush()

    def close(self) -> None:
        """Close the HDF5 file (safe to call twice)."""
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> SurfaceFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
