"""The render loop: gradient ascent on a parameterized image, compiled once.

:class:`Renderer` sets everything up once -- validated objective, one feature extractor for
the layers the objective needs (:mod:`~nbviz.optvis.introspection`), the image
parameterization, the transforms, the optimizer -- and compiles one ``tf.function`` that
runs *k* optimization steps in-graph and returns the objective value of every row at every
step. Unit indices and objective weights are ``tf.Variable`` objects, so
:meth:`Renderer.set_channels` and friends never retrace.

Three ways to drive it:

* ``Renderer.frames(steps, every=k)`` -- a generator of :class:`Frame` (step, per-row
  objective, image, throughput) every ``k`` steps; stops on max steps, a callable or a
  ``threading.Event``. The image reaches the host only when a frame is yielded. This is what
  widgets consume (through :class:`nbviz.worker.Worker`).
* ``Renderer.run(steps, callbacks=[...])`` -- the same with a callback protocol
  (:class:`Callback`: ``on_begin``, ``on_step``, ``on_end``); returns a :class:`Result`.
* ``render(model, objective, steps=...)`` -- one call, returns a :class:`Result`.

The model's weights are only read: the optimizer gets the image variables alone, and the
model runs with ``training=False`` (Dropout off, BatchNorm on its moving statistics).
A renderer is driven by one thread at a time (a widget's worker); change units or weights
between frames.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import require_keras, require_tensorflow
from ..errors import ChannelError, ImageError
from ..scaling import input_scaling, resolve_input_range
from . import param as param_mod
from . import transforms as transforms_mod
from .introspection import (
    LayerReader,
    LayerTable,
    check_float_input,
    check_image_model,
)

# Re-export: nbviz.optvis.render.preactivation_fn (moved to .introspection) stays importable.
from .introspection import preactivation_fn as preactivation_fn
from .objectives import Context, Objective, UnitObjective, as_objective

DEFAULT_LEARNING_RATE = 0.05
# Sparse resampling entries built ahead (12 bytes each: 12 MB); also the most steps per call.
MAX_SAMPLING_ENTRIES = 1_000_000


@dataclass
class Frame:
    """A snapshot of a running render.

    ``loss`` is the objective value of each row at ``step`` (the quantity being *maximized*;
    the seed article calls it the loss/score); ``losses`` holds every step since the last
    frame, shape ``(k, B)``. ``image`` is ``(B, H, W, C)`` float32 in ``[0, 1]`` (``None``
    when frames were asked without images). ``final`` marks the frame of the last step of a
    bounded run.
    """

    step: int
    loss: np.ndarray
    image: np.ndarray | None
    steps_per_sec: float
    losses: np.ndarray
    final: bool = False


@dataclass
class Result:
    """Outcome of :meth:`Renderer.run` / :func:`render`.

    ``images``: ``(B, H, W, C)`` float32 in ``[0, 1]``; ``losses``: ``(steps, B)`` objective
    values of this run; ``stopped``: True if a stop criterion ended it before ``steps``.
    """

    images: np.ndarray
    losses: np.ndarray
    step: int
    stopped: bool
    seconds: float
    objective: str

    @property
    def steps_per_sec(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else float("nan")


class Callback:
    """Callback protocol (all methods optional; subclass or duck-type).

    ``on_step`` gets the step number, the ``(B,)`` objective values and the image
    ``(B, H, W, C)`` on frame steps (every ``every`` steps and the last one), else ``None``.
    """

    def on_begin(self, renderer: Renderer) -> None:
        """Called once before the first step, with the renderer about to run."""

    def on_step(self, step: int, loss: np.ndarray, image: np.ndarray | None) -> None:
        """Called after every step: its number, the ``(B,)`` objective values, and the image
        ``(B, H, W, C)`` on frame steps (else ``None``)."""

    def on_end(self, result: Result) -> None:
        """Called once at the end (also after Stop) with the :class:`Result` so far."""


def _resolve_batch(rows: int | None, batch: int | None, param: Any) -> int:
    """The number of rows: ``batch``, else the parameterization's, else the objective's or 1."""
    if batch is None:
        batch = param.batch if param is not None else (rows or 1)
    batch = int(batch)
    if batch < 1:
        raise ImageError(f"batch must be >= 1, got {batch}.")
    if rows is not None and rows != batch:
        raise ChannelError(
            f"The objective has {rows} rows (one per unit) but batch={batch}. Fix: leave "
            "batch unset, or list as many units as rows."
        )
    return batch


def _fixed_hw(input_shape: tuple) -> tuple[int, int] | None:
    """The model's input (height, width), or ``None`` when either is not fixed."""
    h, w = input_shape[1:3]
    return None if h is None or w is None else (int(h), int(w))


