"""Variables (state kept per Session), get_variable with variable scopes and reuse, initializers."""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import FailedPreconditionError, InvalidArgumentError
from . import distribution
from . import dtypes as _dt
from . import ops as _ops
from .graph import GraphKeys, Tensor, TensorShape, as_shape, get_default_graph
from .ops.base import _graph_of, _make1, kernel

# --- initializers ------------------------------------------------------------------------------

class Initializer:
    """Base class: ``init(shape, dtype=None, partition_info=None)`` returns an initial Tensor."""

    def __init__(self, dtype: Any = _dt.float32):
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        return cls(**config)

    def _dt(self, dtype: Any) -> _dt.DType:
        return _dt.as_dtype(dtype) if dtype is not None else self.dtype


class Zeros(Initializer):
    def __call__(self, shape, dtype=None, partition_info=None):
        return _ops.zeros(shape, self._dt(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None, partition_info=None):
        return _ops.ones(shape, self._dt(dtype))


class Constant(Initializer):
    def __init__(self, value: Any = 0, dtype: Any = _dt.float32, verify_shape: bool = False):
        super().__init__(dtype)
        self.value = value
        self.verify_shape = verify_shape

    def __call__(self, shape, dtype=None, partition_info=None):
        return _ops.constant(self.value, self._dt(dtype), shape=shape,
                             verify_shape=self.verify_shape)

    def get_config(self):
        return {"value": self.value, "dtype": self.dtype.name}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None,
                 dtype: Any = _dt.float32):
        super().__init__(dtype)
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None, partition_info=None):
        return _ops.random_normal(shape, self.mean, self.stddev, self._dt(dtype), self.seed)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed,
                "dtype": self.dtype.name}


class RandomUniform(Initializer):
    def __init__(self, minval: float = 0.0, maxval: float | None = None, seed: int | None = None,
                 dtype: Any = _dt.float32):
        super().__init__(dtype)
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=None, partition_info=None):
        return _ops.random_uniform(shape, self.minval, self.maxval, self._dt(dtype), self.seed)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed,
                "dtype": self.dtype.name}


class TruncatedNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None,
                 dtype: Any = _dt.float32):
        super().__init__(dtype)
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None, partition_info=None):
        return _ops.truncated_normal(shape, self.mean, self.stddev, self._dt(dtype), self.seed)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed,
                "dtype": self.dtype.name}


def fans(shape: Any) -> tuple[float, float]:
    """(fan_in, fan_out) of a weight of ``shape``: a matrix (in, out), a conv kernel
    (..., in, out) times its receptive field, a vector its length twice, a scalar (1, 1)."""
    shape = list(shape)
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = float(np.prod(shape[:-2])) if len(shape) > 2 else 1.0
    return shape[-2] * receptive, shape[-1] * receptive


# The standard deviation of a standard normal truncated to two standard deviations.
TRUNCATED_NORMAL_STDDEV = 0.87962566103423978


def variance_scaling_rule(scale: float, mode: str, distribution: str) -> str:
    """VarianceScaling's arguments checked (the error names the bad one); returns the
    distribution, with TF's alias 'normal' as 'truncated_normal'."""
    if scale <= 0:
        raise ValueError(f"VarianceScaling: scale must be positive, got {scale}")
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"VarianceScaling: mode must be fan_in, fan_out or fan_avg, "
                         f"got {mode!r}")
    if distribution == "normal":
        distribution = "truncated_normal"
    if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
        raise ValueError(f"VarianceScaling: distribution must be truncated_normal, "
                         f"untruncated_normal or uniform, got {distribution!r}")
    return distribution


def variance_scaling_spread(shape: Any, scale: float, mode: str, distribution: str) -> float:
    """The spread of VarianceScaling's draw for ``shape``, giving variance ``scale / n``
    (n = fan_in, fan_out or their mean, at least 1): the uniform's limit, or the normal's
    standard deviation (before truncation, for truncated_normal)."""
    fan_in, fan_out = fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, n)
    if distribution == "uniform":
        return math.sqrt(3.0 * variance)
    if distribution == "truncated_normal":
        return math.sqrt(variance) / TRUNCATED_NORMAL_STDDEV
    return math.sqrt(variance)


