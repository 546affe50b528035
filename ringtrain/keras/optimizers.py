"""tf.keras.optimizers: Keras's names and defaults, backed by the core's tf.train optimizers.

A Keras optimizer holds its hyper-parameters; a model's ``compile``/``fit`` asks it for a core
optimizer in the model's graph (under the model's distribution context, so gradients are
all-reduced in ``apply_gradients`` when a strategy is active). The update rules are the core's,
which match Keras's: Adam's epsilon-hat form, SGD momentum ``v = m*v - lr*g``, RMSprop with a
zero-initialised mean square.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from .. import core
from . import backend
from .registry import resolve


class Optimizer:
    """Base class. ``learning_rate`` can be read and set (also while training, e.g. by a
    callback): it lives in a variable of the model's graph once the model is compiled."""

    def __init__(self, learning_rate: float = 0.001, name: str = "Optimizer", **kwargs: Any):
        if "lr" in kwargs:  # the old Keras spelling
            learning_rate = kwargs.pop("lr")
        for key in ("decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if kwargs.get(key) not in (None, 0, 0.0):
                raise ValueError(f"{type(self).__name__}({key}=...) is not supported")
            kwargs.pop(key, None)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        self._lr_value = float(learning_rate)
        self.name = name
        self._lr_var = None
        self._core = None
        self.iterations = None

    @property
    def learning_rate(self) -> LearningRate:
        """The learning rate as Keras gives it: a variable (``K.get_value``/``K.set_value``,
        ``.numpy()``, ``float()``, ``assign``). Assigning a number sets it."""
        return LearningRate(self)

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._set_lr(float(backend.get_value(value)) if isinstance(value, LearningRate)
                     else float(value))

    lr = learning_rate

    def _get_lr(self) -> float:
        if self._lr_var is not None:
            return float(backend.get_value(self._lr_var))
        return self._lr_value

    def _set_lr(self, value: float) -> None:
        self._lr_value = float(value)
        if self._lr_var is not None:
            backend.set_value(self._lr_var, self._lr_value)

    def _build(self, graph: Any) -> Any:
        """Create (once) the core optimizer for ``graph``; call inside the graph's scope."""
        if self._core is not None:
            if self._lr_var.graph is not graph._variable_home:
                raise ValueError(f"optimizer {self.name!r} is already used by another model; "
                                 f"give each model its own optimizer object")
            return self._core
        with core.name_scope(None):
            self._lr_var = core.Variable(self._lr_value, name=f"{self.name}/learning_rate",
                                         trainable=False, dtype=core.float32)
            self.iterations = core.Variable(0, name=f"{self.name}/iterations", trainable=False,
                                            dtype=core.int64)
        self._core = self._make(self._lr_var)
        return self._core

    def _make(self, lr: Any) -> Any:
        raise NotImplementedError

    # -- TensorFlow 2's custom training loop --
    def apply_gradients(self, grads_and_vars: Any, name: str | None = None, **_: Any) -> Any:
        """Update the variables with their gradients (eagerly, or inside a tf.function) and
        count the step in ``iterations``. Under a distribution strategy the gradients are
        all-reduced first (summed across replicas inside ``strategy.run``, as TensorFlow)."""
        pairs = list(grads_and_vars)
        if not pairs:
            raise ValueError("apply_gradients got no (gradient, variable) pairs")
        home = pairs[0][1].graph
        with home.as_default():  # state is created eagerly, also while tracing a tf.function
            opt = self._build(home)
            done = self.__dict__.setdefault("_has_slots", set())
            fresh = [v for g, v in pairs if g is not None and id(v) not in done]
            if fresh:
                with home.control_dependencies(None):
                    opt._create_slots(fresh)
                for var, value in self._after_minimize(fresh):
                    var.assign(np.full(var.shape.as_list(), value, var.dtype.as_numpy_dtype))
                done.update(id(v) for v in fresh)
        apply = opt.apply_gradients(pairs, name=name)
        self.iterations.assign_add(core.constant(1, core.int64))
        return apply

    def minimize(self, loss: Any, var_list: Any, tape: Any = None) -> Any:
        """``apply_gradients`` of the gradients of ``loss`` (a callable when eager, recorded
        on ``tape`` or a new one) with respect to ``var_list``."""
        var_list = list(var_list() if callable(var_list) else var_list)
        if callable(loss):
            from ..core.eager import GradientTape
            recorder = GradientTape() if tape is None else tape
            with recorder if tape is None else contextlib.nullcontext():
                loss = loss()
            tape = recorder
        elif tape is None:
            raise ValueError("minimize needs a callable loss or the tape that recorded it")
        return self.apply_gradients(zip(tape.gradient(loss, var_list), var_list))

    def _after_minimize(self, var_list: list) -> list:
        """Extra (variable, value) pairs to set after slots exist (e.g. RMSprop's zero init)."""
        return []

    def variables(self) -> list:
        """The optimizer's state variables: slots, learning rate, iteration count."""
        out = [self._lr_var, self.iterations] if self._lr_var is not None else []
        if self._core is not None and hasattr(self._core, "variables"):
            out.extend(v for v in self._core.variables() if all(v is not o for o in out))
        return out

    # -- the checkpoint protocol (ringtrain.checkpoint.tracking): variables by name --
    def _checkpoint_state(self) -> dict:
        variables = self.variables()
        return dict(zip((v.op.name for v in variables), backend.batch_get_value(variables)))

    def _restore_checkpoint_state(self, state: dict) -> None:
        variables = self.variables()
        missing = [v.op.name for v in variables if v.op.name not in state]
        if missing:
            raise KeyError(f"the optimizer in the checkpoint has no value for {missing}")
        backend.batch_set_value(variables, [state[v.op.name] for v in variables])

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self._get_lr(), **self._config()}

    def _config(self) -> dict:
        return {}


