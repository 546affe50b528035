"""tf.data.Dataset: a lazy, re-iterable pipeline of NumPy elements with threaded map/prefetch."""

from __future__ import annotations

import glob
import itertools
import os
import pickle
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import errors
from .functions import DataFunction, _apply
from .structure import (
    TensorSpec,
    as_array,
    flatten,
    is_nested,
    map_structure,
    pack_as,
    spec_of,
    to_numpy_dtype,
)

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


def _autotune_threads() -> int:
    # Map functions are usually NumPy work or I/O, both of which release the GIL, so a few more
    # threads than cores keeps the cores busy (the same default as ThreadPoolExecutor).
    return min(32, (os.cpu_count() or 1) + 4)


_AUTOTUNE_PREFETCH = 4


def _check_count(name: str, value: Any, allow_minus_one: bool = False) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < 0 and not (allow_minus_one and value == -1):
        hint = " (or -1 for all)" if allow_minus_one else ""
        raise ValueError(f"{name} must be >= 0{hint}, got {value}")
    return value


def _normalize_element(value: Any) -> Any:
    """A map/generator result as an element: lists of outputs become tuples, leaves arrays."""
    if isinstance(value, list):
        value = tuple(value)
    return map_structure(as_array, value)


class Dataset:
    """A re-iterable sequence of elements; each element is an array or a tuple/dict of arrays.

    Every ``iter(ds)`` starts a fresh pass. Transformations return new datasets and never run
    anything until iterated. Elements are NumPy arrays (or NumPy scalars), so ``for x, y in ds``
    and ``ds.as_numpy_iterator()`` give the same values.
    """

    # --- sources --------------------------------------------------------------------------------

    @staticmethod
    def from_tensor_slices(tensors: Any, name: str | None = None) -> Dataset:
        """One element per row of ``tensors`` (an array, or a tuple/dict of equally long ones)."""
        return _TensorSlices(tensors)

    @staticmethod
    def from_tensors(tensors: Any, name: str | None = None) -> Dataset:
        """A dataset of exactly one element, ``tensors``."""
        return _Tensors(tensors)

    @staticmethod
    def from_generator(generator: Callable[..., Iterable], output_types: Any = None,
                       output_shapes: Any = None, args: tuple | None = None,
                       output_signature: Any = None, name: str | None = None) -> Dataset:
        """Elements from ``generator(*args)``, a callable returning an iterable (called per pass).

        Give either ``output_signature`` (a structure of TensorSpec) or ``output_types`` (and
        optionally ``output_shapes``); every element is converted and checked against them.
        """
        return _Generator(generator, output_types, output_shapes, args, output_signature)

    @staticmethod
    def list_files(file_pattern: str | os.PathLike | Iterable, shuffle: bool | None = None,
                   seed: int | None = None, name: str | None = None) -> Dataset:
        """The file names matching a glob pattern (or a list of patterns), as strings: sorted,
        then shuffled unless ``shuffle=False`` (each pass in a new order, like TensorFlow)."""
        patterns = ([file_pattern] if isinstance(file_pattern, (str, os.PathLike))
                    else list(file_pattern))
        files = sorted({f for p in patterns for f in glob.glob(os.fspath(p))})
        if not files:
            raise errors.InvalidArgumentError(
                f"No files matched pattern: {', '.join(map(os.fspath, patterns))}")
        ds = Dataset.from_tensor_slices(np.array(files))
        return ds.shuffle(len(files), seed=seed) if shuffle or shuffle is None else ds

    @staticmethod
    def range(*args: int, dtype: Any = np.int64, name: str | None = None) -> Dataset:
        """Like Python's ``range``: ``range(stop)``, ``range(start, stop[, step])``."""
        if not 1 <= len(args) <= 3:
            raise TypeError(f"Dataset.range takes 1 to 3 arguments (start, stop, step), "
                            f"got {len(args)}")
        r = range(*(int(a) for a in args))
        if r.step == 0:
            raise ValueError("Dataset.range step must not be 0")
        return _Range(r, to_numpy_dtype(dtype))

    @staticmethod
    def zip(*datasets: Any, name: str | None = None) -> Dataset:
        """Elements combined position by position; stops at the shortest input.

        ``Dataset.zip((a, b))`` yields ``(a_i, b_i)``; a dict of datasets yields dicts.
        """
        if len(datasets) == 1 and is_nested(datasets[0]):
            structure = datasets[0]
        else:
            structure = tuple(datasets)
        for d in flatten(structure):
            if not isinstance(d, Dataset):
                raise TypeError(f"Dataset.zip takes datasets (or a tuple/dict of them), got "
                                f"{type(d).__name__}")
        return _Zip(structure)

    # --- transformations ------------------------------------------------------------------------

    def batch(self, batch_size: int, drop_remainder: bool = False,
              num_parallel_calls: int | None = None, deterministic: bool | None = None,
              name: str | None = None) -> Dataset:
        """Stack ``batch_size`` consecutive elements; the last batch may be smaller unless
        ``drop_remainder``."""
        batch_size = _check_count("batch_size", batch_size)
        if batch_size == 0:
            raise ValueError("batch_size must be > 0, got 0")
        return _Batch(self, batch_size, bool(drop_remainder))

    def unbatch(self, name: str | None = None) -> Dataset:
        """Split each element along its first dimension (the inverse of batch)."""
        return _Unbatch(self)

    def shuffle(self, buffer_size: int, seed: int | None = None,
                reshuffle_each_iteration: bool = True, name: str | None = None) -> Dataset:
        """Randomly shuffle with TensorFlow's buffer semantics.

        A buffer is filled with the first ``buffer_size`` elements; each output is a uniformly
        random buffer entry, whose slot is refilled from the input. A buffer at least as large
        as the dataset gives a uniform permutation. With a ``seed`` the order is reproducible;
        ``reshuffle_each_iteration`` gives each pass (epoch) a different order.
        """
        buffer_size = _check_count("buffer_size", buffer_size, allow_minus_one=False) \
            if buffer_size != AUTOTUNE else AUTOTUNE
        if buffer_size == 0:
            raise ValueError("shuffle buffer_size must be > 0 (1 means no shuffling)")
        if seed is not None:
            seed = _check_count("seed", seed)
        return _Shuffle(self, buffer_size, seed, bool(reshuffle_each_iteration))

    def map(self, map_func: Callable, num_parallel_calls: int | None = None,
            deterministic: bool | None = None, name: str | None = None) -> Dataset:
        """Apply ``map_func`` to every element (tuples are unpacked into arguments).

        With ``num_parallel_calls`` (an int or ``AUTOTUNE``) up to that many elements are
        mapped at once on a thread pool; outputs always come back in input order. NumPy and
        I/O release the GIL, so this overlaps real work.
        """
        if not callable(map_func):
            raise TypeError(f"map_func must be callable, got {type(map_func).__name__}")
        if num_parallel_calls is None:
            threads = 1
        elif num_parallel_calls == AUTOTUNE:
            threads = _autotune_threads()
        else:
            threads = _check_count("num_parallel_calls", num_parallel_calls)
            if threads == 0:
                raise ValueError("num_parallel_calls must be > 0 or tf.data.AUTOTUNE")
        return _Map(self, map_func, threads)

    def flat_map(self, map_func: Callable, name: str | None = None) -> Dataset:
        """Map each element to a dataset and concatenate those datasets."""
        return _FlatMap(self, map_func)

    def filter(self, predicate: Callable, name: str | None = None) -> Dataset:
        """Keep the elements for which ``predicate(element)`` is true."""
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {type(predicate).__name__}")
        return _Filter(self, predicate)

    def prefetch(self, buffer_size: int, name: str | None = None) -> Dataset:
        """Produce up to ``buffer_size`` elements ahead on a background thread."""
        if buffer_size == AUTOTUNE:
            buffer_size = _AUTOTUNE_PREFETCH
        buffer_size = _check_count("buffer_size", buffer_size)
        if buffer_size == 0:
            return self
        return _Prefetch(self, buffer_size)

    def repeat(self, count: int | None = None, name: str | None = None) -> Dataset:
        """Repeat the dataset ``count`` times (forever when None or -1)."""
        if count is None:
            count = -1
        return _Repeat(self, _check_count("count", count, allow_minus_one=True))

    def take(self, count: int, name: str | None = None) -> Dataset:
        """The first ``count`` elements (all of them when -1)."""
        return _Take(self, _check_count("count", count, allow_minus_one=True))

    def skip(self, count: int, name: str | None = None) -> Dataset:
        """All but the first ``count`` elements (none when -1)."""
        return _Skip(self, _check_count("count", count, allow_minus_one=True))

    def shard(self, num_shards: int, index: int, name: str | None = None) -> Dataset:
        """Every ``num_shards``-th element starting at ``index`` (one worker's part)."""
        num_shards = _check_count("num_shards", num_shards)
        index = _check_count("index", index)
        if num_shards == 0:
            raise ValueError("num_shards must be > 0")
        if index >= num_shards:
            raise ValueError(f"shard index must be in [0, num_shards={num_shards}), got {index}")
        return _Shard(self, num_shards, index)

    def enumerate(self, start: int = 0, name: str | None = None) -> Dataset:
        """Pairs ``(i, element)`` with int64 ``i`` counting from ``start``."""
        return Dataset.zip((Dataset.range(int(start), np.iinfo(np.int64).max), self))

    def concatenate(self, dataset: Dataset, name: str | None = None) -> Dataset:
        """This dataset's elements followed by ``dataset``'s."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"concatenate takes a Dataset, got {type(dataset).__name__}")
        return _Concatenate(self, dataset)

    def cache(self, filename: str = "", name: str | None = None) -> Dataset:
        """Remember the elements of the first complete pass and replay them afterwards.

        With a ``filename`` the elements are also pickled there (written atomically after the
        first complete pass) and read back by later datasets, even in other processes.
        """
        return _Cache(self, os.fspath(filename))

    def apply(self, transformation_func: Callable[[Dataset], Dataset]) -> Dataset:
        """``transformation_func(self)``, for chaining reusable pipeline pieces."""
        return transformation_func(self)

    # --- iteration and inspection ---------------------------------------------------------------

    def __iter__(self) -> Iterator:
        return self._iter()

    def _iter(self) -> Iterator:
        raise NotImplementedError

    def as_numpy_iterator(self) -> Iterator:
        """An iterator of the elements as NumPy values (they already are)."""
        return iter(self)

    # -- TF1 graph-mode iterators (see iterator.py) --
    def make_one_shot_iterator(self) -> Any:
        """A graph-mode iterator whose ``get_next()`` tensors yield one element per Session.run."""
        from .iterator import make_one_shot_iterator
        return make_one_shot_iterator(self)

    def make_initializable_iterator(self, shared_name: Any = None) -> Any:
        """A graph-mode iterator to start (again) by running its ``initializer`` op."""
        from .iterator import make_initializable_iterator
        return make_initializable_iterator(self)

    @property
    def output_types(self) -> Any:
        from .iterator import output_types
        return output_types(self.element_spec)

    @property
    def output_shapes(self) -> Any:
        from .iterator import output_shapes
        return output_shapes(self.element_spec)

    @property
    def output_classes(self) -> Any:
        from .iterator import output_classes
        return output_classes(self.element_spec)

    @property
    def element_spec(self) -> Any:
        """The structure of TensorSpec of one element (a map computes it from one element)."""
        return self._spec()

    def _spec(self) -> Any:
        raise NotImplementedError

    def cardinality(self) -> int:
        """The number of elements, or INFINITE_CARDINALITY (-1) / UNKNOWN_CARDINALITY (-2)."""
        return UNKNOWN_CARDINALITY

    def __len__(self) -> int:
        n = self.cardinality()
        if n == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if n == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return n

    def __bool__(self) -> bool:
        return True  # a dataset is an object, never "empty" in a boolean sense

    def __repr__(self) -> str:
        try:
            spec = self.element_spec
        except Exception:  # noqa: BLE001 -- a repr must not fail on a broken map function
            spec = "?"
        return f"<{type(self).__name__.lstrip('_')}Dataset element_spec={spec}>"


# --- sources ------------------------------------------------------------------------------------

class _TensorSlices(Dataset):
    def __init__(self, tensors: Any):
        if isinstance(tensors, list) and tensors and all(is_nested(t) for t in tensors):
            raise TypeError("from_tensor_slices got a list of tuples/dicts; pass a tuple of "
                            "arrays (e.g. (features, labels)) or a dict of arrays instead")
        self._structure = tensors
        self._leaves = [as_array(t) for t in flatten(tensors)]
        if not self._leaves:
            raise ValueError("from_tensor_slices needs at least one array")
        lengths = []
        for leaf in self._leaves:
            if leaf.ndim == 0:
                raise ValueError(f"from_tensor_slices needs arrays with a first dimension to "
                                 f"slice; got a scalar {leaf!r}")
            lengths.append(leaf.shape[0])
        if len(set(lengths)) > 1:
            raise ValueError(f"from_tensor_slices: all components must have the same first "
                             f"dimension, got lengths {lengths}")
        self._n = lengths[0]
        self._single = not is_nested(tensors)

    def _iter(self) -> Iterator:
        if self._single:
            leaf = self._leaves[0]
            return (leaf[i] for i in range(self._n))
        return (pack_as(self._structure, [leaf[i] for leaf in self._leaves])
                for i in range(self._n))

    def _slices(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of every component at once (the fast path of batch)."""
        if self._single:
            return self._leaves[0][start:stop]
        return pack_as(self._structure, [leaf[start:stop] for leaf in self._leaves])

    def _spec(self) -> Any:
        return pack_as(self._structure,
                       [TensorSpec(leaf.shape[1:], leaf.dtype) for leaf in self._leaves])

    def cardinality(self) -> int:
        return self._n


