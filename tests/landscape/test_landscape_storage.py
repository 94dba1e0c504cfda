"""Resumable surface files: resume after SIGKILL, refusal of foreign or corrupted files,
stored directions and path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from landscape_support import mlp, parabola

from nbviz.errors import SurfaceFileError
from nbviz.landscape import (
    SurfaceFile,
    evaluate_grid,
    grid_coords,
    iter_grid,
    pca_directions,
    project_path,
    random_directions,
)

XS, YS = grid_coords(9), grid_coords(7, 0.5)
HERE = Path(__file__).resolve().parents[1]  # tests/, where landscape_support lives

CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from landscape_support import mlp, parabola
    from nbviz.landscape import grid_coords, iter_grid, random_directions
    model = mlp(0)
    x, y = parabola(64)
    d = random_directions(model, seed=0)
    for u in iter_grid(model, x, y, d, grid_coords(9), grid_coords(7, 0.5), strategy="per_point",
                       max_chunk=3, store={path!r}):
        print(u.done, flush=True)
        time.sleep(0.25)
""")


def test_sigkill_mid_grid_then_resume_loses_nothing(tmp_path):
    path = tmp_path / "surface.h5"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(HERE), path=str(path)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    lines = []
    try:
        while len(lines) < 4:
            line = child.stdout.readline()
            assert line, "the child ended before it could be killed"
            lines.append(int(line))
        time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with SurfaceFile.open(path, mode="r") as sf:
        done_before = sf.done.copy()
        z_before = sf.loss.copy()
    assert done_before.sum() >= lines[-1] and not done_before.all()

    model = mlp(0)
    x, y = parabola(64)
    d = random_directions(model, seed=0)
    ups = list(iter_grid(model, x, y, d, XS, YS, strategy="per_point", max_chunk=3, store=path))
    assert ups[0].done == done_before.sum() and len(ups[0].iy) == 0  # resumed, not redone
    resumed = ups[-1].surface
    assert resumed.complete
    np.testing.assert_array_equal(resumed.Z[done_before], z_before[done_before])
    fresh = evaluate_grid(model, x, y, d, XS, YS, strategy="per_point")
    np.testing.assert_allclose(resumed.Z, fresh.Z, rtol=1e-6)
    with SurfaceFile.open(path, mode="r", model=model) as sf:
        assert sf.done.all() and not len(sf.missing_cells()[0])
        np.testing.assert_allclose(sf.loss, fresh.Z, rtol=1e-6)


def test_file_contents_and_resume_with_stored_directions(tmp_path):
    model = mlp(0)
    x, y = parabola(64)
    from nbviz.landscape import WeightPathRecorder

    rec = WeightPathRecorder()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[rec])
    d = pca_directions(rec, model)
    path = tmp_path / "s.h5"
    s = evaluate_grid(model, x, y, d, XS, YS, store=path, metrics=["mae"], subset=32, seed=1)
    coords, residual = project_path(rec, d)
    with SurfaceFile.open(path) as sf:
        sf.write_path(coords, rec.steps, residual)
    with h5py.File(path, "r") as f:
        assert f.attrs["model_name"] == model.name and f.attrs["n_params"] == d.layout.n_params
        np.testing.assert_allclose(f.attrs["explained_variance"], d.explained_variance)
        assert f["loss"].shape == (7, 9) and f["metrics/mae"].shape == (7, 9)
    with SurfaceFile.open(path, mode="r") as sf:
        assert sf.directions.hash() == d.hash()
        np.testing.assert_array_equal(sf.surface().Z, s.Z)
        np.testing.assert_array_equal(sf.surface().stderr, s.stderr)
        np.testing.assert_array_equal(sf.read_path()["coords"], coords)
        stored = sf.directions
    again = evaluate_grid(
        model, x, y, stored, XS, YS, store=path, metrics=["mae"], subset=32, seed=1
    )
    np.testing.assert_array_equal(again.Z, s.Z)


def test_foreign_stale_and_corrupted_files_are_refused(tmp_path):
    model = mlp(0)
    x, y = parabola(32)
    path = tmp_path / "s.h5"
    evaluate_grid(model, x, y, random_directions(model, seed=0), XS, YS, store=path)
    other = mlp(0, width=8)
    with pytest.raises(SurfaceFileError, match="made for model"):
        evaluate_grid(other, x, y, random_directions(other), XS, YS, store=path)
    with pytest.raises(SurfaceFileError, match="directions differ"):
        evaluate_grid(model, x, y, random_directions(model, seed=1), XS, YS, store=path)
    with pytest.raises(SurfaceFileError, match="its grid"):
        evaluate_grid(model, x, y, random_directions(model, seed=0), XS[:3], YS, store=path)
    with pytest.raises(SurfaceFileError, match="data_fingerprint"):
        evaluate_grid(model, x, y + 1, random_directions(model, seed=0), XS, YS, store=path)
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(SurfaceFileError, match="origin weights differ"):
        evaluate_grid(model, x, y, random_directions(model, seed=0), XS, YS, store=path)
    with pytest.raises(SurfaceFileError, match="written for model"):
        SurfaceFile.open(path, model=other)

    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(SurfaceFileError, match="not an HDF5 file"):
        evaluate_grid(model, x, y, random_directions(model), XS, YS, store=junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(SurfaceFileError, match="not an nbviz surface file"):
        SurfaceFile.open(foreign)
    with pytest.raises(SurfaceFileError, match="exists"):
        SurfaceFile.create(foreign, random_directions(model), XS, YS)