class LearningRate:
    """An optimizer's learning rate, read and written through the optimizer (so it works
    before compile, when it is a number, and after, when it is a variable of the model's
    graph). Behaves as a float in arithmetic and comparisons."""

    dtype = "float32"

    def __init__(self, optimizer: Optimizer):
        self._optimizer = optimizer

    @property
    def name(self) -> str:
        return f"{self._optimizer.name}/learning_rate"

    def numpy(self) -> np.float32:
        return np.float32(self._optimizer._get_lr())

    def value(self) -> np.float32:
        return self.numpy()

    def assign(self, value: Any) -> None:
        self._optimizer._set_lr(float(value))

    def __float__(self) -> float:
        return self._optimizer._get_lr()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.numpy(), dtype=dtype)

    def __repr__(self) -> str:
        return f"<LearningRate {self.name!r} value={self._optimizer._get_lr()!r}>"

    def __eq__(self, other: object) -> bool:
        return float(self) == other

    def __hash__(self) -> int:
        return id(self._optimizer)


def _float_op(name: str) -> None:
    def op(self: LearningRate, *others: Any) -> Any:
        return getattr(float(self), name)(*others)
    op.__name__ = name
    setattr(LearningRate, name, op)


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
              "__truediv__", "__rtruediv__", "__pow__", "__rpow__", "__neg__", "__lt__",
              "__le__", "__gt__", "__ge__", "__ne__", "__abs__", "__round__"):
    _float_op(_name)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum: ``v = m*v - lr*g; w += v``."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, name: str = "SGD", **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        if not 0 <= float(momentum) <= 1:
            raise ValueError(f"SGD momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _make(self, lr: Any) -> Any:
        # TF1's accumulator a = m*a + g, w -= lr*a equals Keras's v = -lr*a for a fixed rate.
        if self.momentum == 0 and not self.nesterov:
            return core.train.GradientDescentOptimizer(lr, name=self.name)
        return core.train.MomentumOptimizer(lr, self.momentum, use_nesterov=self.nesterov,
                                            name=self.name)

    def _config(self) -> dict:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name: str = "Adam",
                 **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        if amsgrad:
            raise ValueError("Adam(amsgrad=True) is not supported")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _make(self, lr: Any) -> Any:
        return core.train.AdamOptimizer(lr, beta1=self.beta_1, beta2=self.beta_2,
                                        epsilon=self.epsilon, name=self.name)

    def _config(self) -> dict:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, name: str = "RMSprop",
                 **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def _make(self, lr: Any) -> Any:
        return core.train.RMSPropOptimizer(lr, decay=self.rho, momentum=self.momentum,
                                           epsilon=self.epsilon, centered=self.centered,
                                           name=self.name)

    def _after_minimize(self, var_list: list) -> list:
        # TF1 starts the mean square at ones, Keras at zeros: reset the slots to Keras's value.
        pairs = []
        for var in var_list:
            slot = self._core.get_slot(var, "rms")
            if slot is not None:
                pairs.append((slot, 0.0))
        return pairs

    def _config(self) -> dict:
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, name: str = "Adagrad", **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _make(self, lr: Any) -> Any:
        return core.train.AdagradOptimizer(
            lr, initial_accumulator_value=self.initial_accumulator_value, name=self.name)


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) with Keras's defaults: lr 0.001, rho 0.95, epsilon 1e-7."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 name: str = "Adadelta", **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _make(self, lr: Any) -> Any:
        return core.train.AdadeltaOptimizer(lr, rho=self.rho, epsilon=self.epsilon,
                                            name=self.name)

    def _config(self) -> dict:
        return {"rho": self.rho, "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad,
            "adadelta": Adadelta}


def get(identifier: Any) -> Any:
    """A Keras optimizer from a name ('adam', 'sgd', 'rmsprop', 'adagrad') or an instance; a
    core ``tf.train`` optimizer is accepted as is."""
    return resolve(identifier, "optimizer", _BY_NAME, base=Optimizer,
                   adapt=lambda opt: opt if hasattr(opt, "minimize") else None)
