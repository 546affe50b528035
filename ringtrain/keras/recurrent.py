"""tf.keras recurrent layers: SimpleRNN, GRU, LSTM (and their cells, and RNN(cell)) on core ops.

The graph core has no while loop, so a recurrent layer unrolls its cell over the time steps:
the sequence length must be known when the layer is built (``input_shape=(timesteps,
features)``, or pad with ``pad_sequences(maxlen=...)``). Weights and gate orders are Keras's:
``kernel`` (features, k*units), ``recurrent_kernel`` (units, k*units), ``bias``; LSTM gates
i, f, c, o; GRU gates z, r, h with ``reset_after`` (TensorFlow 2's default: the reset gate
multiplies the recurrent term after its matmul and bias, so ``bias`` is (2, 3*units)).
"""

from __future__ import annotations

from typing import Any

from .. import core
from ..errors import UnsupportedFeatureError
from . import activations
from .layers import Layer, _static_shape


def _no_dropout(layer: str, dropout: float, recurrent_dropout: float) -> None:
    if dropout or recurrent_dropout:
        raise UnsupportedFeatureError(
            None, None, f"{layer}(dropout=..., recurrent_dropout=...) is not supported by "
            f"ringtrain's Keras; put a Dropout layer before (or after) the recurrent layer")


class _Cell(Layer):
    """One time step: ``step(x_t, states) -> (output, new_states)``."""

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"{type(self).__name__} units must be a positive int, got {units!r}")
        _no_dropout(type(self).__name__, dropout, recurrent_dropout)
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer

    _gates = 1

    @property
    def state_size(self) -> list[int]:
        return [self.units]

    def build(self, input_shape: Any) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{type(self).__name__} needs the feature dimension known, got "
                             f"input shape {input_shape}")
        width = self._gates * self.units
        self.kernel = self.add_weight("kernel", (features, width),
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (self.units, width), initializer=self.recurrent_initializer,
            regularizer=self._regularizer_for.get("recurrent"))
        self.bias = self.add_weight("bias", self._bias_shape(), initializer=self._bias_init()) \
            if self.use_bias else None
        self.built = True

    def _bias_shape(self) -> tuple:
        return (self._gates * self.units,)

    def _bias_init(self) -> Any:
        return self.bias_initializer

    def call(self, inputs: Any, states: Any) -> Any:
        output, new_states = self.step(inputs, list(states))
        return output, new_states

    def step(self, x: Any, states: list) -> tuple[Any, list]:
        raise NotImplementedError


