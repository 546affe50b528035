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


# --- backend -------------------------------------------------------------------------------------

def test_backend_ops_match_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 4)).astype(np.float32)
    b = rng.normal(size=(4, 2)).astype(np.float32)
    with tf.Graph().as_default():
        x, y = K.constant(a), K.constant(b)
        checks = [
            (K.mean(x), a.mean()), (K.mean(x, axis=1, keepdims=True), a.mean(1, keepdims=True)),
            (K.sum(x, axis=0), a.sum(0)), (K.max(x, axis=-1), a.max(-1)), (K.min(x), a.min()),
            (K.var(x, axis=0), a.var(0)), (K.std(x), a.std()), (K.abs(x), np.abs(a)),
            (K.square(x), a ** 2), (K.exp(x), np.exp(a)), (K.clip(x, -0.5, 0.5),
                                                           np.clip(a, -0.5, 0.5)),
            (K.l2_normalize(x, axis=1), a / np.linalg.norm(a, axis=1, keepdims=True)),
            (K.concatenate([x, x]), np.concatenate([a, a], -1)),
            (K.concatenate([x, x], axis=0), np.concatenate([a, a], 0)),
            (K.relu(x), np.maximum(a, 0)),
            (K.relu(x, alpha=0.1, max_value=0.5), np.minimum(np.where(a > 0, a, 0.1 * a), 0.5)),
            (K.softmax(x), np.exp(a) / np.exp(a).sum(1, keepdims=True)),
            (K.dot(x, y), a @ b), (K.transpose(x), a.T),
            (K.permute_dimensions(x, (1, 0)), a.T), (K.expand_dims(x, 1), a[:, None]),
            (K.repeat_elements(x, 2, axis=1), np.repeat(a, 2, axis=1)),
            (K.argmax(x), a.argmax(-1)), (K.cast(K.greater(x, 0), "float32"),
                                          (a > 0).astype(np.float32)),
            (K.switch(K.greater(x, 0), x, -x), np.abs(a)), (K.pow(x, 2), a ** 2),
            (K.batch_flatten(K.reshape(x, (3, 2, 2))), a), (K.stack([x, x], axis=1),
                                                             np.stack([a, a], 1)),
        ]
        for tensor, want in checks:
            np.testing.assert_allclose(K.eval(tensor), want, rtol=1e-5, atol=1e-6)
        assert K.int_shape(x) == (3, 4) and K.ndim(x) == 2 and K.dtype(x) == "float32"
    assert K.image_data_format() == "channels_last" == keras.config.image_data_format()
    with pytest.raises(tf.errors.UnsupportedFeatureError, match="channels_last"):
        K.set_image_data_format("channels_first")
    v = K.variable(np.ones((2, 2)))
    K.set_value(v, np.full((2, 2), 3.0))
    np.testing.assert_array_equal(K.get_value(v), np.full((2, 2), 3.0))
    assert keras.config.floatx() == "float32" and keras.config.epsilon() == 1e-7


def test_backend_ops_on_keras_tensors_become_model_nodes():
    inp = keras.Input((4,))
    out = K.concatenate([K.mean(inp, axis=1, keepdims=True), K.l2_normalize(inp, axis=-1),
                         K.relu(inp - 1.0)])
    model = keras.Model(inp, out)
    x = np.array([[1, 2, 3, 4], [-1, 0, 5, 2]], np.float32)
    want = np.concatenate([x.mean(1, keepdims=True), x / np.linalg.norm(x, axis=1,
                                                                        keepdims=True),
                           np.maximum(x - 1, 0)], 1)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5)


# --- metrics and losses (the numbers of Keras's documentation) -----------------------------------

