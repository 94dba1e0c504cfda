"""Feature maps: the seed article's per-filter model vs nbviz's cached per-layer path.

The seed builds a new ``keras.Model`` for every filter (``outputs=layer.output[..., filter]``)
and runs the network once per filter. nbviz builds one extractor per layer returning all
channels (compiled once, fixed input signature) and slices the cached result. This script
times both on the same image in one run, checks they give the same maps, and prints the ratio
and the Python-side cost of one slider step (slice + colormap + PNG encode).

    python benchmarks/feature_maps.py           # VGG16 (weights=None, 128 px) + demo model
    python benchmarks/feature_maps.py --quick   # fewer repeats and sampled filters
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


# -- the seed's method, ported to Keras 3 (model.input instead of model.inputs: same graph, no
# warning when called with one tensor) -------------------------------------------------------
def seed_make_activation_model(model, layer_name, filter):
    import keras

    layer = model.get_layer(layer_name)
    feature_map = layer.output[:, :, :, filter]
    return keras.Model(inputs=model.input, outputs=feature_map)


def seed_feature_map(image, model, layer_name, filter):
    import tensorflow as tf

    act = seed_make_activation_model(model, layer_name, filter)
    return tf.squeeze(act(tf.expand_dims(image, axis=0))).numpy()


# -- helpers ------------------------------------------------------------------------------------
def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _images(size, n):
    """``n`` distinct offline photos/crops at ``size`` px, uint8 RGB."""
    from PIL import Image

    try:
        from nbviz.demo import sample_images

        pool = list(sample_images().values())
    except Exception:  # the demo package is optional here
        from sklearn.datasets import load_sample_images

        pool = list(load_sample_images().images)
    out = []
    for i in range(n):
        src = pool[i % len(pool)]
        shift = (i // len(pool)) * 7  # distinct content when the pool is small
        crop = src[shift:, shift:]
        out.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR)))
    return out


def bench_layer(model, layer, images, quick, preprocess=None, label=""):
    from nbviz.featuremaps import FeatureMaps, render_view, to_png

    fm_probe = FeatureMaps(model, preprocess=preprocess)
    channels = fm_probe.channels(layer)
    x = fm_probe.preparer.prepare(images[0])[0]  # the same model-ready image for both paths

    # Seed: one new model + one forward pass per filter.
    n_sample = min(channels, 8 if quick else (channels if channels <= 64 else 24))
    filters = np.linspace(0, channels - 1, n_sample).round().astype(int)
    seed_feature_map(x, model, layer, 0)  # warm-up of TF itself, not counted
    seed_maps, seed_times = {}, []
    for f in filters:
        t0 = time.perf_counter()
        seed_maps[int(f)] = seed_feature_map(x, model, layer, int(f))
        seed_times.append(time.perf_counter() - t0)
    seed_per_filter = statistics.median(seed_times)
    seed_total = seed_per_filter * channels

    # nbviz, cold: new backend (extractor build + one eager pass), then every filter sliced.
    def cold():
        fm = FeatureMaps(model, preprocess=preprocess)
        acts = fm.activations(images[0], layer)
        return fm, [acts[0, :, :, f] for f in range(channels)]

    t0 = time.perf_counter()
    fm, maps = cold()
    cached_cold = time.perf_counter() - t0
    diff = max(float(np.max(np.abs(maps[f] - seed_maps[f]))) for f in seed_maps)
    scale = max(float(np.max(np.abs(m))) for m in seed_maps.values()) or 1.0

    # The layer reused with a second image: the extractor is compiled (traced) once.
    t0 = time.perf_counter()
    fm.activations(images[1], layer)
    second = time.perf_counter() - t0

    # nbviz, warm: a new image on the compiled extractor (one pass, no retrace), all filters.
    warm_times = []
    for img in images[2:]:
        t0 = time.perf_counter()
        acts = fm.activations(img, layer)
        _ = [acts[0, :, :, f] for f in range(channels)]
        warm_times.append(time.perf_counter() - t0)
    cached_warm = statistics.median(warm_times)
    assert fm.stats.traces == 1, "a new image of the same size must not retrace"

    # One slider step: slice + colormap + PNG encode, what the widget does on a move.
    acts0 = fm.activations(images[0], layer)[0]  # cached
    calls = fm.stats.network_calls
    steps = []
    for f in range(min(channels, 64)):
        t0 = time.perf_counter()
        png = to_png(render_view(acts0, f, "magma", "map"))
        steps.append(time.perf_counter() - t0)
    assert fm.stats.network_calls == calls and png
    step_ms = statistics.median(steps) * 1e3
    grid_ms = _median_time(lambda: to_png(render_view(acts0, None)), 3) * 1e3

    name = f"{label}{layer}"
    print(f"\n{name}: output {tuple(acts0.shape)}, {channels} filters")
    extrapolated = "" if n_sample == channels else f" (measured {n_sample} of {channels} filters, extrapolated)"
    print(f"  seed, new model per filter : {seed_per_filter * 1e3:8.1f} ms/filter -> "
          f"{seed_total * 1e3:9.1f} ms for all {channels}{extrapolated}")
    print(f"  nbviz cached, cold         : {cached_cold * 1e3:8.1f} ms for all {channels} "
          f"(new backend: extractor build + 1 eager pass)")
    print(f"  nbviz, 2nd image (compile) : {second * 1e3:8.1f} ms (one-time tf.function trace)")
    print(f"  nbviz cached, warm         : {cached_warm * 1e3:8.1f} ms for all {channels} "
          f"(new image: 1 pass, no retrace; median of {len(warm_times)})")
    print(f"  ratio seed/cached          : {seed_total / cached_cold:8.1f}x cold, "
          f"{seed_total / cached_warm:8.1f}x warm")
    print(f"  same maps                  : max |diff| {diff:.2e} (max |map| {scale:.3g})")
    print(f"  slider step (slice+colormap+PNG, cached): {step_ms:.2f} ms median; "
          f"all-filters grid: {grid_ms:.1f} ms")
    return {"layer": name, "ratio_cold": seed_total / cached_cold,
            "ratio_warm": seed_total / cached_warm, "step_ms": step_ms}


def bench_widget_step(model, image, layer, quick):
    """The full widget path of a slider move: traits, render, status (no network)."""
    from nbviz.widgets.feature_maps import FeatureMapExplorer

    e = FeatureMapExplorer(model, image=image, layer=layer, samples={"bench": image})
    try:
        e.wait(120)
        calls = e.backend.stats.network_calls
        n = e.filter_slider.max + 1
        times = []
        for i in range(16 if quick else 64):
            t0 = time.perf_counter()
            e.filter_slider.value = (i * 7 + 1) % n
            times.append(time.perf_counter() - t0)
        assert e.backend.stats.network_calls == calls and e.error is None
        return statistics.median(times) * 1e3
    finally:
        e.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sampled filters")
    parser.add_argument("--size", type=int, default=128, help="VGG16 input size (default 128)")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores, devices: {[d.device_type for d in tf.config.list_physical_devices()]}")
    n_images = 4 if args.quick else 8
    images = _images(args.size, n_images)
    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG16(weights=None, include_top=False,
                                   input_shape=(args.size, args.size, 3))
    vgg_pre = keras.applications.vgg16.preprocess_input
    results = []
    for layer in ("block1_conv1", "block3_conv1"):
        results.append(bench_layer(vgg, layer, images, args.quick, vgg_pre, label="VGG16 "))

    try:
        from nbviz.demo import load_demo_model

        demo = load_demo_model()
    except Exception as exc:  # the demo weights may not be built yet
        demo = None
        print(f"\n(demo model skipped: {exc})")
    if demo is not None:
        from nbviz.featuremaps import FeatureMaps

        size = demo.input_shape[1]
        demo_images = _images(size, n_images)
        convs = [n for n, _ in FeatureMaps(demo).layer_choices() if "conv" in n]
        for layer in (convs[0], convs[-1]) if len(convs) > 1 else convs:
            results.append(bench_layer(demo, layer, demo_images, args.quick, label="demo "))

    step = bench_widget_step(vgg, images[0], "block3_conv1", args.quick)
    print(f"\nwidget slider step (trait change -> PNG in map_image + status), VGG16 "
          f"block3_conv1: {step:.2f} ms median")

    print("\nsummary")
    for r in results:
        print(f"  {r['layer']:<22} seed/cached {r['ratio_cold']:7.1f}x cold "
              f"{r['ratio_warm']:7.1f}x warm   slider step {r['step_ms']:.2f} ms")
    b3 = next(r for r in results if r["layer"].endswith("block3_conv1"))
    print(f"  goals: >= 100x on block3_conv1 -> {b3['ratio_warm']:.0f}x warm / "
          f"{b3['ratio_cold']:.0f}x cold; slider step < 10 ms -> "
          f"{max(r['step_ms'] for r in results):.2f} ms (worst layer), widget {step:.2f} ms")


if __name__ == "__main__":
    main()
