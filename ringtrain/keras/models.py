"""tf.keras.Model and Sequential: one core graph per model, and the fit/evaluate/predict loops.

A model owns a ``tf.Graph`` and the Keras session on it. Building (on the first data, or
``build``/``input_shape``) adds input placeholders and the inference pass (``training=False``);
``fit`` adds, once per compile, the training pass (``training=True``: dropout on, BatchNorm
updating its moving statistics), the loss, metrics and the optimizer's train op. Each batch is one
``Session.run``.

Distribution: a model captures ``ringtrain.core.distribution.current()`` when it is created (or
compiled inside a strategy's scope). All strategy calls are in the ``_Replication`` class below:
``shard_batch`` on every global batch, ``mean_across_replicas`` on the epoch's loss/metrics,
``is_chief`` for output and files, and ``read_on_chief`` for files read back (backups, weights).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import core
from ..checkpoint import _chief_then_everyone, atomic_write
from ..core import distribution
from ..data.dataset import Dataset, advance_to_epoch
from ..data.structure import flatten, is_nested, map_structure, pack_as
from . import backend, losses, optimizers
from . import callbacks as callbacks_mod
from . import metrics as metrics_mod
from .layers import (
    CallContext,
    InputLayer,
    KerasTensor,
    Layer,
    _feed_dtype,
    _flat_inputs,
    _is_shape_struct,
    _static_shape,
)

# --- the strategy seam ---------------------------------------------------------------------------

class _Replication:
    """Every call fit/evaluate make into a distribution context, in one place.

    Without a context (single process) each method is the identity.
    """

    def __init__(self, ctx: Any):
        self.ctx = ctx

    @property
    def is_chief(self) -> bool:
        return True if self.ctx is None else bool(self.ctx.is_chief)

    def shard(self, batch: Any) -> tuple[Any, float]:
        """This worker's slice of a global batch and the number of samples it stands for."""
        if self.ctx is None:
            return batch, float(_batch_length(batch))
        total = _batch_length(batch)
        local = self.ctx.shard_batch(batch)
        share = getattr(self.ctx, "batch_weight", None)
        return local, float(_batch_length(local) if share is None else share * total)

    def mean(self, values: dict, weight: float) -> dict:
        """Sample-weighted means of the epoch's values over all workers (a collective)."""
        if self.ctx is None:
            return values
        reduced = self.ctx.mean_across_replicas(values, weight)
        return {k: reduced[k] for k in values}  # keep Keras's order: loss first

    def read_on_chief(self, read: Any) -> Any:
        """``read()`` on the chief, its result (or error) on every worker (a collective under a
        multi-worker strategy: every worker must call it). Only the chief writes files and
        workers may not share its filesystem, so a worker's own copy is missing or stale."""
        if self.ctx is None or int(getattr(self.ctx, "num_workers", 1)) <= 1:
            return read()
        return _chief_then_everyone(read)

    def same_seed(self, seed: int) -> int:
        """The chief's shuffling seed on every worker, so all iterate the same global order."""
        broadcast = getattr(self.ctx, "broadcast_object", None)
        return seed if broadcast is None else int(broadcast(seed))


def _batch_length(batch: Any) -> int:
    leaves = flatten(batch)
    return int(np.shape(leaves[0])[0]) if leaves else 0


# --- data ----------------------------------------------------------------------------------------

def _unpack(element: Any) -> tuple[Any, Any, Any]:
    """A dataset element as (x, y, sample_weight), Keras's convention."""
    if type(element) is tuple:
        if len(element) == 1:
            return element[0], None, None
        if len(element) == 2:
            return element[0], element[1], None
        if len(element) == 3:
            return element
        raise ValueError(f"a batch must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple "
                         f"of {len(element)}")
    return element, None, None


class _ArrayBatches:
    """Batches of in-memory arrays, each pass over them shuffled from (seed, pass).

    Without ``steps`` an epoch is one pass. With ``steps`` (Keras's ``steps_per_epoch`` or
    ``evaluate``'s ``steps``) an epoch is ``steps`` batches of one stream that runs through
    ``passes`` passes (fit: one per epoch, as Keras repeats array data ``epochs`` times), so
    epoch ``e`` starts at batch ``e * steps`` of the stream, and the stream running out ends
    training with a warning (``exhausted``).
    """

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool, seed: int,
                 steps: int | None = None, passes: int = 1):
        self.x, self.y = x, y
        self.n = _batch_length(x)
        if y is not None and _batch_length(y) != self.n:
            raise ValueError(f"x has {self.n} samples but y has {_batch_length(y)}; they must "
                             f"match")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.steps_per_epoch = _check_steps(steps)
        self.passes = passes
        self.exhausted = False

    def steps(self) -> int:
        per_pass = math.ceil(self.n / self.batch_size)
        return per_pass if self.steps_per_epoch is None else self.steps_per_epoch

    def epoch(self, epoch: int) -> Iterator:
        if self.steps_per_epoch is None:
            yield from self._pass(epoch, 0)
            return
        per_pass = math.ceil(self.n / self.batch_size)
        index, remaining = epoch * self.steps_per_epoch, self.steps_per_epoch
        while remaining:
            pass_, batch = divmod(index, per_pass) if per_pass else (self.passes, 0)
            if pass_ >= self.passes:
                self.exhausted = True
                return
            for element in itertools.islice(self._pass(pass_, batch), remaining):
                yield element
                index, remaining = index + 1, remaining - 1

    def _pass(self, pass_: int, first_batch: int) -> Iterator:
        """The batches of one pass over the arrays, from batch ``first_batch`` on."""
        order = np.random.default_rng([self.seed, pass_]).permutation(self.n) \
            if self.shuffle else None
        for start in range(first_batch * self.batch_size, self.n, self.batch_size):
            if order is None:
                sel: Any = slice(start, start + self.batch_size)
            else:
                sel = np.sort(order[start:start + self.batch_size])
            xb = _take(self.x, sel)
            yield (xb,) if self.y is None else (xb, _take(self.y, sel))


