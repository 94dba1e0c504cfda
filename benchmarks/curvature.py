"""Cost of curvature: Hessian-vector products, the top eigenvalue, live sharpness during fit.

Three measurements, printed side by side with their ratios:

1. One Hessian-vector product against one gradient of the same loss (both compiled, same
   batch, interleaved best-of rounds), forward-over-reverse and reverse-over-reverse, on the
   seed MLP (``build_parabola_mlp``, 1024 examples) and the demo convnet (64 images).
   Goal: the product <= 3x the gradient.
2. Time to the top eigenvalue on an MLP: the naive full-Hessian method (the Jacobian of the
   gradient, then ``numpy.linalg.eigvalsh``) against Lanczos (:func:`nbviz.landscape.hessian_eigen`,
   k=1), and how far apart the two values are. Default: the seed MLP (8.5k parameters, 256
   examples; the full Hessian takes minutes); ``--quick``: a 1 -> 32 -> 32 -> 1 MLP.
3. Live sharpness overhead: ``fit`` of the seed MLP (Adam, batch 32, 640 batches) without
   callbacks, and with :class:`~nbviz.landscape.sharpness.SharpnessTracker` estimating every
   10 batches on a 256-example subset, in the background (default) and on the training
   thread. 7 rounds, the variants' order rotating each round; the overhead is the median over
   rounds of each run's time over the same round's plain run (wall, and the process's CPU
   time, all threads, robust to other processes' load); final weights must be
   bit-identical. Goal <= 25%.
   Measured twice: "cold", a new model each run (the operator is built and traced in every
   run; in the background variant on the worker, overlapping training), and "warm", after a
   first epoch that traced this model's operator (what a long training sees).

    python benchmarks/curvature.py           # full run
    python benchmarks/curvature.py --quick   # small MLP for (2), fewer epochs and rounds
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


def best_of(fns: dict, calls: int, rounds: int) -> dict[str, float]:
    """Best seconds per call of each function, interleaved over ``rounds``."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - t0) / calls)
    return {k: min(v) for k, v in times.items()}


def hvp_costs(rounds: int) -> None:
    from nbviz.demo import build_parabola_mlp, load_demo_data, load_demo_model, parabola_data
    from nbviz.landscape import HessianOperator

    x, y = parabola_data(1024, seed=0)
    cx, cy = load_demo_data(n=64)
    cases = [
        ("seed MLP, 1024 ex", build_parabola_mlp(seed=0), x, y, 20),
        ("demo convnet, 64 img", load_demo_model(), cx, cy, 2),
    ]
    print("1. Hessian-vector product vs gradient (best of interleaved rounds)")
    print(
        f"   {'model':<22} {'params':>7} {'gradient':>10} {'fwd-over-rev':>13} {'ratio':>6} "
        f"{'rev-over-rev':>13} {'ratio':>6}  auto"
    )
    for name, model, xx, yy, calls in cases:
        ops = {
            m: HessianOperator(model, xx, yy, mode=m)
            for m in ("forward_over_reverse", "reverse_over_reverse")
        }
        auto = HessianOperator(model, xx, yy).mode
        v = np.random.default_rng(0).standard_normal(ops["forward_over_reverse"].n)
        fns = {"grad": ops["forward_over_reverse"].gradient}
        for m, op in ops.items():
            op.matvec(v)  # trace outside the timing
            fns[m] = lambda op=op, v=v: op.matvec(v)
        t = best_of(fns, calls, rounds)
        g, f, r = t["grad"], t["forward_over_reverse"], t["reverse_over_reverse"]
        chosen = f if auto == "forward_over_reverse" else r
        print(
            f"   {name:<22} {ops['forward_over_reverse'].n:>7} {g * 1e3:8.2f}ms "
            f"{f * 1e3:11.2f}ms {f / g:6.2f} {r * 1e3:11.2f}ms {r / g:6.2f}  "
            f"{auto} ({chosen / g:.2f}x: {'OK' if chosen / g <= 3 else 'MISSED'} goal <= 3x)"
        )


def top_eigenvalue(quick: bool) -> None:
    import keras

    from nbviz.demo import build_parabola_mlp, parabola_data
    from nbviz.landscape import HessianOperator, hessian_eigen

    x, y = parabola_data(256, seed=0)
    if quick:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((1,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(1),
            ],
            name="mlp32",
        )
        model.compile(optimizer="adam", loss="mse")
    else:
        model = build_parabola_mlp(seed=0)
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    hessian_eigen(model, x, y, k=1)  # compile outside the timing
    t0 = time.perf_counter()
    lanczos = hessian_eigen(model, x, y, k=1)
    t_lanczos = time.perf_counter() - t0
    t0 = time.perf_counter()
    h = HessianOperator(model, x, y).dense()
    t_dense = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = float(np.linalg.eigvalsh(h)[-1])
    t_eig = time.perf_counter() - t0
    full = t_dense + t_eig
    print(f"\n2. Time to the top eigenvalue, {model.name} ({h.shape[0]} params, 256 examples)")
    print(
        f"   full Hessian (Jacobian of the gradient {t_dense:.2f} s + eigvalsh {t_eig:.2f} s) "
        f"{full:.2f} s | Lanczos {t_lanczos:.3f} s ({lanczos.n_products} products) | "
        f"speed-up {full / t_lanczos:.0f}x | values {exact:.6g} vs {lanczos.top:.6g} "
        f"(rel. diff {abs(lanczos.top - exact) / exact:.1e})"
    )


