"""Keras models: summary, fit/evaluate/predict, weight files, callbacks, optimizers, strategy."""

from __future__ import annotations

import os

import numpy as np
import pytest

import ringtrain as tf
from ringtrain.core import distribution

keras = tf.keras
layers = keras.layers


def blobs(n=120, seed=0, classes=3, dim=4):
    """Well separated Gaussian blobs: an easy classification problem."""
    rng = np.random.default_rng(seed)
    centers = np.eye(classes, dim) * 6.0
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.normal(size=(n, dim))
    return x.astype(np.float32), y.astype(np.int64)


def mlp(units=8, classes=3, dim=4, **kwargs):
    return keras.Sequential([
        layers.Dense(units, activation="relu", input_shape=(dim,)),
        layers.Dense(classes, activation="softmax"),
    ], **kwargs)


def lines(model):
    out = []
    model.summary(print_fn=out.append)
    return out


# --- summary -------------------------------------------------------------------------------------

def test_summary_embedding_param_count_like_keras():
    model = keras.Sequential()
    model.add(layers.Embedding(1000, 64))
    text = "\n".join(lines(model))
    assert "(None, None, 64)" in text and "64000" in text
    assert "Total params: 64,000" in text
    assert "Trainable params: 64,000" in text and "Non-trainable params: 0" in text


def test_summary_of_the_lecture_cnn():
    model = keras.Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    text = "\n".join(lines(model))
    assert "(None, 26, 26, 32)" in text and "(None, 13, 13, 32)" in text
    assert "(None, 5408)" in text
    conv, dense = 3 * 3 * 1 * 32 + 32, 5408 * 10 + 10
    assert f"Total params: {conv + dense:,}" in text
    assert model.count_params() == conv + dense


def test_summary_counts_batchnorm_as_non_trainable():
    model = keras.Sequential([layers.Dense(5, input_shape=(3,)), layers.BatchNormalization()])
    text = "\n".join(lines(model))
    assert "Trainable params: 30" in text  # 3*5+5 + gamma, beta
    assert "Non-trainable params: 10" in text


def test_summary_of_unbuilt_model_is_an_error():
    with pytest.raises(ValueError, match="not yet been built"):
        keras.Sequential([layers.Dense(3)]).summary()


# --- fit / evaluate / predict --------------------------------------------------------------------

def test_fit_evaluate_predict_on_arrays():
    np.random.seed(0)
    x, y = blobs()
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=30, verbose=0)
    assert set(hist.history) == {"loss", "accuracy"} and len(hist.history["loss"]) == 30
    assert hist.epoch == list(range(30))
    assert hist.history["loss"][-1] < hist.history["loss"][0] / 3
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.95
    probs = model.predict(x, batch_size=7)
    assert probs.shape == (120, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(probs.argmax(1) == y) == pytest.approx(acc)
    # evaluate's loss is the mean over all samples, whatever the batch size
    p = probs[np.arange(len(y)), y]
    assert loss == pytest.approx(-np.mean(np.log(p)), rel=1e-4)
    assert model.evaluate(x, y, batch_size=120, verbose=0)[0] == pytest.approx(loss, rel=1e-5)
    assert model.evaluate(x, y, return_dict=True, verbose=0).keys() == {"loss", "accuracy"}


def test_fit_on_dataset_with_validation():
    np.random.seed(1)
    x, y = blobs(seed=1)
    ds = tf.data.Dataset.from_tensor_slices((x[:90], y[:90])).shuffle(90, seed=1).batch(10)
    val = tf.data.Dataset.from_tensor_slices((x[90:], y[90:])).batch(30)
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(ds, epochs=5, validation_data=val, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert hist.history["val_accuracy"][-1] > 0.9
    assert model.evaluate(val, verbose=0)[1] == pytest.approx(hist.history["val_accuracy"][-1])


def test_fit_with_validation_split_and_one_hot_labels():
    np.random.seed(2)
    x, y = blobs(seed=2)
    model = mlp()
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["acc"])
    hist = model.fit(x, keras.utils.to_categorical(y, 3), epochs=2, validation_split=0.25,
                     verbose=0)
    assert set(hist.history) == {"loss", "acc", "val_loss", "val_acc"}


def test_binary_and_regression_models():
    np.random.seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    yb = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    model = keras.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(2,))])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, yb, epochs=20, batch_size=20, verbose=0)
    assert model.evaluate(x, yb, verbose=0)[1] > 0.95

    yr = (3 * x[:, :1] - 2 * x[:, 1:] + 0.5).astype(np.float32)
    reg = keras.Sequential([layers.Dense(1, input_shape=(2,))])
    reg.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), loss="mse")
    reg.fit(x, yr, epochs=30, batch_size=20, verbose=0)
    kernel, bias = reg.get_weights()
    np.testing.assert_allclose(kernel[:, 0], [3, -2], atol=1e-2)
    np.testing.assert_allclose(bias, [0.5], atol=1e-2)
    assert reg.evaluate(x, yr, verbose=0) < 1e-4


