"""TF1's dataset iterators in graph mode: one-shot, initializable, reinitializable
(``Iterator.from_structure`` + ``make_initializer``) and feedable (``from_string_handle``).

``get_next()`` is a ``py_func`` op: each Session.run of it pulls the next element from the
Python iterator of the dataset the iterator is initialized with, and raises
``tf.errors.OutOfRangeError`` at the end, as TensorFlow does. Running an initializer op starts a
fresh pass (a reshuffling ``shuffle`` gives each pass a new order).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from collections.abc import Iterator as PyIterator
from typing import Any

import numpy as np

from .. import errors
from .structure import TensorSpec, flatten, is_nested, pack_as

_HANDLES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_handle_ids = itertools.count()


def _core() -> Any:
    from .. import core
    return core


def _flatten_like(structure: Any, value: Any) -> list:
    """The leaves of ``value`` at the leaf positions of ``structure`` (so a shape given as a
    tuple or list is one leaf)."""
    if isinstance(structure, dict):
        return [leaf for k in sorted(structure) for leaf in _flatten_like(structure[k],
                                                                         value[k])]
    if isinstance(structure, tuple):
        if len(structure) != len(value):
            raise ValueError(f"output_shapes {value!r} do not match the structure of "
                             f"output_types {structure!r}")
        return [leaf for s, v in zip(structure, value) for leaf in _flatten_like(s, v)]
    return [value]


def _specs_from(types: Any, shapes: Any) -> Any:
    core = _core()
    flat_types = [core.as_dtype(t) for t in flatten(types)]
    flat_shapes = [None] * len(flat_types) if shapes is None else _flatten_like(types, shapes)
    specs = [TensorSpec(None if s is None else core.TensorShape(s).as_list()
                        if core.TensorShape(s).ndims is not None else None, t.as_numpy_dtype)
             for t, s in zip(flat_types, flat_shapes)]
    return pack_as(types, specs) if is_nested(types) else specs[0]


def output_types(spec: Any) -> Any:
    """The element structure's dtypes (``tf.DType``), TF1's ``output_types``."""
    core = _core()
    leaves = [core.as_dtype(s.dtype) for s in flatten(spec)]
    return pack_as(spec, leaves) if is_nested(spec) else leaves[0]


def output_shapes(spec: Any) -> Any:
    """The element structure's static shapes (``tf.TensorShape``), TF1's ``output_shapes``."""
    core = _core()
    leaves = [core.TensorShape(s.shape) for s in flatten(spec)]
    return pack_as(spec, leaves) if is_nested(spec) else leaves[0]


def output_classes(spec: Any) -> Any:
    core = _core()
    leaves = [core.Tensor for _ in flatten(spec)]
    return pack_as(spec, leaves) if is_nested(spec) else leaves[0]


def _compatible(wanted: Any, given: Any) -> bool:
    if wanted.shape is None or given.shape is None:
        return True
    return len(wanted.shape) == len(given.shape) and all(
        a is None or b is None or a == b for a, b in zip(wanted.shape, given.shape))


class Iterator:
    """``tf.data.Iterator`` (TF1): ``get_next()`` tensors that advance at every Session.run.

    Made by ``dataset.make_one_shot_iterator()`` (starts by itself),
    ``dataset.make_initializable_iterator()`` (run ``iterator.initializer`` first, again for
    every new pass), or ``Iterator.from_structure(types, shapes)`` (run
    ``iterator.make_initializer(dataset)`` for any dataset of that structure).
    """

    def __init__(self, structure: Any, source: Any = None, one_shot: bool = False):
        self._structure = structure
        self._flat_specs = flatten(structure)
        self._source = source          # what the initializer of make_initializable_iterator uses
        self._one_shot = one_shot
        self._iterator: PyIterator | None = None
        self._lock = threading.Lock()
        self._handle: str | None = None

    # -- construction (TF1's static constructors) --
    @staticmethod
    def from_structure(output_types: Any, output_shapes: Any = None, shared_name: Any = None,
                       output_classes: Any = None) -> Iterator:
        """A reinitializable iterator for datasets of this structure (no dataset yet)."""
        return Iterator(_specs_from(output_types, output_shapes))

    @staticmethod
    def from_string_handle(string_handle: Any, output_types: Any, output_shapes: Any = None,
                           output_classes: Any = None) -> FeedableIterator:
        """A feedable iterator: ``get_next()`` reads from the iterator whose
        ``string_handle()`` value is fed to ``string_handle`` at each run."""
        return FeedableIterator(string_handle, _specs_from(output_types, output_shapes))

    # -- TF1 properties --
    @property
    def element_spec(self) -> Any:
        return self._structure

    @property
    def output_types(self) -> Any:
        return output_types(self._structure)

    @property
    def output_shapes(self) -> Any:
        return output_shapes(self._structure)

    @property
    def output_classes(self) -> Any:
        return output_classes(self._structure)

    # -- initializers --
    @property
    def initializer(self) -> Any:
        """The op that (re)starts this iterator on its dataset (initializable iterators)."""
        if self._source is None or self._one_shot:
            raise ValueError("this iterator has no initializer: it is a one-shot iterator or "
                             "was made by Iterator.from_structure (use make_initializer(ds))")
        return self._initializer_op(self._source, "MakeIterator")

    def initialize(self) -> list:
        """``[initializer]``: the form a strategy's TF1 iterators give it in."""
        return [self.initializer]

    def make_initializer(self, dataset: Any, name: str | None = None) -> Any:
        """The op that starts this iterator on ``dataset`` (of a compatible structure)."""
        spec = _element_spec(dataset)
        given, wanted = flatten(spec), self._flat_specs
        if is_nested(spec) != is_nested(self._structure) or len(given) != len(wanted):
            raise TypeError(f"Expected structure {self._structure} but got dataset with "
                            f"structure {spec}")
        for w, g in zip(wanted, given):
            if np.dtype(w.dtype) != np.dtype(g.dtype):
                raise TypeError(f"Expected output types {self.output_types} but got dataset "
                                f"with output types {output_types(spec)}")
            if not _compatible(w, g):
                raise TypeError(f"Expected output shapes compatible with "
                                f"{self.output_shapes} but got dataset with output shapes "
                                f"{output_shapes(spec)}")
        return self._initializer_op(dataset, name or "make_initializer")

    def _initializer_op(self, dataset: Any, name: str) -> Any:
        core = _core()

        def start() -> np.int64:
            with self._lock:
                _close(self._iterator)
                self._iterator = iter(dataset)
            return np.int64(0)
        return core.py_func(start, [], core.int64, name=name).op

    # -- reading --
    def _next_flat(self) -> list:
        with self._lock:
            if self._iterator is None:
                if not self._one_shot:
                    raise errors.FailedPreconditionError(
                        None, None, "GetNext() failed because the iterator has not been "
                        "initialized. Ensure that you have run the initializer operation for "
                        "this iterator before getting the next element.")
                self._iterator = iter(self._source)
            try:
                element = next(self._iterator)
            except StopIteration:
                raise errors.OutOfRangeError(None, None, "End of sequence") from None
        flat = flatten(element) if is_nested(self._structure) else [element]
        return [np.asarray(v) for v in flat]

    def get_next(self, name: str | None = None) -> Any:
        """The next element as graph tensors (same structure as the dataset's elements)."""
        return _tensors(self._next_flat, [], self._structure, name)

    def string_handle(self, name: str | None = None) -> Any:
        """A string tensor naming this iterator, to feed a ``from_string_handle`` iterator."""
        if self._handle is None:
            self._handle = f"ringtrain-iterator-{next(_handle_ids)}"
            _HANDLES[self._handle] = self
        return _core().constant(self._handle, name=name or "IteratorToStringHandle")