def _check_steps(steps: Any) -> int | None:
    if steps is None:
        return None
    if isinstance(steps, bool) or int(steps) != steps or steps <= 0:
        raise ValueError(f"steps/steps_per_epoch must be a positive int or None, got {steps!r}")
    return int(steps)


class _IterableBatches:
    """Batches from a Dataset (a fresh pass per epoch) or from any iterable / generator."""

    def __init__(self, data: Any, steps: int | None):
        self.data = data
        self.steps_per_epoch = _check_steps(steps)
        self._persistent: Iterator | None = None
        self.exhausted = False

    def steps(self) -> int | None:
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        card = self.data.cardinality() if isinstance(self.data, Dataset) else -2
        return card if card >= 0 else None

    def epoch(self, epoch: int) -> Iterator:
        if isinstance(self.data, Dataset):
            advance_to_epoch(self.data, epoch)
        if self.steps_per_epoch is None:
            if not isinstance(self.data, Dataset) and self._persistent is not None:
                raise ValueError("a generator can be iterated once: pass a tf.data.Dataset, or "
                                 "steps_per_epoch")
            it = iter(self.data)
            if not isinstance(self.data, Dataset):
                self._persistent = it
            yield from it
            return
        # With steps_per_epoch, one iterator runs across epochs (e.g. a repeated dataset).
        for _ in range(self.steps_per_epoch):
            if self._persistent is None:
                self._persistent = iter(self.data)
            try:
                yield next(self._persistent)
            except StopIteration:
                self.exhausted = True
                return


def _take(x: Any, sel: Any) -> Any:
    return map_structure(lambda a: a[sel], x)


def _as_arrays(x: Any) -> Any:
    if x is None:
        return None
    if is_nested(x):
        return map_structure(np.asarray, x)
    return np.asarray(x)


def _make_batches(x: Any, y: Any, batch_size: int | None, steps: int | None, shuffle: bool,
                  seed: int, what: str, passes: int = 1) -> Any:
    x = getattr(x, "global_dataset", x)  # a strategy's distributed dataset: shard here
    if isinstance(x, Dataset) or (hasattr(x, "__iter__") and not isinstance(
            x, (np.ndarray, list, tuple, dict))):
        if y is not None:
            raise ValueError(f"{what}: y must be None when x is a dataset or generator (the "
                             f"dataset yields (x, y) pairs)")
        return _IterableBatches(x, steps)
    if x is None:
        raise ValueError(f"{what}: x is required")
    bs = 32 if batch_size is None else int(batch_size)
    if bs <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    return _ArrayBatches(_as_arrays(x), _as_arrays(y), bs, shuffle, seed, steps, passes)


# --- models --------------------------------------------------------------------------------------