class _Tensors(Dataset):
    def __init__(self, tensors: Any):
        self._element = _normalize_element(tensors)

    def _iter(self) -> Iterator:
        return iter((self._element,))

    def _spec(self) -> Any:
        return map_structure(spec_of, self._element)

    def cardinality(self) -> int:
        return 1


class _Range(Dataset):
    def __init__(self, r: range, dtype: np.dtype):
        self._range = r
        self._dtype = dtype

    def _iter(self) -> Iterator:
        scalar = self._dtype.type
        return (scalar(i) for i in self._range)

    def _spec(self) -> Any:
        return TensorSpec((), self._dtype)

    def cardinality(self) -> int:
        return len(self._range)


class _Generator(Dataset):
    def __init__(self, generator, output_types, output_shapes, args, output_signature):
        if not callable(generator):
            raise TypeError("from_generator takes a callable that returns an iterator (e.g. a "
                            "generator function, not a generator object)")
        if output_signature is not None:
            if output_types is not None or output_shapes is not None:
                raise TypeError("from_generator: give output_signature or output_types/"
                                "output_shapes, not both")
            specs = output_signature
        elif output_types is not None:
            if output_shapes is None:
                specs = map_structure(lambda t: TensorSpec(None, t), output_types) \
                    if is_nested(output_types) else TensorSpec(None, output_types)
            else:
                shapes = output_shapes
                if not is_nested(output_types):
                    specs = TensorSpec(shapes, output_types)
                else:
                    # Shapes are leaves here even though they are lists/tuples themselves.
                    flat_shapes = _flatten_shapes(output_types, shapes)
                    specs = pack_as(output_types, [TensorSpec(s, t) for s, t in
                                                   zip(flat_shapes, flatten(output_types))])
        else:
            raise TypeError("from_generator needs output_signature (or output_types)")
        for spec in flatten(specs):
            if not isinstance(spec, TensorSpec):
                if hasattr(spec, "shape") and hasattr(spec, "dtype"):
                    continue
                raise TypeError(f"output_signature must hold TensorSpec objects, got "
                                f"{type(spec).__name__}")
        self._specs = specs
        self._generator = generator
        self._args = tuple(args) if args is not None else ()

    def _iter(self) -> Iterator:
        specs = self._specs
        flat_specs = [s if isinstance(s, TensorSpec) else TensorSpec(s.shape, s.dtype)
                      for s in flatten(specs)]
        for value in self._generator(*self._args):
            if isinstance(value, list) and is_nested(specs):
                value = tuple(value)
            try:
                flat_values = flatten(value) if is_nested(specs) else [value]
                if is_nested(specs):
                    pack_as(specs, flat_values)  # structure check
            except ValueError:
                raise errors.InvalidArgumentError(
                    f"from_generator: generator yielded {value!r:.80}, which does not match "
                    f"the declared structure {specs}") from None
            out = []
            for v, spec in zip(flat_values, flat_specs):
                try:
                    arr = np.asarray(v, dtype=spec.dtype)
                except (TypeError, ValueError):
                    raise errors.InvalidArgumentError(
                        f"from_generator: value {v!r:.60} cannot be converted to "
                        f"{spec.dtype.name}") from None
                if not spec.is_compatible_with(arr):
                    raise errors.InvalidArgumentError(
                        f"from_generator: generator yielded shape {arr.shape}, declared "
                        f"{spec.shape}; fix the generator or output_shapes/output_signature")
                out.append(arr)
            yield pack_as(specs, out) if is_nested(specs) else out[0]

    def _spec(self) -> Any:
        return self._specs


