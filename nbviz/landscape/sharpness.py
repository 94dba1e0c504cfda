"""Sharpness (the top Hessian eigenvalue) watched live during ``fit``, with its stability line.

Design note. Every ``k`` batches :class:`SharpnessTracker` copies the weights (and, for Adam,
its second-moment estimates) on the training thread, and a background worker runs Lanczos in
compiled chunks (:func:`.topeigen.top_eigen`, one trace per model) from the previous top
eigenvector plus a fresh seeded random vector, until the top Ritz pair's residual is small:
where the top eigenvector moved little, two to four Hessian-vector products suffice; where it
jumped (Adam's preconditioner early in training), the random half still finds the new one
(a warm start alone converged to a lower eigenvalue there, up to 100x too small). The worker
only sees numpy copies; the model's variables and the optimizer are never read from it or
written, so training is bit-identical with and without the tracker. A due estimate is skipped
while the previous one still runs (``background=False`` computes every one on the training
thread). Every estimate of a run with ``background=False`` is reproducible: its random vector
is seeded by ``seed`` and the batch.

Which quantity and which line (Cohen et al. 2021, 2022; see ``DESIGN.md``):

- SGD without momentum: sharpness against ``2 / lr``;
- SGD with heavy-ball momentum ``beta``: sharpness against ``(2 + 2 beta) / lr``;
- Adam: the *preconditioned* sharpness, the top eigenvalue of ``P^-1 H`` with Adam's
  preconditioner ``P = sqrt(v_hat) + eps_hat`` (read from the optimizer's public ``variables``,
  matched by path), against ``(2 + 2 beta1) / ((1 - beta1) lr)``;
- anything else (Nesterov, AdamW or Adam with weight decay, loss-scale wrappers, clipping,
  gradient accumulation, other optimizers): the plain sharpness and no line.

These lines are derived for full-batch gradient descent; during mini-batch ``fit`` they are
labelled as such (:attr:`Threshold.full_batch_only`).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._tf import require_keras
from ..worker import JobContext, Worker
from .data import checked_subset
from .evaluator import prepare_for_background
from .hessian import HessianOperator, trainable_mask
from .losses import resolve_loss
from .topeigen import top_eigen
from .weights import WeightLayout, snapshot_weights

keras = require_keras()


@dataclass(frozen=True)
class Threshold:
    """The stability threshold of an optimizer: what is plotted and against which line."""

    quantity: str  # "sharpness" or "preconditioned sharpness"
    value: float | None  # None: no known line for this optimizer
    formula: str  # e.g. "2/lr", "(2+2β)/lr"; "" without a line
    reason: str = ""  # why there is no line
    full_batch_only: bool = False  # drawn during mini-batch training

    @property
    def label(self) -> str:
        """A legend label: the formula and its value, and where it holds."""
        if self.value is None:
            return f"no stability line ({self.reason})"
        where = " (holds for full-batch GD)" if self.full_batch_only else ""
        return f"{self.formula} = {self.value:.4g}{where}"


def current_lr(optimizer: Any) -> float:
    """The optimizer's learning rate now (a schedule is evaluated at the current step)."""
    return float(np.asarray(optimizer.learning_rate))


def _no_line(quantity: str, reason: str) -> Threshold:
    return Threshold(quantity, None, "", reason)


