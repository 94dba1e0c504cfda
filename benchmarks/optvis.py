"""Benchmark: the seed article's eager optimization loop vs nbviz's compiled renderer.

Side by side in one run, on VGG16 (weights=None, 128 px, block3_conv1) and on the demo
convnet (64 px, conv3), one filter each:

* ``seed``   -- the article's ``OptVis`` (ported to Keras 3): an activation model per filter,
  an eager ``tf.GradientTape`` step, ``optimizer.apply_gradients`` on a pixel variable.
* ``bare``   -- nbviz ``Renderer`` with the same work: pixel image, no transforms, no
  gradient normalization, post-activation output.
* ``full``   -- nbviz ``Renderer`` with the whole recipe: spectral + colour-decorrelated
  image, Lucid's transforms, per-row gradient normalization, pre-activation objective.

Renderers are driven as a widget drives them (``frames(every=8)``, image fetched every
frame). Every variant is warmed up (traced) before timing; the best of ``--repeats``
timed runs is reported (as ``timeit`` does), the variants' runs interleaved so that load
from other processes hits all of them alike. Goals: ``full / seed >= 2.4`` and ``bare / full - 1 <= 15%``.

``--breakdown`` adds each part of the recipe alone on top of the bare step (demo model).

Run: ``python benchmarks/optvis.py [--quick] [--breakdown]``.
"""

from __future__ import annotations

import argparse
import os

from _common import interleaved_rates, load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from nbviz.optvis import Renderer, channel  # noqa: E402


class SeedOptVis:
    """The seed article's ``OptVis`` (eager GradientTape), ported to Keras 3 unchanged in spirit."""

    def __init__(self, model, layer, filter, size=(128, 128)):
        activations = model.get_layer(layer).output
        activations = activations[:, :, :, filter]
        self.activation_model = keras.Model(inputs=model.inputs, outputs=activations)
        self.shape = [1, *size, 3]
        self.image = tf.Variable(tf.random.uniform(shape=self.shape, dtype=tf.float32))

    def compile(self, optimizer):
        self.optimizer = optimizer

    def train_step(self):
        with tf.GradientTape() as tape:
            loss = tf.math.reduce_mean(self.activation_model(self.image))
        grads = tape.gradient(loss, self.image)
        self.optimizer.apply_gradients([(-grads, self.image)])
        return {"loss": loss}

    def fit(self, epochs=1):
        for _ in tf.range(epochs):
            loss = self.train_step()
        return loss


def seed_runner(model, layer, unit, size):
    """A function running n steps of the seed's loop (warmed up)."""
    opt = SeedOptVis(model, layer, unit, size=(size, size))
    opt.compile(keras.optimizers.Adam(0.05))
    opt.fit(3)  # warm-up

    def go(n):
        opt.fit(n)
        opt.image.numpy()

    return go


BARE = dict(
    fft=False,
    decorrelate=False,
    sigmoid=False,
    transforms="none",
    grad_norm=None,
    preactivation=False,
)
# --breakdown: each part of the recipe alone on top of the bare step
PARTS = {
    "+ spectrum (fft)": dict(fft=True),
    "+ colour decorrelation + sigmoid": dict(decorrelate=True, sigmoid=True),
    "+ transforms (pad/jitter/scale/rotate)": dict(transforms="standard"),
    "+ grad norm + pre-activation": dict(grad_norm="l2", preactivation=True),
}


def renderer_runner(model, layer, unit, size, full: bool, **options):
    """A function running n steps of nbviz's Renderer as a widget does (frames every 8):
    the full recipe (the defaults), or the bare step with ``options`` switched on."""
    if full:
        r = Renderer(model, channel(layer, unit), size=size)
    else:
        r = Renderer(model, channel(layer, unit), size=size, **{**BARE, **options})
    for _ in r.frames(8, every=8):  # warm-up: trace and run once
        pass

    def go(n):
        for _ in r.frames(n, every=8):
            pass
        assert r.trace_count == 1, "the step retraced"

    return go