def _flatten_shapes(types: Any, shapes: Any) -> list:
    if isinstance(types, dict):
        return [s for k in sorted(types) for s in _flatten_shapes(types[k], shapes[k])]
    if isinstance(types, tuple):
        if len(shapes) != len(types):
            raise ValueError(f"output_shapes {shapes} does not match output_types {types}")
        return [s for t, sh in zip(types, shapes) for s in _flatten_shapes(t, sh)]
    return [shapes]


class _Zip(Dataset):
    def __init__(self, structure: Any):
        self._structure = structure
        self._datasets = flatten(structure)

    def _iter(self) -> Iterator:
        for parts in zip(*self._datasets):
            yield pack_as(self._structure, list(parts))

    def _spec(self) -> Any:
        return pack_as(self._structure, [d.element_spec for d in self._datasets])

    def cardinality(self) -> int:
        cards = [d.cardinality() for d in self._datasets]
        finite = [c for c in cards if c >= 0]
        if finite:
            return min(finite)
        if UNKNOWN_CARDINALITY in cards:
            return UNKNOWN_CARDINALITY
        return INFINITE_CARDINALITY


# --- transformations ----------------------------------------------------------------------------

class _Unary(Dataset):
    """A transformation of one input dataset; element_spec and cardinality pass through."""

    def __init__(self, input_dataset: Dataset):
        self._input = input_dataset

    def _spec(self) -> Any:
        return self._input.element_spec

    def cardinality(self) -> int:
        return self._input.cardinality()


