"""The training half of a Keras model: compile, and the fit/evaluate/predict loops.

``Trainer`` is mixed into ``Model`` (models.py holds the structure: graph, layers, building,
weights). ``fit`` adds, once per compile, the training pass (``training=True``: dropout on,
BatchNorm updating its moving statistics), the loss, metrics and the optimizer's train op to the
model's graph. Each batch is one ``Session.run``.

Distribution: all strategy calls are in the ``Replication`` class below: ``shard`` on every
global batch, ``mean`` on the epoch's loss/metrics, ``is_chief`` for output and files, and
``read_on_chief`` for files read back (backups, weights).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .. import core
from ..checkpoint import chief_then_everyone
from ..checkpoint.workers import check_replicas_before_save
from ..data.dataset import Dataset, share_shuffle_seeds
from ..data.structure import is_nested, map_structure
from . import backend, losses, optimizers
from . import callbacks as callbacks_mod
from . import metrics as metrics_mod
from .data_adapter import (
    ArrayBatches,
    as_arrays,
    batch_length,
    make_batches,
    take,
    unpack,
)
from .layers import CallContext, _feed_dtype, _flat_inputs, _static_shape

# --- the strategy seam ---------------------------------------------------------------------------

class Replication:
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
            return batch, float(batch_length(batch))
        total = batch_length(batch)
        local = self.ctx.shard_batch(batch)
        share = getattr(self.ctx, "batch_weight", None)
        return local, float(batch_length(local) if share is None else share * total)

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
        return chief_then_everyone(read)

    def check_replicas(self, named: Any, what: str) -> None:
        """Before a checkpoint of ``what`` is written: compare ``named()`` (name, array) pairs
        across the workers of a multi-worker strategy (a collective there: every worker's
        callbacks call it); ``ReplicasDiverged`` on every worker if they differ."""
        if self.ctx is not None and int(getattr(self.ctx, "num_workers", 1)) > 1:
            check_replicas_before_save(named, what)

    @property
    def worker_index(self) -> int:
        return 0 if self.ctx is None else int(getattr(self.ctx, "worker_index", 0))

    def gather(self, mine: Any) -> list:
        """Every worker's ``mine`` in worker order (a collective under a strategy)."""
        allgather = getattr(self.ctx, "allgather_object", None)
        return [mine] if allgather is None else list(allgather(mine))

    def same_shuffles(self, data: Any) -> None:
        """Unseeded shuffles of a dataset given to fit/evaluate take the chief's seed (a
        collective under a multi-worker strategy), so all workers see the same global batches."""
        broadcast = getattr(self.ctx, "broadcast_object", None)
        if broadcast is not None and isinstance(data, Dataset) and \
                int(getattr(self.ctx, "num_workers", 1)) > 1:
            share_shuffle_seeds(data, broadcast)

    def timed_batches(self, batches: Iterable) -> Iterator:
        """``batches``, each wait for the next one counted as the straggler report's data
        phase (when the strategy keeps that report)."""
        record = getattr(self.ctx, "record_phase", None)
        if record is None:
            yield from batches
            return
        batches = iter(batches)
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            record("data", time.perf_counter() - started)
            yield batch

    def training_ended(self) -> None:
        """fit's epochs ended on every worker: the strategy reports the steps left."""
        ended = getattr(self.ctx, "training_ended", None)
        if ended is not None:
            ended()

    def same_seed(self, seed: int) -> int:
        """The chief's shuffling seed on every worker, so all iterate the same global order."""
        broadcast = getattr(self.ctx, "broadcast_object", None)
        return seed if broadcast is None else int(broadcast(seed))


# --- the training loop ---------------------------------------------------------------------------

