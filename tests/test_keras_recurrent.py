"""Keras SimpleRNN / GRU / LSTM: outputs and gradients (inputs and every weight) against torch's
RNN / GRU / LSTM in float64 with the same weights, and training on a sequence task."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf

torch = pytest.importorskip("torch")
keras = tf.keras
layers = keras.layers
K = keras.backend

BATCH, STEPS, FEATURES, UNITS = 3, 5, 4, 6


def _order(matrix, perm, units):
    """Columns of gate blocks (each ``units`` wide) in the order ``perm``."""
    return np.concatenate([matrix[..., g * units:(g + 1) * units] for g in perm], axis=-1)


def _keras_run(layer, x, seed):
    """Outputs and d(sum(outputs * coefficients))/d(x, weights) of ``layer`` in float64."""
    with tf.Graph().as_default() as graph:
        inputs = tf.placeholder(tf.float64, shape=x.shape)
        out = layer(inputs)
        outputs = out if isinstance(out, list) else [out]
        coefficients = [np.random.default_rng(seed + i).normal(size=o.shape.as_list())
                        for i, o in enumerate(outputs)]
        loss = tf.add_n([tf.reduce_sum(o * c) for o, c in zip(outputs, coefficients)])
        weights = layer.weights
        grads = tf.gradients(loss, [inputs, *weights])
        K.initialize_variables(weights, graph)
        values, grad_values, weight_values = K.get_session(graph).run(
            [outputs, grads, weights], {inputs: x})
    return values, grad_values, weight_values, coefficients


def _torch_module(kind, weights, reset_after=True):
    kernel, recurrent, bias = weights
    module = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM,
              "GRU": torch.nn.GRU}[kind](FEATURES, UNITS, batch_first=True).double()
    if kind == "GRU":  # Keras z, r, h -> torch r, z, n
        perm = (1, 0, 2)
        w_ih, w_hh = _order(kernel, perm, UNITS).T, _order(recurrent, perm, UNITS).T
        b_ih, b_hh = _order(bias[0], perm, UNITS), _order(bias[1], perm, UNITS)
    else:  # the same gate order (LSTM: i, f, c/g, o)
        w_ih, w_hh, b_ih, b_hh = kernel.T, recurrent.T, bias, np.zeros_like(bias)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh),
                            ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def _torch_grads_as_keras(kind, module):
    g = {name: getattr(module, name).grad.numpy() for name in
         ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")}
    if kind == "GRU":
        perm = (1, 0, 2)  # r, z, n -> z, r, h is the same swap
        return [_order(g["weight_ih_l0"].T, perm, UNITS), _order(g["weight_hh_l0"].T, perm, UNITS),
                np.stack([_order(g["bias_ih_l0"], perm, UNITS),
                          _order(g["bias_hh_l0"], perm, UNITS)])]
    return [g["weight_ih_l0"].T, g["weight_hh_l0"].T, g["bias_ih_l0"]]


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_outputs_and_gradients_match_torch_in_float64(kind, return_sequences):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    layer = getattr(layers, kind)(UNITS, return_sequences=return_sequences, dtype="float64",
                                  bias_initializer=keras.initializers.RandomNormal(stddev=0.3))
    (out,), grads, weights, (coef,) = _keras_run(layer, x, seed=3)
    module = _torch_module(kind, weights)
    xt = torch.from_numpy(x).requires_grad_(True)
    sequence, _ = module(xt)
    want = sequence if return_sequences else sequence[:, -1]
    (want * torch.from_numpy(coef)).sum().backward()
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for got, expected in zip(grads[1:], _torch_grads_as_keras(kind, module)):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_lstm_states_initial_state_and_go_backwards_match_torch():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    layer = layers.LSTM(UNITS, return_state=True, go_backwards=True, dtype="float64")
    (last, h, c), _, weights, _ = _keras_run(layer, x, seed=5)
    module = _torch_module("LSTM", weights)
    sequence, (th, tc) = module(torch.from_numpy(x[:, ::-1].copy()))
    np.testing.assert_allclose(last, sequence[:, -1].detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(h, th[0].detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(c, tc[0].detach().numpy(), rtol=1e-10)
    # the unit forget bias: Keras starts the forget gate's bias at 1
    np.testing.assert_array_equal(weights[2][UNITS:2 * UNITS], 1.0)
    np.testing.assert_array_equal(np.delete(weights[2], np.s_[UNITS:2 * UNITS]), 0.0)


def test_gru_without_reset_after_follows_its_formula():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    layer = layers.GRU(UNITS, reset_after=False, dtype="float64",
                       bias_initializer=keras.initializers.RandomNormal(stddev=0.3))
    (out,), grads, (kernel, recurrent, bias), (coef,) = _keras_run(layer, x, seed=7)
    params = [torch.from_numpy(a).requires_grad_(True) for a in (x, kernel, recurrent, bias)]
    xt, kt, rt, bt = params
    h = torch.zeros(BATCH, UNITS, dtype=torch.float64)
    u = UNITS
    for t in range(STEPS):
        xp = xt[:, t] @ kt + bt
        z = torch.sigmoid(xp[:, :u] + h @ rt[:, :u])
        r = torch.sigmoid(xp[:, u:2 * u] + h @ rt[:, u:2 * u])
        cand = torch.tanh(xp[:, 2 * u:] + (r * h) @ rt[:, 2 * u:])
        h = z * h + (1 - z) * cand
    (h * torch.from_numpy(coef)).sum().backward()
    np.testing.assert_allclose(out, h.detach().numpy(), rtol=1e-10)
    for got, p in zip(grads, params):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_text_classifier_with_embedding_and_lstm_learns():
    # The sign of the first token decides the label: the LSTM must carry it to the end.
    rng = np.random.default_rng(14)
    x = rng.integers(1, 20, size=(256, 6))
    y = (x[:, 0] >= 10).astype(np.float32)
    model = keras.Sequential([layers.Embedding(20, 8, input_length=6), layers.LSTM(16),
                              layers.Dense(1, activation="sigmoid")])
    lines = []
    model.summary(print_fn=lines.append)
    assert "Total params: 1,777" in lines  # 160 + 4*(16*(8+16)+16) + 17, as Keras counts
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


def test_unknown_sequence_length_and_dropout_are_explained():
    model = keras.Sequential([layers.Embedding(10, 4), layers.SimpleRNN(3)])
    with pytest.raises(ValueError, match="pad_sequences"):
        model.predict(np.zeros((2, 5), np.int64))
    with pytest.raises(tf.errors.UnsupportedFeatureError, match="Dropout layer"):
        layers.LSTM(4, dropout=0.2)
    with pytest.raises(tf.errors.UnsupportedFeatureError, match="go_backwards"):
        layers.Bidirectional  # noqa: B018 -- the attribute raises
