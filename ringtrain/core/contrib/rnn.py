"""``tf.contrib.rnn``: the recurrent cells and ``static_rnn`` (the same as tf.nn.rnn_cell)."""

from ..rnn import (
    BasicLSTMCell,
    BasicRNNCell,
    DeviceWrapper,
    DropoutWrapper,
    GRUCell,
    LSTMCell,
    LSTMStateTuple,
    MultiRNNCell,
    ResidualWrapper,
    RNNCell,
    static_rnn,
)

__all__ = ["BasicLSTMCell", "BasicRNNCell", "DeviceWrapper", "DropoutWrapper", "GRUCell",
           "LSTMCell", "LSTMStateTuple", "MultiRNNCell", "RNNCell", "ResidualWrapper",
           "static_rnn"]


def __getattr__(name: str):
    from ..unsupported import missing
    raise missing("ringtrain.core.contrib", f"rnn.{name}")