class Model(Layer):
    """A trainable graph of layers: subclass it (define ``call(x, training=None)``), or build it
    functionally with ``Model(inputs, outputs)``."""

    _is_model = True

    @classmethod
    def _base_name(cls) -> str:
        return "model" if cls is Model else backend.snake_case(cls.__name__)

    def _init_state(self) -> None:
        super()._init_state()
        self._own_graph = None
        self._dist_ctx = distribution.current()
        self._inputs_ph: Any = None
        self._infer_out: Any = None
        self._input_dtype: str | None = None
        self._compiled = False
        self._train_graph: dict | None = None
        self._func_inputs: Any = None
        self._func_outputs: Any = None
        self.optimizer: Any = None
        self.loss: Any = None
        self.compiled_metrics: list = []
        self.stop_training = False
        self.history: callbacks_mod.History | None = None
        self._resume_epoch: int | None = None
        self._pending_state: dict | None = None
        self._fit_seed: int | None = None
        self._building = False

    def __init__(self, *args: Any, **kwargs: Any):
        inputs = kwargs.pop("inputs", None)
        outputs = kwargs.pop("outputs", None)
        if args:
            inputs, args = args[0], args[1:]
            if args:
                outputs, args = args[0], args[1:]
        if args:
            raise TypeError("Model takes (inputs, outputs) positionally at most")
        super().__init__(**kwargs)
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("a functional Model needs both inputs and outputs")
            self._init_functional(inputs, outputs)

    # -- graph and distribution --
    @property
    def graph(self) -> Any:
        if self._own_graph is None:
            graph = core.Graph()
            # Random ops (dropout) follow tf.keras.utils.set_random_seed / tf.set_random_seed.
            seed = backend.random_seed()
            graph.seed = seed if seed is not None else core.get_default_graph().seed
            self._own_graph = graph
        return self._own_graph

    @property
    def _is_chief(self) -> bool:
        return _Replication(self._dist_ctx).is_chief

    def _read_on_chief(self, read: Any) -> Any:
        """``read()`` on the chief, its result on every worker (see ``_Replication``)."""
        return _Replication(self._dist_ctx).read_on_chief(read)

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        """Build in this model's graph, under the distribution context it captured."""
        with self.graph.as_default():
            if self._dist_ctx is not None and distribution.current() is not self._dist_ctx:
                with distribution.use(self._dist_ctx):
                    yield
            else:
                yield

    def _capture_distribution(self) -> None:
        ctx = distribution.current()
        if ctx is not None and self._dist_ctx is None:
            if self._infer_out is not None:
                raise ValueError("this model was built outside the strategy's scope; create "
                                 "(and build) it inside `with strategy.scope():`")
            self._dist_ctx = ctx

    # -- functional API --
    def _init_functional(self, inputs: Any, outputs: Any) -> None:
        for kt in (flatten(inputs) if is_nested(inputs) or isinstance(inputs, list)
                   else [inputs]):
            if not isinstance(kt, KerasTensor) or not isinstance(kt._keras_history[0],
                                                                   InputLayer):
                raise TypeError("functional Model inputs must come from tf.keras.Input(...)")
        self._func_inputs = tuple(inputs) if isinstance(inputs, list) else inputs
        self._func_outputs = tuple(outputs) if isinstance(outputs, list) else outputs
        for layer in self._functional_layers():
            if all(layer is not s for s in self._sublayers):
                self._sublayers.append(layer)

    def _functional_nodes(self) -> list[KerasTensor]:
        """The KerasTensors between inputs and outputs in a valid evaluation order."""
        order: list[KerasTensor] = []
        state: dict[int, int] = {}
        outs = flatten(self._func_outputs)
        stack: list[tuple[KerasTensor, bool]] = [(o, False) for o in reversed(outs)]
        while stack:  # iterative depth-first post-order
            kt, expanded = stack.pop()
            if expanded:
                if state.get(id(kt)) != 2:
                    state[id(kt)] = 2
                    order.append(kt)
                continue
            if state.get(id(kt)):
                continue
            state[id(kt)] = 1
            stack.append((kt, True))
            _, args, _ = kt._keras_history
            parents = [p for p in _flat_inputs(args) if isinstance(p, KerasTensor)]
            stack.extend((p, False) for p in reversed(parents) if not state.get(id(p)))
        return order

    def _functional_layers(self) -> list[Layer]:
        out: list[Layer] = []
        for kt in self._functional_nodes():
            layer = kt._keras_history[0]
            if not isinstance(layer, InputLayer) and all(layer is not x for x in out):
                out.append(layer)
        return out

    def _call_functional(self, inputs: Any, training: Any) -> Any:
        ins = flatten(self._func_inputs)
        given = flatten(inputs) if is_nested(inputs) or isinstance(inputs, list) else [inputs]
        if len(given) != len(ins):
            raise ValueError(f"model {self.name!r} expects {len(ins)} inputs, got {len(given)}")
        values = {id(k): v for k, v in zip(ins, given)}
        for kt in self._functional_nodes():
            if id(kt) in values:
                continue
            layer, args, kwargs = kt._keras_history
            args = tuple(_substitute(a, values) for a in args)
            kwargs = dict(kwargs)
            if layer._call_takes("training") and kwargs.get("training") is None:
                kwargs["training"] = training
            values[id(kt)] = layer(*args, **kwargs)
        return _substitute(self._func_outputs, values)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if self._func_outputs is not None:
            return self._call_functional(inputs, training)
        raise NotImplementedError(f"{type(self).__name__} must define call(self, inputs, "
                                  f"training=None), or be built with Model(inputs, outputs)")

    # -- building --
    def _declared_input(self) -> tuple[Any, str] | None:
        """The input shape(s) with batch dimension, and dtype, if the model declares them."""
        if self._func_inputs is not None:
            ins = self._func_inputs
            shapes = map_structure(lambda k: k.shape, ins)
            dtype = flatten(ins)[0].dtype
            return shapes, dtype
        return None

    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of ``input_shape`` (batch dimension included, None)."""
        if self._infer_out is not None:
            return
        shape = tuple(input_shape) if not _is_shape_struct(input_shape) else input_shape
        self._build_from(shape, self._input_dtype or backend.floatx())

    def _build_from(self, batch_shape: Any, dtype: str) -> None:
        self._building = True
        try:
            self._build_graph(batch_shape, dtype)
        finally:
            self._building = False

    def _build_graph(self, batch_shape: Any, dtype: str) -> None:
        with self._scope():
            def placeholder(shape: Any, i: int) -> Any:
                shape = (None, *tuple(shape)[1:])
                return core.placeholder(dtype, shape=shape,
                                        name="input" if i == 0 else f"input_{i}")
            if _is_shape_struct(batch_shape):
                flat_shapes = flatten(batch_shape) if is_nested(batch_shape) else batch_shape
                phs = [placeholder(s, i) for i, s in enumerate(flat_shapes)]
                inputs = pack_as(batch_shape, phs) if is_nested(batch_shape) else phs
            else:
                inputs = placeholder(batch_shape, 0)
            with CallContext(training=False):
                outputs = self(inputs, training=False)
        self._inputs_ph = inputs
        self._infer_out = outputs
        self._input_dtype = dtype
        self.built = True
        backend.initialize_variables(backend.graph_variables(self.graph), self.graph)
        self._apply_pending_state()

    def _ensure_built(self, x: Any) -> None:
        if self._infer_out is not None:
            return
        declared = self._declared_input()
        if declared is not None:
            self._build_from(*declared)
            return
        if x is None:
            raise ValueError(f"model {self.name!r} has not been built yet: give the first layer "
                             f"an input_shape, call build(input_shape), or pass it data")
        arrays = map_structure(np.asarray, x)
        shapes = map_structure(lambda a: a.shape, arrays)
        first = flatten(arrays)[0]
        self._build_from(shapes, _feed_dtype(first, self.dtype))

    @property
    def inputs(self) -> Any:
        return self._inputs_ph

    @property
    def outputs(self) -> Any:
        return self._infer_out

    # -- calling --
    def _numpy_call(self, inputs: Any, args: tuple, kwargs: dict) -> Any:
        if kwargs.get("training"):
            raise ValueError("calling a model on NumPy data runs inference; use fit to train")
        return self.predict_on_batch(inputs)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.built and not self._sublayers and self._func_outputs is None and \
                isinstance(self, Sequential):
            raise ValueError(f"Sequential model {self.name!r} has no layers")
        return super().__call__(inputs, *args, **kwargs)

    # -- compile --
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, weighted_metrics: Any = None, run_eagerly: Any = None,
                steps_per_execution: Any = None, jit_compile: Any = None, **kwargs: Any) -> None:
        """Choose the optimizer, the loss and the metrics for ``fit``/``evaluate``."""
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("loss_weights and weighted_metrics are not supported")
        if kwargs:
            raise TypeError(f"compile got unexpected arguments {sorted(kwargs)}")
        self._capture_distribution()
        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        self._loss_obj = losses.get(loss) if loss is not None else None
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_mod.Metric)) or callable(metrics):
            metrics = [metrics]
        elif isinstance(metrics, dict):
            raise ValueError("metrics must be a list (per-output metric dicts are not supported)")
        self._metric_ids = list(metrics)
        self.compiled_metrics = []
        self._train_graph = None
        self._compiled = True

    def _check_compiled(self) -> None:
        if not self._compiled:
            raise RuntimeError("You must compile your model before training/testing. Use "
                               "`model.compile(optimizer, loss)`.")

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *[m.name for m in self.compiled_metrics]]

    def _build_training(self, y: Any) -> dict:
        """Add (once per compile) the training pass, loss, metrics and train op to the graph."""
        if self._train_graph is not None:
            return self._train_graph
        self._check_compiled()
        if self._loss_obj is None:
            raise ValueError("compile(loss=...) is required for fit and evaluate")
        y_arrays = map_structure(np.asarray, y)
        if is_nested(y_arrays):
            raise ValueError("models with several outputs/labels are not supported by fit")
        out_shape = _static_shape(self._infer_out) if isinstance(self._infer_out, core.Tensor) \
            else None
        with self._scope():
            labels = core.placeholder(_feed_dtype(y_arrays, self.dtype),
                                      shape=(None, *y_arrays.shape[1:]), name="labels")
            with CallContext(training=True) as cctx:
                train_out = self(self._inputs_ph, training=True)
            metric_objs = [metrics_mod.get(m, self.loss, out_shape) for m in self._metric_ids]
            loss_t = _mean(self._loss_obj.call(labels, train_out))
            train_metrics = [_mean(m.call(labels, train_out)) for m in metric_objs]
            eval_loss = _mean(self._loss_obj.call(labels, self._infer_out))
            eval_metrics = [_mean(m.call(labels, self._infer_out)) for m in metric_objs]
            var_list = self.trainable_weights
            if not var_list:
                raise ValueError(f"model {self.name!r} has no trainable weights to fit")
            opt = self.optimizer
            if isinstance(opt, optimizers.Optimizer):
                core_opt = opt._build(self.graph)
                train_op = core_opt.minimize(loss_t, var_list=var_list,
                                             global_step=opt.iterations)
            else:  # a tf.train optimizer used directly
                train_op = opt.minimize(loss_t, var_list=var_list)
        backend.initialize_variables(backend.graph_variables(self.graph), self.graph)
        if isinstance(opt, optimizers.Optimizer):
            extra = opt._after_minimize(var_list)
            if extra:
                backend.batch_set_value([v for v, _ in extra],
                                        [np.full(v.shape.as_list(), x, v.dtype.as_numpy_dtype)
                                         for v, x in extra])
        self.compiled_metrics = metric_objs
        self._apply_pending_state()
        self._train_graph = {
            "labels": labels,
            "train": [train_op, *cctx.updates, loss_t, *train_metrics],
            "n_ops": 1 + len(cctx.updates),
            "eval": [eval_loss, *eval_metrics],
            "label_shape": y_arrays.shape[1:],
        }
        return self._train_graph

    # -- running --
    def _feed(self, x: Any, y: Any = None) -> dict:
        xs = flatten(x)
        phs = flatten(self._inputs_ph) if is_nested(self._inputs_ph) or \
            isinstance(self._inputs_ph, list) else [self._inputs_ph]
        if len(xs) != len(phs):
            raise ValueError(f"model {self.name!r} takes {len(phs)} input arrays, got {len(xs)}")
        feed = {}
        for ph, a in zip(phs, xs):
            feed[ph] = _cast_for(ph, a)
        if y is not None:
            labels = self._train_graph["labels"]
            feed[labels] = _cast_for(labels, y)
        return feed

    def _session(self) -> Any:
        return backend.get_session(self.graph)

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       return_dict: bool = False) -> Any:
        """One training step on one (local) batch; returns the loss (and metrics)."""
        self._ensure_built(x)
        tg = self._build_training(y)
        values = self._run_train(tg, x, y)
        return self._format(values, return_dict)

    def _run_train(self, tg: dict, x: Any, y: Any) -> list[float]:
        if y is None:
            raise ValueError("labels are required for training")
        self._apply_pending_state()
        out = self._session().run(tg["train"], feed_dict=self._feed(x, y))
        return [float(v) for v in out[tg["n_ops"]:]]

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      return_dict: bool = False) -> Any:
        self._ensure_built(x)
        tg = self._build_training(y)
        values = [float(v) for v in self._session().run(tg["eval"],
                                                          feed_dict=self._feed(x, y))]
        return self._format(values, return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        self._ensure_built(x)
        return self._session().run(self._infer_out, feed_dict=self._feed(x))

    def _format(self, values: list[float], return_dict: bool) -> Any:
        if return_dict:
            return dict(zip(self.metrics_names, values))
        return values[0] if len(values) == 1 else values

    # -- fit --
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: Any = "auto", callbacks: list | None = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: Any = None,
            sample_weight: Any = None, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int = 1,
            **kwargs: Any) -> callbacks_mod.History:
        """Train for ``epochs`` epochs on a dataset of (x, y) batches or on arrays ``x``, ``y``.

        Returns a History whose ``history`` maps 'loss', each metric, and their 'val_'
        versions to per-epoch values.
        """
        if class_weight is not None or sample_weight is not None:
            raise ValueError("class_weight and sample_weight are not supported")
        if kwargs:
            raise TypeError(f"fit got unexpected arguments {sorted(kwargs)}")
        self._check_compiled()
        epochs, initial_epoch = int(epochs), int(initial_epoch)
        rep = _Replication(self._dist_ctx)
        verbose = 1 if verbose == "auto" else int(verbose)

        if validation_split:
            if validation_data is not None:
                raise ValueError("give validation_split or validation_data, not both")
            if not 0 < validation_split < 1:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            if isinstance(getattr(x, "global_dataset", x), Dataset) or y is None:
                raise ValueError("validation_split works with arrays x, y only")
            x, y = _as_arrays(x), _as_arrays(y)
            n = _batch_length(x)
            cut = int(n * (1 - validation_split))
            validation_data = (_take(x, slice(cut, None)), _take(y, slice(cut, None)))
            x, y = _take(x, slice(0, cut)), _take(y, slice(0, cut))

        seed = rep.same_seed(int(np.random.randint(0, 2**31 - 1)))
        self._fit_seed = seed
        history = callbacks_mod.History()
        cbs = [history]
        cbs.extend(callbacks or [])
        if verbose:
            cbs.append(callbacks_mod.ProgbarLogger(verbose))
        self._resume_epoch = None
        self.stop_training = False
        params = {"epochs": epochs, "verbose": verbose, "steps": None}
        cb_list = callbacks_mod.CallbackList(cbs, self, params)

        # Build before the callbacks start, so BackupAndRestore can restore every variable.
        data = None
        if not (isinstance(getattr(x, "global_dataset", x), Dataset) or hasattr(x, "__next__")):
            data = _make_batches(x, y, batch_size, steps_per_epoch, shuffle, seed, "fit", epochs)
            if isinstance(data, _ArrayBatches):
                self._ensure_built(_first_rows(data.x))
                self._build_training(_first_rows(data.y) if data.y is not None else None)
        elif self._infer_out is not None or self._declared_input() is not None:
            self._ensure_built(None)
        cb_list.on_train_begin()
        if self._resume_epoch is not None:
            initial_epoch = max(initial_epoch, self._resume_epoch)
            if self._fit_seed is not None:
                seed = self._fit_seed
        if data is None:
            data = _make_batches(x, y, batch_size, steps_per_epoch, shuffle, seed, "fit", epochs)
        elif isinstance(data, _ArrayBatches):
            data.seed = seed
        params["steps"] = data.steps()

        val = None
        if validation_data is not None:
            val = self._validation_batches(validation_data, validation_batch_size or batch_size,
                                           validation_steps)
        logs: dict = {}
        for epoch in range(initial_epoch, epochs):
            if self.stop_training:
                break
            cb_list.on_epoch_begin(epoch)
            logs = self._train_epoch(data, epoch, rep, cb_list)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_batches(val, rep, cb_list=None)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cb_list.on_epoch_end(epoch, logs)
            if data.exhausted:
                if rep.is_chief:
                    print("WARNING: your input ran out of data; training stopped. Make sure the "
                          "dataset can give steps_per_epoch * epochs batches (e.g. repeat()).",
                          file=sys.stderr)
                break
        cb_list.on_train_end(logs)
        self.history = history
        return history

    def _train_epoch(self, data: Any, epoch: int, rep: _Replication,
                     cb_list: callbacks_mod.CallbackList) -> dict:
        means = _WeightedMeans()
        for step, element in enumerate(data.epoch(epoch)):
            x, y, sw = _unpack(element)
            if sw is not None:
                raise ValueError("sample weights in a dataset are not supported")
            if y is None:
                raise ValueError("fit needs labels: a dataset of (x, y) pairs, or x and y arrays")
            (x, y), n = rep.shard((x, y))
            if self._infer_out is None:
                self._ensure_built(x)
            tg = self._build_training(y)
            cb_list.on_train_batch_begin(step)
            means.add(self._run_train(tg, x, y), n)
            cb_list.on_train_batch_end(step, means.running(self.metrics_names))
        if means.sums is None and self._train_graph is None:
            raise ValueError("fit got no data: the dataset is empty")
        return rep.mean(means.local(self.metrics_names), means.weight)

    def _validation_batches(self, validation_data: Any, batch_size: int | None,
                            steps: int | None) -> Any:
        vd = validation_data
        if isinstance(vd, tuple) and len(vd) in (2, 3) and not isinstance(vd[0], Dataset):
            if len(vd) == 3:
                raise ValueError("validation sample weights are not supported")
            return _make_batches(vd[0], vd[1], batch_size, steps, False, 0, "validation_data")
        return _make_batches(vd, None, batch_size, steps, False, 0, "validation_data")

    def _evaluate_batches(self, data: Any, rep: _Replication, cb_list: Any) -> dict:
        means = _WeightedMeans()
        for step, element in enumerate(data.epoch(0)):
            x, y, _ = _unpack(element)
            if y is None:
                raise ValueError("evaluate needs labels: a dataset of (x, y) pairs, or x and y")
            (x, y), n = rep.shard((x, y))
            self._ensure_built(x)
            tg = self._build_training(y)
            if cb_list is not None:
                cb_list.on_test_batch_begin(step)
            means.add([float(v) for v in self._session().run(tg["eval"],
                                                               feed_dict=self._feed(x, y))], n)
            if cb_list is not None:
                cb_list.on_test_batch_end(step, means.running(self.metrics_names))
        return rep.mean(means.local(self.metrics_names), means.weight)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: Any = "auto", sample_weight: Any = None, steps: int | None = None,
                 callbacks: list | None = None, return_dict: bool = False,
                 **kwargs: Any) -> Any:
        """The loss (and metrics) on the given data: a float, a list, or a dict."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported")
        self._check_compiled()
        data = _make_batches(x, y, batch_size, steps, False, 0, "evaluate")
        cb_list = callbacks_mod.CallbackList(callbacks or [], self, {"steps": data.steps()})
        cb_list.on_test_begin()
        logs = self._evaluate_batches(data, _Replication(self._dist_ctx), cb_list)
        cb_list.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs[k] for k in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto",
                steps: int | None = None, callbacks: list | None = None,
                **kwargs: Any) -> Any:
        """The model's outputs (inference mode) for every sample, concatenated. Every worker
        predicts all of ``x`` (no sharding)."""
        data = _make_batches(x, None, batch_size, steps, False, 0, "predict")
        cb_list = callbacks_mod.CallbackList(callbacks or [], self, {"steps": data.steps()})
        cb_list.on_predict_begin()
        outs = []
        for step, element in enumerate(data.epoch(0)):
            xb, _, _ = _unpack(element)
            cb_list.on_predict_batch_begin(step)
            outs.append(self.predict_on_batch(xb))
            cb_list.on_predict_batch_end(step, {"outputs": outs[-1]})
        cb_list.on_predict_end()
        if not outs:
            raise ValueError("predict got no data")
        if isinstance(outs[0], (list, tuple)):
            return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
        if isinstance(outs[0], dict):
            return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        return np.concatenate(outs)

    # -- weights and state --
    def get_weights(self) -> list[np.ndarray]:
        self._ensure_weights()
        return super().get_weights()

    def set_weights(self, weights: list) -> None:
        self._ensure_weights()
        super().set_weights(weights)

    def _ensure_weights(self) -> None:
        if self._infer_out is None:
            if self._declares_input():
                self._ensure_built(None)
            else:
                raise ValueError(f"model {self.name!r} has no weights yet: build it first (give "
                                 f"input_shape, call build(), or call it on data)")

    def _declares_input(self) -> bool:
        """Whether the model declares its input, so it can be built without data."""
        return self._declared_input() is not None

    def save_weights(self, filepath: str, overwrite: bool = True, save_format: Any = None,
                     **kwargs: Any) -> None:
        """Write the weights (in ``weights`` order) to ``filepath`` as a NumPy .npz archive,
        atomically (whatever the file extension)."""
        import os

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False")
        self._ensure_weights()
        weights = self.weights
        values = backend.batch_get_value(weights)
        arrays = {f"{i:04d}:{v.name}": a for i, (v, a) in enumerate(zip(weights, values))}
        atomic_write(filepath, lambda f: np.savez(f, **arrays))

    def load_weights(self, filepath: str, by_name: bool = False, skip_mismatch: bool = False,
                     **kwargs: Any) -> None:
        """Read weights written by ``save_weights`` (matched by position, shapes checked).

        Under a multi-worker strategy every worker must call it: the chief reads its
        ``filepath`` and sends the weights to the others, so all load the same values."""
        self._ensure_weights()

        def read() -> tuple[list, list]:
            with np.load(filepath, allow_pickle=False) as data:
                keys = sorted(data.files)
                return keys, [data[k] for k in keys]

        keys, values = self._read_on_chief(read)
        mine = self.weights
        if len(values) != len(mine):
            raise ValueError(f"{filepath} holds {len(values)} weight arrays but model "
                             f"{self.name!r} has {len(mine)}")
        for key, v, var in zip(keys, values, mine):
            if tuple(v.shape) != tuple(var.shape.as_list()):
                raise ValueError(f"weight {key.split(':', 1)[-1]!r} in {filepath} has shape "
                                 f"{v.shape}, but {var.name!r} has {tuple(var.shape.as_list())}")
        backend.batch_set_value(mine, values)

    def _state_variables(self) -> list:
        return backend.graph_variables(self.graph)

    def _training_state(self) -> dict[str, np.ndarray]:
        """Every variable of the model's graph (weights, optimizer slots, step), keyed by
        creation order and name (layer names differ between two instances of one model)."""
        variables = self._state_variables()
        values = backend.batch_get_value(variables)
        state = {f"{i:05d}:{v.name}": a for i, (v, a) in enumerate(zip(variables, values))}
        if self._fit_seed is not None:
            state["__keras_fit_seed__"] = np.asarray(self._fit_seed, dtype=np.int64)
        return state

    def _restore_training_state(self, state: dict) -> None:
        """Restore a ``_training_state``. Variables that exist now are set at once (weights
        first: they are created before the optimizer's); the optimizer's are set when fit has
        created them."""
        if "__keras_fit_seed__" in state:
            self._fit_seed = int(state["__keras_fit_seed__"])
        self._pending_state = {k: v for k, v in state.items() if not k.startswith("__")}
        if self._infer_out is None and self._declares_input():
            self._ensure_built(None)  # applies the weights
        else:
            self._apply_pending_state()

    def _apply_pending_state(self) -> None:
        state = self._pending_state
        if not state or self._own_graph is None:
            return
        variables = self._state_variables()
        keys = sorted(state)
        if len(variables) > len(keys) or (self._train_graph is not None and
                                          len(variables) != len(keys)):
            raise ValueError(f"the backup holds {len(keys)} variables but this model has "
                             f"{len(variables)}; it was written by a different model")
        if len(variables) == len(keys):
            self._pending_state = None
        keys = keys[:len(variables)]
        for key, var in zip(keys, variables):
            if tuple(np.shape(state[key])) != tuple(var.shape.as_list()):
                raise ValueError(f"backup variable {key.split(':', 1)[1]!r} has shape "
                                 f"{np.shape(state[key])} but {var.name!r} has "
                                 f"{tuple(var.shape.as_list())}; it was written by a different "
                                 f"model")
        backend.batch_set_value(variables, [state[k] for k in keys])

    # -- summary --
    def summary(self, line_length: int = 65, print_fn: Any = None, **kwargs: Any) -> None:
        """Print the layers, their output shapes and parameter counts, as Keras does."""
        if self._infer_out is None:
            if self._declares_input():
                self._ensure_built(None)
            else:
                raise ValueError("This model has not yet been built. Build the model first by "
                                 "calling `build()` or by calling the model on a batch of data.")
        print_fn = print_fn or print
        widths = [29, 26, 10]
        rows = []
        for layer in self._summary_layers():
            try:
                shape = layer.output_shape
            except AttributeError:
                shape = "multiple"
            params = layer.count_params() if layer.built else 0
            rows.append((f"{layer.name} ({type(layer).__name__})", _fmt_shape(shape),
                         str(params)))
        line = "_" * line_length
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn(_row(("Layer (type)", "Output Shape", "Param #"), widths))
        print_fn("=" * line_length)
        for i, r in enumerate(rows):
            print_fn(_row(r, widths))
            if i < len(rows) - 1:
                print_fn("")
        print_fn("=" * line_length)
        trainable = sum(math.prod(v.shape.as_list()) for v in self.trainable_weights)
        non_trainable = sum(math.prod(v.shape.as_list()) for v in self.non_trainable_weights)
        print_fn(f"Total params: {trainable + non_trainable:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {non_trainable:,}")
        print_fn(line)

    def _summary_layers(self) -> list[Layer]:
        if self._func_outputs is not None:
            ins = flatten(self._func_inputs)
            return [k._keras_history[0] for k in ins] + self._functional_layers()
        return list(self._sublayers)