def test_model_without_input_shape_builds_from_data():
    np.random.seed(4)
    x, y = blobs(seed=4)
    model = keras.Sequential([layers.Dense(8, activation="relu"), layers.Dense(3)])
    with pytest.raises(ValueError, match="build"):
        model.get_weights()
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    assert [w.shape for w in model.get_weights()] == [(4, 8), (8,), (8, 3), (3,)]


def test_compile_is_required_and_bad_arguments_are_named():
    model = mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(*blobs(), verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(optimizer="adam", loss="hinge_of_doom")
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(optimizer="adamw2", loss="mse")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = blobs()
    with pytest.raises(ValueError, match="samples"):
        model.fit(x, y[:-1], verbose=0)


class Subclassed(keras.Model):
    def __init__(self):  # as in the lecture: no super().__init__() call
        self.dense1 = layers.Dense(16, activation="relu")
        self.dropout = layers.Dropout(0.5)
        self.dense2 = layers.Dense(3, activation="softmax")

    def call(self, x, training=True):
        x = self.dense1(x)
        x = self.dropout(x, training=training)
        return self.dense2(x)


def test_subclassed_model_with_dropout():
    np.random.seed(5)
    x, y = blobs(seed=5)
    model = Subclassed()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert len(model.weights) == 4
    assert model.evaluate(x, y, verbose=0)[1] > 0.9
    # Inference is deterministic (dropout off); calling the model on NumPy predicts.
    a, b = model(x[:5], training=False), model.predict(x[:5])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x[:5]), b)


def test_functional_model():
    np.random.seed(6)
    inputs = keras.Input(shape=(4,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    outputs = layers.Dense(3, activation="softmax")(hidden)
    model = keras.Model(inputs=inputs, outputs=outputs)
    assert hidden.shape == (None, 8) and outputs.shape == (None, 3)
    text = "\n".join(lines(model))
    assert "InputLayer" in text and "Total params: 67" in text
    x, y = blobs(seed=6)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=25, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


def test_sequential_with_input_and_batchnorm_trains_and_infers():
    np.random.seed(7)
    x, y = blobs(seed=7)
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(8),
                              layers.BatchNormalization(momentum=0.8), layers.Activation("relu"),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.layers[1].get_weights()[2].copy()
    model.fit(x, y, epochs=10, verbose=0)
    moving_mean = model.layers[1].get_weights()[2]
    assert not np.allclose(moving_mean, before)  # updated by the training steps
    assert model.evaluate(x, y, verbose=0)[1] > 0.85


# --- weights -------------------------------------------------------------------------------------

def test_get_set_weights_and_save_load_roundtrip(tmp_path):
    np.random.seed(8)
    x, y = blobs(seed=8)
    a = mlp()
    a.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    a.fit(x, y, epochs=3, verbose=0)
    path = str(tmp_path / "weights.h5")
    a.save_weights(path)
    b = mlp()
    assert not np.allclose(a.predict(x), b.predict(x))
    b.load_weights(path)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    c = mlp()
    c.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x), c.predict(x))
    with pytest.raises(ValueError, match="shape"):
        mlp(units=9).load_weights(path)
    with pytest.raises(ValueError, match="expects 4"):
        c.set_weights(a.get_weights()[:3])
    assert [f for f in os.listdir(tmp_path) if f != "weights.h5"] == []  # atomic: no leftovers


