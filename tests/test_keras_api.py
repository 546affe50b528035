"""The tf.keras surface real programs touch: merge layers, symbolic arithmetic, the learning
rate as a variable, Adadelta, schedules of the epoch, backend ops, stateful metrics,
regularizers, sequence padding, config, model files. Numbers are closed forms or NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf

keras = tf.keras
layers = keras.layers
K = keras.backend


def one_weight_model(lr=1.0, optimizer=None):
    """w*x with loss -w*x: one SGD(lr) step adds lr * mean(batch) to w."""
    model = keras.Sequential([layers.Dense(1, use_bias=False, kernel_initializer="zeros",
                                           input_shape=(1,))])
    model.compile(optimizer=optimizer or keras.optimizers.SGD(lr),
                  loss=lambda y_true, y_pred: -y_pred)
    return model


def weight(model):
    return float(model.get_weights()[0].ravel()[0])


# --- merge layers and symbolic arithmetic --------------------------------------------------------

def test_merge_layers_and_keras_tensor_arithmetic_match_numpy():
    a, b = keras.Input((3,)), keras.Input((3,))
    outs = [layers.Add()([a, b]), layers.Subtract()([a, b]), layers.Multiply()([a, b]),
            layers.Average()([a, b]), layers.Maximum()([a, b]), layers.Minimum()([a, b]),
            layers.Concatenate()([a, b]), layers.Dot(axes=1)([a, b]),
            layers.Dot(axes=1, normalize=True)([a, b]), layers.add([a, b, a]),
            a + b * 2, 1 - a, -a / 2, a[:, :2], layers.Softmax()(a)]
    assert [o.shape for o in outs[6:10]] == [(None, 6), (None, 1), (None, 1), (None, 3)]
    model = keras.Model([a, b], outs)
    x = np.array([[0, 1, 2], [3, -4, 5]], np.float32)
    y = np.array([[2, 2, -2], [1, 0, 7]], np.float32)
    got = model.predict([x, y])
    e = np.exp(x - x.max(1, keepdims=True))
    cos = (x * y).sum(1, keepdims=True) / np.linalg.norm(x, axis=1, keepdims=True) / \
        np.linalg.norm(y, axis=1, keepdims=True)
    want = [x + y, x - y, x * y, (x + y) / 2, np.maximum(x, y), np.minimum(x, y),
            np.concatenate([x, y], 1), (x * y).sum(1, keepdims=True), cos, 2 * x + y,
            x + 2 * y, 1 - x, -x / 2, x[:, :2], e / e.sum(1, keepdims=True)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_dot_of_sequences_and_softmax_over_another_axis():
    c, d = keras.Input((2, 4)), keras.Input((3, 4))
    model = keras.Model([c, d], [layers.Dot(axes=2)([c, d]), layers.Softmax(axis=1)(c)])
    rng = np.random.default_rng(0)
    cc, dd = rng.normal(size=(2, 2, 4)).astype("f4"), rng.normal(size=(2, 3, 4)).astype("f4")
    dots, soft = model.predict([cc, dd])
    np.testing.assert_allclose(dots, np.einsum("bik,bjk->bij", cc, dd), rtol=1e-5, atol=1e-6)
    e = np.exp(cc - cc.max(1, keepdims=True))
    np.testing.assert_allclose(soft, e / e.sum(1, keepdims=True), rtol=1e-5)


def test_merge_layers_name_the_wrong_input():
    with pytest.raises(TypeError, match="takes a list"):
        layers.Add()(keras.Input((3,)))
    with pytest.raises(ValueError, match="2 inputs, got 3"):
        layers.Subtract()([keras.Input((3,))] * 3)
    with pytest.raises(ValueError, match="match except along axis"):
        layers.Concatenate(axis=1)([np.zeros((2, 3, 1), "f4"), np.zeros((2, 4, 2), "f4")])


def test_functional_model_with_merged_branches_trains():
    inp = keras.Input((4,))
    left, right = layers.Dense(8, activation="relu")(inp), layers.Dense(8)(inp)
    out = layers.Dense(1)(layers.Concatenate()([left, right + 1.0]))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("f4")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "f4")
    hist = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0] / 5


# --- learning rate, Adadelta, schedules ----------------------------------------------------------

def test_learning_rate_is_a_variable_get_value_set_value_and_numpy_work_on():
    opt = keras.optimizers.SGD(0.25)
    assert K.get_value(opt.lr) == pytest.approx(0.25) and opt.learning_rate.numpy() == 0.25
    K.set_value(opt.learning_rate, 0.5)
    assert float(opt.lr) == 0.5 and opt.lr * 2 == 1.0
    model = one_weight_model(optimizer=opt)
    x = np.full((4, 1), 2.0, np.float32)
    model.fit(x, x, batch_size=4, verbose=0)
    assert weight(model) == pytest.approx(0.5 * 2.0)       # the step used lr 0.5
    K.set_value(model.optimizer.lr, 0.125)                  # now the graph variable
    assert K.get_value(model.optimizer.lr) == pytest.approx(0.125)
    model.fit(x, x, batch_size=4, verbose=0)
    assert weight(model) == pytest.approx(1.0 + 0.125 * 2.0)
    model.optimizer.learning_rate = 1.0
    assert opt.lr.numpy() == 1.0 and opt.get_config()["learning_rate"] == 1.0


def test_learning_rate_scheduler_with_a_schedule_of_the_epoch_only():
    x = np.ones((2, 1), np.float32)
    model = one_weight_model()
    sched = keras.callbacks.LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1))
    model.fit(x, x, batch_size=2, epochs=3, verbose=0, callbacks=[sched])
    assert weight(model) == pytest.approx(0.1 + 0.2 + 0.3)
    model = one_weight_model()
    sched = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2)
    model.fit(x, x, batch_size=2, epochs=2, verbose=0, callbacks=[sched])
    assert weight(model) == pytest.approx(0.5 + 0.25)


def test_adadelta_follows_its_update_rule():
    # Zeiler's rule with Keras's defaults (rho 0.95, epsilon 1e-7), lr 1.0, loss -w*x so the
    # gradient is -mean(x) each step.
    model = one_weight_model(optimizer=keras.optimizers.Adadelta(1.0))
    assert keras.optimizers.get("adadelta").get_config()["rho"] == 0.95
    x = np.full((3, 1), 2.0, np.float32)
    w, acc, acc_update = 0.0, 0.0, 0.0
    for _ in range(3):
        g = -2.0
        acc = 0.95 * acc + 0.05 * g * g
        update = np.sqrt(acc_update + 1e-7) / np.sqrt(acc + 1e-7) * g
        acc_update = 0.95 * acc_update + 0.05 * update * update
        w -= update
        model.train_on_batch(x, x)
    assert weight(model) == pytest.approx(w, rel=1e-4)