def _sampling_buffer(fused: Any, batch: int) -> Any:
    """A buffer of resampling matrices built ahead for as many steps as MAX_SAMPLING_ENTRIES
    allow; ``None`` (built per step) without fused transforms or when one step does not fit."""
    per_step = fused.entries_per_step(batch) if fused is not None else 0
    if fused is None or not 0 < per_step <= MAX_SAMPLING_ENTRIES:
        return None
    return transforms_mod.SamplingBuffer(fused, batch, MAX_SAMPLING_ENTRIES // per_step)


class Renderer:
    """Feature visualization of ``objective`` on ``model`` by compiled gradient ascent.

    Parameters
    ----------
    model:
        A Keras model with one image input ``(B, H, W, C)``; never modified.
    objective:
        An :class:`~nbviz.optvis.Objective` or shorthand ``"layer:unit"``.
    size:
        Rendered image size (int or (h, w)); default: the model's input size, else 128.
        The transformed image is centre-cropped and resized to the model's input size.
    batch:
        Number of rows; default: the objective's (one per listed unit) or 1.
    param:
        An :class:`~nbviz.optvis.param.ImageParam` (then ``size``, ``fft``, ``decorrelate``
        and ``sigmoid`` are not used); default ``param.image(...)`` with those options
        (decorrelation only for 3 channels).
    transforms:
        ``"standard"`` (Lucid's preset), ``"none"``/``None``, or a list of transforms.
    optimizer:
        A Keras optimizer; default ``keras.optimizers.Adam(learning_rate)``.
    grad_norm:
        ``"l2"``: rescale each row's gradient to unit RMS (filters with tiny gradients
        progress like the others); ``None``: raw gradients.
    grad_clip:
        If set, clip each row's gradient to this L2 norm (after ``grad_norm``).
    seed:
        Seeds the initial image and the transforms' random draws (same seed, same run;
        ``None``: fresh randomness).
    preactivation:
        Read Dense/Conv layers before their fused activation (Lucid's pre-ReLU).
    value_range, preprocess:
        The image in ``[0, 1]`` is mapped linearly to ``value_range`` and then through
        ``preprocess`` (graph code, e.g. ``keras.applications.vgg16.preprocess_input``).
        Default range: ``(0, 255)`` with ``preprocess``, else what the model's own leading
        ``Rescaling``/``Normalization`` layer expects (:mod:`nbviz.scaling`; the keras.io
        fine-tuning recipe takes 0..255), else ``(0, 1)``.
    jit_compile:
        Compile the step with XLA (often slower on CPU).
    """

    def __init__(
        self,
        model: Any,
        objective: Objective | str,
        *,
        size: int | Sequence[int] | None = None,
        batch: int | None = None,
        param: param_mod.ImageParam | None = None,
        fft: bool = True,
        decorrelate: bool = True,
        sigmoid: bool = True,
        transforms: str | Sequence[Any] | None = "standard",
        optimizer: Any = None,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        grad_norm: str | None = "l2",
        grad_clip: float | None = None,
        seed: int | None = 0,
        preactivation: bool = True,
        value_range: tuple[float, float] | None = None,
        preprocess: Callable[[Any], Any] | None = None,
        jit_compile: bool = False,
    ) -> None:
        input_shape = check_image_model(model)
        check_float_input(model)
        self.model = model
        self.objective = as_objective(objective)
        self.table = LayerTable(model, preactivation=preactivation)
        self.objective.check(self.table)
        self.batch = _resolve_batch(self.objective.rows, batch, param)
        self.channels = int(input_shape[-1])
        self.model_hw = _fixed_hw(input_shape)
        self.param = param_mod.for_model(
            param, size, self.batch, self.channels, self.model_hw,
            fft=fft, decorrelate=decorrelate, sigmoid=sigmoid, seed=seed,
        )  # fmt: skip
        self.size = (self.param.shape[1], self.param.shape[2])
        self._setup_transforms(transforms, jit_compile)
        self.grad_norm = _check_grad_norm(grad_norm)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.value_range = resolve_input_range(value_range, preprocess, input_scaling(model))
        self.preprocess = preprocess
        self.seed = seed
        self.rng = _generator(seed)
        self.reader = LayerReader(model, self.table, sorted(self.objective.layers))
        self.extractor, self.taps = self.reader.extractor, self.reader.taps
        self._setup_optimizer(optimizer, learning_rate)
        self.step = 0
        self.history: list[np.ndarray] = []
        self._compile(jit_compile)

    # -- set-up steps (called once, in this order, by __init__) ---------------------------------
    def _setup_transforms(self, transforms: str | Sequence[Any] | None, jit_compile: bool) -> None:
        """Resolve the transforms. All-affine ones (the presets) fuse into one resampling per
        step, its sparse matrix built ahead for many steps at once (see :func:`_sampling_buffer`)."""
        self.transforms = transforms_mod.resolve(transforms)
        if jit_compile and any(
            isinstance(t, transforms_mod.AffineTransform) for t in self.transforms
        ):
            raise ValueError(
                "jit_compile=True cannot compile the transforms' resampling op "
                "(SparseTensorDenseMatMul has no XLA kernel). Fix: transforms='none', or "
                "jit_compile=False (the default; XLA was slower on CPU in our benchmarks)."
            )
        self._fused = transforms_mod.fuse(self.transforms, self.size, self.model_hw or self.size)
        self._sampling = _sampling_buffer(self._fused, self.batch)

    def _setup_optimizer(self, optimizer: Any, learning_rate: float) -> None:
        """The optimizer, built on the image variables alone, and its initial state (for reset)."""
        if optimizer is None and not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(
                f"learning_rate must be a positive, finite number, got {learning_rate}. Fix: "
                f"leave the default ({DEFAULT_LEARNING_RATE}) or pass e.g. 0.05."
            )
        self.optimizer = optimizer or require_keras().optimizers.Adam(learning_rate)
        self.optimizer.build(self.param.variables)
        self._optimizer_initial = [np.array(v.numpy(), copy=True) for v in self.optimizer.variables]

    def _compile(self, jit_compile: bool) -> None:
        """Wrap the step, the in-graph loop and the image read in ``tf.function`` (traced on
        first use, or by :meth:`compile`)."""
        tf = require_tensorflow()
        # autograph off: the graph code is written with tf ops already (tracing is faster).
        # partial(): a per-instance key, so many renderers do not trip TF's retracing warning.
        self._run = tf.function(
            functools.partial(Renderer._run_steps, self),
            jit_compile=jit_compile, reduce_retracing=True, autograph=False,
        )  # fmt: skip
        # One step is its own (not inlined) function, called by the in-graph loop: the loop
        # body's graph has cycles, and there oneDNN's graph rewrite matches MaxPool with its
        # gradient only when it happens to visit them in order -- otherwise the plain
        # MaxPoolGrad kernel runs, ~20x slower (3.5 ms of VGG16's 33 ms step, randomly per
        # process). In a function of its own the order is topological, so it always matches.
        self._step = (
            functools.partial(Renderer._one_step, self)
            if jit_compile
            else tf.function(
                functools.partial(Renderer._one_step, self),
                autograph=False,
                experimental_attributes={"_noinline": True},
            )  # fmt: skip
        )
        self._image = tf.function(functools.partial(_call_fn, self.param.image), autograph=False)
        self._evaluate: Any = None

    @property
    def _max_chunk(self) -> int | None:
        """Most steps per compiled call: what the sampling buffer holds (no cap without it)."""
        return None if self._sampling is None else self._sampling.capacity

    @property
    def _chunk_sampling(self) -> bool:
        """Whether the resampling matrices are built ahead for many steps (else per step)."""
        return self._sampling is not None

    # -- the compiled step -------------------------------------------------------------------
    def _model_input(self, image: Any, transforms: Sequence[Any], sampling: Any = None) -> Any:
        """Transforms, fit to the model's input size, value range, preprocessing.

        ``sampling``: this step's :class:`~nbviz.optvis.transforms.Sampling`, built ahead
        (else the transforms run here).
        """
        if sampling is not None:
            assert self._fused is not None  # sampling is built only for fused transforms
            x = self._fused.warp(image, sampling)
        else:
            x = transforms_mod.apply(transforms, image, self.rng, out_hw=self.model_hw or self.size)
        lo, hi = self.value_range
        if (lo, hi) != (0.0, 1.0):
            x = lo + (hi - lo) * x
        return self.preprocess(x) if self.preprocess is not None else x

    def _context(self, x: Any, image: Any) -> Context:
        """Run the tap model on model input ``x``; activations are finished lazily."""
        if self.extractor is None:
            return Context(image, lambda name: None)
        full, units = self.reader.read(x)
        return Context(image, full=full, units=units)

    def _objective_values(self, image: Any, transforms: Sequence[Any], sampling: Any = None) -> Any:
        """``(B,)`` objective values of ``image`` after ``transforms`` (graph code)."""
        ctx = self._context(self._model_input(image, transforms, sampling), image)
        return self.objective.value(ctx)

    def _normalize(self, grads: list[Any]) -> list[Any]:
        tf = require_tensorflow()
        if self.grad_norm is None and self.grad_clip is None:
            return grads
        out = []
        for g, axis in zip(grads, self.param.batch_axes, strict=True):
            other = [a for a in range(g.shape.rank) if a != axis]
            if self.grad_norm == "l2":
                rms = tf.sqrt(tf.reduce_mean(tf.square(g), axis=other, keepdims=True))
                g = g / (rms + 1e-8)
            if self.grad_clip is not None:
                norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=other, keepdims=True))
                g = g * tf.minimum(1.0, self.grad_clip / (norm + 1e-12))
            out.append(g)
        return out

    def _one_step(self, *sampling: Any) -> Any:
        tf = require_tensorflow()
        variables = self.param.variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            built = transforms_mod.Sampling(*sampling) if sampling else None
            values = self._objective_values(self.param.image(), self.transforms, built)
            loss = -tf.reduce_sum(values)
        grads = tape.gradient(loss, variables)
        # An objective that ignores the image (e.g. a constant) has no gradient: stand still.
        grads = [
            tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)
        ]
        grads = self._normalize(grads)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return values

    def _run_steps(self, n: Any) -> tuple[Any, Any]:
        """Run ``n`` steps in-graph: ``(n, B)`` objective values (each before its update) and
        the image after the last update (returned by the same call: one host round trip)."""
        tf = require_tensorflow()
        values = tf.TensorArray(tf.float32, size=n, element_shape=[self.batch])
        if self._sampling is not None:  # the next n steps' resampling, built ahead
            first, sampling = self._sampling.take(self.rng, n)

            def step(i: Any) -> Any:
                s = sampling.step(first + i)
                return self._step(s.indices, s.values)
        else:

            def step(i: Any) -> Any:
                return self._step()

        def body(i: Any, values: Any) -> tuple[Any, Any]:
            return i + 1, values.write(i, step(i))

        _, values = tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), values))
        with tf.control_dependencies([values.flow]):
            image = self.param.image()
        return values.stack(), image

    # -- control ------------------------------------------------------------------------------
    def compile(self) -> Renderer:
        """Trace the step now (otherwise the first frame pays for it). Changes nothing."""
        tf = require_tensorflow()
        self._run.get_concrete_function(tf.TensorSpec([], tf.int32))
        return self

    @property
    def trace_count(self) -> int:
        """How many times the step was traced (stays 1 when only units/weights change)."""
        return int(self._run.experimental_get_tracing_count())

    def image(self) -> np.ndarray:
        """The current image, ``(B, H, W, C)`` float32 in ``[0, 1]``."""
        return np.asarray(self._image().numpy())

    def evaluate(self, images: np.ndarray | None = None) -> np.ndarray:
        """Objective value per row of ``images`` (default: the current image), no transforms.

        ``images``: ``(B, H, W, C)`` in ``[0, 1]`` at the render size. Deterministic (the
        model runs in inference mode); changes nothing.
        """
        tf = require_tensorflow()
        x = self.image() if images is None else np.asarray(images, np.float32)
        expected = (self.batch, *self.size, self.channels)
        if x.shape != expected:
            raise ImageError(
                f"evaluate() needs images of shape {expected} (batch, render size, channels); "
                f"got {x.shape}."
            )
        if self._evaluate is None:
            self._evaluate = tf.function(
                functools.partial(Renderer._evaluate_graph, self), autograph=False
            )
        return np.asarray(self._evaluate(tf.constant(x)).numpy())

    def _evaluate_graph(self, images: Any) -> Any:
        return self._objective_values(images, [])

    def reset(self, seed: int | None = None) -> None:
        """Start over from a fresh random image (``seed`` default: the renderer's seed)."""
        seed = self.seed if seed is None else seed
        self.param.reset(seed)
        self.rng.reset(_generator(seed).state)
        if self._sampling is not None:
            self._sampling.clear()  # transforms drawn from the reset generator, as in a new run
        for var, value in zip(self.optimizer.variables, self._optimizer_initial, strict=True):
            var.assign(value)
        self.step = 0
        self.history = []

    def unit_objectives(self) -> list[UnitObjective]:
        """The channel / neuron / class objectives inside the objective."""
        return [o for o in self.objective.leaves() if isinstance(o, UnitObjective)]

    def set_channels(self, index: int | Sequence[int], reset: bool = True) -> None:
        """Render other units of the same layer without retracing.

        ``index``: one unit for all rows or one per row (the batch size cannot change).
        ``reset``: start again from a fresh image (default) instead of continuing.
        """
        units = self.unit_objectives()
        if len(units) != 1:
            kinds = ", ".join(repr(u) for u in units) or "none"
            raise ChannelError(
                f"set_channels needs exactly one channel/neuron/class objective, found {kinds}. "
                "Fix: call set_index(...) on the objective you mean."
            )
        values = list(np.atleast_1d(np.asarray(index)).reshape(-1))
        if len(values) not in (1, self.batch):
            raise ChannelError(
                f"This renderer has {self.batch} rows; got {len(values)} units. Fix: pass one "
                f"unit or {self.batch}, or create a new Renderer for another batch size."
            )
        units[0].set_index(values if len(values) > 1 else values[0])
        if reset:
            self.reset()

    # -- driving ------------------------------------------------------------------------------
    def _advance(self, n: int) -> tuple[np.ndarray, Any]:
        """Run ``n`` steps in as few compiled calls as the sampling memory cap allows:
        ``(n, B)`` objective values and the image tensor after the last step."""
        tf = require_tensorflow()
        chunk = n if self._max_chunk is None else min(n, self._max_chunk)
        parts = []
        done = 0
        while done < n:
            k = min(chunk, n - done)
            losses_t, image_t = self._run(tf.constant(k, tf.int32))
            parts.append(losses_t.numpy())
            done += k
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)), image_t

    def frames(
        self,
        steps: int | None = None,
        every: int = 8,
        stop_event: threading.Event | None = None,
        should_stop: Callable[[int, np.ndarray], bool] | None = None,
        images: bool = True,
    ) -> Iterator[Frame]:
        """Optimize, yielding a :class:`Frame` every ``every`` steps (and at the last step).

        Stops after ``steps`` more steps (``None``: until a stop criterion), when
        ``stop_event`` is set (checked between frames) or when ``should_stop(step, loss)``
        returns True. Continues from the current state; :meth:`reset` starts over.
        """
        every = int(every)
        if every < 1:
            raise ValueError(f"every must be >= 1 step, got {every}.")
        if steps is not None and int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps}.")
        target = None if steps is None else self.step + int(steps)
        while target is None or self.step < target:
            if stop_event is not None and stop_event.is_set():
                return
            n = every if target is None else min(every, target - self.step)
            t0 = time.perf_counter()
            losses, image_t = self._advance(n)
            img = image_t.numpy() if images else None
            dt = time.perf_counter() - t0
            self.step += n
            self.history.extend(losses)
            frame = Frame(
                step=self.step,
                loss=losses[-1],
                image=img,
                steps_per_sec=n / dt if dt > 0 else float("inf"),
                losses=losses,
                final=target is not None and self.step >= target,
            )
            yield frame
            if should_stop is not None and should_stop(self.step, losses[-1]):
                return

    def run(
        self,
        steps: int,
        callbacks: Sequence[Any] = (),
        every: int = 32,
        stop_event: threading.Event | None = None,
        should_stop: Callable[[int, np.ndarray], bool] | None = None,
    ) -> Result:
        """Optimize ``steps`` more steps, calling ``callbacks``; return a :class:`Result`."""
        for cb in callbacks:
            _call(cb, "on_begin", self)
        start = self.step
        t0 = time.perf_counter()
        img = None
        all_losses: list[np.ndarray] = []
        for frame in self.frames(steps, every, stop_event, should_stop, images=True):
            img = frame.image
            all_losses.extend(frame.losses)
            first = frame.step - len(frame.losses) + 1
            for i, row in enumerate(frame.losses):
                last = i == len(frame.losses) - 1
                for cb in callbacks:
                    _call(cb, "on_step", first + i, row, img if last else None)
        result = Result(
            images=self.image() if img is None else img,
            losses=np.asarray(all_losses, np.float32).reshape(-1, self.batch),
            step=self.step,
            stopped=self.step - start < steps,
            seconds=time.perf_counter() - t0,
            objective=repr(self.objective),
        )
        for cb in callbacks:
            _call(cb, "on_end", result)
        return result