# --- callbacks -----------------------------------------------------------------------------------

class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.at = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated crash")


@pytest.mark.parametrize("source", ["arrays", "dataset"])
def test_backup_and_restore_resumes_like_an_uninterrupted_run(tmp_path, source):
    x, y = blobs(seed=9)

    def make():
        np.random.seed(9)
        model = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                                  layers.BatchNormalization(),
                                  layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def data():
        if source == "arrays":
            return {"x": x, "y": y, "batch_size": 16}
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(120, seed=3).batch(16)
        return {"x": ds}

    straight = make()
    hist = straight.fit(**data(), epochs=4, verbose=0)

    backup = str(tmp_path / "backup")
    crashed = make()
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(**data(), epochs=4, verbose=0,
                    callbacks=[keras.callbacks.BackupAndRestore(backup), Interrupt(1)])
    assert os.path.exists(os.path.join(backup, "backup.npz"))

    resumed = make()  # a fresh process would start like this
    hist2 = resumed.fit(**data(), epochs=4, verbose=0,
                        callbacks=[keras.callbacks.BackupAndRestore(backup)])
    assert hist2.epoch == [2, 3]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert hist2.history["loss"] == pytest.approx(hist.history["loss"][2:], rel=1e-6)
    assert not os.path.exists(backup)  # deleted after a finished fit


def test_early_stopping_and_restore_best_weights():
    np.random.seed(10)
    x, y = blobs(seed=10)
    model = mlp()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    # lr 0: the loss cannot improve by min_delta (it may wobble in the last bits).
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=1e-4)
    hist = model.fit(x, y, epochs=20, verbose=0, callbacks=[stop])
    assert hist.epoch == [0, 1, 2] and stop.stopped_epoch == 2

    seen = []
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    best = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, mode="min",
                                         restore_best_weights=True)
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((logs["val_loss"], model.get_weights())))
    # A validation set with flipped labels gets worse as the model learns: stops early.
    model.fit(x, y, epochs=20, verbose=0, validation_data=(x, (y + 1) % 3),
              callbacks=[record, best])
    assert len(seen) < 20
    _best_loss, best_weights = min(seen, key=lambda item: item[0])
    for a, b in zip(model.get_weights(), best_weights):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_and_learning_rate_scheduler(tmp_path):
    np.random.seed(11)
    x, y = blobs(seed=11)
    model = mlp()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    pattern = str(tmp_path / "w.{epoch:02d}-{loss:.3f}.npz")
    lrs = []
    sched = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    watch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: lrs.append(keras.backend.get_value(model.optimizer.lr)))
    hist = model.fit(x, y, epochs=3, verbose=0,
                     callbacks=[keras.callbacks.ModelCheckpoint(pattern, monitor="loss"), sched,
                                watch])
    files = sorted(os.listdir(tmp_path))
    assert files == [f"w.{e + 1:02d}-{hist.history['loss'][e]:.3f}.npz" for e in range(3)]
    assert lrs == pytest.approx([0.1, 0.05, 0.1 / 3])
    other = mlp()
    other.load_weights(str(tmp_path / files[-1]))
    np.testing.assert_array_equal(other.predict(x), model.predict(x))

    best = str(tmp_path / "best.npz")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    cb = keras.callbacks.ModelCheckpoint(best, monitor="loss", save_best_only=True)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert os.path.exists(best) and cb.best == pytest.approx(model.evaluate(x, y, verbose=0))


