"""Recurrent cells (``tf.nn.rnn_cell``) and the loops that run them (``tf.nn.dynamic_rnn``,
``tf.nn.static_rnn``), with TensorFlow 1's equations, variable names and state structures.

A cell creates its variables with ``get_variable`` at its first call, in the variable scope
``<enclosing scope>/<cell name>`` (``rnn/basic_lstm_cell/kernel``), and reuses them at every
later call. The loops are unrolled in the graph, one cell call per time step, so the number of
time steps must be known when the graph is built; ``sequence_length`` gives each sequence its
own length (outputs past it are zeros and the state stops changing, as in TensorFlow).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

from . import dtypes as _dt
from . import ops as _ops
from .graph import Tensor, get_default_graph
from .ops import nn as _nn
from .variables import Constant, VariableScope, Zeros, get_variable, variable_scope

__all__ = [
    "BasicLSTMCell", "BasicRNNCell", "DeviceWrapper", "DropoutWrapper", "GRUCell",
    "LSTMCell", "LSTMStateTuple", "MultiRNNCell", "RNNCell", "ResidualWrapper",
    "bidirectional_dynamic_rnn", "dynamic_rnn", "static_rnn",
]


class LSTMStateTuple(collections.namedtuple("LSTMStateTuple", ("c", "h"))):
    """An LSTM's state: the cell state ``c`` and the output ``h``, each [batch, num_units]."""

    __slots__ = ()

    @property
    def dtype(self) -> Any:
        return self.c.dtype


def _map_state(fn: Callable, *states: Any) -> Any:
    """``fn`` applied leaf by leaf over states of the same structure (tensors, tuples,
    LSTMStateTuples)."""
    first = states[0]
    if isinstance(first, LSTMStateTuple):
        return LSTMStateTuple(*(_map_state(fn, *parts) for parts in zip(*states)))
    if isinstance(first, (tuple, list)):
        return type(first)(_map_state(fn, *parts) for parts in zip(*states))
    return fn(*states)


def _concat_inputs(inputs: Tensor, state: Tensor) -> Tensor:
    return _ops.concat([inputs, state], 1)


class RNNCell:
    """Base of the cells: ``cell(inputs, state) -> (output, new_state)``.

    Subclasses set ``_default_name``, ``state_size``, ``output_size`` and define
    ``build(input_depth)`` (create variables with ``_variable``) and ``call(inputs, state)``.
    """

    _default_name = "rnn_cell"

    def __init__(self, reuse: Any = None, name: str | None = None, dtype: Any = None):
        self._reuse = reuse
        self._name = name
        self._dtype = _dt.as_dtype(dtype) if dtype is not None else None
        self._scope: VariableScope | None = None
        self.built = False

    @property
    def state_size(self) -> Any:
        raise NotImplementedError

    @property
    def output_size(self) -> Any:
        raise NotImplementedError

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        """Zeros of this cell's state structure for ``batch_size`` rows."""
        dtype = _dt.as_dtype(dtype)

        def zeros(size: Any) -> Any:
            if isinstance(size, LSTMStateTuple):
                return LSTMStateTuple(zeros(size.c), zeros(size.h))
            if isinstance(size, tuple):
                return tuple(zeros(s) for s in size)
            return _ops.zeros([batch_size, size], dtype)
        with get_default_graph().name_scope(f"{type(self).__name__}ZeroState"):
            return zeros(self.state_size)

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Tensor, Any]:
        inputs = _ops.convert_to_tensor(inputs)
        if self._scope is None:
            scope_ctx = variable_scope(scope or self._name, default_name=self._default_name,
                                       reuse=self._reuse)
        else:
            scope_ctx = variable_scope(self._scope)
        with scope_ctx as vs:
            if self._scope is None:
                self._scope = vs
            if not self.built:
                depth = inputs.shape.as_list()[-1] if inputs.shape.ndims else None
                if depth is None:
                    raise ValueError(f"{type(self).__name__} needs the last dimension of its "
                                     f"inputs known, got shape {inputs.shape}")
                self.build(depth, inputs.dtype)
                self.built = True
            return self.call(inputs, state)

    def build(self, input_depth: int, dtype: _dt.DType) -> None:
        pass

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def _variable(self, name: str, shape: list, dtype: _dt.DType, initializer: Any = None
                  ) -> Any:
        return get_variable(name, shape, self._dtype or dtype, initializer=initializer)

    @property
    def variables(self) -> list:
        return list(self._scope.global_variables()) if self._scope is not None else []

    trainable_variables = weights = trainable_weights = variables