def _stack(elements: list) -> Any:
    first = elements[0]
    flats = [flatten(e) for e in elements] if is_nested(first) else [[e] for e in elements]
    try:
        stacked = [np.stack(parts) for parts in zip(*flats)]
    except ValueError as exc:
        raise errors.InvalidArgumentError(
            f"batch: elements have different shapes and cannot be stacked ({exc}); resize them "
            f"in a map() first") from None
    return pack_as(first, stacked) if is_nested(first) else stacked[0]


class _Batch(_Unary):
    def __init__(self, input_dataset: Dataset, batch_size: int, drop_remainder: bool):
        super().__init__(input_dataset)
        self._batch_size = batch_size
        self._drop = drop_remainder

    def _iter(self) -> Iterator:
        bs = self._batch_size
        if isinstance(self._input, _TensorSlices):
            n = self._input.cardinality()
            stop = n - n % bs if self._drop else n
            return (self._input._slices(i, min(i + bs, n)) for i in range(0, stop, bs))
        return self._iter_generic()

    def _iter_generic(self) -> Iterator:
        it = iter(self._input)
        while True:
            chunk = list(itertools.islice(it, self._batch_size))
            if not chunk or (self._drop and len(chunk) < self._batch_size):
                return
            yield _stack(chunk)

    def _spec(self) -> Any:
        dim = self._batch_size if self._drop else None

        def add_dim(spec: TensorSpec) -> TensorSpec:
            return TensorSpec(None if spec.shape is None else (dim, *spec.shape), spec.dtype)
        spec = self._input.element_spec
        return map_structure(add_dim, spec)

    def cardinality(self) -> int:
        n = self._input.cardinality()
        if n < 0:
            return n
        return n // self._batch_size if self._drop else -(-n // self._batch_size)