def test_stateful_metrics_give_keras_documented_values():
    m = keras.metrics.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result().numpy() == 4.0
    m.reset_states()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0
    s = keras.metrics.Sum()
    assert s([1, 3, 5, 7]) == 16.0
    cases = [
        (keras.metrics.Accuracy(), [[1], [2], [3], [4]], [[0], [2], [3], [4]], 0.75,
         [1, 1, 0, 0], 0.5),
        (keras.metrics.SparseCategoricalAccuracy(), [[2], [1]],
         [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], 0.5, [0.7, 0.3], 0.3),
        (keras.metrics.CategoricalAccuracy(), [[0, 0, 1], [0, 1, 0]],
         [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], 0.5, [0.7, 0.3], 0.3),
        (keras.metrics.BinaryAccuracy(), [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]],
         0.75, [1, 0, 0, 1], 0.5),
        (keras.metrics.MeanSquaredError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], 0.25, [1, 0],
         0.5),
        (keras.metrics.RootMeanSquaredError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], 0.5,
         [1, 0], np.sqrt(0.5)),
        (keras.metrics.Precision(), [0, 1, 1, 1], [1, 0, 1, 1], 2 / 3, [0, 0, 1, 0], 1.0),
        (keras.metrics.Recall(), [0, 1, 1, 1], [1, 0, 1, 1], 2 / 3, [0, 0, 1, 0], 1.0),
        (keras.metrics.SparseCategoricalCrossentropy(), [1, 2],
         [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], 1.1769392, None, None),
    ]
    for metric, y_true, y_pred, plain, weights, weighted in cases:
        metric.update_state(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32))
        assert metric.result() == pytest.approx(plain, rel=1e-5), metric.name
        if weights is not None:
            metric.reset_states()
            metric.update_state(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32),
                                sample_weight=weights)
            assert metric.result() == pytest.approx(weighted, rel=1e-5), metric.name
    with tf.Graph().as_default(), pytest.raises(TypeError, match="not graph tensors"):
        keras.metrics.Mean().update_state(tf.constant([1.0]))


def test_metric_objects_still_work_in_compile():
    x = np.array([[1.0], [-1.0], [2.0], [-3.0]], np.float32)
    y = (x > 0).astype(np.float32)
    model = keras.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(1,),
                                           kernel_initializer="ones")])
    model.compile("sgd", "binary_crossentropy", metrics=[keras.metrics.BinaryAccuracy()])
    assert model.evaluate(x, y, verbose=0)[1] == 1.0


def test_loss_reduction_like_the_keras_documentation():
    y_true = np.array([[0.0, 1.0], [0.0, 0.0]], np.float32)
    y_pred = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32)
    R = keras.losses.Reduction
    assert set(R.all()) == {"auto", "none", "sum", "sum_over_batch_size"}
    with tf.Graph().as_default():
        t, p = tf.constant(y_true), tf.constant(y_pred)
        mean = keras.losses.MeanSquaredError()(t, p)
        total = keras.losses.MeanSquaredError(reduction=R.SUM)(t, p)
        each = keras.losses.MeanSquaredError(reduction=R.NONE)(t, p)
        assert K.eval(mean) == pytest.approx(0.5) and K.eval(total) == pytest.approx(1.0)
        np.testing.assert_allclose(K.eval(each), [0.5, 0.5])
    with pytest.raises(ValueError, match="Invalid Reduction Key"):
        keras.losses.MeanSquaredError(reduction="mean")

    class Halved(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return K.mean(K.square(y_pred - y_true), axis=-1) / 2

    with tf.Graph().as_default():
        assert K.eval(Halved()(tf.constant(y_true), tf.constant(y_pred))) == pytest.approx(0.25)


# --- regularizers, sequences ---------------------------------------------------------------------

def test_regularizers_add_their_penalty_to_the_loss_and_its_gradient():
    # w*x with loss -w*x and an l2(0.1) kernel penalty: the loss is -w*mean(x) + 0.1*w^2 and one
    # SGD(0.5) step moves w by 0.5 * (mean(x) - 0.2*w).
    model = keras.Sequential([layers.Dense(1, use_bias=False, input_shape=(1,),
                                           kernel_initializer=keras.initializers.Constant(2.0),
                                           kernel_regularizer=keras.regularizers.l2(0.1))])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=lambda y_true, y_pred: -y_pred)
    x = np.full((4, 1), 3.0, np.float32)
    assert len(model.losses) == 1
    assert model.evaluate(x, x, verbose=0) == pytest.approx(-2.0 * 3.0 + 0.1 * 4.0)
    model.train_on_batch(x, x)
    assert weight(model) == pytest.approx(2.0 + 0.5 * (3.0 - 0.2 * 2.0))
    reg = keras.regularizers.l1_l2(l1=0.01, l2=0.02)
    with tf.Graph().as_default():
        w = np.array([1.0, -2.0], np.float32)
        assert K.eval(reg(tf.constant(w))) == pytest.approx(0.01 * 3 + 0.02 * 5)
    assert keras.regularizers.get("l2").l2 == 0.01
    with pytest.raises(tf.errors.UnsupportedFeatureError, match="activity_regularizer"):
        layers.Dense(2, activity_regularizer="l2")