def _activation(activation: Callable | None) -> Callable:
    return activation if activation is not None else _ops.tanh


class BasicRNNCell(RNNCell):
    """``h' = activation(W [x, h] + b)``; variables ``kernel`` [depth + units, units] and
    ``bias`` (zeros)."""

    _default_name = "basic_rnn_cell"

    def __init__(self, num_units: int, activation: Callable | None = None, reuse: Any = None,
                 name: str | None = None, dtype: Any = None, **kwargs: Any):
        super().__init__(reuse, name, dtype)
        self._num_units = int(num_units)
        self._act = _activation(activation)

    @property
    def state_size(self) -> int:
        return self._num_units

    @property
    def output_size(self) -> int:
        return self._num_units

    def build(self, input_depth: int, dtype: _dt.DType) -> None:
        n = self._num_units
        self._kernel = self._variable("kernel", [input_depth + n, n], dtype)
        self._bias = self._variable("bias", [n], dtype, Zeros())

    def call(self, inputs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        out = self._act(_nn.bias_add(_ops.matmul(_concat_inputs(inputs, state), self._kernel),
                                     self._bias))
        return out, out


class GRUCell(RNNCell):
    """TensorFlow's GRU: r, u = sigmoid(W_g [x, h] + b_g) (b_g starts at 1),
    c = activation(W_c [x, r * h] + b_c), h' = u * h + (1 - u) * c; variables
    ``gates/kernel``, ``gates/bias``, ``candidate/kernel``, ``candidate/bias``."""

    _default_name = "gru_cell"

    def __init__(self, num_units: int, activation: Callable | None = None, reuse: Any = None,
                 kernel_initializer: Any = None, bias_initializer: Any = None,
                 name: str | None = None, dtype: Any = None, **kwargs: Any):
        super().__init__(reuse, name, dtype)
        self._num_units = int(num_units)
        self._act = _activation(activation)
        self._kernel_initializer = kernel_initializer
        self._bias_initializer = bias_initializer

    @property
    def state_size(self) -> int:
        return self._num_units

    @property
    def output_size(self) -> int:
        return self._num_units

    def build(self, input_depth: int, dtype: _dt.DType) -> None:
        n = self._num_units
        with variable_scope("gates"):
            self._gate_kernel = self._variable("kernel", [input_depth + n, 2 * n], dtype,
                                               self._kernel_initializer)
            self._gate_bias = self._variable("bias", [2 * n], dtype,
                                             self._bias_initializer or Constant(1.0))
        with variable_scope("candidate"):
            self._candidate_kernel = self._variable("kernel", [input_depth + n, n], dtype,
                                                    self._kernel_initializer)
            self._candidate_bias = self._variable("bias", [n], dtype,
                                                  self._bias_initializer or Zeros())

    def call(self, inputs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        gates = _ops.sigmoid(_nn.bias_add(
            _ops.matmul(_concat_inputs(inputs, state), self._gate_kernel), self._gate_bias))
        r, u = _ops.split(gates, 2, axis=1)
        candidate = self._act(_nn.bias_add(
            _ops.matmul(_concat_inputs(inputs, r * state), self._candidate_kernel),
            self._candidate_bias))
        new_h = u * state + (1.0 - u) * candidate
        return new_h, new_h


class BasicLSTMCell(RNNCell):
    """TensorFlow's LSTM: i, j, f, o = W [x, h] + b (in that order), c' = c * sigmoid(f +
    forget_bias) + sigmoid(i) * activation(j), h' = activation(c') * sigmoid(o); variables
    ``kernel`` [depth + units, 4 * units] and ``bias`` (zeros). The state is
    ``LSTMStateTuple(c, h)``, or [c, h] concatenated when ``state_is_tuple=False``."""

    _default_name = "basic_lstm_cell"

    def __init__(self, num_units: int, forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: Callable | None = None, reuse: Any = None,
                 name: str | None = None, dtype: Any = None, **kwargs: Any):
        super().__init__(reuse, name, dtype)
        self._num_units = int(num_units)
        self._forget_bias = float(forget_bias)
        self._state_is_tuple = bool(state_is_tuple)
        self._act = _activation(activation)

    @property
    def state_size(self) -> Any:
        n = self._num_units
        return LSTMStateTuple(n, n) if self._state_is_tuple else 2 * n

    @property
    def output_size(self) -> int:
        return self._num_units

    def build(self, input_depth: int, dtype: _dt.DType) -> None:
        n = self._num_units
        self._kernel = self._variable("kernel", [input_depth + n, 4 * n], dtype)
        self._bias = self._variable("bias", [4 * n], dtype, Zeros())

    def _split_state(self, state: Any) -> tuple[Tensor, Tensor]:
        if self._state_is_tuple:
            return state
        return tuple(_ops.split(state, 2, axis=1))

    def _join_state(self, c: Tensor, h: Tensor) -> Any:
        return LSTMStateTuple(c, h) if self._state_is_tuple else _ops.concat([c, h], 1)

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        c, h = self._split_state(state)
        gates = _nn.bias_add(_ops.matmul(_concat_inputs(inputs, h), self._kernel), self._bias)
        i, j, f, o = _ops.split(gates, 4, axis=1)
        forget = _ops.constant(self._forget_bias, f.dtype)
        new_c = c * _ops.sigmoid(f + forget) + _ops.sigmoid(i) * self._act(j)
        new_h = self._act(new_c) * _ops.sigmoid(o)
        return new_h, self._join_state(new_c, new_h)


class LSTMCell(BasicLSTMCell):
    """BasicLSTMCell plus TensorFlow's options: peepholes (``w_f_diag``, ``w_i_diag``,
    ``w_o_diag``), ``cell_clip`` on c, a projection of h to ``num_proj`` units
    (``projection/kernel``) clipped to ``proj_clip``; variables ``kernel``, ``bias``."""

    _default_name = "lstm_cell"

    def __init__(self, num_units: int, use_peepholes: bool = False, cell_clip: Any = None,
                 initializer: Any = None, num_proj: int | None = None, proj_clip: Any = None,
                 num_unit_shards: Any = None, num_proj_shards: Any = None,
                 forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: Callable | None = None, reuse: Any = None,
                 name: str | None = None, dtype: Any = None, **kwargs: Any):
        super().__init__(num_units, forget_bias, state_is_tuple, activation, reuse, name, dtype)
        self._use_peepholes = bool(use_peepholes)
        self._cell_clip = cell_clip
        self._initializer = initializer
        self._num_proj = int(num_proj) if num_proj is not None else None
        self._proj_clip = proj_clip

    @property
    def state_size(self) -> Any:
        n, p = self._num_units, self._num_proj or self._num_units
        return LSTMStateTuple(n, p) if self._state_is_tuple else n + p

    @property
    def output_size(self) -> int:
        return self._num_proj or self._num_units

    def build(self, input_depth: int, dtype: _dt.DType) -> None:
        n, h_depth = self._num_units, self._num_proj or self._num_units
        self._kernel = self._variable("kernel", [input_depth + h_depth, 4 * n], dtype,
                                      self._initializer)
        self._bias = self._variable("bias", [4 * n], dtype, Zeros())
        if self._use_peepholes:
            self._w_f, self._w_i, self._w_o = (
                self._variable(name, [n], dtype, self._initializer)
                for name in ("w_f_diag", "w_i_diag", "w_o_diag"))
        if self._num_proj is not None:
            with variable_scope("projection"):
                self._proj = self._variable("kernel", [n, self._num_proj], dtype,
                                            self._initializer)

    def _split_state(self, state: Any) -> tuple[Tensor, Tensor]:
        if self._state_is_tuple:
            return state
        return tuple(_ops.split(state, [self._num_units, self._num_proj or self._num_units],
                                axis=1))

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        c, h = self._split_state(state)
        gates = _nn.bias_add(_ops.matmul(_concat_inputs(inputs, h), self._kernel), self._bias)
        i, j, f, o = _ops.split(gates, 4, axis=1)
        forget = _ops.constant(self._forget_bias, f.dtype)
        if self._use_peepholes:
            new_c = (c * _ops.sigmoid(f + forget + self._w_f * c)
                     + _ops.sigmoid(i + self._w_i * c) * self._act(j))
        else:
            new_c = c * _ops.sigmoid(f + forget) + _ops.sigmoid(i) * self._act(j)
        if self._cell_clip is not None:
            new_c = _ops.clip_by_value(new_c, -self._cell_clip, self._cell_clip)
        out_gate = o + self._w_o * new_c if self._use_peepholes else o
        new_h = _ops.sigmoid(out_gate) * self._act(new_c)
        if self._num_proj is not None:
            new_h = _ops.matmul(new_h, self._proj)
            if self._proj_clip is not None:
                new_h = _ops.clip_by_value(new_h, -self._proj_clip, self._proj_clip)
        return new_h, self._join_state(new_c, new_h)


class MultiRNNCell(RNNCell):
    """Cells stacked: each one's output is the next one's input; the state is the tuple of
    their states; variables under ``cell_0/``, ``cell_1/``..."""

    _default_name = "multi_rnn_cell"

    def __init__(self, cells: Sequence[RNNCell], state_is_tuple: bool = True):
        super().__init__()
        if not cells:
            raise ValueError("MultiRNNCell needs at least one cell")
        if not state_is_tuple:
            raise NotImplementedError("MultiRNNCell(state_is_tuple=False) is deprecated in TF1 "
                                      "and not supported; use state_is_tuple=True")
        self._cells = list(cells)

    @property
    def state_size(self) -> tuple:
        return tuple(cell.state_size for cell in self._cells)

    @property
    def output_size(self) -> Any:
        return self._cells[-1].output_size

    def zero_state(self, batch_size: Any, dtype: Any) -> tuple:
        return tuple(cell.zero_state(batch_size, dtype) for cell in self._cells)

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, tuple]:
        if not isinstance(state, (tuple, list)) or len(state) != len(self._cells):
            raise ValueError(f"MultiRNNCell of {len(self._cells)} cells needs a tuple of "
                             f"{len(self._cells)} states, got {state!r}")
        new_states = []
        x = inputs
        for i, (cell, s) in enumerate(zip(self._cells, state)):
            with variable_scope(f"cell_{i}"):
                x, new_s = cell(x, s)
            new_states.append(new_s)
        return x, tuple(new_states)


class _Wrapper(RNNCell):
    def __init__(self, cell: RNNCell):
        super().__init__()
        self._cell = cell

    @property
    def state_size(self) -> Any:
        return self._cell.state_size

    @property
    def output_size(self) -> Any:
        return self._cell.output_size

    def zero_state(self, batch_size: Any, dtype: Any) -> Any:
        return self._cell.zero_state(batch_size, dtype)

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> tuple[Tensor, Any]:
        return self.call(_ops.convert_to_tensor(inputs), state)


class DropoutWrapper(_Wrapper):
    """Dropout on the cell's inputs, outputs and state (keep probabilities; a fresh mask at
    every step: ``variational_recurrent=True`` is not supported)."""

    def __init__(self, cell: RNNCell, input_keep_prob: Any = 1.0, output_keep_prob: Any = 1.0,
                 state_keep_prob: Any = 1.0, variational_recurrent: bool = False,
                 input_size: Any = None, dtype: Any = None, seed: int | None = None,
                 dropout_state_filter_visitor: Any = None):
        if variational_recurrent:
            raise NotImplementedError("DropoutWrapper(variational_recurrent=True) is not "
                                      "supported by ringtrain; leave it False (a new dropout "
                                      "mask at every time step)")
        super().__init__(cell)
        self._keep = (input_keep_prob, output_keep_prob, state_keep_prob)
        self._seed = seed

    def _drop(self, x: Tensor, keep: Any) -> Tensor:
        if isinstance(keep, (int, float)) and keep == 1.0:
            return x
        return _nn.dropout(x, keep_prob=keep, seed=self._seed)

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        keep_in, keep_out, keep_state = self._keep
        out, new_state = self._cell(self._drop(inputs, keep_in), state)
        new_state = _map_state(lambda s: self._drop(s, keep_state), new_state)
        return self._drop(out, keep_out), new_state


class ResidualWrapper(_Wrapper):
    """The cell's output plus its input (``residual_fn(inputs, outputs)`` if given)."""

    def __init__(self, cell: RNNCell, residual_fn: Callable | None = None):
        super().__init__(cell)
        self._residual_fn = residual_fn or (lambda x, y: x + y)

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        out, new_state = self._cell(inputs, state)
        return self._residual_fn(inputs, out), new_state


class DeviceWrapper(_Wrapper):
    """The cell, its ops placed with ``tf.device(device)``."""

    def __init__(self, cell: RNNCell, device: str):
        super().__init__(cell)
        self._device = device

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        with get_default_graph().device(self._device):
            return self._cell(inputs, state)


# --- the loops ---------------------------------------------------------------------------------

def _step_mask(t: int, lengths: Tensor | None) -> Tensor | None:
    """[batch, 1] booleans: which sequences are still running at step ``t``."""
    if lengths is None:
        return None
    return _ops.reshape(_ops.less(_ops.constant(t, lengths.dtype), lengths), [-1, 1])


def _run_steps(cell: RNNCell, steps: list, state: Any, lengths: Tensor | None) -> tuple:
    outputs = []
    for t, x in enumerate(steps):
        out, new_state = cell(x, state)
        running = _step_mask(t, lengths)
        if running is not None:  # finished sequences: zero output, state carried unchanged
            out = _ops.where(running, out, _ops.zeros_like(out))
            new_state = _map_state(lambda new, old, keep=running: _ops.where(keep, new, old),
                                   new_state, state)
        outputs.append(out)
        state = new_state
    return outputs, state


def _initial_state(cell: RNNCell, initial_state: Any, batch: Any, dtype: Any, fn: str) -> Any:
    if initial_state is not None:
        return initial_state
    if dtype is None:
        raise ValueError(f"{fn}: if there is no initial_state, you must give a dtype")
    return cell.zero_state(batch, dtype)


def _lengths(sequence_length: Any) -> Tensor | None:
    if sequence_length is None:
        return None
    lengths = _ops.convert_to_tensor(sequence_length)
    if lengths.dtype != _dt.int32:
        lengths = _ops.cast(lengths, _dt.int32)
    return _ops.identity(lengths, name="sequence_length")


def dynamic_rnn(cell: RNNCell, inputs: Any, sequence_length: Any = None,
                initial_state: Any = None, dtype: Any = None, parallel_iterations: Any = None,
                swap_memory: bool = False, time_major: bool = False, scope: Any = None
                ) -> tuple[Tensor, Any]:
    """Run ``cell`` over the time axis of ``inputs`` ([batch, time, depth], or [time, batch,
    depth] when ``time_major``): returns (outputs of the same layout, final state).

    The loop is unrolled in the graph, so the time dimension must be known; variables are
    named ``<scope or 'rnn'>/<cell name>/...`` as in TensorFlow.
    """
    if not isinstance(cell, RNNCell):
        raise TypeError(f"dynamic_rnn needs an RNNCell (tf.nn.rnn_cell.*), got {cell!r}")
    inputs = _ops.convert_to_tensor(inputs)
    if inputs.shape.ndims != 3:
        raise ValueError(f"dynamic_rnn needs 3-D inputs, got shape {inputs.shape}")
    time_axis, batch_axis = (0, 1) if time_major else (1, 0)
    steps = inputs.shape.as_list()[time_axis]
    if steps is None:
        raise ValueError(
            "dynamic_rnn: ringtrain unrolls the recurrence in the graph, so the number of time "
            f"steps must be known when it is built (inputs have shape {inputs.shape}); give "
            "the placeholder a fixed time dimension (pad the sequences to one length) and "
            "pass sequence_length for the real lengths")
    with variable_scope(scope, default_name="rnn"):
        batch = inputs.shape.as_list()[batch_axis]
        if batch is None:
            batch = _ops.shape(inputs)[batch_axis]
        state = _initial_state(cell, initial_state, batch, dtype or None, "dynamic_rnn")
        lengths = _lengths(sequence_length)
        xs = _ops.unstack(inputs, num=steps, axis=time_axis)
        outputs, state = _run_steps(cell, xs, state, lengths)
        return _ops.stack(outputs, axis=time_axis), state


def static_rnn(cell: RNNCell, inputs: Sequence[Any], initial_state: Any = None,
               dtype: Any = None, sequence_length: Any = None, scope: Any = None
               ) -> tuple[list, Any]:
    """Run ``cell`` over a list of [batch, depth] inputs: returns (list of outputs, final
    state)."""
    if not isinstance(cell, RNNCell):
        raise TypeError(f"static_rnn needs an RNNCell (tf.nn.rnn_cell.*), got {cell!r}")
    xs = [_ops.convert_to_tensor(x) for x in inputs]
    if not xs:
        raise ValueError("static_rnn needs a non-empty list of inputs")
    with variable_scope(scope, default_name="rnn"):
        batch = xs[0].shape.as_list()[0]
        if batch is None:
            batch = _ops.shape(xs[0])[0]
        state = _initial_state(cell, initial_state, batch, dtype, "static_rnn")
        return _run_steps(cell, xs, state, _lengths(sequence_length))


def bidirectional_dynamic_rnn(cell_fw: RNNCell, cell_bw: RNNCell, inputs: Any,
                              sequence_length: Any = None, initial_state_fw: Any = None,
                              initial_state_bw: Any = None, dtype: Any = None,
                              parallel_iterations: Any = None, swap_memory: bool = False,
                              time_major: bool = False, scope: Any = None) -> tuple:
    """``cell_fw`` over the sequences and ``cell_bw`` over them reversed (each sequence within
    its own length): ((outputs_fw, outputs_bw), (state_fw, state_bw)), the backward outputs put
    back in forward order; variables under ``bidirectional_rnn/fw/`` and ``.../bw/``."""
    inputs = _ops.convert_to_tensor(inputs)
    time_axis, batch_axis = (0, 1) if time_major else (1, 0)

    def backwards(x: Tensor) -> Tensor:
        if sequence_length is None:
            return _ops.reverse(x, [time_axis])
        return _ops.reverse_sequence(x, sequence_length, seq_axis=time_axis,
                                     batch_axis=batch_axis)

    with variable_scope(scope, default_name="bidirectional_rnn"):
        with variable_scope("fw") as fw_scope:
            out_fw, state_fw = dynamic_rnn(cell_fw, inputs, sequence_length, initial_state_fw,
                                           dtype, time_major=time_major, scope=fw_scope)
        with variable_scope("bw") as bw_scope:
            out_bw, state_bw = dynamic_rnn(cell_bw, backwards(inputs), sequence_length,
                                           initial_state_bw, dtype, time_major=time_major,
                                           scope=bw_scope)
    return (out_fw, backwards(out_bw)), (state_fw, state_bw)
