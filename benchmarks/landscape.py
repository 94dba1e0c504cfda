"""Loss landscapes: the seed article's naive loop vs nbviz.landscape, side by side.

* MLP grid (30x30, the seed's cubed coordinates and per-tensor directions) on the seed's
  parabola MLP at N=1024 and N=8192 examples: the seed's ``set_weights`` + ``test_on_batch``
  per point (on a *copy* of the model) vs ``evaluate_grid`` (stateless, vectorized chunks,
  XLA). Cold = first round (tracing/compiling included), warm = a second round. The two
  methods run interleaved (whole grids for the MLP, blocks of grid rows for the slow convnet);
  wall and CPU time are printed, warm figures are medians over the rounds after the first.
* Convnet grid (30x30, N=64) on the demo convnet: naive loop vs ``evaluate_grid`` (per point).
* Path PCA, 1M parameters x 300 snapshots: sklearn ``PCA(svd_solver="full")`` vs the Gram
  trick (``pca_directions``): time and peak memory (tracemalloc) against the snapshots' size.
* Path recording: ``WeightPathRecorder`` vs the seed's ``get_weights()`` list, per snapshot.

Goals: MLP >= 12x at N=1024 and >= 3x at N=8192 (warm); convnet never slower than naive;
PCA >= 20x faster at <= 1.5x the snapshot memory. Achieved GFLOP/s is printed next to the
machine's measured float32 matmul rate. The machine may be shared: the load average is
printed, and ratios of runs under load are noisy.

    python benchmarks/landscape.py           # full (a few minutes on 2 cores)
    python benchmarks/landscape.py --quick   # smaller N, grids and path
    python benchmarks/landscape.py --only mlp pca
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

from _common import load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


# -- the seed's method, ported to Keras 3 (its RandomCoordinates / LossSurface.compile) -------------
def seed_normalize_weights(weights, origin):
    return [
        w * np.linalg.norm(wc) / np.linalg.norm(w) for w, wc in zip(weights, origin, strict=True)
    ]


def seed_loss_grid(model, inputs, outputs, coords, a_grid, b_grid):
    """The seed's loop: set the weights of the model for every point and test_on_batch."""
    loss_grid = np.empty([len(b_grid), len(a_grid)])
    for i, a in enumerate(a_grid):
        for j, b in enumerate(b_grid):
            model.set_weights(coords(a, b))
            loss_grid[j, i] = model.test_on_batch(inputs, outputs, return_dict=True)["loss"]
    return loss_grid


def seed_coords(directions):
    """The seed's ``RandomCoordinates.__call__`` with our (identical) directions' arrays."""
    v0, v1, origin = directions.vectors[0], directions.vectors[1], directions.origin

    def coords(a, b):
        return [a * w0 + b * w1 + wc for w0, w1, wc in zip(v0, v1, origin, strict=True)]

    return coords


# -- helpers ----------------------------------------------------------------------------------------