def test_pad_sequences_like_the_keras_documentation():
    pad = keras.preprocessing.sequence.pad_sequences
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(pad(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(pad(seqs, maxlen=2, truncating="post"),
                                  [[0, 1], [2, 3], [4, 5]])
    assert pad([[], [1]]).tolist() == [[0], [1]] and pad(seqs).dtype == np.int32
    assert keras.utils.pad_sequences is pad
    with pytest.raises(ValueError, match="padding"):
        pad(seqs, padding="middle")


def test_sequential_add_after_summary_extends_the_built_model():
    model = keras.Sequential([layers.Dense(4, input_shape=(3,))])
    model.summary(print_fn=lambda line: None)  # builds it
    model.add(layers.Dense(2, activation="relu"))
    lines = []
    model.summary(print_fn=lines.append)
    assert "Total params: 26" in lines and any("(None, 2)" in line for line in lines)
    x = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
    w1, b1, w2, b2 = model.get_weights()
    np.testing.assert_allclose(model.predict(x), np.maximum((x @ w1 + b1) @ w2 + b2, 0),
                               rtol=1e-5, atol=1e-6)
    model.compile("sgd", "mse")
    model.fit(x, np.ones((5, 2), np.float32), verbose=0)
    model.add(layers.Dense(1))  # after fit too: the next fit trains the longer model
    hist = model.fit(x, np.ones((5, 1), np.float32), epochs=2, verbose=0)
    assert model.predict(x).shape == (5, 1) and len(hist.history["loss"]) == 2


# --- model files ---------------------------------------------------------------------------------

def _classifier():
    model = keras.Sequential([
        layers.Dense(5, activation="relu", input_shape=(3,),
                     kernel_regularizer=keras.regularizers.l2(0.01),
                     kernel_initializer=keras.initializers.RandomNormal(stddev=0.5)),
        layers.BatchNormalization(),
        layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_save_and_load_model_round_trip_resumes_training_exactly(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = _classifier()
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    path = tmp_path / "model.h5"
    model.save(path)
    with h5py.File(path, "r") as f:  # Keras's HDF5 layout
        import json
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential"
        assert [r["class_name"] for r in config["config"]["layers"]] == \
            ["Dense", "BatchNormalization", "Dense"]
        names = [n.decode() for n in f["model_weights"].attrs["layer_names"]]
        assert names == [layer.name for layer in model.layers]
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    # the optimizer's state came back too: one more epoch moves both models alike, unlike a
    # model that restarts Adam from zero
    fresh = keras.models.load_model(path, compile=False)
    fresh.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    for m in (model, loaded, fresh):
        m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(fresh.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)


def test_functional_model_with_merges_and_symbolic_ops_saves(tmp_path):
    pytest.importorskip("h5py")
    a, b = keras.Input((3,)), keras.Input((3,), name="second")
    shared = layers.Dense(2)
    merged = layers.Concatenate()([shared(a), shared(b * 2.0 + 1.0)])
    out = K.mean(merged, axis=1, keepdims=True) - a[:, :1]
    model = keras.Model([a, b], out)
    path = str(tmp_path / "functional.keras_h5")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(5).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict([x, x + 1]), model.predict([x, x + 1]), rtol=1e-6)
    assert len(loaded.weights) == 2 and loaded._compiled is False
    clone = keras.models.clone_model(model)
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]


def test_models_that_are_code_cannot_be_saved_and_say_what_to_do(tmp_path, capsys):
    pytest.importorskip("h5py")

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub.build((None, 2))
    with pytest.raises(NotImplementedError, match="save_weights"):
        sub.save(tmp_path / "sub.h5")
    lam = keras.Sequential([layers.Lambda(lambda t: t * 2, input_shape=(2,))])
    with pytest.raises(ValueError, match="save_weights"):
        lam.save(tmp_path / "lambda.h5")
    assert not (tmp_path / "lambda.h5").exists()  # nothing half-written
    coded = one_weight_model()  # a lambda loss: saved, comes back uncompiled
    coded.save(tmp_path / "coded.h5")
    assert "uncompiled" in capsys.readouterr().err
    assert keras.models.load_model(tmp_path / "coded.h5")._compiled is False


def test_custom_layers_load_through_custom_objects(tmp_path):
    pytest.importorskip("h5py")

    class Scale(layers.Layer):
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

    model = keras.Sequential([layers.Dense(2, input_shape=(2,)), Scale(3.0)])
    model.save(tmp_path / "custom.h5")
    with pytest.raises(ValueError, match="custom_objects"):
        keras.models.load_model(tmp_path / "custom.h5")
    loaded = keras.models.load_model(tmp_path / "custom.h5", custom_objects={"Scale": Scale})
    x = np.ones((1, 2), np.float32)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


# --- sub-models: get_layer, input/output, K.function ---------------------------------------------

def test_feature_models_from_a_trained_model_share_its_weights():
    x = np.random.default_rng(6).normal(size=(6, 3)).astype(np.float32)
    inp = keras.Input((3,))
    hidden = layers.Dense(4, activation="relu", name="hidden")(inp)
    model = keras.Model(inp, layers.Dense(2)(hidden))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(x, np.ones((6, 2), np.float32), epochs=2, verbose=0)
    assert model.get_layer("hidden") is model.get_layer(index=1)
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")
    features = keras.Model(model.input, model.get_layer("hidden").output)
    w, b = model.get_layer("hidden").get_weights()
    np.testing.assert_allclose(features.predict(x), np.maximum(x @ w + b, 0), rtol=1e-5,
                               atol=1e-6)
    # the same variables: training the model moves the feature model
    model.fit(x, np.zeros((6, 2), np.float32), verbose=0)
    w, b = model.get_layer("hidden").get_weights()
    np.testing.assert_allclose(features.predict(x), np.maximum(x @ w + b, 0), rtol=1e-5,
                               atol=1e-6)


def test_sequential_layers_have_symbolic_outputs_and_k_function_runs_them():
    x = np.random.default_rng(7).normal(size=(5, 3)).astype(np.float32)
    model = keras.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)),
                              layers.Dense(2)])
    w1, b1, w2, b2 = model.get_weights()
    hidden = np.maximum(x @ w1 + b1, 0)
    every = keras.Model(model.inputs, [layer.output for layer in model.layers]).predict(x)
    np.testing.assert_allclose(every[0], hidden, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(every[1], hidden @ w2 + b2, rtol=1e-5, atol=1e-6)
    first = K.function([model.input], [model.layers[0].output])
    np.testing.assert_allclose(first([x])[0], hidden, rtol=1e-5, atol=1e-6)
    with tf.Graph().as_default():
        p = tf.placeholder(tf.float32, shape=(None, 2))
        double = K.function([p], [p * 2])
        np.testing.assert_array_equal(double([np.ones((1, 2), np.float32)])[0], [[2, 2]])
    with pytest.raises(AttributeError, match="not connected"):
        layers.Dense(2).output  # noqa: B018 -- the property raises
