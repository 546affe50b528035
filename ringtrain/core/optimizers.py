"""The TF1 optimizers with TensorFlow 1's exact update rules, their slot variables, and the
in-place update kernels (ApplyAdam, ApplyMomentum, ...) that run those rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import distribution
from . import dtypes as _dt
from . import ops as _ops
from .gradients import gradients
from .graph import GraphKeys, Operation, Tensor, get_default_graph
from .ops.base import _make, kernel
from .session import session_holding
from .variables import Variable, _reader


class Optimizer:
    """Base class of the TF1 optimizers: compute_gradients, apply_gradients, minimize, slots.

    An optimizer remembers the distribution context active when it is constructed; its
    ``apply_gradients`` then lets that context aggregate (all-reduce) the gradients first.
    """

    GATE_NONE, GATE_OP, GATE_GRAPH = 0, 1, 2

    def __init__(self, use_locking: bool, name: str):
        if not name:
            raise ValueError("an optimizer needs a non-empty name")
        self._name = name
        self._use_locking = use_locking
        self._slots: dict[str, dict[Variable, Variable]] = {}
        self._non_slots: dict[tuple, Variable] = {}
        self._distribution = distribution.current()

    def get_name(self) -> str:
        return self._name

    # -- the three steps --
    def compute_gradients(self, loss: Tensor, var_list: Sequence[Variable] | None = None,
                          gate_gradients: int = GATE_OP, aggregation_method: Any = None,
                          colocate_gradients_with_ops: bool = False, grad_loss: Any = None
                          ) -> list[tuple[Tensor | None, Variable]]:
        """[(gradient or None, variable)] for ``var_list`` (default: the trainable variables)."""
        if callable(loss) and not isinstance(loss, Tensor):
            loss = loss()
        if not isinstance(loss, Tensor):
            raise TypeError(f"compute_gradients needs a loss Tensor, got {loss!r}")
        if var_list is None:
            var_list = [v for v in loss.graph.get_collection(GraphKeys.TRAINABLE_VARIABLES)]
        var_list = list(var_list)
        if not var_list:
            raise ValueError("No variables to optimize.")
        for v in var_list:
            if not isinstance(v, Variable):
                raise TypeError(f"var_list must contain Variables, got {v!r}")
        grads = gradients(loss, var_list, grad_ys=grad_loss)
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars: Any, global_step: Variable | None = None,
                        name: str | None = None) -> Operation:
        """An op applying the update to every variable with a gradient (and bumping the step)."""
        pairs = []
        for g, v in grads_and_vars:
            if not isinstance(v, Variable):
                raise TypeError(f"apply_gradients: expected (gradient, Variable) pairs, got "
                                f"variable {v!r}")
            if g is not None:
                g = _ops.convert_to_tensor(g, dtype=v.dtype) if not isinstance(g, Tensor) else g
                if g.dtype != v.dtype:
                    raise TypeError(f"gradient {g.name} ({g.dtype.name}) does not match "
                                    f"variable {v.op.name} ({v.dtype.name})")
            pairs.append((g, v))
        if self._distribution is not None:
            pairs = list(self._distribution.aggregate_gradients(pairs))
        pairs = [(g, v) for g, v in pairs if g is not None]
        if not pairs:
            names = [v.op.name for _, v in grads_and_vars]
            raise ValueError(f"No gradients provided for any variable, check your graph for ops "
                             f"that do not support gradients, between variables {names} and "
                             f"the loss")
        graph = pairs[0][1].graph
        with graph.control_dependencies(None):
            self._create_slots([v for _, v in pairs])
        with graph.name_scope(name or self._name) as scope:
            self._prepare()
            updates = []
            for g, v in pairs:
                with graph.name_scope("update_" + v.op.name):
                    updates.append(self._apply_dense(g, v))
            apply = self._finish(updates, scope[:-1].rsplit("/", 1)[-1])
        if global_step is None:
            return apply
        # apply.graph: a tf.function's graph holds the update, its variables are eager
        with apply.graph.control_dependencies([apply]):
            return global_step.assign_add(_ops.constant(1, global_step.dtype),
                                          name=name or self._name).op

    def minimize(self, loss: Tensor, global_step: Variable | None = None,
                 var_list: Sequence[Variable] | None = None, gate_gradients: int = GATE_OP,
                 aggregation_method: Any = None, colocate_gradients_with_ops: bool = False,
                 name: str | None = None, grad_loss: Any = None) -> Operation:
        """compute_gradients + apply_gradients: the op that does one training step."""
        gv = self.compute_gradients(loss, var_list, grad_loss=grad_loss)
        if all(g is None for g, _ in gv):
            raise ValueError(f"No gradients provided for any variable, check your graph for ops "
                             f"that do not support gradients, between variables "
                             f"{[v.op.name for _, v in gv]} and loss {loss.name}")
        return self.apply_gradients(gv, global_step=global_step, name=name)

    # -- slots --
    def get_slot_names(self) -> list[str]:
        return sorted(self._slots)

    def get_slot(self, var: Variable, name: str) -> Variable | None:
        return self._slots.get(name, {}).get(var)

    def variables(self) -> list[Variable]:
        """Every variable holding this optimizer's state (slots, beta powers), sorted by name."""
        out = list(self._non_slots.values())
        for per_var in self._slots.values():
            out.extend(per_var.values())
        return sorted(out, key=lambda v: v.op.name)

    # -- the checkpoint protocol (ringtrain.checkpoint.tracking): slots and steps by name --
    def _checkpoint_state(self) -> dict:
        variables = self.variables()
        if not variables:
            return {}
        values = session_holding(variables[0].graph).run(variables)
        return {v.op.name: np.array(value, copy=True) for v, value in zip(variables, values)}

    def _restore_checkpoint_state(self, state: dict) -> None:
        variables = self.variables()
        missing = [v.op.name for v in variables if v.op.name not in state]
        if missing:
            raise KeyError(f"the optimizer in the checkpoint has no value for {missing}")
        if variables:
            session = session_holding(variables[0].graph)
            for v in variables:
                v.load(np.asarray(state[v.op.name]), session)

    def _slot(self, var: Variable, slot_name: str, init_value: float = 0.0) -> Variable:
        per_var = self._slots.setdefault(slot_name, {})
        if var not in per_var:
            g = var.graph
            with g.as_default(), g.name_scope(None), g.device(var.device or None):
                shape = var.shape.as_list()
                per_var[var] = Variable(
                    _ops.fill(shape, _ops.constant(init_value, var.dtype)) if init_value
                    else _ops.zeros(shape, var.dtype),
                    name=f"{var.op.name}/{self._name}", trainable=False)
        return per_var[var]

    def _non_slot(self, name: str, value: float, graph: Any, dtype: _dt.DType) -> Variable:
        key = (name, graph)
        if key not in self._non_slots:
            with graph.as_default(), graph.name_scope(None):
                self._non_slots[key] = Variable(_ops.constant(value, dtype), name=name,
                                                trainable=False)
        return self._non_slots[key]

    def _get_non_slot_variable(self, name: str, graph: Any = None) -> Variable | None:
        return self._non_slots.get((name, (graph or get_default_graph())._variable_home))

    # -- per-optimizer parts --
    def _create_slots(self, var_list: list[Variable]) -> None:
        pass

    def _prepare(self) -> None:
        pass

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        raise NotImplementedError

    def _finish(self, update_ops: list, name: str) -> Operation:
        return _ops.group(*update_ops, name=name)

    def _hyper(self, value: Any, dtype: _dt.DType, name: str) -> Tensor:
        """A hyper-parameter as a scalar tensor of ``dtype`` (cached per dtype)."""
        cache = self.__dict__.setdefault("_hyper_cache", {})
        graph = get_default_graph()
        key = (name, dtype, graph)
        if key not in cache or graph._eager:  # eagerly, a value read now is stale later
            if callable(value) and not isinstance(value, Tensor):
                value = value()
            if isinstance(value, Tensor):
                cache[key] = _ops.cast(value, dtype)
            else:
                cache[key] = _ops.constant(value, dtype, name=name)
        return cache[key]

    def _update(self, op_type: str, inputs: Sequence[Tensor], var: Variable, **attrs: Any
                ) -> Operation:
        attrs = {"index": var._index, "var_name": var.op.name, **attrs}
        return _make(op_type, inputs, [], None, attrs)


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * grad."""

    def __init__(self, learning_rate: Any, use_locking: bool = False,
                 name: str = "GradientDescent"):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate

    def _apply_dense(self, grad, var):
        lr = self._hyper(self._learning_rate, var.dtype, "learning_rate")
        return self._update("ApplyGradientDescent", (lr, grad), var)


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + grad; var -= lr * accum (Nesterov: lr * (grad + m * accum))."""

    def __init__(self, learning_rate: Any, momentum: Any, use_locking: bool = False,
                 name: str = "Momentum", use_nesterov: bool = False):
        super().__init__(use_locking, name)
        self._learning_rate, self._momentum, self._use_nesterov = (learning_rate, momentum,
                                                                    use_nesterov)

    def _create_slots(self, var_list):
        for v in var_list:
            self._slot(v, "momentum")

    def _apply_dense(self, grad, var):
        lr = self._hyper(self._learning_rate, var.dtype, "learning_rate")
        mom = self._hyper(self._momentum, var.dtype, "momentum")
        return self._update("ApplyMomentum", (lr, grad, mom), var,
                            accum=self.get_slot(var, "momentum")._index,
                            use_nesterov=bool(self._use_nesterov))