class VarianceScaling(Initializer):
    """Random values with variance ``scale / n`` (n = fan_in, fan_out or their average)."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 dtype: Any = _dt.float32):
        super().__init__(dtype)
        distribution = variance_scaling_rule(scale, mode, distribution)
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype=None, partition_info=None):
        dims = as_shape(shape).as_list()
        spread = variance_scaling_spread(dims, self.scale, self.mode, self.distribution)
        dt = self._dt(dtype)
        if self.distribution == "uniform":
            return _ops.random_uniform(dims, -spread, spread, dt, self.seed)
        if self.distribution == "truncated_normal":
            return _ops.truncated_normal(dims, 0.0, spread, dt, self.seed)
        return _ops.random_normal(dims, 0.0, spread, dt, self.seed)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed, "dtype": self.dtype.name}


class GlorotUniform(VarianceScaling):
    def __init__(self, seed: int | None = None, dtype: Any = _dt.float32):
        super().__init__(1.0, "fan_avg", "uniform", seed, dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None, dtype: Any = _dt.float32):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


def he_normal(seed: int | None = None) -> VarianceScaling:
    return VarianceScaling(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed: int | None = None) -> VarianceScaling:
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


zeros_initializer = Zeros
ones_initializer = Ones
constant_initializer = Constant
random_normal_initializer = RandomNormal
random_uniform_initializer = RandomUniform
truncated_normal_initializer = TruncatedNormal
glorot_uniform_initializer = GlorotUniform
glorot_normal_initializer = GlorotNormal
variance_scaling_initializer = VarianceScaling


# --- variables ---------------------------------------------------------------------------------

class _VariableMeta(type):
    """Routes ``Variable(...)`` through the active ``variable_creator_scope`` creators."""

    def __call__(cls, *args: Any, **kwargs: Any):
        if cls is not Variable:
            return super().__call__(*args, **kwargs)
        g = get_default_graph()
        home = g._variable_home
        if home is not g:  # tracing a tf.function: the variable lives in the eager context
            initial = args[0] if args else kwargs.get("initial_value")
            if isinstance(initial, Tensor) and not initial.graph._eager:
                raise ValueError("a tf.Variable created inside a tf.function needs an initial "
                                 "value that does not depend on the function's tensors: pass "
                                 "a NumPy value or a callable, or create it outside")
            with home.as_default():
                return cls(*args, **kwargs)
        creators = list(g._creator_stack)
        if not creators:
            return super().__call__(*args, **kwargs)
        kwargs = _VARIABLE_SIGNATURE.bind(None, *args, **kwargs).arguments
        kwargs.pop("self", None)
        kwargs.pop("kwargs", None)

        def default(**kw: Any) -> Variable:
            return type.__call__(cls, **kw)

        chain = default
        for creator in creators:  # outermost first, so the innermost creator is called first
            chain = _bind_creator(creator, chain)
        return chain(**kwargs)


def _bind_creator(creator: Callable, next_creator: Callable) -> Callable:
    return lambda **kw: creator(next_creator, **kw)


class Variable(Tensor, metaclass=_VariableMeta):
    """A TF1 variable: a named tensor whose value lives in each Session and survives runs.

    It is the output tensor of its ``VariableV2`` op (reading it reads the Session's value);
    ``initializer`` assigns ``initial_value``. Reading it before that raises
    ``tf.errors.FailedPreconditionError`` naming it.
    """

    def __init__(self, initial_value: Any = None, trainable: bool = True,
                 collections: Any = None, validate_shape: bool = True,
                 caching_device: Any = None, name: str | None = None, variable_def: Any = None,
                 dtype: Any = None, expected_shape: Any = None, import_scope: Any = None,
                 constraint: Any = None, use_resource: Any = None, synchronization: Any = None,
                 aggregation: Any = None, shape: Any = None):
        if initial_value is None:
            raise ValueError("Variable needs initial_value (a value, Tensor or callable)")
        if variable_def is not None:
            raise NotImplementedError("Variable(variable_def=...) is not supported")
        g = initial_value.graph if isinstance(initial_value, Tensor) else get_default_graph()
        dtype = _dt.as_dtype(dtype) if dtype is not None else None
        with g.control_dependencies(None), g.name_scope(name or "Variable") as scope:
            full = scope[:-1]
            if callable(initial_value) and not isinstance(initial_value, Tensor):
                with g.name_scope("Initializer"):
                    initial_value = initial_value()
            if isinstance(initial_value, Tensor):
                init = initial_value if dtype is None else _ops.cast(initial_value, dtype)
            else:
                init = _ops.convert_to_tensor(initial_value, dtype=dtype, name="initial_value")
            ctx = distribution.current()
            if ctx is not None:
                init = _ops.convert_to_tensor(ctx.initial_value(full, init))
            var_shape = as_shape(shape) if shape is not None else init.shape
            if validate_shape and not var_shape.is_fully_defined():
                raise ValueError(f"initial value of variable {full!r} has shape {var_shape}, "
                                 f"which is not fully defined; pass a fully known shape or "
                                 f"validate_shape=False")
            index = len(g._variables)
            static = tuple(var_shape.as_list()) if var_shape.is_fully_defined() else None
            op = g._create_op("VariableV2", (), {"index": index, "var_name": full,
                                                 "shape": static, "dtype": init.dtype},
                              full, [], absolute_name=True)
            Tensor.__init__(self, op, 0, init.dtype, var_shape)
            op._outputs = (self,)
            self._index = index
            self._initial_value = init
            self._trainable = bool(trainable)
            self._constraint = constraint
            self._initializer_op = g._create_op(
                "Assign", (init,), {"index": index, "var_name": full,
                                    "validate_shape": bool(validate_shape), "shape": static},
                "Assign", [(init.dtype, var_shape)])
            self._snapshot = None
        g._variables.append(self)
        if collections is None:
            collections = [GraphKeys.GLOBAL_VARIABLES]
        if trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections = list(collections) + [GraphKeys.TRAINABLE_VARIABLES]
        g.add_to_collections(collections, self)

    # -- properties --
    @property
    def initializer(self):
        return self._initializer_op

    @property
    def initial_value(self) -> Tensor:
        return self._initial_value

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def constraint(self) -> Any:
        return self._constraint

    def initialized_value(self) -> Tensor:
        return self._initial_value

    def value(self) -> Tensor:
        return self

    def read_value(self) -> Tensor:
        return _ops.identity(self, name="read")

    def _as_graph_element(self) -> Tensor:
        return self

    def get_shape(self) -> TensorShape:
        return self._shape

    # -- state changes --
    def assign(self, value: Any, use_locking: bool = False, name: str | None = None,
               read_value: bool = True) -> Tensor:
        value = _ops.convert_to_tensor(value, dtype=self.dtype) if not isinstance(value, Tensor) \
            else value
        self._check_same_home(value)
        if value.dtype != self.dtype:
            raise TypeError(f"cannot assign a {value.dtype.name} value to variable "
                            f"{self._op.name!r} of dtype {self.dtype.name}")
        if not self._shape.is_compatible_with(value.shape):
            raise ValueError(f"cannot assign a value of shape {value.shape} to variable "
                             f"{self._op.name!r} of shape {self._shape}")
        static = tuple(self._shape.as_list()) if self._shape.is_fully_defined() else None
        return _make1("Assign", (value,), self.dtype, self._shape, name or "Assign",
                      {"index": self._index, "var_name": self._op.name,
                       "validate_shape": True, "shape": static})

    def _check_same_home(self, value: Tensor) -> None:
        # The update op goes where its value is; it must be a graph holding this variable
        # (its own, or a tf.function's graph of the eager context that holds it).
        target = _graph_of(value)
        if target._variable_home is not self._op._graph:
            where = "eagerly created" if self._op._graph._eager else "graph"
            raise ValueError(f"the {where} variable {self.name!r} cannot be updated from "
                             f"another graph; update it where it was created (eagerly, or in "
                             f"a tf.function)")

    def _update(self, op_type: str, value: Any, name: str | None) -> Tensor:
        value = value if isinstance(value, Tensor) else _ops.constant(value, self.dtype)
        self._check_same_home(value)
        if value.dtype != self.dtype:
            raise TypeError(f"{op_type}: value dtype {value.dtype.name} does not match variable "
                            f"{self._op.name!r} ({self.dtype.name})")
        return _make1(op_type, (value,), self.dtype, self._shape, name or op_type,
                      {"index": self._index, "var_name": self._op.name})

    def assign_add(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Tensor:
        return self._update("AssignAdd", delta, name)

    def assign_sub(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Tensor:
        return self._update("AssignSub", delta, name)

    def load(self, value: Any, session: Any = None) -> None:
        """Set this variable's value in ``session`` (default session) without adding ops."""
        from .session import _session_for
        sess = _session_for(session, self.graph)
        rt = sess._rt
        rt.reserve(self._index + 1)
        arr = np.array(value, dtype=self.dtype.np_dtype, copy=True, order="C")
        if self._shape.is_fully_defined() and arr.shape != tuple(self._shape.as_list()):
            raise ValueError(f"cannot load a value of shape {arr.shape} into variable "
                             f"{self._op.name!r} of shape {self._shape}")
        rt.set_variable(self._index, rt.xp.asarray(arr))

    # -- the checkpoint protocol (ringtrain.checkpoint.tracking) --
    def _checkpoint_state(self) -> np.ndarray:
        from .session import session_holding
        return np.array(session_holding(self.graph).run(self), copy=True)

    def _restore_checkpoint_state(self, value: Any) -> None:
        from .session import session_holding
        self.load(np.asarray(value), session_holding(self.graph))

    def __repr__(self) -> str:
        value = ""
        if self.graph._eager:
            array = self.numpy()
            value = f", numpy={array.item()!r}" if array.ndim == 0 else f", numpy={array!r}"
        return f"<tf.Variable '{self.name}' shape={self._shape} dtype={self.dtype.name}{value}>"

    __str__ = __repr__
    __hash__ = Tensor.__hash__


_VARIABLE_SIGNATURE = inspect.signature(Variable.__init__)


def assign(ref: Variable, value: Any, validate_shape: Any = None, use_locking: Any = None,
           name: str | None = None) -> Tensor:
    _check_var(ref, "assign")
    return ref.assign(value, name=name)


def assign_add(ref: Variable, value: Any, use_locking: Any = None, name: str | None = None
               ) -> Tensor:
    _check_var(ref, "assign_add")
    return ref.assign_add(value, name=name)


def assign_sub(ref: Variable, value: Any, use_locking: Any = None, name: str | None = None
               ) -> Tensor:
    _check_var(ref, "assign_sub")
    return ref.assign_sub(value, name=name)


def _check_var(ref: Any, fn: str) -> None:
    if not isinstance(ref, Variable):
        raise TypeError(f"tf.{fn} needs a Variable as ref, got {ref!r}")


@contextlib.contextmanager
def variable_creator_scope(variable_creator: Callable) -> Iterator[None]:
    """Within this block ``tf.Variable(...)`` calls ``variable_creator(next_creator, **kwargs)``."""
    g = get_default_graph()
    g._creator_stack.append(variable_creator)
    try:
        yield
    finally:
        g._creator_stack.remove(variable_creator)


# --- variable scopes and get_variable ----------------------------------------------------------

class _ReuseMode:
    def __repr__(self) -> str:
        return "tf.AUTO_REUSE"


AUTO_REUSE = _ReuseMode()


class VariableScope:
    """A variable scope: name prefix of get_variable and its defaults (reuse, initializer...)."""

    def __init__(self, reuse: Any, name: str = "", initializer: Any = None,
                 regularizer: Any = None, dtype: Any = _dt.float32,
                 original_name_scope: str = "", constraint: Any = None):
        self._reuse = reuse
        self._name = name
        self.initializer = initializer
        self.regularizer = regularizer
        self.dtype = _dt.as_dtype(dtype) if dtype is not None else _dt.float32
        self.original_name_scope = original_name_scope
        self.constraint = constraint

    @property
    def name(self) -> str:
        return self._name

    @property
    def reuse(self) -> Any:
        return self._reuse

    def reuse_variables(self) -> None:
        """Make get_variable in this scope return existing variables from now on."""
        self._reuse = True

    def set_initializer(self, initializer: Any) -> None:
        self.initializer = initializer

    def set_regularizer(self, regularizer: Any) -> None:
        self.regularizer = regularizer

    def set_dtype(self, dtype: Any) -> None:
        self.dtype = _dt.as_dtype(dtype)

    def global_variables(self) -> list:
        return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES,
                                                  self._name + "/" if self._name else None)

    def trainable_variables(self) -> list:
        return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES,
                                                  self._name + "/" if self._name else None)

    def get_variable(self, name: str, *args: Any, **kwargs: Any) -> Variable:
        return get_variable(name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<VariableScope {self._name!r} reuse={self._reuse}>"


def get_variable_scope() -> VariableScope:
    g = get_default_graph()
    if g._var_scope_stack:
        return g._var_scope_stack[-1]
    if g._root_var_scope is None:
        g._root_var_scope = VariableScope(False)
    return g._root_var_scope


@contextlib.contextmanager
def variable_scope(name_or_scope: Any = None, default_name: str | None = None, values: Any = None,
                   initializer: Any = None, regularizer: Any = None, caching_device: Any = None,
                   partitioner: Any = None, custom_getter: Any = None, reuse: Any = None,
                   dtype: Any = None, use_resource: Any = None, constraint: Any = None,
                   auxiliary_name_scope: bool = True) -> Iterator[VariableScope]:
    """TF1's variable scope: prefixes get_variable names and sets reuse (inherited by children).

    Also opens a name scope of the same name for the ops created inside (uniquified, so a
    second ``variable_scope("model", reuse=True)`` puts its ops under ``model_1/``).
    """
    if custom_getter is not None or partitioner is not None:
        raise NotImplementedError("variable_scope: custom_getter and partitioner are not "
                                  "supported")
    g = get_default_graph()
    parent = get_variable_scope()
    if reuse is False:
        reuse = None  # reuse=False means "inherit" in TF1: a reusing parent cannot be undone
    if isinstance(name_or_scope, VariableScope):
        base = name_or_scope
        new_name = base.name
        name_ctx = g.name_scope(base.original_name_scope or None) if auxiliary_name_scope \
            else contextlib.nullcontext("")
        inherited = base.reuse
        init = initializer if initializer is not None else base.initializer
        reg = regularizer if regularizer is not None else base.regularizer
        dt = dtype if dtype is not None else base.dtype
    else:
        if name_or_scope is None:
            if default_name is None:
                raise ValueError("variable_scope needs name_or_scope or default_name")
            prefix = (parent.name + "/" if parent.name else "") + default_name
            count = g._var_scope_counts.get(prefix, 0)
            g._var_scope_counts[prefix] = count + 1
            local = default_name if count == 0 else f"{default_name}_{count}"
        else:
            local = str(name_or_scope)
        new_name = (parent.name + "/" if parent.name else "") + local
        name_ctx = g.name_scope(local) if auxiliary_name_scope else contextlib.nullcontext("")
        inherited = parent.reuse
        init = initializer if initializer is not None else parent.initializer
        reg = regularizer if regularizer is not None else parent.regularizer
        dt = dtype if dtype is not None else parent.dtype
    if parent.reuse is True or parent.reuse is AUTO_REUSE:
        new_reuse = parent.reuse if reuse is None or parent.reuse is True else reuse
    else:
        new_reuse = reuse if reuse is not None else inherited
    with name_ctx as ns:
        scope = VariableScope(new_reuse, new_name, init, reg, dt,
                              original_name_scope=ns or (new_name + "/"), constraint=constraint)
        g._var_scope_stack.append(scope)
        try:
            yield scope
        finally:
            g._var_scope_stack.pop()


def get_variable(name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                 regularizer: Any = None, trainable: bool | None = None, collections: Any = None,
                 caching_device: Any = None, partitioner: Any = None, validate_shape: bool = True,
                 use_resource: Any = None, custom_getter: Any = None, constraint: Any = None,
                 synchronization: Any = None, aggregation: Any = None) -> Variable:
    """Get an existing variable (when the scope reuses) or create a new one (when it doesn't).

    Raises ValueError on accidental reuse (the name exists and the scope does not reuse) and
    on reuse of a missing variable, like TensorFlow.
    """
    if not name:
        raise ValueError("get_variable needs a name")
    g = get_default_graph()
    scope = get_variable_scope()
    full = f"{scope.name}/{name}" if scope.name else name
    reuse = scope.reuse
    existing = g._var_store.get(full)
    if existing is not None:
        if reuse is not True and reuse is not AUTO_REUSE:
            raise ValueError(f"Variable {full} already exists, disallowed. Did you mean to set "
                             f"reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
        if shape is not None and not existing.shape.is_compatible_with(shape):
            raise ValueError(f"Trying to share variable {full}, but specified shape "
                             f"{as_shape(shape)} and found shape {existing.shape}.")
        if dtype is not None and _dt.as_dtype(dtype) != existing.dtype:
            raise ValueError(f"Trying to share variable {full}, but specified dtype "
                             f"{_dt.as_dtype(dtype).name} and found dtype "
                             f"{existing.dtype.name}.")
        return existing
    if reuse is True:
        raise ValueError(f"Variable {full} does not exist, or was not created with "
                         f"tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in "
                         f"VarScope?")
    if partitioner is not None or custom_getter is not None:
        raise NotImplementedError("get_variable: partitioner and custom_getter are not supported")
    dtype = _dt.as_dtype(dtype) if dtype is not None else None
    if initializer is None:
        initializer = scope.initializer
    if isinstance(initializer, type):
        initializer = initializer(dtype=dtype or scope.dtype)
    if isinstance(initializer, Tensor):
        if shape is not None and not initializer.shape.is_compatible_with(shape):
            raise ValueError(f"get_variable {full}: initializer tensor has shape "
                             f"{initializer.shape}, but shape {as_shape(shape)} was given")
        init_value: Any = initializer if dtype is None else _ops.cast(initializer, dtype)
    elif initializer is not None and not callable(initializer):
        init_value = _ops.constant(initializer, dtype) if dtype is not None else \
            _ops.constant(initializer)
        if shape is not None and not init_value.shape.is_compatible_with(shape):
            raise ValueError(f"get_variable {full}: initial value has shape "
                             f"{init_value.shape}, but shape {as_shape(shape)} was given")
    else:
        dtype = dtype or scope.dtype
        if initializer is None:
            initializer = GlorotUniform() if dtype.is_floating else Zeros()
        if shape is None:
            raise ValueError(f"get_variable {full}: shape is required when the initializer is "
                             f"not a tensor or a value")
        shape = as_shape(shape)
        if not shape.is_fully_defined():
            raise ValueError(f"get_variable {full}: shape {shape} must be fully defined")
        dims = shape.as_list()
        init_fn = initializer

        def init_value():
            return init_fn(dims, dtype=dtype)
    if trainable is None:
        trainable = True
    with g.name_scope(None):
        var = Variable(initial_value=init_value, name=full, trainable=trainable,
                       collections=collections, validate_shape=validate_shape,
                       constraint=constraint)
    g._var_store[full] = var
    regularizer = regularizer if regularizer is not None else scope.regularizer
    if regularizer is not None:
        with g.name_scope(full + "/Regularizer/"):
            loss = regularizer(var)
        if loss is not None:
            g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
    return var


# --- collections of variables ------------------------------------------------------------------

def global_variables(scope: str | None = None) -> list:
    return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


all_variables = global_variables


def trainable_variables(scope: str | None = None) -> list:
    return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def local_variables(scope: str | None = None) -> list:
    return get_default_graph().get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def model_variables(scope: str | None = None) -> list:
    return get_default_graph().get_collection(GraphKeys.MODEL_VARIABLES, scope)


def variables_initializer(var_list: list, name: str = "init"):
    """One op that runs the initializers of ``var_list`` (in creation order)."""
    var_list = list(var_list)
    if not var_list:
        return _ops.no_op(name=name)
    return _ops.group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer():
    """An op that initializes every global variable of the default graph."""
    return variables_initializer(global_variables(), name="init")


initialize_all_variables = global_variables_initializer


def local_variables_initializer():
    return variables_initializer(local_variables(), name="init_local")


# --- kernels of the state ops (Variable reads, Assign, AssignAdd, AssignSub) ------------------

def _reader(rt, index: int, var_name: str):
    store = rt.store
    op = rt.op

    def read():
        v = store[index]
        if v is None:
            raise FailedPreconditionError(None, op, f"Attempting to use uninitialized value "
                                                    f"{var_name}: run its initializer first "
                                                    f"(tf.global_variables_initializer())")
        return v
    return read


@kernel("VariableV2")
def _variable(rt, index, var_name, **_):
    return _reader(rt, index, var_name)


@kernel("Assign")
def _assign(rt, index, var_name, validate_shape=True, shape=None):
    xp = rt.xp
    op = rt.op

    def run(value):
        if validate_shape and shape is not None and xp.shape(value) != shape:
            raise InvalidArgumentError(None, op, f"Assign to {var_name}: value of shape "
                                                 f"{xp.shape(value)} does not match the "
                                                 f"variable's shape {shape}")
        # A private, contiguous copy: in-place updates must never touch a caller's array.
        return rt.set_variable(index, xp.array(value, dtype=op.outputs[0].dtype.np_dtype,
                                               copy=True, order="C"))
    return run


@kernel("AssignAdd", "AssignSub")
def _assign_add(rt, index, var_name):
    read = _reader(rt, index, var_name)
    add = rt.op.type == "AssignAdd"

    def run(value):
        v = read()
        if add:
            v += value
        else:
            v -= value
        return v
    return run