def stability_threshold(optimizer: Any, full_batch: bool = True) -> Threshold:
    """The threshold that is true for ``optimizer`` at its current learning rate.

    See the module's design note for which optimizers get a line; every other one gets the
    plain sharpness without a line (``reason`` says why).
    """
    if optimizer is None:
        return _no_line("sharpness", "no optimizer")
    name = type(optimizer).__name__
    for attr, what in (
        ("clipnorm", "gradient clipping"),
        ("clipvalue", "gradient clipping"),
        ("global_clipnorm", "gradient clipping"),
        ("gradient_accumulation_steps", "gradient accumulation"),
    ):
        if getattr(optimizer, attr, None):
            return _no_line("sharpness", f"{name} with {what}")
    lr = current_lr(optimizer)
    if lr <= 0:
        return _no_line("sharpness", f"learning rate {lr}")
    partial = not full_batch
    if type(optimizer) is keras.optimizers.SGD:
        if optimizer.nesterov:
            return _no_line("sharpness", "Nesterov momentum: no known line")
        beta = float(optimizer.momentum or 0.0)
        if beta == 0.0:
            return Threshold("sharpness", 2.0 / lr, "2/lr", full_batch_only=partial)
        return Threshold(
            "sharpness", (2.0 + 2.0 * beta) / lr, f"(2+2β)/lr, β={beta:g}", full_batch_only=partial
        )
    if type(optimizer) is keras.optimizers.Adam:
        if getattr(optimizer, "weight_decay", None) or getattr(optimizer, "amsgrad", False):
            return _no_line("sharpness", "Adam with weight decay or AMSGrad: no known line")
        b1 = float(optimizer.beta_1)
        return Threshold(
            "preconditioned sharpness",
            (2.0 + 2.0 * b1) / ((1.0 - b1) * lr),
            f"(2+2β1)/((1-β1)lr), β1={b1:g}",
            full_batch_only=partial,
        )
    return _no_line("sharpness", f"{name}: no known line")


def adam_velocities(optimizer: Any, model: Any, idx: Sequence[int]) -> list | None:
    """Adam's second-moment variables for the tensors ``idx`` of ``model.weights``, matched
    by path in the optimizer's public ``variables`` (``<optimizer>/<variable path with "/" as
    "_">_velocity``), or None when one is missing (e.g. before the optimizer is built)."""
    by_path = {str(v.path): v for v in optimizer.variables}
    weights = list(model.weights)
    found = []
    for i in idx:
        v = by_path.get(f"{optimizer.name}/{str(weights[i].path).replace('/', '_')}_velocity")
        if v is None:
            return None
        found.append(v)
    return found


def adam_preconditioner(
    optimizer: Any, model: Any, idx: Sequence[int], velocities: list | None = None
) -> np.ndarray | None:
    """Adam's diagonal preconditioner ``sqrt(v_hat) + eps_hat`` over the tensors ``idx`` of
    ``model.weights`` (a :class:`HessianOperator`'s ``idx``), flattened, or None.

    The second moments are :func:`adam_velocities` (pass them to skip the look-up). Keras
    updates ``w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)`` with ``t`` = ``iterations``
    after the step, so after ``t`` steps the last step was ``lr m_hat / P`` with
    ``P = sqrt(v / (1-b2^t)) + eps / sqrt(1-b2^t)``, read here from the same ``v`` and ``t``
    (Cohen et al. 2022 use the preconditioner of the latest step). None before the first
    step or when a variable has no second moment.
    """
    t = int(np.asarray(optimizer.iterations))
    if t < 1:
        return None
    if velocities is None:
        velocities = adam_velocities(optimizer, model, idx)
    if velocities is None:
        return None
    correction = 1.0 - float(optimizer.beta_2) ** t
    v = np.concatenate([np.asarray(u.numpy(), np.float64).reshape(-1) for u in velocities])
    return np.sqrt(np.maximum(v, 0.0) / correction) + float(optimizer.epsilon) / np.sqrt(correction)


@dataclass
class SharpnessEstimate:
    """One live estimate: the top eigenvalue of ``H`` (or ``P^-1 H``) at batch ``step``."""

    step: int
    value: float
    threshold: Threshold
    lr: float | None
    n_products: int
    converged: bool
    elapsed_s: float
    weights: list[np.ndarray] | None = None  # the snapshot it was computed at (latest only)
    info: dict[str, Any] = field(default_factory=dict)
    preconditioner: np.ndarray | None = None  # Adam's P at that snapshot (latest only)


_KerasCallback: Any = keras.callbacks.Callback  # Keras is untyped: a plain base for mypy