class AdagradOptimizer(Optimizer):
    """accum += grad ** 2; var -= lr * grad / sqrt(accum)."""

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1,
                 use_locking: bool = False, name: str = "Adagrad"):
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive, got "
                             f"{initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._initial = initial_accumulator_value

    def _create_slots(self, var_list):
        for v in var_list:
            self._slot(v, "accumulator", self._initial)

    def _apply_dense(self, grad, var):
        lr = self._hyper(self._learning_rate, var.dtype, "learning_rate")
        return self._update("ApplyAdagrad", (lr, grad), var,
                            accum=self.get_slot(var, "accumulator")._index)


class AdadeltaOptimizer(Optimizer):
    """accum = rho accum + (1 - rho) g^2; u = sqrt(accum_update + eps) / sqrt(accum + eps) g;
    accum_update = rho accum_update + (1 - rho) u^2; var -= lr u."""

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.95, epsilon: float = 1e-8,
                 use_locking: bool = False, name: str = "Adadelta"):
        super().__init__(use_locking, name)
        self._learning_rate, self._rho, self._epsilon = learning_rate, float(rho), float(epsilon)

    def _create_slots(self, var_list):
        for v in var_list:
            self._slot(v, "accum")
            self._slot(v, "accum_update")

    def _apply_dense(self, grad, var):
        lr = self._hyper(self._learning_rate, var.dtype, "learning_rate")
        return self._update("ApplyAdadelta", (lr, grad), var,
                            accum=self.get_slot(var, "accum")._index,
                            accum_update=self.get_slot(var, "accum_update")._index,
                            rho=self._rho, epsilon=self._epsilon)