class Trainer:
    """compile, fit, evaluate, predict and the per-batch steps, for ``Model`` to inherit."""

    def _init_state(self) -> None:
        super()._init_state()
        self._compiled = False
        self._train_graph: dict | None = None
        self.optimizer: Any = None
        self.loss: Any = None
        self.compiled_metrics: list = []
        self.stop_training = False
        self.history: callbacks_mod.History | None = None
        self._resume_epoch: int | None = None
        self._fit_seed: int | None = None

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
            penalties = [p for p in self.losses if p.graph is self.graph]
            loss_t = self._total_loss(self._loss_obj.call(labels, train_out), penalties)
            train_metrics = [_mean(m.call(labels, train_out)) for m in metric_objs]
            eval_loss = self._total_loss(self._loss_obj.call(labels, self._infer_out),
                                         penalties)
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

    def _total_loss(self, per_sample: Any, penalties: list) -> Any:
        """The batch loss (mean, or sum for Reduction.SUM) plus the regularization penalties,
        as Keras reports and minimizes it."""
        loss = self._loss_obj.reduce(per_sample) if \
            getattr(self._loss_obj, "reduction", None) == losses.Reduction.SUM else \
            _mean(per_sample)
        return core.add_n([loss, *penalties]) if penalties else loss

    # -- running --
    def _feed(self, x: Any, y: Any = None) -> dict:
        xs = _flat_inputs(as_arrays(x))
        phs = _flat_inputs(self._inputs_ph)
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
        rep = Replication(self._dist_ctx)
        rep.same_shuffles(x)
        rep.same_shuffles(validation_data)
        verbose = 1 if verbose == "auto" else int(verbose)
        if validation_split:
            x, y, validation_data = _split_validation(x, y, validation_split, validation_data)
        self._fit_seed = rep.same_seed(int(np.random.randint(0, 2**31 - 1)))
        history = callbacks_mod.History()
        params = {"epochs": epochs, "verbose": verbose, "steps": None}
        cb_list = self._fit_callbacks(history, callbacks, verbose, params)

        def batches(seed: int) -> Any:
            return make_batches(x, y, batch_size, steps_per_epoch, shuffle, seed, "fit", epochs)

        data = self._build_before_callbacks(x, batches)
        cb_list.on_train_begin()  # BackupAndRestore may restore here: the epoch and the seed
        if self._resume_epoch is not None:
            initial_epoch = max(initial_epoch, self._resume_epoch)
        if data is None:
            data = batches(self._fit_seed)
        elif isinstance(data, ArrayBatches):
            data.seed = self._fit_seed
        params["steps"] = data.steps()
        val = None
        if validation_data is not None:
            val = self._validation_batches(validation_data, validation_batch_size or batch_size,
                                           validation_steps)
        logs = self._run_epochs(data, val, range(initial_epoch, epochs), validation_freq, rep,
                                cb_list)
        rep.training_ended()
        cb_list.on_train_end(logs)
        self.history = history
        return history

    def _fit_callbacks(self, history: callbacks_mod.History, callbacks: list | None,
                       verbose: int, params: dict) -> callbacks_mod.CallbackList:
        """History first, the user's callbacks, then the progress bar, as Keras orders them."""
        cbs = [history, *(callbacks or [])]
        if verbose:
            cbs.append(callbacks_mod.ProgbarLogger(verbose))
        self._resume_epoch = None
        self.stop_training = False
        return callbacks_mod.CallbackList(cbs, self, params)

    def _build_before_callbacks(self, x: Any, batches: Any) -> Any:
        """Build the model (and its training pass, for arrays) before the callbacks start, so
        BackupAndRestore can restore every variable. Returns the array batches if made."""
        if isinstance(getattr(x, "global_dataset", x), Dataset) or hasattr(x, "__next__"):
            if self._infer_out is not None or self._declared_input() is not None:
                self._ensure_built(None)
            return None
        data = batches(self._fit_seed)
        if isinstance(data, ArrayBatches):
            self._ensure_built(_first_rows(data.x))
            self._build_training(_first_rows(data.y) if data.y is not None else None)
        return data

    def _run_epochs(self, data: Any, val: Any, epochs: range, validation_freq: int,
                    rep: Replication, cb_list: callbacks_mod.CallbackList) -> dict:
        """The epochs with their callbacks and validation; the last epoch's logs."""
        logs: dict = {}
        for epoch in epochs:
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
        return logs

    def _train_epoch(self, data: Any, epoch: int, rep: Replication,
                     cb_list: callbacks_mod.CallbackList) -> dict:
        means = WeightedMeans()
        for step, element in enumerate(rep.timed_batches(data.epoch(epoch))):
            x, y, sw = unpack(element)
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
            return make_batches(vd[0], vd[1], batch_size, steps, False, 0, "validation_data")
        return make_batches(vd, None, batch_size, steps, False, 0, "validation_data")

    def _evaluate_batches(self, data: Any, rep: Replication, cb_list: Any) -> dict:
        means = WeightedMeans()
        for step, element in enumerate(data.epoch(0)):
            x, y, _ = unpack(element)
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
        rep = Replication(self._dist_ctx)
        rep.same_shuffles(x)
        data = make_batches(x, y, batch_size, steps, False, 0, "evaluate")
        cb_list = callbacks_mod.CallbackList(callbacks or [], self, {"steps": data.steps()})
        cb_list.on_test_begin()
        logs = self._evaluate_batches(data, rep, cb_list)
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
        data = make_batches(x, None, batch_size, steps, False, 0, "predict")
        cb_list = callbacks_mod.CallbackList(callbacks or [], self, {"steps": data.steps()})
        cb_list.on_predict_begin()
        outs = []
        for step, element in enumerate(data.epoch(0)):
            xb, _, _ = unpack(element)
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


class WeightedMeans:
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


def _split_validation(x: Any, y: Any, fraction: float, validation_data: Any) -> tuple:
    """The last ``fraction`` of arrays ``x``, ``y`` as validation data, as Keras cuts it
    (before shuffling)."""
    if validation_data is not None:
        raise ValueError("give validation_split or validation_data, not both")
    if not 0 < fraction < 1:
        raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
    if isinstance(getattr(x, "global_dataset", x), Dataset) or y is None:
        raise ValueError("validation_split works with arrays x, y only")
    x, y = as_arrays(x), as_arrays(y)
    cut = int(batch_length(x) * (1 - fraction))
    return (take(x, slice(0, cut)), take(y, slice(0, cut)),
            (take(x, slice(cut, None)), take(y, slice(cut, None))))


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
