"""Every public name of TensorFlow 1.15 (ringtrain/core/tf1_api.txt, with its sources) either
works or raises UnsupportedFeatureError naming an alternative -- at attribute access and at
import -- never a plain AttributeError or ModuleNotFoundError."""

from __future__ import annotations

import collections
import importlib

import pytest

import ringtrain as tf
from ringtrain.core.unsupported import tf1_api
from ringtrain.errors import UnsupportedFeatureError

API = sorted(tf1_api())
MODULES = sorted({name.rsplit(".", 1)[0] for name in API})
# Names the table must keep implemented (the issue's TF1 programs use them).
MUST_WORK = ["tf.div", "tf.truncatediv", "tf.floor_div", "tf.arg_max", "tf.arg_min",
             "tf.multinomial", "tf.compat.as_str", "tf.compat.as_bytes", "tf.metrics.accuracy",
             "tf.metrics.auc", "tf.layers.dense", "tf.layers.batch_normalization",
             "tf.nn.rnn_cell.LSTMCell", "tf.nn.dynamic_rnn", "tf.nn.compute_average_loss",
             "tf.nn.scale_regularization_loss", "tf.contrib.rnn", "tf.contrib.layers"]


def resolve(dotted: str):
    """('implemented', obj) or ('clear error', message), or raise what a program would see."""
    obj = tf
    try:
        for part in dotted.split(".")[1:]:
            obj = getattr(obj, part)
    except UnsupportedFeatureError as error:
        return "clear error", str(error)
    return "implemented", obj


def test_the_list_is_tf_1_15s_and_large():
    assert len(API) > 1000
    for name in ("tf.placeholder", "tf.nn.conv2d", "tf.train.Saver", "tf.layers.conv1d",
                 "tf.metrics.mean_iou", "tf.while_loop", "tf.estimator"):
        assert name in API


@pytest.mark.parametrize("module", MODULES)
def test_each_name_works_or_names_an_alternative(module):
    plain = []
    for dotted in (n for n in API if n.rsplit(".", 1)[0] == module):
        try:
            kind, detail = resolve(dotted)
        except Exception as error:  # noqa: BLE001 -- any plain error is the bug this catches
            plain.append(f"{dotted}: {type(error).__name__}: {error}")
            continue
        if kind == "clear error":
            first, rest = detail.split(" ", 1)
            first = first.rstrip(":")
            # the message starts with a TF name (this one or the namespace that is left out) ...
            assert dotted.startswith(first) and first.startswith("tf."), detail
            # ... and names something to use instead
            assert any(w in rest for w in ("use ", "tf.", "write it", "ringrun")), detail
    assert not plain, "plain Python errors:\n" + "\n".join(plain)


@pytest.mark.parametrize("dotted", MUST_WORK)
def test_the_issue_names_are_implemented(dotted):
    assert resolve(dotted)[0] == "implemented"


@pytest.mark.parametrize("module", sorted(
    {m for m in MODULES if m != "tf"} | {"tf.contrib.slim", "tf.contrib.tensorboard.plugins",
                                        "tf.contrib.tensorboard.plugins.projector",
                                        "tf.estimator", "tf.image", "tf.compat.v1"}))
def test_import_of_each_module_path_works_or_names_an_alternative(module):
    try:
        importlib.import_module("ringtrain." + module[len("tf."):])
    except UnsupportedFeatureError as error:
        assert str(error).startswith("tf."), error
    # anything else (ModuleNotFoundError, ImportError) fails the test


def test_from_imports_of_left_out_names_keep_the_message():
    with pytest.raises(UnsupportedFeatureError, match=r"tf\.layers\.conv1d .*conv2d"):
        from_import("ringtrain.layers", "conv1d")
    with pytest.raises(UnsupportedFeatureError, match=r"tf\.contrib\.tensorboard"):
        from_import("ringtrain.contrib.tensorboard.plugins", "projector")
    with pytest.raises(UnsupportedFeatureError, match=r"tf\.train\.FtrlOptimizer"):
        from_import("ringtrain.train", "FtrlOptimizer")
    from_import("ringtrain.contrib.layers", "conv2d")
    from_import("ringtrain.nn.rnn_cell", "BasicLSTMCell")
    compat_v1 = importlib.import_module("ringtrain.compat.v1")
    assert compat_v1 is tf
    # names that are not TensorFlow's keep Python's usual errors
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("ringtrain.no_such_module")
    with pytest.raises(AttributeError) as info:
        tf.no_such_api  # noqa: B018
    assert not isinstance(info.value, UnsupportedFeatureError)


def from_import(module: str, name: str) -> None:
    """Run the statement ``from module import name`` itself: its error handling (a missing
    attribute becomes "cannot import name") is what the TF paths must get through."""
    exec(f"from {module} import {name}", {})  # noqa: S102 -- a constant import statement


def coverage() -> dict[str, collections.Counter]:
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for dotted in API:
        table[dotted.rsplit(".", 1)[0]][resolve(dotted)[0]] += 1
    return table


if __name__ == "__main__":  # the coverage table for the README / a report
    print(f"{'module':18} {'implemented':>12} {'clear error':>12}")
    for module, counts in sorted(coverage().items()):
        print(f"{module:18} {counts['implemented']:12} {counts['clear error']:12}")