class AdagradDAOptimizer(Optimizer):
    """Adagrad dual averaging: g_acc += g; gg_acc += g^2 (starting at the initial value);
    var = -lr sign(g_acc) max(|g_acc| - l1 t, 0) / (l2 t lr + sqrt(gg_acc)), where t is the
    global step + 1 (read before ``minimize(..., global_step=...)`` increments it)."""

    def __init__(self, learning_rate: Any, global_step: Any,
                 initial_gradient_squared_accumulator_value: float = 0.1,
                 l1_regularization_strength: float = 0.0, l2_regularization_strength: float = 0.0,
                 use_locking: bool = False, name: str = "AdagradDA"):
        if initial_gradient_squared_accumulator_value <= 0.0:
            raise ValueError(f"initial_gradient_squared_accumulator_value must be positive, "
                             f"got {initial_gradient_squared_accumulator_value}")
        super().__init__(use_locking, name)
        self._learning_rate, self._global_step = learning_rate, global_step
        self._initial = initial_gradient_squared_accumulator_value
        self._l1, self._l2 = float(l1_regularization_strength), float(l2_regularization_strength)

    def _create_slots(self, var_list):
        for v in var_list:
            self._slot(v, "gradient_accumulator")
            self._slot(v, "gradient_squared_accumulator", self._initial)

    def _prepare(self):
        step = _ops.convert_to_tensor(self._global_step)
        self._step = _ops.cast(_ops.identity(step), _dt.int64) + 1

    def _apply_dense(self, grad, var):
        lr = self._hyper(self._learning_rate, var.dtype, "learning_rate")
        return self._update("ApplyAdagradDA", (lr, self._step, grad), var,
                            g_acc=self.get_slot(var, "gradient_accumulator")._index,
                            gg_acc=self.get_slot(var, "gradient_squared_accumulator")._index,
                            l1=self._l1, l2=self._l2)


