"""``Model.save`` and ``tf.keras.models.load_model``: the whole model in one HDF5 file (h5py).

The file follows Keras's HDF5 layout: root attributes ``model_config`` (the architecture as
JSON), ``training_config`` (optimizer, loss, metrics as JSON) and ``keras_version``/``backend``;
the weights in ``model_weights/<layer>/<weight name>`` with ``layer_names``/``weight_names``
attributes. ringtrain adds ``training_state`` (every variable of the model's graph: optimizer
slots, step, learning rate), so a loaded model resumes training where the saved one stopped.

Sequential and functional models are saved (subclassed ones: their architecture is code, so
use ``save_weights``). A layer's config is the arguments it was constructed with (see
``registry.config_of``); symbolic arithmetic (``x + y``, ``K.mean(x)``) is saved by op name.
Files are written atomically and by the chief only, after the replicas' weights were compared
(``ReplicasDiverged`` on every worker, no file, if they differ); under a multi-worker strategy
the chief reads the file and sends its content to the others.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import numpy as np

from ..checkpoint import atomic_write
from ..core import distribution
from . import activations, backend, initializers, layers, losses, metrics, optimizers
from . import regularizers as regularizers_mod
from .layers import InputLayer, KerasTensor, TFOpLambda
from .registry import config_of

FORMAT = "ringtrain-keras-hdf5-1"
_FAMILIES = {"layers": layers, "initializers": initializers, "regularizers": regularizers_mod,
             "losses": losses, "metrics": metrics, "optimizers": optimizers}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError("Model.save and load_model write HDF5 files with h5py: "
                          "pip install h5py (or use model.save_weights)") from None
    return h5py


# --- values <-> JSON ---------------------------------------------------------------------------

class _Encoder:
    """Constructor arguments as JSON; KerasTensors become references to functional nodes."""

    def __init__(self, where: str, nodes: dict[int, int] | None = None):
        self.where = where
        self.nodes = nodes or {}

    def __call__(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return {"__array__": value.tolist(), "dtype": value.dtype.str}
        if isinstance(value, KerasTensor):
            return {"__node__": self.nodes[id(value)]}
        if isinstance(value, slice):
            return {"__slice__": [self(value.start), self(value.stop), self(value.step)]}
        if value is Ellipsis:
            return {"__ellipsis__": True}
        if isinstance(value, tuple):
            return {"__tuple__": [self(v) for v in value]}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {"__dict__": {str(k): self(v) for k, v in value.items()}}
        for name, fn in activations._BY_NAME.items():
            if value is fn:
                return {"__activation__": name}
        for family, module in _FAMILIES.items():
            cls = getattr(module, type(value).__name__, None)
            if cls is type(value):
                return {"__object__": type(value).__name__, "module": family,
                        "config": self(config_of(value))}
        if callable(value) and getattr(losses, getattr(value, "__name__", ""), None) is value:
            return {"__loss_function__": value.__name__}
        raise ValueError(f"{self.where}: {value!r} cannot be written to a model file (only "
                         f"built-in layers, initializers, regularizers, activations and "
                         f"plain values can); save the weights with model.save_weights and "
                         f"rebuild the model in code")


class _Decoder:
    def __init__(self, custom_objects: dict | None, nodes: list | None = None):
        self.custom = dict(custom_objects or {})
        self.nodes = nodes if nodes is not None else []

    def cls(self, name: str, family: str) -> Any:
        found = self.custom.get(name) or getattr(_FAMILIES[family], name, None)
        if found is None:
            raise ValueError(f"Unknown {family[:-1]}: {name}. Please ensure this object is "
                             f"passed to the `custom_objects` argument of load_model")
        return found

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__node__" in value:
            return self.nodes[value["__node__"]]
        if "__tuple__" in value:
            return tuple(self(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: self(v) for k, v in value["__dict__"].items()}
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value["dtype"])
        if "__slice__" in value:
            return slice(*(self(v) for v in value["__slice__"]))
        if "__ellipsis__" in value:
            return Ellipsis
        if "__activation__" in value:
            return self.custom.get(value["__activation__"]) or \
                activations.get(value["__activation__"])
        if "__loss_function__" in value:
            return getattr(losses, value["__loss_function__"])
        if "__object__" in value:
            return self.cls(value["__object__"], value["module"])(**self(value["config"]))
        raise ValueError(f"a model file entry is not understood: {value!r}")


# --- architecture ------------------------------------------------------------------------------

def _layer_record(layer: Any, encode: _Encoder) -> dict:
    if isinstance(layer, TFOpLambda):  # its arguments (with KerasTensors) are its template
        return {"class_name": "TFOpLambda", "config": {
            "name": layer.name, "op": layer.op_name, "template": encode(layer._template)}}
    if type(layer).__name__ == "Lambda" or getattr(layer, "_is_model", False):
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be written to "
                         f"a model file (its code is not data); use model.save_weights")
    config = config_of(layer)
    config["name"] = layer.name
    config["trainable"] = layer.trainable
    encode_arg = _Encoder(f"layer {layer.name!r}", encode.nodes)
    return {"class_name": type(layer).__name__,
            "config": {key: encode_arg(value) for key, value in config.items()}}


def model_config(model: Any) -> dict:
    """The architecture of a Sequential or functional model as a JSON-able dict."""
    from .models import Sequential

    if isinstance(model, Sequential):
        decl = model._input_shape_decl
        return {"class_name": "Sequential", "config": {
            "name": model.name,
            "batch_input_shape": None if decl is None else list(decl),
            "input_dtype": model._input_dtype,
            "layers": [_layer_record(layer, _Encoder("")) for layer in model._sublayers]}}
    if model._func_outputs is None:
        raise NotImplementedError(
            "Saving the model to HDF5 format requires the model to be a Functional model or a "
            "Sequential model. It does not work for subclassed models, because such models "
            "are defined via the body of a Python method, which isn't safely serializable. "
            "Consider saving to the weights with model.save_weights")
    nodes = model._functional_nodes()
    index = {id(kt): i for i, kt in enumerate(nodes)}
    encode = _Encoder(f"model {model.name!r}", index)
    records, seen, node_records = [], set(), []
    for kt in nodes:
        layer, args, kwargs = kt._keras_history
        if id(layer) not in seen:
            seen.add(id(layer))
            records.append(_layer_record(layer, encode))
        node_records.append({"layer": layer.name, "args": encode(tuple(args)),
                             "kwargs": encode(dict(kwargs))})
    return {"class_name": "Functional", "config": {
        "name": model.name, "layers": records, "nodes": node_records,
        "inputs": encode(model._func_inputs), "outputs": encode(model._func_outputs)}}


def model_from_config(config: dict, custom_objects: dict | None = None) -> Any:
    from .models import Model, Sequential

    decode = _Decoder(custom_objects)
    kind, body = config["class_name"], config["config"]

    def make_layer(record: dict) -> Any:
        if record["class_name"] == "TFOpLambda":
            return record["config"]
        cls = decode.cls(record["class_name"], "layers")
        return cls(**{key: decode(value) for key, value in record["config"].items()})

    if kind == "Sequential":
        model = Sequential(name=body["name"])
        if body.get("batch_input_shape") is not None:
            model._input_shape_decl = tuple(body["batch_input_shape"])
            model._input_dtype = body.get("input_dtype")
        for record in body["layers"]:
            model.add(make_layer(record))
        return model
    if kind != "Functional":
        raise ValueError(f"a model file holds a {kind!r} model; ringtrain reads Sequential "
                         f"and Functional ones")
    by_name = {r["config"]["name"]: (r, make_layer(r)) for r in body["layers"]}
    for spec in body["nodes"]:
        record, layer = by_name[spec["layer"]]
        if isinstance(layer, InputLayer):
            decode.nodes.append(KerasTensor(layer._batch_input_shape, layer.dtype, layer,
                                            name=layer.name))
            continue
        if record["class_name"] == "TFOpLambda":
            args, kwargs = decode(layer["template"])
            out = TFOpLambda(layers.symbolic_op(layer["op"]), args, kwargs, op_name=layer["op"],
                             name=layer["name"])()
        else:
            out = layer(*decode(spec["args"]), **decode(spec["kwargs"]))
        decode.nodes.append(out)
    return Model(decode(body["inputs"]), decode(body["outputs"]), name=body["name"])


# --- training config ---------------------------------------------------------------------------

def training_config(model: Any) -> dict | None:
    """The optimizer, loss and metrics of ``compile`` as JSON, or None when one of them is
    code (a lambda): the loaded model then comes back uncompiled, as in Keras."""
    if not model._compiled:
        return None
    try:
        encode = _Encoder("compile")
        opt = model.optimizer
        if not isinstance(opt, optimizers.Optimizer):
            return None
        return {"optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
                "loss": encode(model.loss),
                "metrics": [encode(m) for m in model._metric_ids]}
    except ValueError:
        print(f"WARNING: model {model.name!r} was compiled with a loss or metric that is code; "
              f"the file holds no training config and load_model returns it uncompiled",
              file=sys.stderr)
        return None


# --- the file ----------------------------------------------------------------------------------

def save_model(model: Any, filepath: str, overwrite: bool = True,
               include_optimizer: bool = True) -> None:
    import os

    h5py = _h5py()
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    model._ensure_weights()
    config = model_config(model)
    train_config = training_config(model)
    layer_list = _model_layers(model)
    weights = [(layer, layer.weights) for layer in layer_list]
    values = backend.batch_get_value([v for _, ws in weights for v in ws])
    state = model._checkpoint_state() if include_optimizer and train_config else None
    # Under a multi-worker strategy every worker calls save (as in TensorFlow): the replicas
    # are compared first, so the chief never writes weights another replica disagrees with.
    model._replication.check_replicas(
        lambda: [(v.name, a) for v, a in zip((v for _, ws in weights for v in ws), values)],
        f"Model.save {filepath}")
    if not model._is_chief:
        return  # only the chief writes files

    def write(fileobj: Any) -> None:
        with h5py.File(fileobj, "w") as f:
            f.attrs["keras_version"] = "2.x (ringtrain)"
            f.attrs["backend"] = "tensorflow"
            f.attrs["ringtrain_format"] = FORMAT
            f.attrs["model_config"] = json.dumps(config)
            if train_config is not None:
                f.attrs["training_config"] = json.dumps(train_config)
            group = f.create_group("model_weights")
            # fixed-length byte strings, as Keras writes them
            group.attrs["layer_names"] = np.array([layer.name.encode() for layer, _ in weights],
                                                  dtype="S")
            it = iter(values)
            for layer, ws in weights:
                g = group.create_group(layer.name)
                g.attrs["weight_names"] = np.array([w.name.encode() for w in ws], dtype="S")
                for w in ws:
                    g.create_dataset(w.name, data=next(it))
            if state is not None:
                s = f.create_group("training_state")
                for key, value in state.items():
                    s.create_dataset(key.replace("/", "|"), data=value)
    atomic_write(filepath, write)


def _model_layers(model: Any) -> list:
    if model._func_outputs is not None:
        return model._functional_layers()
    return list(model._sublayers)


def _read(filepath: str) -> dict:
    h5py = _h5py()
    with open(filepath, "rb") as raw:
        data = raw.read()
    with h5py.File(io.BytesIO(data), "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{filepath} holds no model (no model_config): a weights file? "
                             f"Use model.load_weights")
        out = {"model_config": json.loads(f.attrs["model_config"]),
               "training_config": json.loads(f.attrs["training_config"])
               if "training_config" in f.attrs else None,
               "weights": {}, "state": None}
        group = f["model_weights"]
        for name in group.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            g = group[name]
            out["weights"][name] = [np.asarray(g[w.decode() if isinstance(w, bytes) else w])
                                    for w in g.attrs["weight_names"]]
        if "training_state" in f:
            out["state"] = {k.replace("|", "/"): np.asarray(v)
                            for k, v in f["training_state"].items()}
    return out


def load_model(filepath: str, custom_objects: dict | None = None, compile: bool = True,
               options: Any = None) -> Any:
    """The model saved by ``Model.save``: architecture, weights, and (with ``compile``) the
    compiled optimizer, loss and metrics with the optimizer's state."""
    from .trainer import Replication

    content = Replication(distribution.current()).read_on_chief(lambda: _read(filepath))
    model = model_from_config(content["model_config"], custom_objects)
    model._ensure_weights()
    by_name = {layer.name: layer for layer in _model_layers(model)}
    for name, values in content["weights"].items():
        if values:
            by_name[name].set_weights(values)
    train = content["training_config"]
    if compile and train is not None:
        decode = _Decoder(custom_objects)
        opt_cls = decode.cls(train["optimizer"]["class_name"], "optimizers")
        opt = opt_cls(**{k: v for k, v in train["optimizer"]["config"].items()})
        model.compile(optimizer=opt, loss=decode(train["loss"]),
                      metrics=[decode(m) for m in train["metrics"]])
        if content["state"]:
            model._restore_checkpoint_state(content["state"])
    return model
