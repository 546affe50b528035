"""TensorFlow APIs ringtrain leaves out, each with the alternative the error message names."""

from __future__ import annotations

import functools
from pathlib import Path

from ..errors import UnsupportedFeatureError

_EAGER = ("{name}: a graph tensor has no value outside Session.run; run it (sess.run(t) or "
          "t.eval()), or enable eager execution (tf.enable_eager_execution() at program start, "
          "or `import ringtrain.v2 as tf`) to get tensors with values")
_PS = ("{name} belongs to parameter-server training, which ringtrain does not do: it trains "
       "with a ring all-reduce. Start every worker with `ringrun -np N train.py` and use "
       "tf.distribute.MirroredStrategy (machines are described by TF_CONFIG or RINGTRAIN_CONFIG)")
_NO_MODEL_FILES = ("{name} is not supported by ringtrain (no model export formats); save "
                   "weights with tf.train.Checkpoint or tf.keras Model.save_weights")
_RECURRENT = ("{name} is not provided by ringtrain's Keras; its recurrent layers are "
              "tf.keras.layers.SimpleRNN, GRU and LSTM (RNN(cell) with their cells): for both "
              "directions run one on the sequence and one with go_backwards=True and join them "
              "with tf.keras.layers.Concatenate")
_CUSTOM_GRADIENT = ("{name}: custom gradients are not supported by ringtrain (its gradient "
                    "rules are one table, ringtrain/core/gradients.py); write the function with "
                    "ops that have gradients, and cut a path with tf.stop_gradient")

# module -> attribute -> message; "{name}" becomes the dotted name the program asked for.
_TABLE: dict[str, dict[str, str]] = {
    "ringtrain": {
        "estimator": "tf.estimator is not supported by ringtrain; use tf.keras (Sequential, "
                     "compile, fit, evaluate, predict) or a tf.Session training loop",
        "feature_column": "tf.feature_column is not supported by ringtrain (it feeds "
                          "tf.estimator); give tf.keras or a Session NumPy arrays, or a "
                          "tf.data.Dataset of them",
        "autograph": "tf.autograph is not supported by ringtrain: tf.function traces the "
                     "Python function as written, so Python `if`/`while` on a tensor's value "
                     "needs tf.cond / tf.where, or a Python loop with a fixed count",
        "py_function": "tf.py_function is not provided by ringtrain; tf.py_func and "
                       "tf.numpy_function run Python code on NumPy values in a graph or eagerly",
        "while_loop": "tf.while_loop is not supported by ringtrain's graph core; unroll the "
                      "loop in Python, or use tf.cond / tf.where for data-dependent choices",
        "RegisterGradient": _CUSTOM_GRADIENT,
        "custom_gradient": _CUSTOM_GRADIENT,
        "config": "tf.config is not provided by ringtrain; configure a Session with "
                  "tf.ConfigProto and place ops with tf.device",
        "saved_model": _NO_MODEL_FILES,
        "lite": _NO_MODEL_FILES,
        "Tensor.numpy": _EAGER,
        "GradientTape.jacobian": "{name} is not provided by ringtrain; compute the gradient of "
                                 "each output element with a persistent tape",
    },
    "ringtrain.core.train": {
        "ClusterSpec": _PS,
        "Server": _PS,
        "replica_device_setter": _PS,
        "SyncReplicasOptimizer": _PS,
        "import_meta_graph": "{name} is not supported by ringtrain (tf.train.Saver writes no "
                             "MetaGraphDef files); build the graph again in Python, then "
                             "tf.train.Saver().restore(sess, path)",
        "MonitoredTrainingSession": "{name} is not provided by ringtrain; use a tf.Session loop "
                                    "(under MirroredStrategy the chief alone writes "
                                    "checkpoints and summaries)",
    },
    "ringtrain.data": {
        "TFRecordDataset": "{name} is not supported by ringtrain (no TFRecord or tf.train.Example "
                           "parsing); load the data into NumPy arrays and use "
                           "tf.data.Dataset.from_tensor_slices, or stream files with "
                           "Dataset.list_files(...).map(load_fn) or Dataset.from_generator",
        "TextLineDataset": "{name} is not provided by ringtrain; read the lines in Python and "
                           "use tf.data.Dataset.from_tensor_slices or from_generator",
        "FixedLengthRecordDataset": "{name} is not provided by ringtrain; read the records with "
                                    "NumPy (np.fromfile) and use Dataset.from_tensor_slices",
    },
    "ringtrain.keras": {
        "applications": "{name} (pre-trained models) is not supported by ringtrain: their "
                        "weights are downloaded, and ringtrain fetches nothing at run time; "
                        "build the model from tf.keras.layers",
    },
    "ringtrain.keras.layers": {name: _RECURRENT for name in ("Bidirectional", "ConvLSTM2D")},
    "ringtrain.layers": {
        **{name: "{name} is not provided by ringtrain; tf.layers has dense, conv2d, "
                 "max_pooling2d, average_pooling2d, flatten, dropout and batch_normalization "
                 "(1-D data: reshape to [batch, 1, width, channels] and use conv2d / "
                 "max_pooling2d)"
           for name in ("conv1d", "conv3d", "conv2d_transpose", "conv3d_transpose",
                        "separable_conv1d", "separable_conv2d", "max_pooling1d",
                        "max_pooling3d", "average_pooling1d", "average_pooling3d", "Conv1D",
                        "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D",
                        "SeparableConv2D", "MaxPooling1D", "MaxPooling3D", "AveragePooling1D",
                        "AveragePooling3D", "InputSpec", "experimental")},
    },
    "ringtrain.core.compat": {
        "v2": "{name} is not provided by ringtrain: `import ringtrain as tf` (the same as "
              "tf.compat.v1) speaks TensorFlow 1's API, and `import ringtrain.v2 as tf` "
              "TensorFlow 2's (eager execution, tf.function, GradientTape)",
    },
    "ringtrain.core.contrib.eager": {
        "Iterator": "{name} is not provided by ringtrain; iterate a tf.data.Dataset "
                    "directly in eager mode (for x in dataset)",
    },
    "ringtrain.core.contrib": {
        "learn": "tf.contrib.learn is not supported by ringtrain; use tf.keras or a tf.Session "
                 "training loop",
    },
}