class _Unbatch(_Unary):
    def _iter(self) -> Iterator:
        for element in self._input:
            flat = flatten(element)
            n = len(flat[0]) if flat else 0
            for i in range(n):
                yield pack_as(element, [leaf[i] for leaf in flat])

    def _spec(self) -> Any:
        def drop_dim(spec: TensorSpec) -> TensorSpec:
            return TensorSpec(None if spec.shape is None else spec.shape[1:], spec.dtype)
        spec = self._input.element_spec
        return map_structure(drop_dim, spec)

    def cardinality(self) -> int:
        return UNKNOWN_CARDINALITY


class _Shuffle(_Unary):
    def __init__(self, input_dataset: Dataset, buffer_size: int, seed: int | None,
                 reshuffle: bool):
        super().__init__(input_dataset)
        self._buffer_size = buffer_size
        # Without a seed, draw one now so that reshuffle_each_iteration=False really repeats.
        # A strategy replaces a drawn seed by the chief's (see share_shuffle_seeds).
        self._seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        self._seed_drawn = seed is None
        self._reshuffle = reshuffle
        self._next_epoch = 0  # iterations started so far: iteration k shuffles with (seed, k)
        self._lock = threading.Lock()

    def _iter(self) -> Iterator:
        with self._lock:
            epoch = self._next_epoch if self._reshuffle else 0
            self._next_epoch += 1
        return self._shuffled(np.random.default_rng([self._seed, epoch]))

    def _shuffled(self, rng: np.random.Generator) -> Iterator:
        it = iter(self._input)
        size = self._buffer_size
        if size == AUTOTUNE:
            size = max(self._input.cardinality(), 1024)
        buffer = list(itertools.islice(it, size))
        # Random numbers are drawn in blocks: one generator call per element is slow.
        block = rng.random(1024)
        pos = 0
        exhausted = len(buffer) < size
        while buffer:
            if pos == len(block):
                block = rng.random(1024)
                pos = 0
            k = int(block[pos] * len(buffer))
            pos += 1
            chosen = buffer[k]
            if not exhausted:
                try:
                    buffer[k] = next(it)
                except StopIteration:
                    exhausted = True
            if exhausted:
                buffer[k] = buffer[-1]
                buffer.pop()
            yield chosen