def test_tensorboard_scalars_readable_by_tensorboard(tmp_path):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    np.random.seed(12)
    x, y = blobs(seed=12)
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
                     callbacks=[keras.callbacks.TensorBoard(str(tmp_path))])
    for split, prefix in (("train", ""), ("validation", "val_")):
        acc = accumulator.EventAccumulator(str(tmp_path / split))
        acc.Reload()
        assert set(acc.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy"}
        events = acc.Scalars("epoch_loss")
        assert [e.step for e in events] == [0, 1, 2]
        assert [e.value for e in events] == pytest.approx(hist.history[prefix + "loss"],
                                                          rel=1e-6)


def test_progress_bar_shows_loss_and_metrics(capsys):
    np.random.seed(13)
    x, y = blobs(seed=13)
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "loss=" in err and "accuracy=" in err
    model.fit(x, y, epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1 - loss: ") and "accuracy: " in out
    model.fit(x, y, epochs=1, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# --- optimizers ----------------------------------------------------------------------------------

def one_weight_model(optimizer):
    """loss = mean((w*x - y)^2) with w starting at 1: gradient 2*mean(x*(w*x - y))."""
    model = keras.Sequential([layers.Dense(1, use_bias=False, kernel_initializer="ones",
                                           input_shape=(1,))])
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "rmsprop"])
def test_optimizer_updates_follow_keras_formulas(name):
    x = np.array([[1.0], [2.0]], np.float32)
    y = np.array([[0.0], [1.0]], np.float32)
    opt = {"sgd": keras.optimizers.SGD(0.1),
           "momentum": keras.optimizers.SGD(0.1, momentum=0.9),
           "nesterov": keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
           "adam": keras.optimizers.Adam(0.1),
           "rmsprop": keras.optimizers.RMSprop(0.1)}[name]
    model = one_weight_model(opt)
    w, v, m, s = 1.0, 0.0, 0.0, 0.0
    for t in (1, 2):
        model.train_on_batch(x, y)
        g = float(np.mean(2 * x[:, 0] * (w * x[:, 0] - y[:, 0])))
        if name == "sgd":
            w -= 0.1 * g
        elif name in ("momentum", "nesterov"):
            v = 0.9 * v - 0.1 * g
            w += 0.9 * v - 0.1 * g if name == "nesterov" else v
        elif name == "adam":
            m = 0.9 * m + 0.1 * g
            s = 0.999 * s + 0.001 * g * g
            lr_t = 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            w -= lr_t * m / (np.sqrt(s) + 1e-7)
        else:
            s = 0.9 * s + 0.1 * g * g
            w -= 0.1 * g / np.sqrt(s + 1e-7)
        assert float(model.get_weights()[0][0, 0]) == pytest.approx(w, rel=1e-5)
    assert keras.optimizers.Adam().learning_rate == pytest.approx(0.001)
    assert keras.optimizers.SGD().learning_rate == pytest.approx(0.01)


# --- the strategy seam ---------------------------------------------------------------------------

class FakeContext:
    """Stands in for a strategy's context: worker 1 of 2 (not the chief)."""

    is_chief = False

    def __init__(self):
        self.sharded = []
        self.means = []

    def initial_value(self, name, value):
        return value

    def aggregate_gradients(self, grads_and_vars):
        return list(grads_and_vars)

    def shard_batch(self, batch):
        n = len(batch[0])
        self.sharded.append(n)
        half = np.array_split(np.arange(n), 2)[1]
        return tuple(leaf[half] for leaf in batch)

    @property
    def batch_weight(self):
        return None

    def mean_across_replicas(self, values, weight):
        self.means.append((dict(values), weight))
        return values


def test_fit_calls_the_distribution_context(tmp_path, capsys):
    np.random.seed(14)
    x, y = blobs(n=50, seed=14)
    ctx = FakeContext()
    with distribution.use(ctx):
        model = mlp()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    ckpt = str(tmp_path / "ckpt.npz")
    hist = model.fit(x, y, batch_size=20, epochs=2, verbose=1, validation_data=(x, y),
                     callbacks=[keras.callbacks.ModelCheckpoint(ckpt, monitor="loss"),
                                keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    # Global batches of 20, 20, 10 per epoch for training, then for validation, each sharded.
    assert ctx.sharded == [20, 20, 10] * 4
    # One mean per epoch for training and one for validation, weighted by the local samples.
    assert [w for _, w in ctx.means] == [25.0, 25.0, 25.0, 25.0]
    assert hist.history["loss"][0] == ctx.means[0][0]["loss"]
    # Not the chief: no progress bar, no files.
    assert capsys.readouterr().err == ""
    assert not os.path.exists(ckpt) and not os.path.exists(tmp_path / "tb")


def test_set_random_seed_makes_training_reproducible():
    x, y = blobs(seed=15)

    def train():
        keras.utils.set_random_seed(15)
        model = Subclassed()  # has dropout: the model graph's seed must be set too
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return model.get_weights()

    for a, b in zip(train(), train()):
        np.testing.assert_array_equal(a, b)


def test_training_state_restores_weights_at_once_and_optimizer_slots_at_fit():
    x, y = blobs(seed=16)

    def make():
        np.random.seed(16)
        model = mlp()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    a = make()
    a.fit(x, y, epochs=2, verbose=0)
    state = a._checkpoint_state()
    b = make()  # built (input_shape), but fit has not created Adam's slots yet
    b._restore_checkpoint_state(state)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    a.fit(x, y, epochs=1, verbose=0, shuffle=False)
    b.fit(x, y, epochs=1, verbose=0, shuffle=False)  # slots and step restored before training
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="different model"):
        mlp(units=5)._restore_checkpoint_state(state)


# --- steps on arrays -----------------------------------------------------------------------------

def _mean_follower():
    """A one-weight model w*x trained with loss -w*x and SGD(1): each step adds the batch's mean
    of x to w, so w tells exactly which batches fit ran."""
    model = keras.Sequential([layers.Dense(1, use_bias=False, kernel_initializer="zeros",
                                           input_shape=(1,))])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=lambda y_true, y_pred: -y_pred)
    return model


def _weight(model):
    return float(model.get_weights()[0].ravel()[0])


def test_steps_per_epoch_on_arrays_runs_that_many_batches_of_one_stream(capsys):
    # Keras repeats array data once per epoch and runs steps_per_epoch batches of that stream
    # per epoch. Batches of arange(10) by 3: [0 1 2] [3 4 5] [6 7 8] [9], means 1, 4, 7, 9.
    x = np.arange(10, dtype=np.float32)[:, None]
    model = _mean_follower()
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(_weight(model)))
    hist = model.fit(x, x, batch_size=3, epochs=3, steps_per_epoch=3, shuffle=False, verbose=0,
                     callbacks=[record])
    assert seen == [1 + 4 + 7, 12 + 9 + 1 + 4, 26 + 7 + 9 + 1]
    assert hist.epoch == [0, 1, 2]
    # 3 epochs of 5 steps want 15 batches, but 3 passes of 4 hold 12: the last epoch runs 2
    model = _mean_follower()
    hist = model.fit(x, x, batch_size=3, epochs=3, steps_per_epoch=5, shuffle=False, verbose=0)
    assert hist.epoch == [0, 1, 2]
    assert _weight(model) == 3 * (1 + 4 + 7 + 9)
    model = _mean_follower()
    hist = model.fit(x, x, batch_size=3, epochs=2, steps_per_epoch=5, shuffle=False, verbose=0)
    assert hist.epoch == [0, 1] and _weight(model) == 2 * (1 + 4 + 7 + 9)
    assert "ran out of data" in capsys.readouterr().err


