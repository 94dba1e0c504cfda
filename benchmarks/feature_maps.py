"""Feature maps: the seed article's per-filter model vs nbviz's cached per-layer path.

The seed builds a new ``keras.Model`` for every filter (``outputs=layer.output[..., filter]``)
and runs the network once per filter. nbviz builds one extractor per layer returning all
channels (compiled once, fixed input signature) and slices the cached result. This script
times both on the same image in one run, checks they give the same maps, and prints the ratio
and the Python-side cost of one slider step (slice + colormap + PNG encode).

    python benchmarks/feature_maps.py           # VGG16 (weights=None, 128 px) + demo model
    python benchmarks/feature_maps.py --quick   # fewer repeats and sampled filters
    python benchmarks/feature_maps.py --fingerprint  # only the weight-change check per step
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


def _photo(size):
    """An offline photo (scikit-learn's china.jpg) resized to ``size`` px, uint8 RGB."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photo = load_sample_images().images[0]
    return np.asarray(Image.fromarray(photo).resize((size, size), Image.Resampling.BILINEAR))


def bench_layer(model, layer, image, quick, preprocess=None, label=""):
    """Time the seed and the cached path on ``layer``, interleaved so both see the same load."""
    from nbviz.featuremaps import FeatureMaps, render_view, to_png

    fm = FeatureMaps(model, preprocess=preprocess)
    channels = fm.channels(layer)
    x = fm.preparer.prepare(image)[0]  # the same model-ready image for both paths

    def all_maps(backend):
        acts = backend.activations(image, layer)
        return [acts[0, :, :, f] for f in range(channels)]

    seed_feature_map(x, model, layer, 0)  # warm-up of TF itself, not counted
    all_maps(fm)  # first look: eager
    fm.clear_cache()
    t0 = time.perf_counter()
    all_maps(fm)  # the layer reused: its extractor is compiled (traced) once
    second = time.perf_counter() - t0

    # One round = one seed filter (new model + pass), one cold look (new backend: extractor
    # build + eager pass + all slices), one warm look (compiled extractor, cache cleared).
    n_sample = min(channels, 8 if quick else (channels if channels <= 64 else 24))
    filters = np.linspace(0, channels - 1, n_sample).round().astype(int)
    seed_maps, seed_times, cold_times, warm_times = {}, [], [], []
    for f in filters:
        t0 = time.perf_counter()
        seed_maps[int(f)] = seed_feature_map(x, model, layer, int(f))
        seed_times.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        maps = all_maps(FeatureMaps(model, preprocess=preprocess))
        cold_times.append(time.perf_counter() - t0)

        fm.clear_cache()
        t0 = time.perf_counter()
        all_maps(fm)
        warm_times.append(time.perf_counter() - t0)
    assert fm.stats.traces == 1, "new images must not retrace"
    seed_per_filter = statistics.median(seed_times)
    seed_total = seed_per_filter * channels
    cached_cold = statistics.median(cold_times)
    cached_warm = statistics.median(warm_times)
    diff = max(float(np.max(np.abs(maps[f] - seed_maps[f]))) for f in seed_maps)
    scale = max(float(np.max(np.abs(m))) for m in seed_maps.values()) or 1.0

    # One slider step: slice + colormap + PNG encode, what the widget does on a move.
    acts0 = fm.activations(image, layer)[0]  # cached
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
    rounds = f"median of {n_sample}, interleaved"
    print(f"\n{name}: output {tuple(acts0.shape)}, {channels} filters")
    extrapolated = (
        "" if n_sample == channels else f"; measured {n_sample} of {channels} filters, extrapolated"
    )
    print(
        f"  seed, new model per filter : {seed_per_filter * 1e3:8.1f} ms/filter -> "
        f"{seed_total * 1e3:9.1f} ms for all {channels} ({rounds}{extrapolated})"
    )
    print(
        f"  nbviz, first look (cold)   : {cached_cold * 1e3:8.1f} ms for all {channels} "
        f"(new backend: extractor build + 1 eager pass; {rounds})"
    )
    print(f"  nbviz, layer reused        : {second * 1e3:8.1f} ms once (tf.function trace + pass)")
    print(
        f"  nbviz, new image (warm)    : {cached_warm * 1e3:8.1f} ms for all {channels} "
        f"(compiled, no retrace; {rounds})"
    )
    print(
        f"  ratio seed/nbviz           : {seed_total / cached_cold:8.1f}x cold, "
        f"{seed_total / cached_warm:8.1f}x warm"
    )
    print(f"  same maps                  : max |diff| {diff:.2e} (max |map| {scale:.3g})")
    print(
        f"  slider step (slice+colormap+PNG, cached): {step_ms:.2f} ms median; "
        f"all-filters grid view: {grid_ms:.1f} ms"
    )
    return {
        "layer": name,
        "ratio_cold": seed_total / cached_cold,
        "ratio_warm": seed_total / cached_warm,
        "step_ms": step_ms,
    }


def bench_widget_step(model, image, layer, quick, preprocess=None):
    """The full widget path of a slider move: traits, render, status (no network)."""
    from nbviz.widgets.feature_maps import FeatureMapExplorer

    e = FeatureMapExplorer(
        model, image=image, layer=layer, preprocess=preprocess, samples={"bench": image}
    )
    try:
        e.wait(120)
        calls = e.backend.stats.network_calls
        n = e.channel_slider.max + 1
        times = []
        for i in range(16 if quick else 64):
            t0 = time.perf_counter()
            e.channel_slider.value = (i * 7 + 1) % n
            times.append(time.perf_counter() - t0)
        assert e.backend.stats.network_calls == calls and e.error is None
        return statistics.median(times) * 1e3
    finally:
        e.close()


def bench_fingerprint(quick):
    """The weight-change check every cached lookup makes, on full VGG16 (138 M parameters):
    nbviz's sampled fingerprint vs the naive way (hash every weight)."""
    import keras

    from nbviz.fingerprint import WeightFingerprint
    from nbviz.landscape import weights_hash

    vgg = keras.applications.VGG16(weights=None)
    fp = WeightFingerprint(vgg)
    fp.changed()
    repeats = 50 if quick else 300
    sampled = _median_time(fp.changed, repeats) * 1e3
    naive = (
        _median_time(lambda: weights_hash([v.numpy() for v in vgg.weights]), 3 if quick else 5)
        * 1e3
    )
    n = sum(int(np.prod(v.shape)) for v in vgg.weights)
    print(
        f"weight-change check per cached step, VGG16 ({n / 1e6:.0f} M parameters): "
        f"sampled fingerprint {sampled:.2f} ms median, naive full hash {naive:.0f} ms "
        f"({naive / sampled:.0f}x)"
    )
    return sampled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sampled filters")
    parser.add_argument("--size", type=int, default=128, help="VGG16 input size (default 128)")
    parser.add_argument(
        "--fingerprint",
        action="store_true",
        help="only time the weight-change check of a cached step",
    )
    args = parser.parse_args(argv)
    if args.fingerprint:
        bench_fingerprint(args.quick)
        return

    import keras
    import tensorflow as tf

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPU cores, devices: {[d.device_type for d in tf.config.list_physical_devices()]}"
    )
    photo = _photo(args.size)
    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG16(
        weights=None, include_top=False, input_shape=(args.size, args.size, 3)
    )
    vgg_pre = keras.applications.vgg16.preprocess_input
    results = []
    for layer in ("block1_conv1", "block3_conv1"):
        results.append(bench_layer(vgg, layer, photo, args.quick, vgg_pre, label="VGG16 "))

    try:
        from nbviz.demo import load_demo_model

        demo = load_demo_model()
    except Exception as exc:  # the demo weights may not be built yet
        demo = None
        print(f"\n(demo model skipped: {exc})")
    if demo is not None:
        from nbviz.featuremaps import FeatureMaps

        size = demo.input_shape[1]
        demo_photo = _photo(size)
        convs = [n for n, _ in FeatureMaps(demo).layer_choices() if "conv" in n]
        for layer in (convs[0], convs[-1]) if len(convs) > 1 else convs:
            results.append(bench_layer(demo, layer, demo_photo, args.quick, label="demo "))

    widget_steps = {}
    for layer in ("block1_conv1", "block3_conv1"):
        widget_steps[layer] = bench_widget_step(vgg, photo, layer, args.quick, vgg_pre)
        print(
            f"\nwidget slider step (trait change -> PNG in map_image + status), VGG16 {layer}: "
            f"{widget_steps[layer]:.2f} ms median"
        )
    step = max(widget_steps.values())

    print("\nsummary")
    for r in results:
        print(
            f"  {r['layer']:<22} seed/cached {r['ratio_cold']:7.1f}x cold "
            f"{r['ratio_warm']:7.1f}x warm   slider step {r['step_ms']:.2f} ms"
        )
    b3 = next(r for r in results if r["layer"].endswith("block3_conv1"))
    print(
        f"  goals: >= 100x on block3_conv1 -> {b3['ratio_warm']:.0f}x warm / "
        f"{b3['ratio_cold']:.0f}x cold; slider step < 10 ms -> "
        f"{max(r['step_ms'] for r in results):.2f} ms (worst layer), widget {step:.2f} ms (worst)"
    )


if __name__ == "__main__":
    main()
