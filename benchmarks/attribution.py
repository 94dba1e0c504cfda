"""Benchmark: nbviz.attribution vs the eager GradientTape recipe and tf-keras-vis 0.8.7.

Side by side in one run, on VGG16 (weights=None, 128 px, linear classifier head) and on the
demo convnet (64 px), a batch of 4 images, each image explained for its own class:

* ``eager``  -- the keras.io Grad-CAM recipe (``grad_model = keras.Model(inputs,
  [conv.output, logits])``, an eager ``tf.GradientTape``), generalized to a batch with the
  channel weights pooled per image, and the grad model built once (outside the timing: the
  recipe as published rebuilds it on every call, which would only make it slower).
  SmoothGrad is the same tape in a Python loop over the noisy samples.
* ``tkv``    -- tf-keras-vis 0.8.7 (``pip install -r benchmarks/requirements-attribution.txt``):
  ``Saliency(model, clone=False)(score, x, smooth_samples=20)`` and
  ``Gradcam(model, clone=False)(score, x, penultimate_layer=...)``. Printed as unavailable,
  with the reason, if it cannot be imported or run.
* ``nbviz``  -- :class:`nbviz.attribution.Attributor` (compiled once, samples batched).

Each variant is warmed up (traced) first; the best of ``--repeats`` interleaved timed runs
is reported (as ``timeit`` does). Also printed: the share of this machine's measured float32
matmul rate that each variant achieves (useful FLOPs: forward + input-gradient backward per
sample, ~2x the forward FLOPs; forward + the backward from the target down to the layer for
Grad-CAM), and the latency of a class switch (Grad-CAM of one image for another class,
heatmap included) on the demo model. Goal: nbviz >= 2x eager and tkv for SmoothGrad (20
samples) and Grad-CAM where they are not already compute-bound.

Run: ``python benchmarks/attribution.py [--quick] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

from _common import interleaved_rates, load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nbviz.attribution import Attributor  # noqa: E402

SAMPLES = 20
NOISE = 0.15
# tf-keras-vis calls single-input Keras 3 models with a list of one tensor; Keras warns each time.
warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")


# -- the eager recipe (keras.io) ---------------------------------------------------------------
def eager_grad_cam(grad_model, x, classes):
    """keras.io ``make_gradcam_heatmap``, per image weights, for a batch."""
    with tf.GradientTape() as tape:
        conv_out, preds = grad_model(x)
        class_channel = tf.gather(preds, classes, axis=1, batch_dims=1)
    grads = tape.gradient(class_channel, conv_out)
    pooled = tf.reduce_mean(grads, axis=(1, 2))
    heat = tf.einsum("nhwk,nk->nhw", conv_out, pooled)
    heat = tf.maximum(heat, 0) / tf.reduce_max(heat, axis=(1, 2), keepdims=True)
    return heat.numpy()


def eager_smoothgrad(logit_model, x, classes, samples=SAMPLES, noise=NOISE):
    """The same tape in a Python loop over noisy copies (Smilkov et al.)."""
    total = tf.zeros_like(x)
    for _ in range(samples):
        xs = x + tf.random.normal(tf.shape(x), stddev=noise)
        with tf.GradientTape() as tape:
            tape.watch(xs)
            score = tf.gather(logit_model(xs), classes, axis=1, batch_dims=1)
        total += tape.gradient(score, xs)
    return (total / samples).numpy()


# -- FLOPs and the machine's matmul rate ----------------------------------------------------------
def forward_flops(model, upto: str | None = None, after: str | None = None) -> float:
    """Multiply-add FLOPs (x2) of the Conv2D/Dense layers of one image's forward pass;
    ``after``: only the layers after that one (for Grad-CAM's backward)."""
    total, counting = 0.0, after is None
    for layer in model.layers:
        if counting:
            if isinstance(layer, keras.layers.Conv2D):
                h, w, cout = layer.output.shape[1:]
                kh, kw, cin, _ = layer.kernel.shape
                total += 2.0 * h * w * kh * kw * cin * cout
            elif isinstance(layer, keras.layers.Dense):
                total += 2.0 * np.prod(layer.kernel.shape)
        if layer.name == after:
            counting = True
        if layer.name == upto:
            break
    return total


def matmul_runner(n: int = 2048, chain: int = 4):
    """``chain`` float32 n x n matmuls per call (``chain * 2 n^3`` FLOPs, ~0.1-0.5 s): this
    machine's compute ceiling, timed beside the variants under the same load."""
    a = tf.random.normal([n, n]) / n**0.5

    @tf.function
    def f(a):
        y = a
        for _ in range(chain):
            y = tf.matmul(y, a)
        return y

    f(a).numpy()
    return (lambda: f(a).numpy()), chain * 2.0 * n**3


def best_rate(go, flops: float, repeats: int = 5) -> float:
    """Best FLOP/s of ``repeats`` calls of ``go``."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        go()
        best = max(best, flops / (time.perf_counter() - t0))
    return best


# -- runners ---------------------------------------------------------------------------------------
def runners_for(model, logit_layer: str, conv_layer: str, x, classes):
    """``{(method, variant): go(n)}``, warmed up; missing tf-keras-vis gives a reason string."""
    logit_model = keras.Model(model.inputs[0], model.get_layer(logit_layer).output)
    grad_model = keras.Model(
        model.inputs[0], [model.get_layer(conv_layer).output, model.get_layer(logit_layer).output]
    )
    xt, ct = tf.constant(x), tf.constant(classes)
    a = Attributor(model, layer=conv_layer)
    cls = [int(c) for c in classes]
    runs = {
        ("SmoothGrad x20", "eager"): lambda s=SAMPLES: eager_smoothgrad(logit_model, xt, ct, s),
        ("SmoothGrad x20", "nbviz"): lambda s=SAMPLES: a.smoothgrad(x, cls, s, NOISE),
        ("Grad-CAM", "eager"): lambda: eager_grad_cam(grad_model, xt, ct),
        ("Grad-CAM", "nbviz"): lambda: a.grad_cam(x, cls).heatmaps(),
    }
    unavailable = ""
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.scores import CategoricalScore

        score = CategoricalScore(cls)
        saliency = Saliency(logit_model, clone=False)
        gradcam = Gradcam(logit_model, clone=False)
        runs[("SmoothGrad x20", "tkv")] = lambda s=SAMPLES: saliency(
            score, x, smooth_samples=s, smooth_noise=NOISE
        )
        runs[("Grad-CAM", "tkv")] = lambda: gradcam(score, x, penultimate_layer=conv_layer)
        for key in [k for k in runs if k[1] == "tkv"]:
            runs[key](*([2] if key[0].startswith("SmoothGrad") else []))
    except Exception as exc:  # noqa: BLE001 - the row says why, whatever it is
        unavailable = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        runs = {k: v for k, v in runs.items() if k[1] != "tkv"}
    for key, go in runs.items():  # warm-up: trace, build (2 samples are enough for that)
        go(*([2] if key[0].startswith("SmoothGrad") else []))
    assert a.trace_count <= 3

    return {k: runs_of(v) for k, v in runs.items()}, unavailable, a


def runs_of(go):
    """``run(n)``: ``n`` calls of ``go``."""

    def run(n):
        for _ in range(n):
            go()

    return run


def _models(which: str):
    if which in ("all", "vgg16"):
        vgg = keras.applications.VGG16(
            weights=None, input_shape=(128, 128, 3), classifier_activation=None
        )
        yield "VGG16 128px", vgg, "predictions", "block5_conv3", 128
    if which not in ("all", "demo"):
        return
    from nbviz.demo import load_demo_model

    yield "demo convnet 64px", load_demo_model(compile=False), "logits", "conv4", 64


def class_switch_ms(a: Attributor, image: np.ndarray, classes: int, repeats: int) -> float:
    """Best time to redraw a Grad-CAM heatmap of one image for another class."""
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        a.grad_cam(image, (i + 1) % classes).heatmap()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (CI smoke run)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per variant")
    ap.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0: default)")
    ap.add_argument("--models", choices=("all", "vgg16", "demo"), default="all")
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    matmul, matmul_flops = matmul_runner()
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
        f"threads {args.threads or 'default'}, {load_average()}"
    )
    print(
        f"{'model / method':34s} {'eager':>8s} {'tkv':>8s} {'nbviz':>8s}  "
        f"{'nbviz/eager':>11s} {'nbviz/tkv':>9s}   share of matmul rate (eager/tkv/nbviz)"
    )
    rng = np.random.default_rng(0)
    for name, model, logits, conv, size in _models(args.models):
        x = rng.uniform(size=(4, size, size, 3)).astype(np.float32)
        if size == 64:
            from nbviz.demo import load_demo_data

            x = load_demo_data("test", n=4)[0]
        n_classes = int(model.get_layer(logits).output.shape[-1])
        classes = np.arange(4, dtype=np.int32) % n_classes
        runs, unavailable, a = runners_for(model, logits, conv, x, classes)
        runs[("matmul", "peak")] = runs_of(matmul)
        rates = interleaved_rates(runs, 1 if size >= 128 else 4, repeats)
        alongside = rates[("matmul", "peak")][0] * matmul_flops
        peak = max(alongside, best_rate(matmul, matmul_flops))
        print(
            f"{name}: float32 matmul 2048^2 at {peak / 1e9:.1f} GFLOP/s (best of alone and "
            f"alongside the variants: {alongside / 1e9:.1f})"
        )
        fwd = forward_flops(model)
        flops = {
            "SmoothGrad x20": 4 * SAMPLES * 2.0 * fwd,
            "Grad-CAM": 4 * (fwd + forward_flops(model, after=conv)),
        }
        for method in ("SmoothGrad x20", "Grad-CAM"):
            r = {
                v: rates[(method, v)][0] for v in ("eager", "tkv", "nbviz") if (method, v) in rates
            }
            share = "/".join(
                f"{flops[method] * r[v] / peak * 100:.0f}%" if v in r else "-"
                for v in ("eager", "tkv", "nbviz")
            )
            tkv = f"{r['tkv']:8.3g}" if "tkv" in r else f"{'n/a':>8s}"
            vs_tkv = f"{r['nbviz'] / r['tkv']:8.2f}x" if "tkv" in r else f"{'n/a':>9s}"
            print(
                f"{name + ' ' + method:34s} {r['eager']:8.3g} {tkv} {r['nbviz']:8.3g}  "
                f"{r['nbviz'] / r['eager']:10.2f}x {vs_tkv}   {share}",
                flush=True,
            )
        if unavailable:
            print(f"  tf-keras-vis unavailable: {unavailable}")
        if size == 64:
            ms = class_switch_ms(a, x[0], n_classes, repeats=20)
            print(
                f"  class switch (Grad-CAM heatmap of one image, another class): {ms:.1f} ms "
                f"({'met' if ms < 100 else 'NOT met'}: goal < 100 ms)"
            )
        assert a.trace_count <= 3, "nbviz retraced"
    print(
        "  calls/s (batch of 4 images each), best of interleaved runs; useful FLOPs: 2x "
        "forward per sample for input gradients"
    )
    print(
        f"after: {load_average()} (other processes' load makes single runs noisy; compare ratios)"
    )


if __name__ == "__main__":
    main()