class AdamOptimizer(Optimizer):
    """TF1's Adam, epsilon-hat form: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t);
    m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2; var -= lr_t m / (sqrt(v) + eps).
    """

    def __init__(self, learning_rate: Any = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, use_locking: bool = False, name: str = "Adam"):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._beta1, self._beta2, self._epsilon = float(beta1), float(beta2), float(epsilon)

    def _create_slots(self, var_list):
        first = min(var_list, key=lambda v: v.op.name)
        self._non_slot("beta1_power", self._beta1, first.graph, first.dtype)
        self._non_slot("beta2_power", self._beta2, first.graph, first.dtype)
        for v in var_list:
            self._slot(v, "m")
            self._slot(v, "v")

    def _get_beta_accumulators(self) -> tuple[Variable, Variable]:
        g = get_default_graph()
        return (self._get_non_slot_variable("beta1_power", g),
                self._get_non_slot_variable("beta2_power", g))

    def _apply_dense(self, grad, var):
        b1p, b2p = self._get_beta_accumulators()
        lr = self._hyper(self._learning_rate, var.dtype, "learning_rate")
        return self._update("ApplyAdam", (lr, b1p, b2p, grad), var,
                            m=self.get_slot(var, "m")._index, v=self.get_slot(var, "v")._index,
                            beta1=self._beta1, beta2=self._beta2, epsilon=self._epsilon)

    def _finish(self, update_ops, name):
        b1p, b2p = self._get_beta_accumulators()
        with get_default_graph().control_dependencies(update_ops):
            u1 = b1p.assign(b1p * _ops.constant(self._beta1, b1p.dtype))
            u2 = b2p.assign(b2p * _ops.constant(self._beta2, b2p.dtype))
        return _ops.group(*update_ops, u1, u2, name=name)


class RMSPropOptimizer(Optimizer):
    """ms = ms + (1 - decay)(g^2 - ms); mom = momentum mom + lr g / sqrt(ms + eps); var -= mom.

    ``centered`` subtracts the squared running mean of g inside the square root. As in TF1 the
    ms slot starts at ones.
    """

    def __init__(self, learning_rate: Any, decay: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-10, use_locking: bool = False, centered: bool = False,
                 name: str = "RMSProp"):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._decay, self._momentum, self._epsilon = float(decay), float(momentum), float(epsilon)
        self._centered = bool(centered)

    def _create_slots(self, var_list):
        for v in var_list:
            self._slot(v, "rms", 1.0)
            if self._centered:
                self._slot(v, "mg")
            self._slot(v, "momentum")

    def _apply_dense(self, grad, var):
        lr = self._hyper(self._learning_rate, var.dtype, "learning_rate")
        mg = self.get_slot(var, "mg")
        return self._update("ApplyRMSProp", (lr, grad), var,
                            ms=self.get_slot(var, "rms")._index,
                            mom=self.get_slot(var, "momentum")._index,
                            mg=None if mg is None else mg._index, decay=self._decay,
                            momentum=self._momentum, epsilon=self._epsilon)


# --- update kernels (in place, TensorFlow 1's formulas) -------------------------------------

_CHUNK = 65536  # elements per pass of the fused updates: the operands of a pass stay in L2 cache


def _chunks(n: int):
    return [(s, min(n, s + _CHUNK)) for s in range(0, n, _CHUNK)]


def _flat(a):
    return a.reshape(-1)


@kernel("ApplyGradientDescent")
def _apply_gd(rt, index, var_name):
    read = _reader(rt, index, var_name)

    def run(lr, g):
        v = read()
        v -= lr * g
    return run


@kernel("ApplyMomentum")
def _apply_momentum(rt, index, var_name, accum, use_nesterov=False):
    read, read_acc = _reader(rt, index, var_name), _reader(rt, accum, var_name + "/Momentum")

    def run(lr, g, momentum):
        v, a = read(), read_acc()
        a *= momentum
        a += g
        if use_nesterov:
            v -= lr * g + lr * momentum * a
        else:
            v -= lr * a
    return run


@kernel("ApplyAdagrad")
def _apply_adagrad(rt, index, var_name, accum):
    read, read_acc = _reader(rt, index, var_name), _reader(rt, accum, var_name + "/Adagrad")
    xp = rt.xp

    def run(lr, g):
        v, a = read(), read_acc()
        a += g * g
        v -= lr * g / xp.sqrt(a)
    return run