def test_steps_per_epoch_with_shuffling_covers_each_pass_once():
    # 12 rows in batches of 3: whatever the shuffled order, one pass adds sum(x) / 3 to w
    x = np.arange(12, dtype=np.float32)[:, None]
    model = _mean_follower()
    model.fit(x, x, batch_size=3, epochs=4, steps_per_epoch=2, verbose=0)
    assert _weight(model) == pytest.approx(2 * x.sum() / 3)


def test_evaluate_and_predict_on_arrays_stop_after_steps():
    x = np.arange(10, dtype=np.float32)[:, None]
    model = _mean_follower()
    model.set_weights([np.array([[2.0]], np.float32)])
    counted = []
    count = keras.callbacks.LambdaCallback(on_test_batch_end=lambda b, logs: counted.append(b))
    # the loss -2x averaged over the 6 samples of the first two batches
    assert model.evaluate(x, x, batch_size=3, steps=2, verbose=0,
                          callbacks=[count]) == pytest.approx(-2 * np.mean(x[:6]))
    assert counted == [0, 1]
    assert model.evaluate(x, x, batch_size=3, verbose=0) == pytest.approx(-2 * np.mean(x))
    np.testing.assert_allclose(model.predict(x, batch_size=3, steps=2), 2 * x[:6])
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="steps"):
            model.fit(x, x, steps_per_epoch=bad, verbose=0)