def _generator(seed: int | None) -> Any:
    """A ``tf.random.Generator`` for the transforms: seeded, or fresh entropy for ``None``."""
    tf = require_tensorflow()
    if seed is None:
        return tf.random.Generator.from_non_deterministic_state()
    return tf.random.Generator.from_seed(int(seed))


def _call_fn(fn: Callable[[], Any]) -> Any:
    return fn()


def _call(cb: Any, method: str, *args: Any) -> None:
    fn = getattr(cb, method, None)
    if fn is not None:
        fn(*args)


def _check_grad_norm(grad_norm: str | None) -> str | None:
    if grad_norm not in (None, "l2"):
        raise ValueError(f"grad_norm is 'l2' or None, got {grad_norm!r}.")
    return grad_norm


def render(
    model: Any,
    objective: Objective | str,
    steps: int = 512,
    *,
    callbacks: Sequence[Any] = (),
    every: int = 32,
    stop_event: threading.Event | None = None,
    should_stop: Callable[[int, np.ndarray], bool] | None = None,
    **renderer_kwargs: Any,
) -> Result:
    """Render ``objective`` on ``model`` for ``steps`` steps; see :class:`Renderer` for options."""
    renderer = Renderer(model, objective, **renderer_kwargs)
    return renderer.run(steps, callbacks, every, stop_event, should_stop)
