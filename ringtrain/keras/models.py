"""tf.keras.Model and Sequential: the model's structure (its graph, layers, weights and state).

A model owns a ``tf.Graph`` and the Keras session on it. Building (on the first data, or
``build``/``input_shape``) adds input placeholders and the inference pass (``training=False``).
Training (compile, fit, evaluate, predict) is the ``Trainer`` mixin in trainer.py.

Distribution: a model captures ``ringtrain.core.distribution.current()`` when it is created (or
compiled inside a strategy's scope); trainer.py's ``Replication`` makes every strategy call.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import core, errors
from ..checkpoint import atomic_write
from ..core import distribution
from ..data.structure import flatten, map_structure
from . import backend
from .data_adapter import as_arrays
from .layers import (
    CallContext,
    InputLayer,
    KerasTensor,
    Layer,
    _feed_dtype,
    _flat_inputs,
    _is_shape_struct,
)
from .trainer import Replication, Trainer

# --- models --------------------------------------------------------------------------------------

class Model(Trainer, Layer):
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
        self._func_inputs: Any = None
        self._func_outputs: Any = None
        self._pending_state: dict | None = None
        self._pending_streams: dict = {}      # random streams of ops fit has not created yet
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
            shared = self._graph_of_built_layers()
            if shared is not None:  # a sub-model of another model's layers shares their graph
                self._own_graph = shared
                return shared
            # Eagerly, fit/evaluate/predict run a graph traced on the eager variables.
            graph = core.eager.FuncGraph(core.get_default_graph(), self.name) \
                if core.executing_eagerly() else core.Graph()
            # Random ops (dropout) follow tf.keras.utils.set_random_seed / tf.set_random_seed.
            seed = backend.random_seed()
            graph.seed = seed if seed is not None else core.get_default_graph().seed
            self._own_graph = graph
        return self._own_graph

    def _graph_of_built_layers(self) -> Any:
        """The graph whose variables this functional model's layers already hold, if any
        (``Model(model.input, model.get_layer('x').output)`` reuses the trained weights)."""
        if self._func_outputs is None:
            return None
        graphs = {id(layer._graph): layer._graph for layer in self._functional_layers()
                  if layer.built and layer._graph is not None and layer.weights}
        if len(graphs) > 1:
            raise ValueError(f"model {self.name!r} uses layers whose weights live in "
                             f"{len(graphs)} different models' graphs; build it from one "
                             f"model's layers, or from new layers")
        return next(iter(graphs.values()), None)

    @property
    def _is_chief(self) -> bool:
        return Replication(self._dist_ctx).is_chief

    @property
    def _replication(self) -> Replication:
        return Replication(self._dist_ctx)

    def _read_on_chief(self, read: Any) -> Any:
        """``read()`` on the chief, its result on every worker (see ``Replication``)."""
        return Replication(self._dist_ctx).read_on_chief(read)

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
        for kt in _flat_inputs(inputs):
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
        given = _flat_inputs(inputs)
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
            count = itertools.count()

            def placeholders(shape: Any) -> Any:
                """The input structure of ``shape`` (shapes in tuples/lists/dicts)."""
                if isinstance(shape, dict):
                    return {k: placeholders(shape[k]) for k in sorted(shape)}
                if _is_shape_struct(shape):
                    return type(shape)(placeholders(s) for s in shape)
                return placeholder(shape, next(count))
            inputs = placeholders(batch_shape)
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
        arrays = as_arrays(x)
        shapes = map_structure(lambda a: a.shape, arrays)
        first = flatten(arrays)[0]
        self._build_from(shapes, _feed_dtype(first, self.dtype))

    @property
    def inputs(self) -> list:
        """The model's symbolic inputs (KerasTensors), to build other models from."""
        return _flat_inputs(self._symbolic_io()[0])

    @property
    def outputs(self) -> list:
        return _flat_inputs(self._symbolic_io()[1])

    @property
    def input(self) -> Any:
        ins = self.inputs
        return ins[0] if len(ins) == 1 else ins

    @property
    def output(self) -> Any:
        outs = self.outputs
        return outs[0] if len(outs) == 1 else outs

    def _symbolic_io(self) -> tuple[Any, Any]:
        if self._func_outputs is None:
            raise AttributeError(f"model {self.name!r} is subclassed: it has no symbolic "
                                 f"inputs and outputs (call it on tensors instead)")
        return self._func_inputs, self._func_outputs

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer of the model by name, or by index (in ``layers`` order)."""
        candidates = self._summary_layers() if self._func_outputs is not None \
            else list(self._sublayers)
        if index is not None:
            if name is not None:
                raise ValueError("Provide only a layer name or a layer index")
            if not -len(candidates) <= int(index) < len(candidates):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(candidates)} layers.")
            return candidates[int(index)]
        for layer in candidates:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in candidates]}.")

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

    # -- weights and state --
    def get_weights(self) -> list[np.ndarray]:
        self._ensure_weights()
        return super().get_weights()

    def set_weights(self, weights: list) -> None:
        self._ensure_weights()
        super().set_weights(weights)

    def _ensure_weights(self) -> None:
        if self._infer_out is None and not (self.built and self.weights):  # built eagerly
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

    def save(self, filepath: str, overwrite: bool = True, include_optimizer: bool = True,
             save_format: Any = None, **kwargs: Any) -> None:
        """The whole model (architecture, weights, compile settings, optimizer state) in one
        HDF5 file, whatever the extension (see ``keras/saving.py``); read it back with
        ``tf.keras.models.load_model``."""
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def load_weights(self, filepath: str, by_name: bool = False, skip_mismatch: bool = False,
                     **kwargs: Any) -> None:
        """Read weights written by ``save_weights`` (matched by position, shapes checked).

        Under a multi-worker strategy every worker must call it: the chief reads its
        ``filepath`` and sends the weights to the others, so all load the same values."""
        self._ensure_weights()

        def read() -> tuple[list, list]:
            try:
                with np.load(filepath, allow_pickle=False) as data:
                    keys = sorted(data.files)
                    return keys, [data[k] for k in keys]
            except FileNotFoundError:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise errors.DataLossError(
                    f"weights file {filepath!r} is damaged or was not written by save_weights "
                    f"({exc}). Load a good copy, or save the weights again") from None

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

    def _checkpoint_state(self) -> dict[str, np.ndarray]:
        """Every variable of the model's graph (weights, optimizer slots, step), keyed by
        creation order and name (layer names differ between two instances of one model)."""
        variables = self._state_variables()
        values = backend.batch_get_value(variables)
        state = {f"{i:05d}:{v.name}": a for i, (v, a) in enumerate(zip(variables, values))}
        if self._fit_seed is not None:
            state["__keras_fit_seed__"] = np.asarray(self._fit_seed, dtype=np.int64)
        return state

    def _restore_checkpoint_state(self, state: dict) -> None:
        """Restore a ``_checkpoint_state`` (the checkpoint protocol). Variables that exist now
        are set at once (weights first: they are created before the optimizer's); the
        optimizer's are set when fit has created them."""
        if "__keras_fit_seed__" in state:
            self._fit_seed = int(state["__keras_fit_seed__"])
        self._pending_state = {k: v for k, v in state.items() if not k.startswith("__")}
        if self._infer_out is None and self._declares_input():
            self._ensure_built(None)  # applies the weights
        else:
            self._apply_pending_state()

    def _checkpoint_worker_state(self) -> dict:
        """This worker's random streams (dropout, random layers), keyed by the op's type and
        its rank among the graph's ops of that type: op names differ between two instances of
        one model, and positions shift with the ops restoring adds."""
        if self._own_graph is None:
            return {}
        by_type: dict[str, list[str]] = {}
        for op in self.graph.get_operations():
            by_type.setdefault(op.type, []).append(op.name)
        state = {}
        for name, stream in self._session()._checkpoint_worker_state().items():
            op_type = self.graph.get_operation_by_name(name).type
            state[f"{op_type}:{by_type[op_type].index(name)}"] = stream
        return state

    def _restore_checkpoint_worker_state(self, state: dict) -> None:
        """Restore a ``_checkpoint_worker_state``; streams of ops fit has not created yet are
        set when it has."""
        self._pending_streams = dict(state)
        self._apply_pending_streams()

    def _apply_pending_streams(self) -> None:
        pending = self._pending_streams
        if not pending or self._own_graph is None:
            return
        by_type: dict[str, list[str]] = {}
        for op in self.graph.get_operations():
            by_type.setdefault(op.type, []).append(op.name)
        ready = {}
        for key in list(pending):
            op_type, rank = key.rsplit(":", 1)
            names = by_type.get(op_type, [])
            if int(rank) < len(names):
                ready[names[int(rank)]] = pending.pop(key)
        self._session()._restore_checkpoint_worker_state(ready)

    def _apply_pending_state(self) -> None:
        self._apply_pending_streams()
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


def load_model(filepath: str, custom_objects: dict | None = None, compile: bool = True,
               options: Any = None) -> Model:
    """``tf.keras.models.load_model``: the model ``Model.save`` wrote (see saving.py)."""
    from .saving import load_model as load
    return load(filepath, custom_objects=custom_objects, compile=compile)


def save_model(model: Model, filepath: str, overwrite: bool = True,
               include_optimizer: bool = True, **kwargs: Any) -> None:
    model.save(filepath, overwrite=overwrite, include_optimizer=include_optimizer)


def clone_model(model: Model, input_tensors: Any = None, clone_function: Any = None) -> Model:
    """A new model of the same architecture with fresh weights (its layers made again from
    their constructor arguments)."""
    if input_tensors is not None or clone_function is not None:
        raise ValueError("clone_model(input_tensors=..., clone_function=...) is not supported")
    from .saving import model_config, model_from_config
    return model_from_config(model_config(model))


class Sequential(Model):
    """A plain stack of layers, each feeding the next."""

    @classmethod
    def _base_name(cls) -> str:
        return "sequential" if cls is Sequential else backend.snake_case(cls.__name__)

    def _init_state(self) -> None:
        super()._init_state()
        self._input_shape_decl: tuple | None = None
        self._symbolic_chain: tuple | None = None

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
        if any(layer is s for s in self._sublayers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        self._symbolic_chain = None
        if self._infer_out is not None:  # built (e.g. by summary()): extend the graph
            self._extend_built(layer)
            return
        if not self._sublayers and self._input_shape_decl is None and \
                layer._batch_input_shape is not None:
            self._input_shape_decl = layer._batch_input_shape
        self._sublayers.append(layer)

    def _extend_built(self, layer: Layer) -> None:
        """Append ``layer`` to a built model: it continues the inference pass in the model's
        graph, and the training pass is rebuilt by the next fit/evaluate (as Keras does)."""
        with self._scope(), CallContext(training=False):
            kwargs = {"training": False} if layer._call_takes("training") else {}
            out = layer(self._infer_out, **kwargs)
        self._sublayers.append(layer)
        self._infer_out = out
        self._train_graph = None
        backend.initialize_variables(backend.graph_variables(self.graph), self.graph)

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

    @property
    def losses(self) -> list:
        self._maybe_build()
        return super().losses

    def _symbolic_io(self) -> tuple[Any, Any]:
        """A Sequential's symbolic input and output: its layers called once on a
        ``tf.keras.Input`` of the declared shape (so ``layer.output`` exists, as in Keras)."""
        if self._symbolic_chain is None:
            if self._input_shape_decl is None:
                raise AttributeError(f"Sequential model {self.name!r} has no input yet: give "
                                     f"the first layer an input_shape, or add a tf.keras.Input")
            from .layers import Input
            start = Input(batch_shape=self._input_shape_decl, dtype=self._input_dtype)
            x = start
            for layer in self._sublayers:
                x = layer(x)
            self._symbolic_chain = (start, x)
        return self._symbolic_chain

    def _maybe_build(self) -> None:
        # Keras builds a Sequential as soon as its input shape is known; we build on first need.
        if self._infer_out is None and not self._building and \
                self._declared_input() is not None:
            self._ensure_built(None)