def _row(name: str, seed: float, bare: float, full: float) -> str:
    return (
        f"{name:38s} {seed:8.1f} {bare:8.1f} {full:8.1f}  {full / seed:8.2f}x {bare / seed:8.2f}x "
        f"{(bare / full - 1.0) * 100:10.1f}%"
    )


def _models(quick: bool):
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(128, 128, 3))
    yield "VGG16 128px block3_conv1", vgg, "block3_conv1", 7, 128
    try:
        from nbviz.demo import load_demo_model

        demo, note = load_demo_model(), "demo convnet 64px conv3"
    except Exception:  # the trained weights are optional for timing: same architecture
        from nbviz.demo import build_demo_convnet

        demo, note = build_demo_convnet(), "demo convnet (untrained) 64px conv3"
    yield note, demo, "conv3", 5, 64


def breakdown(case: tuple, repeats: int) -> None:
    """What each part of the recipe costs alone over the bare step, on one model (the demo
    model: the smallest, where the recipe's fixed cost weighs most)."""
    name, model, layer, unit, size = case
    runners = {"bare": renderer_runner(model, layer, unit, size, full=False)}
    runners.update(
        {part: renderer_runner(model, layer, unit, size, False, **o) for part, o in PARTS.items()}
    )
    runners["full recipe"] = renderer_runner(model, layer, unit, size, full=True)
    r = interleaved_rates(runners, 96, repeats)
    bare_ms = 1e3 / r["bare"][0]
    print(f"breakdown on {name}: bare step {bare_ms:.3f} ms")
    for part, (rate, _) in r.items():
        if part != "bare":
            ms = 1e3 / rate
            print(
                f"  {part:40s} {ms:7.3f} ms/step  {ms - bare_ms:+7.3f} ms  {(ms / bare_ms - 1) * 100:+6.1f}%"
            )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (CI smoke run)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per variant")
    ap.add_argument(
        "--threads", type=int, default=0, help="TF intra/inter-op threads (0: TF default)"
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each part of the recipe alone (demo model)",
    )
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
        f"threads {args.threads or 'default'}, {load_average()}"
    )
    header = f"{'model':38s} {'seed':>8s} {'bare':>8s} {'full':>8s}  {'full/seed':>9s} {'bare/seed':>9s} {'recipe cost':>11s}"
    print(header)
    rows = []
    last = None
    for name, model, layer, unit, size in _models(args.quick):
        last = (name, model, layer, unit, size)
        steps = (8 if args.quick else 16) if size >= 128 else (48 if args.quick else 96)
        runners = {
            "seed": seed_runner(model, layer, unit, size),
            "bare": renderer_runner(model, layer, unit, size, full=False),
            "full": renderer_runner(model, layer, unit, size, full=True),
        }
        r = interleaved_rates(runners, steps, repeats)
        print(_row(name, r["seed"][0], r["bare"][0], r["full"][0]), flush=True)
        rows.append((name, r))
    print("  wall-clock steps/s, best of interleaved runs")
    for name, r in rows:
        print(_row(name, r["seed"][1], r["bare"][1], r["full"][1]))
    print("  steps per CPU-second of this process (work per step; robust to others' load)")
    print("goals: full/seed >= 2.4x, recipe cost (bare/full - 1) <= 15%  (wall clock):")
    for name, r in rows:
        speedup, cost = r["full"][0] / r["seed"][0], r["bare"][0] / r["full"][0] - 1.0
        print(
            f"  {name:38s} {speedup:5.2f}x {'met' if speedup >= 2.4 else 'NOT met':7s} "
            f"recipe {cost * 100:5.1f}% {'met' if cost <= 0.15 else 'NOT met'}"
        )
    if args.breakdown:
        breakdown(last, repeats)
    print(
        f"after: {load_average()} (other processes' load makes single runs noisy; compare ratios)"
    )


if __name__ == "__main__":
    main()