class _Map(_Unary):
    def __init__(self, input_dataset: Dataset, fn: Callable, threads: int):
        super().__init__(input_dataset)
        self._fn = DataFunction(fn, lambda: input_dataset.element_spec)
        self._threads = threads
        self._spec_cache: Any = None

    def _call(self, element: Any) -> Any:
        return _normalize_element(self._fn(element))

    def _iter(self) -> Iterator:
        if self._threads == 1:
            return (self._call(e) for e in self._input)
        return self._parallel()

    def _parallel(self) -> Iterator:
        # The input is read on the consuming thread and up to `threads` elements are in flight
        # on the pool; results are taken from the left of the window, so order is preserved.
        pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="tfdata-map")
        window: deque = deque()
        it = iter(self._input)
        exhausted = False
        try:
            while True:
                while not exhausted and len(window) < self._threads:
                    try:
                        element = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    window.append(pool.submit(self._call, element))
                if not window:
                    return
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            _close(it)

    def _spec(self) -> Any:
        if self._spec_cache is None:
            for element in self._input.take(1):
                out = self._call(element)
                self._spec_cache = map_structure(spec_of, out)
                break
            else:
                raise ValueError("element_spec of a map over an empty dataset is unknown")
        return self._spec_cache


class _FlatMap(_Unary):
    def __init__(self, input_dataset: Dataset, fn: Callable):
        super().__init__(input_dataset)
        self._fn = fn

    def _iter(self) -> Iterator:
        for element in self._input:
            inner = _apply(self._fn, element)
            if not isinstance(inner, Dataset):
                raise TypeError(f"flat_map's function must return a Dataset, got "
                                f"{type(inner).__name__}")
            yield from inner

    def _spec(self) -> Any:
        for element in self._input.take(1):
            return _apply(self._fn, element).element_spec
        raise ValueError("element_spec of a flat_map over an empty dataset is unknown")

    def cardinality(self) -> int:
        return UNKNOWN_CARDINALITY


