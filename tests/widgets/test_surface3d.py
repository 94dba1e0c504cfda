"""The swappable 3-D surface view (no browser: the browser tier checks the pixels in Lab)."""

from __future__ import annotations

import numpy as np
import pytest

from nbviz.errors import DataError, PathError
from nbviz.imaging import decode_image
from nbviz.widgets import surface3d
from nbviz.widgets.surface3d import grid_triangles, make_surface_view, resample, resolve_kind

KINDS = ["ipyvolume", "matplotlib"]


class WireComm:
    """A comm that serializes every message like the kernel does (jupyter_client's packer).

    Without a kernel, ipywidgets uses a comm that sends nothing, so state that cannot
    cross the wire (e.g. a 0-d numpy array in a trait) would only fail in a notebook.
    """

    open_comms: set[str] = set()

    def __init__(self, data=None, buffers=None, **kwargs):
        self.comm_id = f"wire-{id(self)}"
        self.messages = 0
        self.send(data, buffers)
        WireComm.open_comms.add(self.comm_id)

    def send(self, data=None, buffers=None, **kwargs):
        from jupyter_client.session import json_packer

        json_packer(data)
        self.messages += 1

    def on_msg(self, callback):
        pass

    def close(self, *args, **kwargs):
        WireComm.open_comms.discard(self.comm_id)


@pytest.fixture(autouse=True)
def wire_comm(monkeypatch):
    import comm

    monkeypatch.setattr(comm, "create_comm", lambda **kw: WireComm(**kw))


def bowl(nx=12, ny=9, scale=1.0):
    xs = np.linspace(-1.0, 1.0, nx)
    ys = np.linspace(-2.0, 2.0, ny)
    return xs, ys, scale * np.add.outer(ys**2, xs**2)  # Z[iy, ix], deliberately not square


@pytest.fixture(params=KINDS)
def view(request):
    v = make_surface_view(request.param, width=200, height=160)
    yield v
    v.close()


def test_grid_triangles_cover_grid_and_skip_nan_vertices():
    finite = np.ones((3, 4), bool)
    tris = grid_triangles(finite)
    assert tris.shape == (2 * 2 * 3, 3)
    assert set(np.unique(tris)) == set(range(12))
    finite[1, 2] = False  # vertex 1 * 4 + 2 = 6
    holed = grid_triangles(finite)
    assert 6 not in holed
    # vertex (1, 2) touches 6 triangles of the 12 in a 3x4 grid
    assert len(holed) == len(tris) - 6


def test_both_kinds_construct_and_resolve():
    for kind in KINDS:
        v = make_surface_view(kind)
        assert v.kind == kind and v.widget is not None
        v.close()
    assert resolve_kind("auto") in KINDS
    with pytest.raises(ValueError, match="ipyvolume, matplotlib"):
        make_surface_view("plotly")


def test_auto_is_matplotlib_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv(surface3d.ENV_VAR, raising=False)
    assert resolve_kind("auto") == "matplotlib"
    monkeypatch.setenv(surface3d.ENV_VAR, "ipyvolume")
    assert resolve_kind("auto") == "ipyvolume"
    assert resolve_kind("matplotlib") == "matplotlib"  # an explicit kind wins
    monkeypatch.setenv(surface3d.ENV_VAR, "vtk")
    with pytest.raises(ValueError, match="NBVIZ_SURFACE3D"):
        resolve_kind("auto")


def test_a_batch_of_updates_renders_one_picture():
    v = make_surface_view("matplotlib", width=160, height=140)
    xs, ys, Z = bowl()
    v.set_surface(xs, ys, Z)
    assert v.renders == 1
    with v.batch():
        v.set_height_label("log10 loss")
        v.set_surface(xs, ys, Z + 1.0)
        with v.batch():  # nested: still one picture, when the outer batch ends
            v.set_path(xs[:4], ys[:4], Z[0, :4])
            v.show_path = False
        assert v.renders == 1
    assert v.renders == 2
    with v.batch():  # nothing changed: no picture
        pass
    assert v.renders == 2
    v.close()


def test_ipyvolume_canvas_stream_does_not_read_back_every_frame():
    pytest.importorskip("ipyvolume")
    v = make_surface_view("ipyvolume")
    # the front end calls canvas.captureStream(capture_fps); unset, the browser reads each
    # rendered frame back from the GPU (0.1-0.4 s a frame without one)
    assert v.figure.capture_fps is not None and 0 < v.figure.capture_fps < 1e-3
    v.close()


def test_set_surface_with_nans(view):
    xs, ys, Z = bowl()
    Z[2:4, 5:8] = np.nan
    view.set_surface(xs, ys, Z)
    assert view.Z.shape == (9, 12)
    if view.kind == "ipyvolume":
        assert view.figure.meshes == [view.mesh]
        tris = view.mesh.triangles
        nan_vertices = np.flatnonzero(np.isnan(Z).reshape(-1))
        assert not np.isin(tris, nan_vertices).any()
        assert len(tris) == len(grid_triangles(np.isfinite(Z))) > 0
        assert np.isfinite(view.mesh.y).all()
        assert view.figure.scales["y"].min == pytest.approx(np.nanmin(Z))
        assert view.figure.scales["y"].max == pytest.approx(np.nanmax(Z))
    else:
        assert decode_image(view.image.value).shape[:2] == (160, 200)


