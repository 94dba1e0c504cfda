"""Benchmark: ways to compute the spectral image, forward and backward, in one compiled loop.

The spectral parameterization costs one inverse real 2-D DFT per step and its transpose in
the backward pass. This times, side by side, a loop of ``sigmoid(image) . w`` gradient steps
on the spectrum variable (nothing else), with colour decorrelation:

* ``pixels``         -- no spectrum at all: the floor of the loop itself.
* ``nbviz``          -- what ``nbviz.optvis.param.fft_image`` does up to ``MATMUL_MAX_SIZE``:
  two plain matmuls with the colour mix folded into the second, gradients through stored
  transposes (dense DFT matrices: ``n^3`` work, ``n^2`` memory).
* ``nbviz fft``      -- ``fft_image(method="fft")``, what it does above ``MATMUL_MAX_SIZE``:
  ``tf.signal.irfft2d`` on the same variable layout (``n^2 log n``).
* ``irfft2d``        -- ``tf.signal.irfft2d`` on channels-first data, a transpose to channels
  last, then the colour mix (what Lucid does in TF1).
* ``irfft2d (XLA)``  -- the same, compiled with XLA (forward and gradient).

It is the evidence behind the optvis recipe's cost on small models: on the demo model's
64 px, ~1 ms step, even the fastest way here is above 15% of the whole step.

Run: ``python benchmarks/optvis_spectrum.py [--sizes 64 128]``; the crossover that sets
``MATMUL_MAX_SIZE``: ``--sizes 128 256 384 512 --steps 20 --repeats 3`` (the matmul way's
matrices alone take 2 x (2n)^2 + 2 x (3n)^2 floats: 60 MiB at 512 px, 6 GiB at 4096 px).
Measured (2 cores, load ~9, best of 3-5), nbviz matmul vs nbviz fft, us per step: 128 px
1503 vs 2418, 192 px 3844 vs 4603, 208 px 10492 vs 10428, 224 px 8655 vs 6830, 256 px 10817
vs 5674, 512 px 214149 vs 64138: the crossover is ~200 px (``param.MATMUL_MAX_SIZE``).
"""

from __future__ import annotations

import argparse
import os

from _common import interleaved_rates, load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from nbviz.optvis import param  # noqa: E402


def signal_image(size: int, rng: np.random.Generator):
    """(variable, image_fn) of the ``tf.signal.irfft2d`` way, Lucid's scaling and colour mix."""
    k = size // 2 + 1
    freqs = param.rfft2d_freqs(size, size)
    scale = tf.constant(np.sqrt(size * size) / np.maximum(freqs, 1.0 / size), tf.float32)
    color = tf.constant(param.COLOR_CORRELATION_NORMALIZED.T)
    var = tf.Variable(rng.normal(0, 0.01, (2, 3, size, k)).astype(np.float32))

    def image():
        spec = tf.complex(var[0] * scale, var[1] * scale)
        img = tf.signal.irfft2d(spec, fft_length=[size, size]) / 4.0  # (C, H, W)
        img = tf.transpose(img, (1, 2, 0))
        return tf.reshape(tf.reshape(img, [-1, 3]) @ color, [1, size, size, 3])

    return var, image


def step_loop(var, image_fn, probe):
    """A compiled loop of n gradient steps on ``var`` through ``image_fn``."""

    @tf.function(autograph=False)
    def run(n):
        def body(i):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.sigmoid(image_fn()) * probe)
            var.assign_sub(1e-3 * tape.gradient(loss, var))
            return i + 1

        return tf.while_loop(lambda i: i < n, body, [tf.constant(0)])

    return run


def variants(size: int) -> dict:
    rng = np.random.default_rng(0)
    probe = tf.constant(rng.normal(size=(1, size, size, 3)).astype(np.float32))
    pixels = tf.Variable(rng.normal(0, 0.01, (1, size, size, 3)).astype(np.float32))
    nbviz = param.fft_image(
        (1, size, size, 3), color=param.COLOR_CORRELATION_NORMALIZED, method="matmul"
    )
    nbviz_fft = param.fft_image(
        (1, size, size, 3), color=param.COLOR_CORRELATION_NORMALIZED, method="fft"
    )
    sig_var, sig_image = signal_image(size, rng)
    xla_var, xla_image = signal_image(size, rng)
    return {
        "pixels": step_loop(pixels, lambda: tf.identity(pixels), probe),
        "nbviz": step_loop(nbviz.variables[0], nbviz.image, probe),
        "nbviz fft": step_loop(nbviz_fft.variables[0], nbviz_fft.image, probe),
        "irfft2d": step_loop(sig_var, sig_image, probe),
        "irfft2d (XLA)": step_loop(
            xla_var, tf.function(xla_image, jit_compile=True, autograph=False), probe
        ),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, {load_average()}")
    print("us per step (forward + backward), best of interleaved runs")
    for size in args.sizes:
        runs = variants(size)
        for run in runs.values():
            run(tf.constant(3))  # trace (and compile)
        go = {name: (lambda n, run=run: run(tf.constant(n))) for name, run in runs.items()}
        rates = interleaved_rates(go, args.steps, args.repeats)
        best = {name: 1e6 / wall for name, (wall, _) in rates.items()}
        floor = best["pixels"]
        for name, us in best.items():
            extra = "" if name == "pixels" else f"  spectrum {us - floor:7.1f} us"
            print(f"{size:4d} px  {name:14s} {us:8.1f} us{extra}")
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