class SharpnessTracker(_KerasCallback):
    """A Keras callback estimating the sharpness every ``every_k_batches`` batches.

    Parameters
    ----------
    x, y:
        Data; a seeded ``subset`` of ``subset`` examples is taken once (None: all). The
        estimate is the sharpness of the mean loss (regularization included, inference mode)
        on exactly those examples, in batches of ``batch_size`` (default: all at once).
    every_k_batches:
        Batches between estimates (the first is taken before the first batch, the last at
        the end of training).
    tol, max_products:
        Lanczos (:func:`.topeigen.top_eigen`) stops when the top Ritz pair's residual is
        below ``tol`` times the value (the residual bounds the distance to an eigenvalue: 3%
        by default; the estimates are tested to be within 5% of a converged eigsh), or after
        ``max_products`` Hessian-vector products. ``value_tol`` (off by default) also stops
        when the top value moved less than that (relative) over the last two products: cheaper,
        but it can stop on a plateau below the top.
    full_batch:
        Whether training is full-batch descent (the thresholds' setting); default: when
        ``fit`` runs one step an epoch and the subset is all the data.
    background:
        Compute on a background worker (skipping due estimates while one runs); False
        computes each one on the training thread.
    on_estimate, on_error:
        ``on_estimate(SharpnessEstimate, history)`` after every estimate (on the worker
        thread: set traits only); ``on_error(exc, traceback)``.
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        *,
        every_k_batches: int = 10,
        subset: int | None = 256,
        batch_size: int | None = None,
        seed: int = 0,
        loss: Any = None,
        regularization: bool = True,
        tol: float = 3e-2,
        value_tol: float | None = None,
        max_products: int = 20,
        full_batch: bool | None = None,
        background: bool = True,
        on_estimate: Callable[[SharpnessEstimate, list], None] | None = None,
        on_error: Callable[[BaseException, str], None] | None = None,
    ) -> None:
        super().__init__()
        if int(every_k_batches) < 1:
            raise ValueError(
                f"every_k_batches must be >= 1 (batches between two estimates), got "
                f"{every_k_batches}. Fix: pass every_k_batches=10, or more for cheaper tracking."
            )
        self.x, self.y = x, y
        self.every_k_batches = int(every_k_batches)
        self.subset, self.batch_size, self.seed = subset, batch_size, int(seed)
        self.loss, self.regularization = loss, bool(regularization)
        self.tol, self.max_products = float(tol), int(max_products)
        self.value_tol = value_tol
        self.background = bool(background)
        self.full_batch = full_batch
        self.on_estimate, self.on_error = on_estimate, on_error
        self.history: list[SharpnessEstimate] = []
        self.skipped = 0
        self.setup_s = 0.0  # training-thread time of the last on_train_begin
        self.error: BaseException | None = None
        self.op: HessianOperator | None = None
        self._idx: list[int] | None = None  # positions of the trainable tensors in model.weights
        self._data: tuple[Any, Any] | None = None
        self._vector: np.ndarray | None = None
        self._vector_kind = ""
        self._velocities: list | None = None  # Adam's second moments, looked up once
        self._batches = 0
        self._full_batch = True
        self._lock = threading.Lock()
        self._worker = Worker(on_error=self._error, name="nbviz-sharpness")

    # -- Keras hooks ---------------------------------------------------------------------------
    def set_model(self, model: Any) -> None:
        super().set_model(model)
        if self._data is None:
            x, y, self._n_total, _ = checked_subset(model, self.x, self.y, self.subset, self.seed)
            self._data = (x, y)

    def on_train_begin(self, logs: dict | None = None) -> None:
        steps = (self.params or {}).get("steps")
        assert self._data is not None  # set_model ran (Keras calls it before this hook)
        auto = steps == 1 and len(self._data[1]) == self._n_total
        self._full_batch = auto if self.full_batch is None else bool(self.full_batch)
        t0 = time.perf_counter()
        # Read the model's extra state once, here; the operator itself is built (and traced)
        # by the first estimate, on the worker when in the background, from the snapshot.
        resolve_loss(self.model, self.loss)  # no loss: a clear error now, not on the worker
        prepare_for_background(self.model)
        self._idx = [
            i for i, m in enumerate(trainable_mask(WeightLayout.from_model(self.model))) if m
        ]
        self._request()
        self.setup_s = time.perf_counter() - t0

    def prime(self, model: Any) -> None:
        """Build the Hessian operator for ``model`` now, at its current weights, and trace
        its compiled functions (once per model); otherwise the first estimate does. Only
        while the model is not training."""
        if self.op is None:
            if self.model is None:
                self.set_model(model)
            self.op = self._operator(snapshot_weights(model))
            top_eigen(self.op, max_products=2, seed=self.seed)  # traces the compiled chunk

    def _operator(self, weights: list[np.ndarray]) -> HessianOperator:
        assert self._data is not None  # set_model ran first
        x, y = self._data
        return HessianOperator(
            self.model,
            x,
            y,
            loss=self.loss,
            weights=weights,
            seed=self.seed,
            batch_size=self.batch_size,
            regularization=self.regularization,
            check=False,  # the compiled Lanczos chunks check the loss when they are traced
        )

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._batches and self._batches % self.every_k_batches == 0:
            self._request()
        self._batches += 1

    def on_train_end(self, logs: dict | None = None) -> None:
        self.wait(None)
        if not self.history or self.history[-1].step != self._batches:
            self._request()
        self.wait(None)

    # -- control ---------------------------------------------------------------------------------
    @property
    def values(self) -> np.ndarray:
        """Every estimate so far."""
        return np.array([e.value for e in self.history])

    @property
    def steps(self) -> np.ndarray:
        """The batch of every estimate."""
        return np.array([e.step for e in self.history], dtype=np.int64)

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until no estimate runs. Returns True if idle."""
        return self._worker.join(timeout)

    def close(self) -> None:
        """Stop the background worker."""
        self._worker.stop(10.0)

    # -- estimating ------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        """What an estimate needs, copied on the training thread."""
        opt = getattr(self.model, "optimizer", None)
        threshold = stability_threshold(opt, self._full_batch)
        pre = None
        if threshold.quantity == "preconditioned sharpness":
            assert self._idx is not None and opt is not None  # Adam's threshold: an optimizer
            if self._velocities is None and int(np.asarray(opt.iterations)) >= 1:
                self._velocities = adam_velocities(opt, self.model, self._idx)
            pre = adam_preconditioner(opt, self.model, self._idx, self._velocities)
            if pre is None:  # before Adam's first step: no preconditioner yet
                threshold = _no_line("preconditioned sharpness", "Adam before its first step")
        lr = current_lr(opt) if opt is not None else None
        weights = [np.array(v.numpy(), copy=True) for v in self.model.weights]
        return {
            "step": self._batches,
            "weights": weights,
            "pre": pre,
            "threshold": threshold,
            "lr": lr,
        }

    def _request(self) -> None:
        if self._idx is None:
            return
        if self.background and self._worker.running:
            self.skipped += 1
            return
        snap = self._snapshot()
        if self.background:
            self._worker.start(lambda ctx: self._estimate(snap, ctx))
        else:
            try:
                self._estimate(snap, None)
            except Exception as exc:  # noqa: BLE001 - reported, training goes on
                self._error(exc, traceback.format_exc())

    def _estimate(self, snap: dict[str, Any], ctx: JobContext | None) -> SharpnessEstimate:
        t0 = time.perf_counter()
        if self.op is None:
            self.op = self._operator(snap["weights"])
        op = self.op
        op.set_weights(snap["weights"])
        kind = "pre" if snap["pre"] is not None else "plain"
        start = self._vector if self._vector_kind == kind else None
        result = top_eigen(
            op,
            warm=start,
            preconditioner=snap["pre"],
            seed=(self.seed, snap["step"]),
            tol=self.tol,
            max_products=self.max_products,
            value_tol=self.value_tol,
            stop_event=None if ctx is None else ctx.stop_event,
        )
        self._vector, self._vector_kind = result.vector, kind
        estimate = SharpnessEstimate(
            snap["step"],
            result.value,
            snap["threshold"],
            snap["lr"],
            result.n_products,
            result.converged,
            time.perf_counter() - t0,
            snap["weights"],
            {
                "n_examples": op.info["n_examples"],
                "batch_size": op.info["batch_size"],
                "warm_start": start is not None,
                "residual": result.residual,
            },
            snap["pre"],
        )
        with self._lock:
            if self.history:
                self.history[-1].weights = None  # keep only the latest snapshot
                self.history[-1].preconditioner = None
            self.history.append(estimate)
            history = list(self.history)
        if self.on_estimate is not None:
            try:
                self.on_estimate(estimate, history)
            except Exception as exc:  # noqa: BLE001 - a broken view must never stop training
                self._error(exc, "")
        return estimate

    def _error(self, exc: BaseException, tb: str) -> None:
        self.error = exc
        if self.on_error is not None:
            self.on_error(exc, tb)
