"""Cost of watching the loss landscape live during ``fit``, against the seed's path recording.

The seed article's MLP (``nbviz.demo.build_parabola_mlp``) on its parabola data, trained the
same number of epochs with the same seed, in interleaved rounds:

* ``plain``: ``model.fit`` without callbacks;
* ``seed``: the seed's ``LambdaCallback`` that appends ``model.get_weights()`` after every batch;
* ``recorder``: :class:`nbviz.landscape.WeightPathRecorder` (every batch);
* ``watch``: ``LossLandscapeWidget(...).watch()`` with its defaults -- the path recorded every
  4th batch and drawn live, plus landscape recomputes in the background (PCA of the path so far, on a 256-example
  subset). Timed from creating the widget to the end of ``fit`` (the first landscape is
  computed -- and compiled -- in the background while ``fit`` runs); the final landscape,
  computed after ``fit``, is timed separately.

Goal: ``watch`` adds <= 25% to ``plain``. Wall times on a shared 2-core machine are noisy, so
the median and the best round are printed, and the CPU time of the training thread (what the
callback itself adds to every step, unaffected by other processes; the background recompute
runs on another thread and only costs wall time when no core is free). The final weights of every variant must equal
``plain``'s bit for bit. The machine may be shared: the load average is printed.

    python benchmarks/watch.py           # 30 epochs, 3 rounds
    python benchmarks/watch.py --quick   # 8 epochs, 2 rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


def run(variant: str, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int) -> dict:
    import keras

    from nbviz.demo import build_parabola_mlp
    from nbviz.landscape import WeightPathRecorder

    keras.utils.set_random_seed(0)
    model = build_parabola_mlp(seed=0)
    out: dict = {}
    widget = None
    t0, c0 = time.perf_counter(), time.thread_time()
    callbacks = []
    if variant == "seed":
        path = [model.get_weights()]
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_batch_end=lambda batch, logs: path.append(model.get_weights())
            )
        )
    elif variant == "recorder":
        callbacks.append(WeightPathRecorder(every_k_batches=1))
    elif variant == "watch":
        from nbviz.widgets.landscape import LossLandscapeWidget

        widget = LossLandscapeWidget(model, x, y, resolution=21)
        callbacks.append(widget.watch(subset=256))  # the defaults: a snapshot every 4 batches
    t_fit = time.perf_counter()
    model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks
    )
    t_end = time.perf_counter()
    out["seconds"] = t_end - t0
    out["cpu"] = time.thread_time() - c0  # the training thread only: robust to other load
    out["fit_only"] = t_end - t_fit
    out["weights"] = [w.numpy().copy() for w in model.weights]
    if widget is not None:
        cb = widget.watcher
        during = cb.recomputes
        widget.wait(120)
        out["final_s"] = time.perf_counter() - t_end
        out["recomputes"] = during
        out["recompute_s"] = cb.recompute_seconds
        out["snapshots"] = len(cb)
        out["error"] = widget.error
        widget.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and rounds")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--n", type=int, default=1024, help="training examples")
    args = parser.parse_args()
    epochs = args.epochs or (8 if args.quick else 30)
    rounds = args.rounds or (2 if args.quick else 3)

    from nbviz.demo import parabola_data

    x, y = parabola_data(args.n, seed=0)
    batch_size = 32
    steps = epochs * -(-args.n // batch_size)
    print(
        f"seed MLP, N={args.n}, batch {batch_size}, {epochs} epochs ({steps} batches), "
        f"{rounds} interleaved rounds; {load_average()}"
    )
    variants = ["plain", "seed", "recorder", "watch"]
    run("plain", x, y, 1, batch_size)  # import and first-use costs, outside the timings
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        for v in variants:
            results[v].append(run(v, x, y, epochs, batch_size))
        print(
            f"  round {r + 1}: "
            + ", ".join(f"{v} {results[v][-1]['seconds']:.2f} s" for v in variants)
        )

    med = {v: statistics.median(o["seconds"] for o in results[v]) for v in variants}
    best = {v: min(o["seconds"] for o in results[v]) for v in variants}
    cpu = {v: statistics.median(o["cpu"] for o in results[v]) for v in variants}
    ref = results["plain"][0]["weights"]
    print()
    print(
        f"{'variant':<10} {'median s':>9} {'overhead':>9} {'best s':>7} {'overhead':>9} "
        f"{'train-thread CPU s':>19} {'overhead':>9}  identical weights"
    )
    for v in variants:
        same = all(
            all(np.array_equal(a, b) for a, b in zip(o["weights"], ref, strict=True))
            for o in results[v]
        )
        print(
            f"{v:<10} {med[v]:9.2f} {med[v] / med['plain'] - 1:9.1%} {best[v]:7.2f} "
            f"{best[v] / best['plain'] - 1:9.1%} {cpu[v]:19.2f} {cpu[v] / cpu['plain'] - 1:9.1%}"
            f"  {same}"
        )
    w = results["watch"]
    rec_s = [s for o in w for s in o["recompute_s"]]
    print()
    print(
        f"watch: {statistics.median(o['recomputes'] for o in w):.0f} landscapes finished "
        f"during fit (median), {w[0]['snapshots']} path snapshots, recompute median "
        f"{statistics.median(rec_s):.3f} s (first, incl. compiling: {w[0]['recompute_s'][0]:.2f} s); "
        f"final landscape ready {statistics.median(o['final_s'] for o in w):.2f} s after fit; "
        f"errors: {[o['error'] for o in w if o['error'] is not None] or 'none'}"
    )
    for name, t in (
        ("median wall time", med),
        ("best wall time", best),
        ("training-thread CPU", cpu),
    ):
        overhead = t["watch"] / t["plain"] - 1
        print(
            f"watch overhead ({name}) {overhead:.1%} (goal <= 25%): "
            f"{'OK' if overhead <= 0.25 else 'MISSED'}; the seed's get_weights() list adds "
            f"{t['seed'] / t['plain'] - 1:.1%} (watch / seed time ratio "
            f"{t['watch'] / t['seed']:.2f})"
        )
    print(load_average())


if __name__ == "__main__":
    main()