def matmul_rate(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best float32 n x n matmul rate (GFLOP/s) of numpy and of TensorFlow."""
    import tensorflow as tf

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    best_np = min(_time(lambda: a @ a) for _ in range(repeats))
    t = tf.constant(a)
    tf.matmul(t, t).numpy()
    best_tf = min(_time(lambda: tf.matmul(t, t).numpy()) for _ in range(repeats))
    flops = 2.0 * n**3
    return flops / best_np / 1e9, flops / best_tf / 1e9


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_flops(model) -> float:
    """Multiply-add FLOPs of one example's forward pass (Dense and convolution kernels)."""
    total = 0.0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        out = tuple(layer.output.shape)
        positions = float(np.prod([s for s in out[1:-1]])) if len(out) > 2 else 1.0
        total += 2.0 * float(np.prod(kernel.shape)) * positions
    return total


def _copy_of(model):
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile(optimizer="adam", loss=model.loss)
    return clone


def _mlp_and_data(n):
    try:
        from nbviz.demo import build_parabola_mlp, parabola_data

        return build_parabola_mlp(0), *parabola_data(n, seed=0)
    except ImportError:  # the demo module is optional here: build the same MLP inline
        import keras

        model = keras.Sequential(
            [keras.Input((1,))]
            + [keras.layers.Dense(64, activation="relu") for _ in range(3)]
            + [keras.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, 1)).astype(np.float32)
        return model, x, (x[:, 0] ** 2 + 0.25 * rng.standard_normal(n)).astype(np.float32)


def _convnet_and_data(n):
    try:
        from nbviz.demo import load_demo_data, load_demo_model

        return load_demo_model(), *load_demo_data("test", n=n)
    except (ImportError, FileNotFoundError, OSError):
        import keras

        keras.utils.set_random_seed(0)
        inp = keras.Input((64, 64, 3))
        h = inp
        for i, f in enumerate((16, 32, 64, 64), start=1):
            h = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i}")(h)
            if i < 4:
                h = keras.layers.MaxPooling2D(2)(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        out = keras.layers.Activation("softmax")(keras.layers.Dense(8, name="logits")(h))
        model = keras.Model(inp, out)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        return model, rng.random((n, 64, 64, 3), dtype=np.float32), rng.integers(0, 8, n)


# -- sections ---------------------------------------------------------------------------------------
def _timed(fn):
    """(result, wall seconds, process CPU seconds)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def bench_grid(name, model, x, y, points, rounds, rate, goal, n_blocks=5):
    """Both methods on the same grid, interleaved block of rows by block of rows, so that load
    from other processes hits both alike. Round 1 includes tracing/compiling ("cold")."""
    from nbviz.landscape import evaluate_grid, grid_coords, random_directions

    # The seed's directions: Gaussian, normalized per tensor, biases included.
    d = random_directions(model, seed=0, normalization="tensor", perturb_1d=True)
    grid = grid_coords(points, 1.0, "cubed")
    clone = _copy_of(model)
    coords = seed_coords(d)
    blocks = np.array_split(np.arange(points), n_blocks)
    totals = []  # per round: naive wall, naive cpu, ours wall, ours cpu
    z_naive, z_ours = np.empty((points, points)), np.empty((points, points))
    for _ in range(rounds):
        t = np.zeros(4)
        for rows in blocks:
            z, w, c = _timed(lambda r=rows: seed_loss_grid(clone, x, y, coords, grid, grid[r]))
            z_naive[rows], t[0], t[1] = z, t[0] + w, t[1] + c
            s, w, c = _timed(
                lambda r=rows: evaluate_grid(model, x, y, d, grid, grid[r], progress=False)
            )
            z_ours[rows], t[2], t[3] = s.Z, t[2] + w, t[3] + c
        totals.append(t)
    cold = totals[0]
    warm = np.median(totals[1:], axis=0) if rounds > 1 else totals[0]
    rel = float(np.nanmax(np.abs(z_ours - z_naive) / np.abs(z_naive)))
    flops = forward_flops(model) * len(x) * points * points
    label = "warm" if rounds > 1 else "once"
    how = f"{n_blocks} interleaved row blocks" if n_blocks > 1 else f"{rounds} interleaved rounds"
    print(
        f"\n[{name}] {points}x{points} grid, N={len(x)}, {d.layout.n_params} params, "
        f"strategy={s.metadata['strategy']}, batch={s.metadata['batch_size']}, {how}"
    )
    for title, (w, c) in (
        ("naive (set_weights + test_on_batch)", warm[:2]),
        ("nbviz evaluate_grid               ", warm[2:]),
    ):
        first = f"cold {cold[0 if 'naive' in title else 2]:7.3f} s   " if rounds > 1 else ""
        print(
            f"  {title}: {first}{label} {w:7.3f} s (cpu {c:7.3f} s)   {flops / w / 1e9:6.1f} GFLOP/s"
        )
    ratio = warm[0] / warm[2]
    verdict = f"  [goal >= {goal:g}x: {'met' if ratio >= goal else 'MISSED'}]"
    cold_txt = f", cold {cold[0] / cold[2]:5.1f}x" if rounds > 1 else ""
    print(
        f"  speed-up {label} {ratio:5.1f}x (cpu time {warm[1] / warm[3]:5.1f}x){cold_txt}{verdict}"
        f"   max relative difference {rel:.1e}   (machine matmul: numpy {rate[0]:.0f}, "
        f"TF {rate[1]:.0f} GFLOP/s)"
    )
    return ratio


def bench_pca(n_params, n_snaps):
    import keras
    from sklearn.decomposition import PCA

    from nbviz.landscape import pca_directions

    # A model of n_params parameters gives the layout; the path is a synthetic training-like
    # walk: a decaying drift plus noise, float32 like the recorder stores it.
    width = int(round(n_params**0.5))
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(width, use_bias=False)])
    p = model.count_params()
    rng = np.random.default_rng(0)
    path = np.empty((n_snaps, p), dtype=np.float32)
    drift = rng.standard_normal((2, p), dtype=np.float32)
    w = rng.standard_normal(p, dtype=np.float32)
    for i in range(n_snaps):
        t = 1.0 - np.exp(-i / (n_snaps / 4))
        path[i] = w + t * drift[0] + 0.3 * np.sin(i / 20) * drift[1]
        path[i] += 0.01 * rng.standard_normal(p, dtype=np.float32)
    snap_bytes = path.nbytes

    def measured(fn):
        tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out, dt, peak

    ours, t_ours, m_ours = measured(lambda: pca_directions(path, model, center="mean"))
    ref, t_ref, m_ref = measured(lambda: PCA(n_components=2, svd_solver="full").fit(path))
    li, t_li, m_li = measured(lambda: pca_directions(path, model))  # centred on the final weights
    cos = np.abs(np.sum(ours.flat() * ref.components_, axis=1))
    print(
        f"\n[PCA] path of {n_snaps} snapshots x {p} params ({snap_bytes / 2**30:.2f} GiB float32)"
    )
    print(
        f"  sklearn PCA(svd_solver='full')   : {t_ref:7.2f} s   peak +{m_ref / 2**30:5.2f} GiB"
        f"   total {1 + m_ref / snap_bytes:4.2f}x snapshots"
    )
    print(
        f"  nbviz Gram trick (center='mean') : {t_ours:7.2f} s   peak +{m_ours / 2**30:5.2f} GiB"
        f"   total {1 + m_ours / snap_bytes:4.2f}x snapshots"
    )
    print(f"  nbviz Gram trick (Li, 'final')   : {t_li:7.2f} s   peak +{m_li / 2**30:5.2f} GiB")
    ratio = t_ref / t_ours
    mem_ok = 1 + m_ours / snap_bytes <= 1.5
    print(
        f"  speed-up {ratio:5.1f}x  [goal >= 20x: {'met' if ratio >= 20 else 'MISSED'}; memory "
        f"<= 1.5x snapshots: {'met' if mem_ok else 'MISSED'}]   |cos| to sklearn: "
        f"{cos.round(6).tolist()}, explained variance {ours.explained_variance.round(4).tolist()}"
        f" vs {ref.explained_variance_ratio_.round(4).tolist()}"
    )
    return ratio


def bench_recording(n_params, repeats):
    import keras

    from nbviz.landscape import WeightPathRecorder

    width = int(round(n_params**0.5))
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(width)])
    rec = WeightPathRecorder(memory_budget_mb=4 * model.count_params() * (repeats + 2) / 2**20)
    rec.set_model(model)
    rec.on_train_begin()  # records step 0
    rec.on_train_batch_begin(0)  # step 0 is recorded: counts the batch only
    t_rec = statistics.median(_time(lambda: rec.on_train_batch_begin(0)) for _ in range(repeats))
    assert len(rec) == repeats + 1
    seed_path = []
    t_seed = statistics.median(
        _time(lambda: seed_path.append(model.get_weights())) for _ in range(repeats)
    )
    print(
        f"\n[recording] {model.count_params()} params, one snapshot: WeightPathRecorder "
        f"{t_rec * 1e3:.2f} ms (into a preallocated {rec.nbytes / 2**20:.0f} MiB store), seed "
        f"get_weights() list {t_seed * 1e3:.2f} ms (grows without bound)"
    )


def bench_fit_overhead(n, epochs):
    import keras

    from nbviz.landscape import WeightPathRecorder

    model, x, y = _mlp_and_data(n)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # trace first

    def fit(callbacks):
        return _time(
            lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=callbacks)
        )

    times = {"plain": [], "nbviz": [], "seed": []}
    for _ in range(epochs):  # interleaved
        times["plain"].append(fit([]))
        times["nbviz"].append(fit([WeightPathRecorder()]))
        path = []
        times["seed"].append(
            fit(
                [
                    keras.callbacks.LambdaCallback(
                        on_batch_end=lambda batch, logs, p=path: p.append(model.get_weights())
                    )
                ]
            )
        )
    batches = int(np.ceil(n / 32))
    ms = {k: statistics.median(v) / batches * 1e3 for k, v in times.items()}
    print(
        f"[recording] fit of the seed MLP, {batches} batches/epoch, recording every batch: "
        f"plain {ms['plain']:.2f} ms/batch, WeightPathRecorder {ms['nbviz']:.2f} "
        f"({ms['nbviz'] - ms['plain']:+.2f}), seed LambdaCallback(get_weights) {ms['seed']:.2f} "
        f"({ms['seed'] - ms['plain']:+.2f})"
    )


SECTIONS = ["mlp", "convnet", "pca", "recording"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller N, grids and path")
    ap.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="run only these sections"
    )
    args = ap.parse_args(argv)
    quick, only = args.quick, set(args.only)
    import tensorflow as tf

    print(
        f"nbviz landscape benchmark ({'quick' if quick else 'full'}); {os.cpu_count()} CPUs, "
        f"TF {tf.__version__}, Python {sys.version.split()[0]}; {load_average()}"
    )
    rate = matmul_rate()
    print(
        f"measured float32 2048x2048 matmul: numpy {rate[0]:.0f} GFLOP/s, TF {rate[1]:.0f} GFLOP/s"
    )

    points = 15 if quick else 30
    results = {}
    if "mlp" in only:
        for n, goal in ((1024, 12), (8192, 3)):
            model, x, y = _mlp_and_data(n)
            # Whole grids alternate (one evaluate_grid call is what a user runs); the median of
            # the warm rounds damps other processes' load.
            results[f"mlp{n}"] = bench_grid(
                f"seed MLP N={n}", model, x, y, points, 4, rate, goal, n_blocks=1
            )
    if "convnet" in only:
        model, x, y = _convnet_and_data(32 if quick else 64)
        results["convnet"] = bench_grid(
            "demo convnet", model, x, y, 10 if quick else 30, 1, rate, 1.0
        )
    if "pca" in only:
        results["pca"] = bench_pca(250_000 if quick else 1_000_000, 100 if quick else 300)
    if "recording" in only:
        bench_recording(1_000_000, 10 if quick else 30)
        bench_fit_overhead(2048 if quick else 8192, 2 if quick else 3)
    print(
        "\nsummary: "
        + ", ".join(f"{k} {v:.1f}x" for k, v in results.items())
        + f"; {load_average()}"
    )


if __name__ == "__main__":
    main()