class FeedableIterator(Iterator):
    """``Iterator.from_string_handle``: reads from the iterator named by the fed handle."""

    def __init__(self, handle: Any, structure: Any):
        super().__init__(structure)
        self._handle_tensor = handle

    @property
    def initializer(self) -> Any:
        raise ValueError("a feedable iterator has no initializer: initialize the iterators "
                         "whose string_handle() you feed")

    def get_next(self, name: str | None = None) -> Any:
        def next_of(handle: Any) -> list:
            key = handle.decode() if isinstance(handle, bytes) else str(
                np.asarray(handle).item() if np.ndim(handle) == 0 else handle)
            if isinstance(key, bytes):
                key = key.decode()
            target = _HANDLES.get(key)
            if target is None:
                raise errors.InvalidArgumentError(None, None, f"no iterator has the string "
                                                              f"handle {key!r}")
            return target._next_flat()
        return _tensors(next_of, [self._handle_tensor], self._structure, name)


def _tensors(fn: Callable, inputs: list, structure: Any, name: str | None) -> Any:
    core = _core()
    specs = flatten(structure)
    outputs = core.py_func(fn, inputs, [s.dtype for s in specs], name=name or "IteratorGetNext")
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for tensor, spec in zip(outputs, specs):
        if spec.shape is not None:
            tensor.set_shape(spec.shape)
    return pack_as(structure, outputs) if is_nested(structure) else outputs[0]


def _element_spec(dataset: Any) -> Any:
    spec = getattr(dataset, "element_spec", None)
    if spec is None:
        raise TypeError(f"an iterator needs a tf.data.Dataset, got {type(dataset).__name__}")
    return spec


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def make_one_shot_iterator(dataset: Any) -> Iterator:
    """``tf.compat.v1.data.make_one_shot_iterator(dataset)``."""
    return Iterator(_element_spec(dataset), dataset, one_shot=True)


def make_initializable_iterator(dataset: Any, shared_name: Any = None) -> Iterator:
    """``tf.compat.v1.data.make_initializable_iterator(dataset)``."""
    return Iterator(_element_spec(dataset), dataset)


def get_output_types(dataset: Any) -> Any:
    return output_types(_element_spec(dataset))


def get_output_shapes(dataset: Any) -> Any:
    return output_shapes(_element_spec(dataset))


def get_output_classes(dataset: Any) -> Any:
    return output_classes(_element_spec(dataset))