def fit_run(variant: str, x, y, epochs: int, warm: bool) -> dict:
    import keras

    from nbviz.demo import build_parabola_mlp
    from nbviz.landscape.sharpness import SharpnessTracker

    keras.utils.set_random_seed(0)
    model = build_parabola_mlp(seed=0)
    if warm:  # the same first epoch for every variant, with a tracker: this model is traced
        first = SharpnessTracker(x, y, every_k_batches=10, subset=256, background=False)
        model.fit(x, y, epochs=1, batch_size=32, shuffle=True, verbose=0, callbacks=[first])
    callbacks, tracker = [], None
    if variant != "plain":
        tracker = SharpnessTracker(
            x, y, every_k_batches=10, subset=256, background=variant == "background"
        )
        callbacks.append(tracker)
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(x, y, epochs=epochs, batch_size=32, shuffle=True, verbose=0, callbacks=callbacks)
    if tracker is not None:
        tracker.wait(60)
    out = {
        "seconds": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
        "weights": [w.numpy().copy() for w in model.weights],
    }
    if tracker is not None:
        out.update(
            estimates=len(tracker.history),
            skipped=tracker.skipped,
            products=[e.n_products for e in tracker.history],
            estimate_s=[e.elapsed_s for e in tracker.history],
            error=tracker.error,
            setup_s=tracker.setup_s,
            last=tracker.history[-1],
        )
        tracker.close()
    return out


def sharpness_overhead(epochs: int, rounds: int, warm: bool) -> dict[str, float]:
    """Interleaved rounds of plain/background/training-thread fits (the order rotates each
    round); the overhead is the median over rounds of each run's time over the same round's
    plain run (paired, so that load drifting between rounds cancels), wall and CPU."""
    from nbviz.demo import parabola_data

    x, y = parabola_data(1024, seed=0)
    batches = epochs * 32
    variants = ["plain", "background", "training thread"]
    what = (
        "warm: a model whose operator was traced in an earlier fit (the steady state of a "
        "long training)"
        if warm
        else "cold: a new model each run, tracing included"
    )
    print(
        f"\n3. Live sharpness during fit, {what}: seed MLP (Adam), N=1024, batch 32, {epochs} "
        f"epochs ({batches} batches), an estimate every 10 batches on 256 examples; "
        f"{rounds} interleaved rounds (order rotating), paired ratios"
    )
    fit_run("background", x, y, 1, warm)  # import and first-use costs, outside the timings
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        for v in variants[r % 3 :] + variants[: r % 3]:
            results[v].append(fit_run(v, x, y, epochs, warm))
    ref = results["plain"][0]["weights"]
    med = {v: statistics.median(o["seconds"] for o in results[v]) for v in variants}
    cpu = {v: statistics.median(o["cpu"] for o in results[v]) for v in variants}
    ratio = {
        v: statistics.median(
            o["seconds"] / p["seconds"] for o, p in zip(results[v], results["plain"], strict=True)
        )
        for v in variants
    }
    cpu_ratio = {
        v: statistics.median(
            o["cpu"] / p["cpu"] for o, p in zip(results[v], results["plain"], strict=True)
        )
        for v in variants
    }
    print(
        f"   {'variant':<16} {'median s':>9} {'ratio':>6} {'CPU s':>6} {'ratio':>6} "
        f"{'estimates':>9} {'skipped':>8} {'HVPs/est.':>9} {'ms/est.':>8} {'setup s':>7}  identical"
    )
    for v in variants:
        same = all(
            all(np.array_equal(a, b) for a, b in zip(o["weights"], ref, strict=True))
            for o in results[v]
        )
        extra = f"{'':>9} {'':>8} {'':>9} {'':>8} {'':>7}"
        if v != "plain":
            runs = results[v]
            extra = (
                f"{statistics.median(o['estimates'] for o in runs):>9.0f} "
                f"{statistics.median(o['skipped'] for o in runs):>8.0f} "
                f"{statistics.median(p for o in runs for p in o['products']):>9.1f} "
                f"{1e3 * statistics.median(t for o in runs for t in o['estimate_s']):>8.1f} "
                f"{statistics.median(o['setup_s'] for o in runs):>7.2f}"
            )
        print(
            f"   {v:<16} {med[v]:9.2f} {ratio[v]:6.2f} {cpu[v]:6.2f} {cpu_ratio[v]:6.2f} "
            f"{extra}  {same}"
        )
    last = results["background"][0]["last"]
    print(f"   last estimate: {last.threshold.quantity} {last.value:.4g}, {last.threshold.label}")
    print(
        "   (ratio: median over rounds of this run / the same round's plain run; CPU s: this "
        "process's CPU time, all threads: the work the estimates add, barely affected by "
        "other processes' load)"
    )
    for v in ("background", "training thread"):
        over = max(ratio[v], cpu_ratio[v]) - 1  # wall alone hides work on a loaded machine
        print(
            f"   overhead ({v}): wall {ratio[v] - 1:+.1%}, CPU {cpu_ratio[v] - 1:+.1%} (goal "
            f"<= 25% in both: {'OK' if over <= 0.25 else 'MISSED'})"
        )
    return {v: ratio[v] - 1 for v in variants[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=["hvp", "eigen", "fit"])
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    print(load_average())
    if "hvp" not in args.skip:
        hvp_costs(rounds)
    if "eigen" not in args.skip:
        top_eigenvalue(args.quick)
    if "fit" not in args.skip:
        epochs = 4 if args.quick else 20
        for warm in (False, True):
            sharpness_overhead(epochs, 3 if args.quick else 7, warm)
    print(load_average())


if __name__ == "__main__":
    main()