class _Filter(_Unary):
    def __init__(self, input_dataset: Dataset, predicate: Callable):
        super().__init__(input_dataset)
        self._predicate = DataFunction(predicate, lambda: input_dataset.element_spec)

    def _iter(self) -> Iterator:
        for element in self._input:
            if bool(np.asarray(self._predicate(element))):
                yield element

    def cardinality(self) -> int:
        n = self._input.cardinality()
        return n if n in (0, INFINITE_CARDINALITY) else UNKNOWN_CARDINALITY


_END = object()


class _Prefetch(_Unary):
    def __init__(self, input_dataset: Dataset, buffer_size: int):
        super().__init__(input_dataset)
        self._buffer_size = buffer_size

    def _iter(self) -> Iterator:
        # A daemon producer thread fills a bounded queue. It checks `stop` while waiting so an
        # abandoned iterator (break out of a loop, garbage collection) ends it promptly. The
        # thread starts at the first next(), so an iterator never used starts nothing.
        q: queue.Queue = queue.Queue(maxsize=self._buffer_size)
        stop = threading.Event()
        thread = threading.Thread(target=_produce, args=(self._input, q, stop), daemon=True,
                                  name="tfdata-prefetch")
        thread.start()
        try:
            while True:
                element, exc = q.get()
                if element is _END:
                    if exc is not None:
                        raise exc
                    return
                yield element
        finally:
            stop.set()
            # Free the producer if it is blocked on a full queue.
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass


def _produce(dataset: Dataset, q: queue.Queue, stop: threading.Event) -> None:
    it = None
    try:
        it = iter(dataset)
        for element in it:
            if not _put(q, (element, None), stop):
                return
        _put(q, (_END, None), stop)
    except BaseException as exc:  # noqa: BLE001 -- handed to the consumer, which re-raises
        _put(q, (_END, exc), stop)
    finally:
        _close(it)


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


class _Repeat(_Unary):
    def __init__(self, input_dataset: Dataset, count: int):
        super().__init__(input_dataset)
        self._count = count

    def _iter(self) -> Iterator:
        passes = itertools.count() if self._count == -1 else range(self._count)
        for _ in passes:
            produced = False
            for element in self._input:
                produced = True
                yield element
            if not produced:
                return  # repeating an empty dataset forever would hang

    def cardinality(self) -> int:
        n = self._input.cardinality()
        if self._count == 0 or n == 0:
            return 0
        if self._count == -1:
            return INFINITE_CARDINALITY if n != UNKNOWN_CARDINALITY else UNKNOWN_CARDINALITY
        return n * self._count if n >= 0 else n


class _Take(_Unary):
    def __init__(self, input_dataset: Dataset, count: int):
        super().__init__(input_dataset)
        self._count = count

    def _iter(self) -> Iterator:
        if self._count == -1:
            return iter(self._input)
        return _closing_islice(self._input, 0, self._count, 1)

    def cardinality(self) -> int:
        n = self._input.cardinality()
        if self._count == -1:
            return n
        if n == INFINITE_CARDINALITY:
            return self._count
        return min(n, self._count) if n >= 0 else UNKNOWN_CARDINALITY


class _Skip(_Unary):
    def __init__(self, input_dataset: Dataset, count: int):
        super().__init__(input_dataset)
        self._count = count

    def _iter(self) -> Iterator:
        if self._count == -1:
            return iter(())
        return _closing_islice(self._input, self._count, None, 1)

    def cardinality(self) -> int:
        n = self._input.cardinality()
        if self._count == -1:
            return 0
        return max(n - self._count, 0) if n >= 0 else n


