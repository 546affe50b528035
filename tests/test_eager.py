"""Eager execution, GradientTape and tf.function (one process), against closed forms, TF1 graph
mode (tf.gradients) and torch in float64."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf
from ringtrain.errors import InvalidArgumentError, UnsupportedFeatureError


@pytest.fixture(autouse=True)
def eager():
    tf.reset_default_graph()
    tf.enable_eager_execution()
    yield
    tf.disable_eager_execution()
    tf.reset_default_graph()


def test_ops_run_at_once_and_tensors_hold_numpy_values():
    assert tf.executing_eagerly()
    a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    product = tf.matmul(a, a)
    assert type(product).__name__ == "EagerTensor" and product.shape == (2, 2)
    np.testing.assert_array_equal(product.numpy(), [[7.0, 10.0], [15.0, 22.0]])
    assert product.numpy().dtype == np.float32
    assert str(product) == ("tf.Tensor(\n[[ 7. 10.]\n [15. 22.]], shape=(2, 2), "
                            "dtype=float32)")
    total = tf.reduce_sum(product.numpy())            # ops take NumPy data
    assert repr(total) == "<tf.Tensor: shape=(), dtype=float32, numpy=54.0>"
    assert float(total) == 54.0 and bool(total > 50.0) and int(tf.constant(3)) == 3
    assert type(np.dot(a, a)) is np.ndarray           # NumPy takes eager tensors
    np.testing.assert_array_equal(np.square(a), [[1.0, 4.0], [9.0, 16.0]])
    np.testing.assert_array_equal(np.asarray(a, dtype=np.float64), [[1, 2], [3, 4]])
    assert [float(row[0]) for row in a] == [1.0, 3.0] and len(a) == 2
    assert f"{total:.1f}" == "54.0"


def test_graph_mode_inside_and_mixing_is_an_error():
    with tf.Graph().as_default():
        assert not tf.executing_eagerly()
        x = tf.placeholder(tf.float32, [None])
        y = x * 2.0
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(y, {x: [1.0, 2.0]}), [2.0, 4.0])
    assert tf.executing_eagerly()
    with pytest.raises(TypeError, match="graph tensor 'Placeholder:0'.*eagerly"):
        tf.add(x, 1.0)
    with pytest.raises(RuntimeError, match="placeholder.*not compatible with eager"):
        tf.placeholder(tf.float32)
    eager_value = tf.constant([1.0, 2.0])
    v = tf.Variable(1.0)
    with tf.Graph().as_default():
        doubled = eager_value * 2.0                     # an eager tensor joins as a constant
        with tf.Session() as sess:
            np.testing.assert_array_equal(sess.run(doubled), [2.0, 4.0])
        with pytest.raises(ValueError, match="eagerly created variable.*tf.function"):
            v + 1.0


def test_variables_assign_and_kernel_errors():
    v = tf.Variable([1.0, 2.0], name="v")
    v.assign_add([1.0, 1.0])
    np.testing.assert_array_equal(v.numpy(), [2.0, 3.0])
    v.assign([5.0, 6.0])
    v.assign_sub([1.0, 1.0])
    assert repr(v) == "<tf.Variable 'v:0' shape=(2,) dtype=float32, numpy=array([4., 5.], " \
                      "dtype=float32)>"
    snapshot = tf.identity(v)                           # a read is a snapshot, not a view
    v.assign_add([1.0, 1.0])
    np.testing.assert_array_equal(snapshot.numpy(), [4.0, 5.0])
    held = v.numpy()
    held[0] = 100.0
    assert v.numpy()[0] == 5.0
    with pytest.raises(InvalidArgumentError, match="Reshape"):   # fails in the kernel
        tf.reshape(tf.ones([6]), tf.constant([4, 2]))
    assert float(tf.cond(tf.constant(True), lambda: tf.constant(1.0),
                         lambda: tf.constant(2.0))) == 1.0


def _mlp(ops, x, y, w1, b1, w2):
    hidden = ops.nn.relu(ops.matmul(x, w1) + b1)
    logits = ops.matmul(ops.tanh(hidden) * ops.exp(-ops.square(hidden) / 10.0), w2)
    per = ops.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    return ops.reduce_mean(per) + 0.01 * ops.reduce_sum(ops.square(w1))


def test_tape_gradients_match_graph_mode_and_torch_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 5)), rng.integers(0, 4, 9)
    init = [rng.normal(size=(5, 6)), rng.normal(size=6), rng.normal(size=(6, 4))]
    params = [tf.Variable(a) for a in init]
    with tf.GradientTape() as tape:
        loss = _mlp(tf, tf.constant(x), tf.constant(y), *params)
    eager_grads = [g.numpy() for g in tape.gradient(loss, params)]

    with tf.Graph().as_default():
        gparams = [tf.Variable(a) for a in init]
        gloss = _mlp(tf, tf.constant(x), tf.constant(y), *gparams)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            graph_loss, graph_grads = sess.run([gloss, tf.gradients(gloss, gparams)])
    tparams = [torch.tensor(a, requires_grad=True) for a in init]
    hidden = torch.relu(torch.tensor(x) @ tparams[0] + tparams[1])
    logits = (torch.tanh(hidden) * torch.exp(-hidden ** 2 / 10.0)) @ tparams[2]
    tloss = torch.nn.functional.cross_entropy(logits, torch.tensor(y)) + \
        0.01 * (tparams[0] ** 2).sum()
    tloss.backward()
    assert float(loss) == pytest.approx(tloss.item(), rel=1e-12)
    assert float(loss) == graph_loss
    for mine, graph, ref in zip(eager_grads, graph_grads, tparams):
        np.testing.assert_array_equal(mine, graph)      # the same rules on the same kernels
        np.testing.assert_allclose(mine, ref.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_watch_persistent_nested_and_unconnected():
    x = tf.constant(3.0)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = x * x * x
        dy = inner.gradient(y, x)                       # 3x^2, recorded by the outer tape
    assert float(dy) == 27.0 and float(outer.gradient(dy, x)) == 18.0   # 6x
    with pytest.raises(RuntimeError, match="non-persistent GradientTape"):
        inner.gradient(y, x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        z = y * y
    assert float(tape.gradient(z, x)) == 108.0 and float(tape.gradient(y, x)) == 6.0
    nested = tape.gradient(z, {"a": x, "b": [x]})      # shaped like the sources
    assert float(nested["a"]) == 108.0 and float(nested["b"][0]) == 108.0
    before = x * 2.0                                    # not recorded: computed before the tape
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = before * before
    assert tape.gradient(z, x) is None
    w = tf.Variable(2.0)
    frozen = tf.Variable(5.0, trainable=False)
    with tf.GradientTape() as tape:
        loss = w * frozen
    assert tape.watched_variables() == (w,)
    g_w, g_frozen = tape.gradient(loss, [w, frozen],
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
    assert float(g_w) == 5.0 and float(g_frozen) == 0.0
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        loss = w * w
        with tape.stop_recording():
            pass
    assert tape.gradient(loss, w) is None


def test_gradients_function_and_contrib_eager():
    tfe = tf.contrib.eager
    grads = tfe.gradients_function(lambda x: tf.square(x))
    assert [float(g) for g in grads(3.0)] == [6.0]
    value, (gx, gy) = tfe.value_and_gradients_function(lambda x, y: x * y)(2.0, 5.0)
    assert (float(value), float(gx), float(gy)) == (10.0, 5.0, 2.0)
    assert tfe.Variable is tf.Variable and tfe.executing_eagerly()
    with pytest.raises(UnsupportedFeatureError, match="tf.contrib.eager.Iterator"):
        tfe.Iterator  # noqa: B018


def test_function_traces_once_per_signature_and_updates_variables():
    v = tf.Variable(0.0)
    traces = []

    @tf.function
    def step(x, scale):
        traces.append(x.shape.as_list())               # a Python side effect: tracing only
        v.assign_add(tf.reduce_sum(x) * scale)
        return {"double": x * 2.0, "scale": scale}

    out = step(tf.ones([2]), 1.0)
    step(tf.ones([2]), 1.0)
    step(np.ones(2, np.float32), 1.0)                   # same signature as a NumPy array
    assert traces == [[2]] and float(v) == 6.0
    np.testing.assert_array_equal(out["double"].numpy(), [2.0, 2.0])
    assert out["scale"] == 1.0
    step(tf.ones([3]), 1.0)                             # new shape
    step(tf.ones([3]), 2.0)                             # new Python value
    step(tf.constant([1.0, 1.0, 1.0], tf.float32), 2.0)
    assert traces == [[2], [3], [3]] and float(v) == 6.0 + 3.0 + 6.0 + 6.0
    assert step.experimental_get_tracing_count() == 3

    @tf.function
    def identity(x):
        traces.append(x.dtype)
        return tf.identity(x)
    assert identity(tf.ones([2])).dtype == tf.float32
    assert identity(tf.ones([2], tf.float64)).dtype == tf.float64   # new dtype: traced again
    assert traces[-2:] == [tf.float32, tf.float64]
    with tf.Graph().as_default():                       # in graph mode: the ops join the graph
        np.testing.assert_array_equal(tf.Session().run(identity(tf.ones([2]))), [1.0, 1.0])
        with pytest.raises(ValueError, match="eagerly created variable 'Variable:0' cannot"):
            step(tf.ones([2]), 1.0)

    @tf.function
    def bump(var, amount):                             # a variable argument is passed by
        var.assign_add(amount)                          # reference, not as a value
        return var * 1.0
    w = tf.Variable(1.0)
    assert float(bump(w, tf.constant(2.0))) == 3.0 and float(bump(w, tf.constant(2.0))) == 5.0
    assert float(w) == 5.0

    @tf.function
    def shrink(x):
        while tf.reduce_sum(x) > 1:                     # Python control flow on a value
            x = tf.tanh(x)
        return x
    assert float(tf.reduce_sum(shrink(tf.ones([10])))) <= 1.0


def test_function_and_eager_steps_match_a_graph_session_step():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 5)), rng.integers(0, 4, 16)
    init = [rng.normal(size=(5, 6)), rng.normal(size=6), rng.normal(size=(6, 4))]

    def train(mode: str) -> list:
        params = [tf.Variable(a) for a in init]
        opt = tf.train.AdamOptimizer(0.1)

        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = _mlp(tf, xb, yb, *params)
            opt.apply_gradients(zip(tape.gradient(loss, params), params))
            return loss
        if mode == "function":
            step = tf.function(step)
        losses = [float(step(x, y)) for _ in range(4)]
        return losses + [p.numpy() for p in params]

    eager, function = train("eager"), train("function")
    with tf.Graph().as_default():
        params = [tf.Variable(a) for a in init]
        loss = _mlp(tf, tf.constant(x), tf.constant(y), *params)
        train_op = tf.train.AdamOptimizer(0.1).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            graph = [sess.run([loss, train_op])[0] for _ in range(4)] + sess.run(params)
    for a, b, c in zip(eager, function, graph):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_keras_on_eager_tensors_custom_loop_and_fit():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    model = tf.keras.Sequential([tf.keras.layers.Dense(8, activation="relu"),
                                 tf.keras.layers.Dense(3)])
    out = model(x)
    assert type(out).__name__ == "EagerTensor" and out.numpy().shape == (32, 3)
    np.testing.assert_allclose(model(tf.constant(x)).numpy(), out.numpy())
    optimizer = tf.keras.optimizers.Adam(0.05)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        return loss
    losses = [float(step(x, y)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0] and int(optimizer.iterations.numpy()) == 30
    per = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE)(y, model(x))
    assert per.shape == (32,)
    assert float(tf.nn.compute_average_loss(per, global_batch_size=64)) == pytest.approx(
        float(tf.reduce_sum(per)) / 64)
    assert float(tf.nn.compute_average_loss(per)) == pytest.approx(float(tf.reduce_mean(per)))

    model = tf.keras.Sequential([tf.keras.layers.Dense(8, activation="relu"),
                                 tf.keras.layers.Dense(3)])
    model(x)                                            # built eagerly, then fit in a graph
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < before and model.evaluate(x, y, verbose=0) < before
    np.testing.assert_allclose(model.predict(x), model(x).numpy(), rtol=1e-6)
    weights = model.get_weights()
    model.set_weights([np.zeros_like(w) for w in weights])
    assert float(tf.reduce_sum(tf.abs(model(x)))) == 0.0


def test_keras_stateful_metrics_update_inside_tf_function():
    accuracy = tf.keras.metrics.SparseCategoricalAccuracy()
    mean = tf.keras.metrics.Mean()
    traces = []

    @tf.function
    def step(labels, probabilities):
        traces.append(1)
        accuracy.update_state(labels, probabilities)    # runs on every call, not at tracing
        mean.update_state(tf.reduce_max(probabilities, axis=1))
        return tf.reduce_sum(probabilities)

    labels = np.array([1, 0, 1])
    probabilities = np.array([[0.1, 0.9], [0.3, 0.7], [0.6, 0.4]], np.float32)
    for _ in range(3):
        step(labels, probabilities)
    assert traces == [1]
    assert accuracy.result() == pytest.approx(1 / 3) and mean.result() == pytest.approx(
        (0.9 + 0.7 + 0.6) / 3)
    accuracy.update_state(labels[:1], tf.constant(probabilities[:1]))   # eagerly
    assert accuracy.result() == pytest.approx(4 / 10)
    with tf.Graph().as_default(), pytest.raises(TypeError, match="not graph tensors"):
        accuracy.update_state(tf.constant(labels), tf.constant(probabilities))