# Public names of the modules, as a TensorFlow program spells them.
TF_NAMES = {"ringtrain": "tf", "ringtrain.train": "tf.train", "ringtrain.core.train": "tf.train",
             "ringtrain.data": "tf.data", "ringtrain.keras": "tf.keras",
             "ringtrain.keras.layers": "tf.keras.layers", "ringtrain.core.contrib": "tf.contrib",
             "ringtrain.core.compat": "tf.compat", "ringtrain.layers": "tf.layers",
             "ringtrain.core.nn": "tf.nn", "ringtrain.core.rnn_cell": "tf.nn.rnn_cell",
             "ringtrain.core.metrics": "tf.metrics", "ringtrain.core.random": "tf.random",
             "ringtrain.core.summary": "tf.summary",
             "ringtrain.core.contrib.eager": "tf.contrib.eager",
             "ringtrain.core.losses": "tf.losses", "ringtrain.core.initializers": "tf.initializers"}


# TensorFlow 1.15's top-level modules (tf.image, tf.strings...).
_TF1_MODULES = frozenset((
    "app", "audio", "autograph", "bitwise", "compat", "config", "data", "debugging",
    "distribute", "distributions", "dtypes", "errors", "estimator", "experimental",
    "feature_column", "flags", "gfile", "graph_util", "image", "initializers", "io", "keras",
    "layers", "linalg", "lite", "logging", "lookup", "losses", "manip", "math", "metrics",
    "nest", "nn", "profiler", "python_io", "pywrap_tensorflow", "quantization", "queue",
    "ragged", "random", "raw_ops", "resource_loader", "saved_model", "sets", "signal", "sparse",
    "spectral", "strings", "summary", "sysconfig", "test", "tpu", "train", "user_ops",
    "version", "xla",
))


@functools.cache
def tf1_api() -> frozenset[str]:
    """TensorFlow 1.15's public names, dotted as a program spells them ('tf.nn.conv1d'); the
    list and its sources are in tf1_api.txt."""
    text = (Path(__file__).with_name("tf1_api.txt")).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def _generic_alternative(dotted: str) -> str:
    """The alternative named for a TensorFlow 1.15 name without a message of its own."""
    parts = dotted.split(".")
    leaf = parts[-1]
    if len(parts) == 2 and leaf in _TF1_MODULES:
        return ("{name} (a TensorFlow module) is not provided by ringtrain; write the "
                "computation with the ops ringtrain has, run NumPy code in the graph with "
                "tf.py_func / tf.numpy_function, or prepare data in NumPy before tf.data")
    if "Queue" in leaf or "Reader" in leaf or leaf.endswith(("_producer", "queue_runners")) \
            or "batch" in leaf and parts[1] == "train":
        return ("{name} (queue-based input) is not provided by ringtrain; use tf.data "
                "(Dataset.from_tensor_slices, batch, shuffle, make_one_shot_iterator)")
    if leaf.endswith("Hook") or "Session" in leaf and parts[1] == "train" or leaf in (
            "Scaffold", "Supervisor", "Coordinator", "LooperThread"):
        return ("{name} is not provided by ringtrain; use a tf.Session loop, with "
                "tf.train.Checkpoint / tf.train.CheckpointManager for checkpoints")
    if leaf.endswith("Optimizer"):
        return ("{name} is not provided by ringtrain; tf.train has GradientDescent, Momentum, "
                "Adagrad, AdagradDA, Adadelta, Adam and RMSProp")
    if "sparse" in leaf.lower() or leaf.startswith("Sparse"):
        return ("{name} (sparse tensors) is not provided by ringtrain; use dense tensors "
                "(tf.gather / tf.one_hot / tf.where)")
    if parts[1] in ("metrics", "layers", "losses", "nn", "random", "initializers", "summary"):
        return ("{name} is not provided by ringtrain; write it from the tf and tf.nn ops "
                "ringtrain has, or compute it in NumPy inside the graph with tf.py_func")
    return ("{name} is not provided by ringtrain; write it with the ops ringtrain has, or run "
            "NumPy code in the graph with tf.py_func / tf.numpy_function")


def missing(module: str, name: str) -> AttributeError:
    """The error for ``module.name``: a message naming the alternative when the name is a
    TensorFlow 1.15 API ringtrain leaves out, else Python's usual AttributeError."""
    dotted = f"{TF_NAMES.get(module, module)}.{name}"
    message = _TABLE.get(module, {}).get(name)
    if message is None and module == "ringtrain.core.contrib" and not name.startswith("_"):
        message = ("{name} is not part of ringtrain; of tf.contrib only tf.contrib.layers "
                   "(conv2d, max_pool2d, fully_connected, flatten, dropout, linear) and "
                   "tf.contrib.rnn (the tf.nn.rnn_cell cells, static_rnn) are provided")
    if message is None and dotted in tf1_api():
        message = _generic_alternative(dotted)
    if message is None:
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    return UnsupportedFeatureError(message.format(name=dotted))