class SimpleRNNCell(_Cell):
    """``h = activation(x @ kernel + h @ recurrent_kernel + bias)``."""

    def step(self, x: Any, states: list) -> tuple[Any, list]:
        z = core.matmul(x, self.kernel) + core.matmul(states[0], self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        h = self.activation(z)
        return h, [h]


class LSTMCell(_Cell):
    """Keras's LSTM step (gates i, f, c, o); ``unit_forget_bias`` starts the forget gate's bias
    at 1."""

    _gates = 4

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", use_bias: bool = True,
                 unit_forget_bias: bool = True, **kwargs: Any):
        super().__init__(units, activation, use_bias, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    def _bias_init(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        from . import initializers
        base = initializers.get(self.bias_initializer)
        units = self.units

        def init(shape: tuple, dtype: Any = "float32") -> Any:
            value = base(shape, dtype)
            value[units:2 * units] = 1.0
            return value
        return init

    def step(self, x: Any, states: list) -> tuple[Any, list]:
        h, c = states
        z = core.matmul(x, self.kernel) + core.matmul(h, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        i, f, g, o = core.split(z, 4, axis=1)
        i, f, o = (self.recurrent_activation(t) for t in (i, f, o))
        c = f * c + i * self.activation(g)
        h = o * self.activation(c)
        return h, [h, c]


class GRUCell(_Cell):
    """Keras's GRU step (gates z, r, h); ``h = z * h_prev + (1 - z) * candidate``."""

    _gates = 3

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "sigmoid", use_bias: bool = True,
                 reset_after: bool = True, **kwargs: Any):
        super().__init__(units, activation, use_bias, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def step(self, x: Any, states: list) -> tuple[Any, list]:
        (h,) = states
        x_part = core.matmul(x, self.kernel)
        if self.bias is not None:
            x_part = x_part + (self.bias[0] if self.reset_after else self.bias)
        x_z, x_r, x_h = core.split(x_part, 3, axis=1)
        k_z, k_r, k_h = core.split(self.recurrent_kernel, 3, axis=1)
        if self.reset_after:
            rec = core.matmul(h, self.recurrent_kernel)
            if self.bias is not None:
                rec = rec + self.bias[1]
            r_z, r_r, r_h = core.split(rec, 3, axis=1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            candidate = self.activation(x_h + r * r_h)
        else:
            z = self.recurrent_activation(x_z + core.matmul(h, k_z))
            r = self.recurrent_activation(x_r + core.matmul(h, k_r))
            candidate = self.activation(x_h + core.matmul(r * h, k_h))
        h = z * h + (1.0 - z) * candidate
        return h, [h]


class RNN(Layer):
    """Run ``cell`` over the time axis of (batch, timesteps, features) inputs.

    Returns the last output, or every step's (``return_sequences``), followed by the final
    states (``return_state``). ``go_backwards`` reads the sequence from its end.
    """

    def __init__(self, cell: Layer, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 time_major: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(cell, _Cell):
            raise TypeError("RNN needs a SimpleRNNCell, GRUCell or LSTMCell")
        if stateful or time_major:
            raise UnsupportedFeatureError(
                None, None, "RNN(stateful=True / time_major=True) is not supported by "
                "ringtrain's Keras; keep batch-major inputs and carry state with return_state "
                "and initial_state")
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)

    @property
    def units(self) -> int:
        return self.cell.units

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes (batch, timesteps, "
                             f"features) inputs, got shape {shape}")
        if not self.cell.built:
            with core.name_scope(None):
                self.cell._graph = self._graph
                self.cell.build((shape[0], shape[2]))
                self.cell.built = True
        self.built = True

    def call(self, inputs: Any, initial_state: Any = None, training: Any = None) -> Any:
        shape = _static_shape(inputs)
        steps = shape[1]
        if steps is None:
            raise ValueError(f"{type(self).__name__} {self.name!r} unrolls over the time steps, "
                             f"so their number must be known: give input_shape=(timesteps, "
                             f"features) or pad the sequences to one length (pad_sequences)")
        if steps == 0:
            raise ValueError(f"{type(self).__name__} {self.name!r} got sequences of length 0")
        xs = core.unstack(inputs, num=steps, axis=1)
        if self.go_backwards:
            xs = xs[::-1]
        if initial_state is None:
            zeros = core.zeros_like(core.matmul(xs[0], core.zeros(
                [int(shape[2]), self.cell.units], dtype=inputs.dtype)))
            states = [zeros for _ in self.cell.state_size]
        else:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
                else [initial_state]
            if len(states) != len(self.cell.state_size):
                raise ValueError(f"{type(self).__name__} {self.name!r} has "
                                 f"{len(self.cell.state_size)} states, got {len(states)} "
                                 f"initial states")
        outputs = []
        for x in xs:
            out, states = self.cell.step(x, states)
            outputs.append(out)
        result = core.stack(outputs, axis=1) if self.return_sequences else outputs[-1]
        return [result, *states] if self.return_state else result

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch, steps = input_shape[0], input_shape[1]
        units = self.cell.units
        out = (batch, steps, units) if self.return_sequences else (batch, units)
        if self.return_state:
            return [out, *[(batch, units) for _ in self.cell.state_size]]
        return out


def _layer_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """Split a recurrent layer's keyword arguments into the RNN's and the cell's."""
    rnn_keys = {"return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                "time_major", "name", "trainable", "dtype", "input_shape", "batch_input_shape",
                "batch_size", "input_dim", "input_length", "weights"}
    rnn = {k: v for k, v in kwargs.items() if k in rnn_keys}
    cell = {k: v for k, v in kwargs.items() if k not in rnn_keys}
    if "dtype" in kwargs:  # the cell's weights have the layer's dtype
        cell["dtype"] = kwargs["dtype"]
    return rnn, cell


class SimpleRNN(RNN):
    """A fully connected recurrent layer: ``h_t = tanh(x_t W + h_{t-1} U + b)``."""

    def __init__(self, units: int, **kwargs: Any):
        rnn, cell = _layer_kwargs(kwargs)
        super().__init__(SimpleRNNCell(units, **cell), **rnn)


class LSTM(RNN):
    def __init__(self, units: int, **kwargs: Any):
        rnn, cell = _layer_kwargs(kwargs)
        super().__init__(LSTMCell(units, **cell), **rnn)


class GRU(RNN):
    def __init__(self, units: int, **kwargs: Any):
        rnn, cell = _layer_kwargs(kwargs)
        super().__init__(GRUCell(units, **cell), **rnn)