class _WeightedMeans:
    """The loss and metrics of an epoch's batches, each batch weighted by the samples it stands
    for on this worker (0 on a worker that only pads a batch smaller than the world)."""

    def __init__(self) -> None:
        self.sums: list[float] | None = None
        self.weight = 0.0

    def add(self, values: list[float], n: float) -> None:
        if self.sums is None:
            self.sums = [0.0] * len(values)
        for i, v in enumerate(values):
            self.sums[i] += v * n
        self.weight += n

    def running(self, names: list[str]) -> dict:
        """The means so far, for the batch callbacks ({} while no sample has counted)."""
        if not self.weight:
            return {}
        return {k: s / self.weight for k, s in zip(names, self.sums)}

    def local(self, names: list[str]) -> dict:
        """This worker's means over the epoch (0.0 where no sample counted)."""
        sums = self.sums if self.sums is not None else [0.0] * len(names)
        return {k: (s / self.weight if self.weight else 0.0) for k, s in zip(names, sums)}


def _mean(per_sample: Any) -> Any:
    """The batch mean of a per-sample loss/metric (already a scalar: used as is)."""
    if per_sample.shape.ndims == 0:
        return per_sample
    return core.reduce_mean(per_sample)


def _cast_for(placeholder: Any, value: Any) -> np.ndarray:
    dtype = placeholder.dtype.as_numpy_dtype
    arr = np.asarray(value)
    return arr if arr.dtype == dtype else arr.astype(dtype)


