"""``import`` of TensorFlow module paths under ringtrain: ``from ringtrain.contrib.layers import
conv2d``, ``import ringtrain.compat.v1 as tf``, ``from ringtrain.nn import rnn_cell``.

TensorFlow 1 programs import submodules by the paths of TensorFlow's namespaces; ringtrain keeps
those namespaces elsewhere (``tf.contrib`` is ``ringtrain.core.contrib``). Two finders on
``sys.meta_path`` answer for ``ringtrain.<TF path>``: the first makes a namespace ringtrain
provides the module itself under the TF path too; the last, reached only when nothing found the
name, turns a TensorFlow module ringtrain leaves out (``ringtrain.contrib.slim``,
``ringtrain.contrib.tensorboard.plugins.projector``, ``ringtrain.estimator``) into an
UnsupportedFeatureError naming the alternative instead of ModuleNotFoundError. Any other name
gets Python's usual error.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import Any

# TF module path (after "ringtrain.") -> the ringtrain module that is that namespace.
ALIASES = {
    "compat": "ringtrain.core.compat",
    "compat.v1": "ringtrain",
    "contrib": "ringtrain.core.contrib",
    "contrib.layers": "ringtrain.core.contrib.layers",
    "contrib.rnn": "ringtrain.core.contrib.rnn",
    "initializers": "ringtrain.core.initializers",
    "losses": "ringtrain.core.losses",
    "metrics": "ringtrain.core.metrics",
    "nn": "ringtrain.core.nn",
    "nn.rnn_cell": "ringtrain.core.rnn_cell",
    "random": "ringtrain.core.random",
    "summary": "ringtrain.core.summary",
}


class _Existing(importlib.abc.Loader):
    """Loads a name as an already imported module (an alias)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: Any) -> Any:
        return importlib.import_module(self.target)

    def exec_module(self, module: Any) -> None:
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: a TF path ringtrain provides is its module (before the path
    finder could load the same file a second time under the TF name)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        target_module = ALIASES.get(fullname[len("ringtrain."):]) \
            if fullname.startswith("ringtrain.") else None
        if target_module is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Existing(target_module))


class _LeftOutFinder(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: a TF module path nothing else found is one ringtrain leaves out."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.startswith("ringtrain."):
            parent, _, leaf = fullname.rpartition(".")
            error = _left_out(parent, leaf)
            if error is not None:
                raise error
        return None


def _left_out(parent: str, leaf: str) -> Exception | None:
    """UnsupportedFeatureError for a TensorFlow module path ringtrain leaves out, else None."""
    from .core.unsupported import TF_NAMES, missing, tf1_api
    from .errors import UnsupportedFeatureError

    module = sys.modules.get(parent)
    owner = getattr(module, "__name__", parent)
    tf_parent = TF_NAMES.get(owner, "tf." + parent[len("ringtrain."):] if "." in parent else "tf")
    dotted = f"{tf_parent}.{leaf}"
    if not (dotted.startswith("tf.contrib.") or dotted in tf1_api()
            or any(name.startswith(dotted + ".") for name in tf1_api())):
        return None
    error = missing(owner, leaf)
    if isinstance(error, UnsupportedFeatureError):
        return error
    return UnsupportedFeatureError(
        f"{dotted} is part of TensorFlow's API but not of ringtrain; the README section "
        f"'TensorFlow APIs left out' names what to use instead")


def install() -> None:
    from .core.unsupported import TF_NAMES

    # Every TF namespace looks like a package to the import system (an empty __path__), so
    # `from ringtrain.layers import conv1d` and `import ringtrain.compat.v1` ask the finders
    # instead of failing with a bare "cannot import name" / "not a package".
    for name in {*TF_NAMES, *ALIASES.values()}:
        module = importlib.import_module(name)
        if not hasattr(module, "__path__"):
            module.__path__ = []
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
        sys.meta_path.append(_LeftOutFinder())
