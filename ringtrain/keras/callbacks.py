"""tf.keras.callbacks: History, a tqdm progress bar, TensorBoard, ModelCheckpoint, EarlyStopping,
BackupAndRestore and LambdaCallback.

Under a distribution strategy the logs a callback sees at the end of an epoch are already
averaged over the workers, so decisions (early stopping, best checkpoint) agree on every rank;
only the chief writes files or prints.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import checkpoint


class Callback:
    """Base class: override the ``on_*`` hooks you need. ``self.model`` is the model."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_begin(self, logs: dict | None = None) -> None: ...
    def on_test_end(self, logs: dict | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_begin(self, logs: dict | None = None) -> None: ...
    def on_predict_end(self, logs: dict | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    @property
    def _is_chief(self) -> bool:
        return getattr(self.model, "_is_chief", True)


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks: list, model: Any, params: dict):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be tf.keras.callbacks.Callback objects, got "
                                f"{type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook: str) -> Callable:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        return call


class History(Callback):
    """Records the epoch logs: ``history.history['loss']`` is the list of epoch losses."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _fmt_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgbarLogger(Callback):
    """A tqdm progress bar per epoch showing loss and metrics (verbose=1), or one line per epoch
    (verbose=2). Only the chief shows it."""

    def __init__(self, verbose: int = 1, file: Any = None):
        super().__init__()
        self.verbose = verbose
        self.file = file
        self._bar = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self._is_chief or self.verbose == 0:
            return
        epochs = self.params.get("epochs")
        if self.verbose == 1:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.params.get("steps"), desc=f"Epoch {epoch + 1}/{epochs}",
                             unit="batch", file=self.file or sys.stderr, leave=True,
                             dynamic_ncols=True, mininterval=0.2)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if logs:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self._is_chief or self.verbose == 0:
            return
        if self._bar is not None:
            if logs:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
            self._bar.close()
            self._bar = None
        else:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {_fmt_logs(logs or {})}",
                  file=self.file or sys.stdout, flush=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._bar is not None:  # an exception or stop_training left it open
            self._bar.close()
            self._bar = None


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by ``min_delta`` for ``patience``
    epochs; optionally restore the best epoch's weights."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta = abs(min_delta) * (1 if self.mode == "max" else -1)
        self.stopped_epoch = 0
        self.best_epoch = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_weights = None
        self.best_epoch = 0

    def _improved(self, current: float, reference: float) -> bool:
        if self.mode == "max":
            return current - self.min_delta > reference
        return current - self.min_delta < reference

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = (logs or {}).get(self.monitor)
        if current is None:
            _warn(self, f"EarlyStopping: metric {self.monitor!r} is not in the logs "
                        f"({sorted(logs or {})}); nothing to monitor")
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0 and self._is_chief:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    return "max" if ("acc" in name or name.startswith(("auc", "fmeasure"))) \
        else "min"


def _warn(cb: Callback, message: str) -> None:
    if cb._is_chief:
        print(f"WARNING: {message}", file=sys.stderr, flush=True)


class ModelCheckpoint(Callback):
    """Save the weights after every epoch (or only the best ``monitor`` value) to
    ``filepath``, which may hold fields like ``{epoch:02d}`` or ``{val_loss:.2f}``. Files are
    written atomically by the chief. The architecture is the code's, so the file always holds
    weights (NumPy ``.npz`` content); ``save_weights_only`` is accepted for compatibility."""

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq: Any = "epoch", initial_value_threshold: Any = None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint supports save_freq='epoch' only")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _resolve_mode(mode, monitor)
        self.best = initial_value_threshold if initial_value_threshold is not None else (
            np.inf if self.mode == "min" else -np.inf)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                _warn(self, f"ModelCheckpoint: {self.monitor!r} is not in the logs; skipping")
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            self.best = current
        path = self.filepath.format(epoch=epoch + 1, **logs)
        # Every worker gets here (the logs are the workers' means): compare first, so the
        # chief never writes weights that differ from another replica's.
        self.model._replication.check_replicas(
            lambda: [(w.name, a) for w, a in zip(self.model.weights, self.model.get_weights())],
            f"ModelCheckpoint {path}")
        if self._is_chief:
            self.model.save_weights(path)
            if self.verbose:
                print(f"Epoch {epoch + 1}: saving model to {path}", flush=True)


class BackupAndRestore(Callback):
    """Resume an interrupted ``fit`` from the last finished epoch.

    After each epoch the chief writes the full training state (weights, optimizer slots and
    iteration count, the shuffling seed, every worker's random streams, the epoch number) to
    ``backup_dir/backup.npz`` in one atomic step (a checkpoint file, renamed into place), so a
    kill at any moment leaves the previous backup or the new one. When ``fit`` starts and the
    chief has a backup, it sends it to every worker (no shared filesystem needed), all restore
    it and training continues at the next epoch, bit-identical to a run never interrupted
    (same data order, same dropout masks). The backup is deleted when ``fit`` finishes (unless
    ``delete_checkpoint=False``).
    """

    FILE = "backup.npz"

    def __init__(self, backup_dir: str, save_freq: Any = "epoch", delete_checkpoint: bool = True,
                 save_before_preemption: bool = False):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore needs a backup_dir")
        if save_freq != "epoch":
            raise ValueError("BackupAndRestore supports save_freq='epoch' only")
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = delete_checkpoint

    @property
    def _path(self) -> str:
        return os.path.join(self.backup_dir, self.FILE)

    def _read(self) -> tuple[Any, dict] | None:
        """``(state, meta)`` of the backup in ``backup_dir`` on this machine, None if none."""
        if not os.path.exists(self._path):
            return None
        return checkpoint.read_state(self._path, advice=(
            f"Delete {self.backup_dir!r} to start training over"))

    def on_train_begin(self, logs: dict | None = None) -> None:
        # Under a strategy the chief's backup (it alone writes one) is everyone's: a worker
        # without a shared filesystem has none or a stale one, and must not resume elsewhere.
        replication = self.model._replication
        found = replication.read_on_chief(self._read)
        if found is None:
            return
        state, meta = found
        self.model._restore_checkpoint_state(state["model"])
        # Each worker continues its own random streams (dropout); with more workers than the
        # backup was written by, the extra ones reuse earlier workers' streams.
        streams = state["workers"]
        self.model._restore_checkpoint_worker_state(
            streams[replication.worker_index % len(streams)])
        self.model._resume_epoch = int(meta["epoch"]) + 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # One file replaced by one rename: a kill at any point leaves the previous backup or
        # this one, whole. SIGTERM waits from the first collective to the rename.
        replication = self.model._replication
        with checkpoint.deferred_termination():
            state = self.model._checkpoint_state()
            replication.check_replicas(lambda: checkpoint.numeric_leaves(state, "model"),
                                       f"BackupAndRestore {self._path}")
            streams = replication.gather(self.model._checkpoint_worker_state())
            if not self._is_chief:
                return
            checkpoint.remove_stale_temporaries(self.backup_dir, self.FILE)
            checkpoint.write_state(self._path, {"model": state, "workers": streams},
                                   epoch=epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.delete_checkpoint and self._is_chief and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir, ignore_errors=True)


class TensorBoard(Callback):
    """Write the epoch logs as TensorBoard scalars (``epoch_loss``, ``epoch_accuracy``...) to
    ``log_dir/train`` and ``log_dir/validation``, through the core's summary writer. Only the
    chief writes."""

    def __init__(self, log_dir: str = "logs", histogram_freq: int = 0, write_graph: bool = True,
                 update_freq: Any = "epoch", **kwargs: Any):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.write_graph = write_graph
        if update_freq != "epoch":
            raise ValueError("TensorBoard supports update_freq='epoch' only")
        self._writers: dict[str, Any] = {}

    def _writer(self, split: str) -> Any:
        writer = self._writers.get(split)
        if writer is None:
            from .. import core
            graph = getattr(self.model, "_graph", None) if (
                self.write_graph and split == "train") else None
            writer = core.summary.FileWriter(os.path.join(self.log_dir, split), graph=graph)
            self._writers[split] = writer
        return writer

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self._is_chief:
            return
        from tensorboard.compat.proto import summary_pb2

        splits: dict[str, list] = {"train": [], "validation": []}
        for key, value in (logs or {}).items():
            if key.startswith("val_"):
                splits["validation"].append((f"epoch_{key[4:]}", value))
            else:
                splits["train"].append((f"epoch_{key}", value))
        for split, items in splits.items():
            if not items:
                continue
            summary = summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in items])
            writer = self._writer(split)
            writer.add_summary(summary, epoch)
            writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks: Callable):
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}")
            setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``, Keras's older form, when the schedule takes one argument)."""

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        opt = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(opt.learning_rate))
        except TypeError:  # as Keras: a schedule of the epoch alone
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError(f'The output of the "schedule" function should be float, got '  # noqa: TRY004 -- Keras's error
                             f"{lr!r}")
        opt.learning_rate = float(lr)
        if self.verbose and self._is_chief:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")