def test_all_nan_surface_is_empty_not_an_error(view):
    xs, ys, Z = bowl()
    view.set_surface(xs, ys, np.full_like(Z, np.nan))
    if view.kind == "ipyvolume":
        assert view.figure.meshes == [] and view.mesh is None
        view.set_surface(xs, ys, Z)  # then cells arrive
        assert view.figure.meshes == [view.mesh]
        first = view.mesh
        view.set_surface(xs, ys, 2 * Z)  # same grid: updated in place
        assert view.mesh is first
        view.set_surface(xs[:5], ys, Z[:, :5])  # another grid: a new mesh
        assert view.mesh is not first and view.figure.meshes == [view.mesh]
        assert first.comm is None  # the old one was closed


def test_surface_validation_names_the_fix(view):
    xs, ys, Z = bowl()
    with pytest.raises(DataError, match="transposed"):
        view.set_surface(xs, ys, Z.T)
    with pytest.raises(DataError, match="NaN"):
        view.set_surface(xs, ys, np.where(Z > 3, np.inf, Z))
    with pytest.raises(PathError, match="equal"):
        view.set_path([0, 1], [0, 1], [0])


def test_set_path_updates_and_toggles(view):
    xs, ys, Z = bowl()
    view.set_surface(xs, ys, Z)
    a = np.linspace(-0.8, 0.0, 7)
    b = np.linspace(1.5, 0.0, 7)
    z = a**2 + b**2
    view.set_path(a, b, z)
    if view.kind == "ipyvolume":
        s = view.scatter
        assert view.figure.scatters == [s]
        np.testing.assert_allclose(s.x, a)
        np.testing.assert_allclose(s.z, b)
        lift = s.y - z  # the loss is ipyvolume's up axis, drawn a little above the surface
        assert np.allclose(lift, lift[0]) and 0 < lift[0] < 0.05 * (Z.max() - Z.min())
        assert s.visible
        view.show_path = False
        assert not s.visible
        view.show_path = True
        assert s.visible
        view.set_path(a[::-1], b[::-1], z[::-1])  # same length: in place
        assert view.scatter is s
        np.testing.assert_allclose(s.x, a[::-1])
        view.set_path(a[:3], b[:3], z[:3])  # the path grew or shrank: a new scatter
        assert len(view.scatter.x) == 3 and view.figure.scatters == [view.scatter]
        # a long path is drawn through a fixed number of points along it (first and last
        # kept), so that it keeps its mark while it grows during training
        n = view.PATH_POINTS
        t = np.linspace(0, 1, 5 * n)
        la, lb = -0.8 + 0.8 * t, 1.5 - 1.5 * t
        view.set_path(la, lb, la**2 + lb**2)
        s = view.scatter
        np.testing.assert_allclose(s.x, resample(la, n))
        assert len(s.x) == n and (s.x[0], s.x[-1]) == (la[0], la[-1])
        view.set_path(la[: 3 * n], lb[: 3 * n], la[: 3 * n] ** 2 + lb[: 3 * n] ** 2)
        assert view.scatter is s and view.figure.scatters == [s]
        np.testing.assert_allclose(s.x, resample(la[: 3 * n], n))
        view.clear_path()
        assert view.figure.scatters == []
    else:
        with_path = view.image.value
        view.show_path = False
        without = view.image.value
        assert with_path != without
        # the path is red; the viridis surface has no strong red
        red = _red_pixels(with_path) - _red_pixels(without)
        assert red > 20, red


def _red_pixels(png: bytes) -> int:
    px = decode_image(png).astype(int)
    return int(((px[..., 0] > 180) & (px[..., 1] < 80) & (px[..., 2] < 80)).sum())


def test_matplotlib_image_changes_with_z():
    v = make_surface_view("matplotlib", width=200, height=160)
    xs, ys, Z = bowl()
    v.set_surface(xs, ys, Z)
    first = decode_image(v.image.value).astype(int)
    v.set_surface(xs, ys, -Z)  # a dome instead of a bowl
    second = decode_image(v.image.value).astype(int)
    assert first.shape == second.shape
    assert np.abs(first - second).mean() > 2.0
    before = v.image.value
    v.azim.value = v.azim.value + 90  # the angle sliders re-render
    assert v.image.value != before
    v.close()


def test_ipyvolume_view_keeps_no_global_state():
    import ipyvolume.pylab as pylab

    before = pylab.current.figure
    a, b = make_surface_view("ipyvolume"), make_surface_view("ipyvolume")
    xs, ys, Z = bowl()
    a.set_surface(xs, ys, Z)
    b.set_surface(xs, ys, 2 * Z)
    assert a.figure is not b.figure
    assert a.figure.scales["y"].max == pytest.approx(Z.max())
    assert b.figure.scales["y"].max == pytest.approx(2 * Z.max())
    assert pylab.current.figure is before
    a.close()
    b.close()


def test_close_closes_every_widget_of_the_view():
    for kind in KINDS:
        before = set(WireComm.open_comms)
        v = make_surface_view(kind)
        xs, ys, Z = bowl()
        v.set_surface(xs, ys, Z)
        v.set_path([0, 1], [0, 1], [0, 1])
        created = WireComm.open_comms - before
        assert len(created) > 3  # figure/mesh/... or image/sliders/boxes, plus layouts
        v.close()
        assert not (WireComm.open_comms & created), kind