class _Shard(_Unary):
    def __init__(self, input_dataset: Dataset, num_shards: int, index: int):
        super().__init__(input_dataset)
        self._num_shards = num_shards
        self._index = index

    def _iter(self) -> Iterator:
        return _closing_islice(self._input, self._index, None, self._num_shards)

    def cardinality(self) -> int:
        n = self._input.cardinality()
        if n < 0:
            return n
        return max(0, -(-(n - self._index) // self._num_shards))


def _close(it: Any) -> None:
    """Close an input iterator that is a generator, ending the threads of its pipeline."""
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _closing_islice(dataset: Dataset, start: int, stop: int | None, step: int) -> Iterator:
    # islice alone would leave the input iterator (and its threads) open when `stop` is hit.
    it = iter(dataset)
    try:
        yield from itertools.islice(it, start, stop, step)
    finally:
        _close(it)


class _Concatenate(Dataset):
    def __init__(self, first: Dataset, second: Dataset):
        self._first = first
        self._second = second

    def _iter(self) -> Iterator:
        yield from self._first
        yield from self._second

    def _spec(self) -> Any:
        return self._first.element_spec

    def cardinality(self) -> int:
        a, b = self._first.cardinality(), self._second.cardinality()
        if INFINITE_CARDINALITY in (a, b):
            return INFINITE_CARDINALITY
        if UNKNOWN_CARDINALITY in (a, b):
            return UNKNOWN_CARDINALITY
        return a + b


class _Cache(_Unary):
    def __init__(self, input_dataset: Dataset, filename: str):
        super().__init__(input_dataset)
        self._filename = filename
        self._elements: list | None = None
        self._lock = threading.Lock()

    def _iter(self) -> Iterator:
        if self._elements is None and self._filename and os.path.exists(self._filename):
            with open(self._filename, "rb") as f:
                self._elements = pickle.load(f)
        if self._elements is not None:
            return iter(self._elements)
        return self._record()

    def _record(self) -> Iterator:
        seen = []
        for element in self._input:
            seen.append(element)
            yield element
        with self._lock:
            if self._elements is None:
                self._elements = seen
                if self._filename:
                    from ..checkpoint import atomic_write
                    atomic_write(self._filename, lambda f: pickle.dump(seen, f, protocol=5))

    def cardinality(self) -> int:
        return len(self._elements) if self._elements is not None \
            else self._input.cardinality()


# --- graph mode ---------------------------------------------------------------------------------

def _pipeline(dataset: Any) -> Iterator:
    """Every Dataset node of ``dataset``'s pipeline, each once."""
    stack = [dataset]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen or not isinstance(node, Dataset):
            continue
        seen.add(id(node))
        yield node
        for attr in ("_input", "_first", "_second"):
            child = getattr(node, attr, None)
            if child is not None:
                stack.append(child)
        stack.extend(getattr(node, "_datasets", ()))


def advance_to_epoch(dataset: Any, epoch: int) -> None:
    """Make every reshuffling ``shuffle`` in ``dataset``'s pipeline shuffle its next pass as
    its iteration number ``epoch``.

    Keras's ``fit`` calls this at the start of each epoch, so epoch ``e`` always sees the same
    order, whatever iterated the dataset before (an element_spec probe, a resumed run).
    """
    for node in _pipeline(dataset):
        if isinstance(node, _Shuffle):
            with node._lock:
                node._next_epoch = int(epoch)


def share_shuffle_seeds(dataset: Any, broadcast: Callable[[Any], Any]) -> None:
    """Give every unseeded ``shuffle`` in ``dataset``'s pipeline the seed the chief drew.

    ``broadcast(obj)`` returns the chief's ``obj`` on every worker (a collective: every worker
    calls this for the same pipeline). Workers then iterate the same global order, which a
    strategy needs to shard each global batch, as TensorFlow's multi-worker tutorials assume.
    """
    drawn = [node for node in _pipeline(dataset) if isinstance(node, _Shuffle)
             and node._seed_drawn]
    seeds = broadcast([node._seed for node in drawn])
    if len(seeds) != len(drawn):
        raise ValueError(f"the chief's dataset has {len(seeds)} unseeded shuffle() calls but "
                         f"this worker's has {len(drawn)}: build the same pipeline everywhere")
    for node, seed in zip(drawn, seeds):
        node._seed = int(seed)
        node._seed_drawn = False


def cardinality(dataset: Dataset) -> int:
    """``tf.data.experimental.cardinality(dataset)``."""
    return dataset.cardinality()
