"""Smoke test of an installed nbviz (scripts/check_release.sh runs it in a fresh venv holding
only the wheel, from a temporary directory): import, the demo model, one feature map, a few
optvis steps, a small loss grid, and each widget built headless. Fails loudly, exits non-zero.
"""

from __future__ import annotations

import importlib.metadata
import sysconfig
import time
from pathlib import Path

t0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[smoke] {msg} ({time.perf_counter() - t0:.1f} s)", flush=True)


import numpy as np  # noqa: E402

import nbviz  # noqa: E402

site = Path(sysconfig.get_paths()["purelib"]).resolve()
where = Path(nbviz.__file__).resolve()
assert site in where.parents, f"nbviz imported from {where}, not from {site}"
assert nbviz.__version__ == importlib.metadata.version("nbviz"), nbviz.__version__
assert (where.parent / "py.typed").is_file(), "py.typed is missing from the installed package"
say(f"nbviz {nbviz.__version__} from {where.parent}")

from nbviz import demo, optvis  # noqa: E402
from nbviz.featuremaps import FeatureMaps  # noqa: E402
from nbviz.landscape import evaluate_grid, grid_coords, random_directions  # noqa: E402

model = demo.load_demo_model()
before = [w.copy() for w in model.get_weights()]
image = demo.make_grating(angle_deg=0, color=(1, 0, 0))
acts = FeatureMaps(model).activations(image, "conv1")
assert acts.ndim == 4 and acts.shape[0] == 1 and np.isfinite(acts).all(), acts.shape
say(f"demo model loaded; conv1 maps {acts.shape}")

result = optvis.visualize(model, "conv4:4", steps=4)
assert result.images.shape[0] == 1 and result.images.shape[-1] == 3, result.images.shape
assert np.isfinite(result.losses).all() and 0 <= result.images.min() <= result.images.max() <= 1
say(f"optvis: 4 steps, image {result.images.shape[1:]}")

x, y = demo.parabola_data(256, seed=0)
mlp = demo.build_parabola_mlp(seed=0)
dirs = random_directions(mlp, seed=0)
surface = evaluate_grid(mlp, x, y, dirs, grid_coords(5, 1.0), grid_coords(5, 1.0))
assert surface.loss.shape == (5, 5) and np.isfinite(surface.loss).all(), surface.loss
say(f"5x5 loss grid, centre loss {surface.loss[2, 2]:.4f}")

explorer = nbviz.FeatureMapExplorer(model, image, layer="conv2")
assert explorer.wait(120), "FeatureMapExplorer did not finish"
assert explorer.current_map().ndim == 2
explorer.close()
say("FeatureMapExplorer built, computed and closed")

ov = nbviz.OptVisWidget(model, layer="conv4", channel=4, steps=3)
ov.start()
assert ov.wait(120), "OptVisWidget did not finish"
assert ov.export_png()[:8] == b"\x89PNG\r\n\x1a\n"
ov.close()
say("OptVisWidget built, ran 3 steps and closed")

land = nbviz.LossLandscapeWidget(mlp, x, y, directions="random", resolution=5, autostart=True)
assert land.wait(120), "LossLandscapeWidget did not finish"
assert land.error is None and np.isfinite(land.surface.loss).all(), land.error
assert land.export_png()[:4] == b"\x89PNG"
land.close()
say("LossLandscapeWidget (with its 3-D view) built, computed and closed")

after = model.get_weights()
assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)), (
    "the demo model's weights changed"
)
say("smoke test passed; the model's weights are unchanged")
