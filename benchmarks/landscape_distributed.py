"""Loss grids spread over worker processes: in-process ``evaluate_grid`` vs a dask cluster.

The demo convnet (saved to a temporary ``.keras`` file that the workers load once each) on a
15x15 grid of filter-normalized random directions, 256 test images:

* in-process ``evaluate_grid`` (TensorFlow's default thread pool: all cores);
* ``evaluate_grid_distributed`` on a ``LocalCluster`` of 1 and 2 worker processes (one task
  thread each), with TensorFlow's default threads and with 1 TensorFlow thread per worker
  (``TF_NUM_INTRAOP_THREADS=1``: one core per worker, the fair 1-vs-2 scaling test).

Every configuration first evaluates a small warm-up grid (process start, TensorFlow import,
model load and tracing: printed as "start"), then the timed grid; the speedup is against one
worker process of the same kind, and against in-process. CPU seconds used by the workers
(psutil) tell the distribution's overhead apart from a lack of free cores. All surfaces are checked equal.
The machine may be shared: the load average is printed, and ratios under load are noisy.

    python benchmarks/landscape_distributed.py            # 15x15 grid, 256 images (minutes)
    python benchmarks/landscape_distributed.py --quick    # 7x7 grid, 64 images, 1 TF thread
    python benchmarks/landscape_distributed.py --scheduler tcp://scheduler:8786
        # a real cluster: workers need nbviz[cpu] installed; the model travels as a builder
        # (nbviz.demo.load_demo_model) and the data and weights travel from here
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _common import load_average

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _workers_cpu() -> float:
    """CPU seconds used so far by this process' children (nannies and their workers)."""
    import psutil

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7x7 grid on 64 images")
    parser.add_argument("--grid", type=int, default=None, help="points per axis (default 15)")
    parser.add_argument("--n", type=int, default=None, help="test images (default 256)")
    parser.add_argument("--workers", default="1,2", help="local worker process counts")
    parser.add_argument(
        "--tf-threads",
        default=None,
        help="TensorFlow threads per worker: 'default', a number, or a comma "
        "list (default 'default,1'; --quick: '1')",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="address of a running dask scheduler (skips the local clusters)",
    )
    args = parser.parse_args()

    import numpy as np
    from dask.distributed import Client, LocalCluster

    from nbviz.demo import load_demo_data, load_demo_model
    from nbviz.landscape import evaluate_grid, grid_coords, random_directions
    from nbviz.landscape.distributed import evaluate_grid_distributed

    n_grid = args.grid or (7 if args.quick else 15)
    n_images = args.n or (64 if args.quick else 256)
    model = load_demo_model()
    x, y = load_demo_data("test", n=n_images)
    d = random_directions(model, seed=0)
    xs = ys = grid_coords(n_grid, 1.0)
    warm = grid_coords(3, 1.0)
    print(
        f"demo convnet ({model.count_params()} parameters), {n_grid}x{n_grid} grid, "
        f"{n_images} images, {os.cpu_count()} CPU cores; {load_average()}"
    )

    evaluate_grid(model, x, y, d, warm, warm, progress=False)
    cpu0 = time.process_time()
    ref, t_ref = _timed(lambda: evaluate_grid(model, x, y, d, xs, ys, progress=False))
    cpu_ref = time.process_time() - cpu0
    pts = n_grid * n_grid
    print(
        f"{'in-process evaluate_grid':<40} {t_ref:7.2f} s  {pts / t_ref:6.1f} points/s   "
        f"(CPU {cpu_ref:.1f} s, {load_average()})"
    )

    def run(client, source, label, base):
        (_, t_start) = _timed(
            lambda: evaluate_grid_distributed(source, x, y, d, warm, warm, client)
        )
        cpu0 = _workers_cpu()
        got, t = _timed(lambda: evaluate_grid_distributed(source, x, y, d, xs, ys, client))
        cpu = _workers_cpu() - cpu0
        err = float(np.max(np.abs(got.Z - ref.Z) / np.abs(ref.Z)))
        assert got.complete and err < 1e-5, f"{label}: differs from in-process by {err:.1e}"
        vs = f"  x{base / t:4.2f} vs 1 worker" if base else ""
        print(
            f"{label:<40} {t:7.2f} s  {pts / t:6.1f} points/s   x{t_ref / t:4.2f} vs "
            f"in-process{vs}   (workers' CPU {cpu:.1f} s, start {t_start:.1f} s, max rel diff "
            f"{err:.0e}, {load_average()})"
        )
        return t

    if args.scheduler:
        with Client(args.scheduler) as client:
            n = sum(client.nthreads().values())
            run(client, load_demo_model, f"cluster {args.scheduler} ({n} threads)", None)
        return

    counts = [int(c) for c in args.workers.split(",")]
    threads = args.tf_threads or ("1" if args.quick else "default,1")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "demo.keras")
        model.save(path)
        for tf_threads in threads.split(","):
            env = (
                {}
                if tf_threads == "default"
                else {"TF_NUM_INTRAOP_THREADS": tf_threads, "TF_NUM_INTEROP_THREADS": "1"}
            )
            kind = (
                "TF default threads"
                if tf_threads == "default"
                else f"{tf_threads} TF thread(s) each"
            )
            base = None
            for k in counts:
                with (
                    LocalCluster(
                        n_workers=k,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        host="127.0.0.1",
                        env=env,
                    ) as cluster,
                    Client(cluster) as client,
                ):
                    t = run(client, path, f"{k} worker process(es), {kind}", base)
                    base = base or t
    print(f"done; {load_average()}")


if __name__ == "__main__":
    main()