@kernel("ApplyAdadelta")
def _apply_adadelta(rt, index, var_name, accum, accum_update, rho, epsilon):
    read = _reader(rt, index, var_name)
    read_a, read_u = (_reader(rt, accum, var_name + "/Adadelta"),
                      _reader(rt, accum_update, var_name + "/Adadelta_1"))
    xp = rt.xp

    def run(lr, g):
        v, a, u = read(), read_a(), read_u()
        a *= rho
        a += (1 - rho) * g * g
        update = xp.sqrt(u + epsilon) / xp.sqrt(a + epsilon) * g
        u *= rho
        u += (1 - rho) * update * update
        v -= lr * update
    return run


@kernel("ApplyAdagradDA")
def _apply_adagrad_da(rt, index, var_name, g_acc, gg_acc, l1, l2):
    read = _reader(rt, index, var_name)
    read_g, read_gg = (_reader(rt, g_acc, var_name + "/AdagradDA"),
                       _reader(rt, gg_acc, var_name + "/AdagradDA_1"))
    xp = rt.xp

    def run(lr, step, g):
        v, acc, sq = read(), read_g(), read_gg()
        acc += g
        sq += g * g
        t = float(step)
        shrunk = xp.maximum(xp.abs(acc) - l1 * t, 0) * xp.sign(acc) if l1 > 0 else acc
        v[...] = -lr * shrunk / (l2 * t * lr + xp.sqrt(sq))
    return run


@kernel("ApplyAdam")
def _apply_adam(rt, index, var_name, m, v, beta1, beta2, epsilon, use_nesterov=False):
    read = _reader(rt, index, var_name)
    read_m, read_v = _reader(rt, m, var_name + "/Adam"), _reader(rt, v, var_name + "/Adam_1")
    xp = rt.xp
    scratch = {}

    def run(lr, beta1_power, beta2_power, g):
        var, mm, vv = read(), read_m(), read_v()
        lr_t = float(lr) * math.sqrt(1.0 - float(beta2_power)) / (1.0 - float(beta1_power))
        dt = var.dtype.type
        fv, fm, fs, fg = _flat(var), _flat(mm), _flat(vv), _flat(g)
        if fg.size != fv.size:
            fg = _flat(xp.broadcast_to(g, var.shape))
        tmp = scratch.get(var.dtype)
        if tmp is None:
            tmp = scratch[var.dtype] = xp.empty(min(_CHUNK, fv.size) or 1, dtype=var.dtype)
        c1, c2, eps, lrt = dt(1 - beta1), dt(1 - beta2), dt(epsilon), dt(lr_t)
        for s, e in _chunks(fv.size):
            gv, mv, sv, t = fg[s:e], fm[s:e], fs[s:e], tmp[:e - s]
            xp.subtract(gv, mv, out=t)       # m += (1 - beta1) * (g - m)
            t *= c1
            mv += t
            xp.multiply(gv, gv, out=t)       # v += (1 - beta2) * (g*g - v)
            t -= sv
            t *= c2
            sv += t
            xp.sqrt(sv, out=t)               # var -= lr_t * m / (sqrt(v) + epsilon)
            t += eps
            if use_nesterov:
                xp.divide(gv * c1 + mv * dt(beta1), t, out=t)
            else:
                xp.divide(mv, t, out=t)
            t *= lrt
            fv[s:e] -= t
    return run


@kernel("ApplyRMSProp")
def _apply_rmsprop(rt, index, var_name, ms, mom, mg=None, decay=0.9, momentum=0.0,
                   epsilon=1e-10):
    read = _reader(rt, index, var_name)
    read_ms, read_mom = _reader(rt, ms, var_name + "/RMSProp"), _reader(rt, mom, var_name +
                                                                         "/RMSProp_1")
    read_mg = _reader(rt, mg, var_name + "/RMSProp_2") if mg is not None else None
    xp = rt.xp

    def run(lr, g):
        v, s, m = read(), read_ms(), read_mom()
        s += (1 - decay) * (g * g - s)
        denom = s
        if read_mg is not None:
            a = read_mg()
            a += (1 - decay) * (g - a)
            denom = s - a * a
        m *= momentum
        m += lr * g / xp.sqrt(denom + epsilon)
        v -= m
    return run