def _first_rows(x: Any) -> Any:
    return map_structure(lambda a: a[:1], x)


def _substitute(value: Any, values: dict[int, Any]) -> Any:
    if isinstance(value, KerasTensor):
        return values[id(value)]
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, values) for v in value)
    return value


def _fmt_shape(shape: Any) -> str:
    if isinstance(shape, str):
        return shape
    if isinstance(shape, tuple) and all(not isinstance(d, (tuple, list)) for d in shape):
        return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
            ("," if len(shape) == 1 else "") + ")"
    return str(shape)


def _row(cells: tuple, widths: list[int]) -> str:
    out = ""
    for cell, w in zip(cells, widths):
        out += (" " + str(cell)).ljust(w)
    return out.rstrip()


class Sequential(Model):
    """A plain stack of layers, each feeding the next."""

    @classmethod
    def _base_name(cls) -> str:
        return "sequential" if cls is Sequential else backend.snake_case(cls.__name__)

    def _init_state(self) -> None:
        super()._init_state()
        self._input_shape_decl: tuple | None = None

    def __init__(self, layers: list | None = None, name: str | None = None):
        super().__init__(name=name)
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or a ``tf.keras.Input`` as the first entry)."""
        if isinstance(layer, KerasTensor):
            origin = layer._keras_history[0]
            if not isinstance(origin, InputLayer) or self._sublayers:
                raise TypeError("only a tf.keras.Input(...) can be added as a tensor, and only "
                                "first")
            self._input_shape_decl = origin._batch_input_shape
            self._input_dtype = origin.dtype
            return
        if isinstance(layer, InputLayer):
            if self._sublayers:
                raise ValueError("an InputLayer must be the first layer")
            self._input_shape_decl = layer._batch_input_shape
            self._input_dtype = layer.dtype
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a layer, got {type(layer).__name__}")
        if self._infer_out is not None:
            raise ValueError("cannot add layers to a Sequential model that is already built")
        if any(layer is s for s in self._sublayers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        if not self._sublayers and self._input_shape_decl is None and \
                layer._batch_input_shape is not None:
            self._input_shape_decl = layer._batch_input_shape
        self._sublayers.append(layer)

    def pop(self) -> None:
        if not self._sublayers:
            raise TypeError("there are no layers in the model")
        if self._infer_out is not None:
            raise ValueError("cannot pop layers from a built Sequential model")
        self._sublayers.pop()

    def _declared_input(self) -> tuple[Any, str] | None:
        if self._input_shape_decl is None or not self._sublayers:
            return None
        return self._input_shape_decl, self._input_dtype or backend.floatx()

    def _declares_input(self) -> bool:
        # Unlike _declared_input, also before any layer is added.
        return self._input_shape_decl is not None

    @property
    def layers(self) -> list[Layer]:
        self._maybe_build()
        return list(self._sublayers)

    def call(self, inputs: Any, training: Any = None) -> Any:
        x = inputs
        for layer in self._sublayers:
            kwargs = {"training": training} if layer._call_takes("training") else {}
            x = layer(x, **kwargs)
        return x

    @property
    def weights(self) -> list:
        self._maybe_build()
        return super().weights

    @property
    def trainable_weights(self) -> list:
        self._maybe_build()
        return super().trainable_weights

    @property
    def non_trainable_weights(self) -> list:
        self._maybe_build()
        return super().non_trainable_weights

    def _maybe_build(self) -> None:
        # Keras builds a Sequential as soon as its input shape is known; we build on first need.
        if self._infer_out is None and not self._building and \
                self._declared_input() is not None:
            self._ensure_built(None)
