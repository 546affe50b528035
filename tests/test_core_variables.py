"""Variables, get_variable with scopes and reuse, initializers, creator and strategy seams."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf
from ringtrain.core import distribution


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def conv_relu(inp, kernel_shape, bias_shape):
    weights = tf.get_variable("weights", kernel_shape,
                              initializer=tf.random_normal_initializer())
    biases = tf.get_variable("biases", bias_shape, initializer=tf.constant_initializer(0.0))
    conv = tf.nn.conv2d(inp, weights, strides=[1, 1, 1, 1], padding="SAME")
    return tf.nn.relu(conv + biases)


def my_image_filter(input_images):
    with tf.variable_scope("conv1"):
        relu1 = conv_relu(input_images, [5, 5, 3, 4], [4])
    with tf.variable_scope("conv2"):
        return conv_relu(relu1, [5, 5, 4, 4], [4])


def test_lecture_variable_sharing_with_reuse(fresh_graph):
    input1 = tf.random_normal([1, 10, 10, 3])
    input2 = tf.random_normal([1, 20, 20, 3])
    with pytest.raises(ValueError, match="already exists, disallowed"):
        x = conv_relu(input1, [5, 5, 3, 3], [3])
        conv_relu(x, [5, 5, 3, 3], [3])  # the lecture's "wrong!" example
    with tf.variable_scope("model"):
        out1 = my_image_filter(input1)
    with tf.variable_scope("model", reuse=True):
        out2 = my_image_filter(input2)
    names = sorted(v.op.name for v in tf.global_variables() if v.op.name.startswith("model"))
    assert names == ["model/conv1/biases", "model/conv1/weights", "model/conv2/biases",
                     "model/conv2/weights"]
    assert out1.op.name.startswith("model/") and out2.op.name.startswith("model_1/")
    with tf.variable_scope("model2") as scope:
        o1 = my_image_filter(input1)
        scope.reuse_variables()
        o2 = my_image_filter(input2)
    assert len([v for v in tf.global_variables() if v.op.name.startswith("model2/")]) == 4
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        r1, r2, s1, s2 = sess.run([out1, out2, o1, o2])
    assert r1.shape == (1, 10, 10, 4) and r2.shape == (1, 20, 20, 4)
    assert s1.shape == (1, 10, 10, 4) and s2.shape == (1, 20, 20, 4)


def test_reuse_of_a_missing_variable_and_shape_mismatch_are_errors():
    with tf.variable_scope("s", reuse=True), pytest.raises(ValueError, match="does not exist"):
        tf.get_variable("nope", [1])
    with tf.variable_scope("t"):
        tf.get_variable("v", [2, 3])
    with tf.variable_scope("t", reuse=True):
        with pytest.raises(ValueError, match="shape"):
            tf.get_variable("v", [3, 2])
        with tf.variable_scope("inner", reuse=False):  # reuse=True is inherited
            assert tf.get_variable_scope().reuse is True


def test_auto_reuse_and_shared_objects():
    def make():
        with tf.variable_scope("shared", reuse=tf.AUTO_REUSE):
            return tf.get_variable("w", [3], initializer=tf.ones_initializer())
    assert make() is make()
    with tf.variable_scope("a"), tf.variable_scope("b"):
        v = tf.get_variable("c", [])
    assert v.name == "a/b/c:0"


def test_initializers_values_and_ranges():
    tf.set_random_seed(0)
    z = tf.get_variable("z", [2, 2], initializer=tf.zeros_initializer)
    o = tf.get_variable("o", [3], initializer=tf.ones_initializer())
    c = tf.get_variable("c", [2, 2], initializer=tf.constant_initializer([1, 2, 3, 4]))
    i = tf.get_variable("i", [1, 2, 3], dtype=tf.int32, initializer=tf.zeros_initializer)
    s = tf.get_variable("scalar", initializer=tf.constant(3))
    m = tf.get_variable("matrix", initializer=tf.constant([[1, 2], [3, 4]]))
    g = tf.get_variable("glorot", [300, 200])
    n = tf.get_variable("normal", [50000], initializer=tf.random_normal_initializer(1.0, 2.0))
    t = tf.get_variable("trunc", [50000], initializer=tf.truncated_normal_initializer(0, 0.1))
    u = tf.get_variable("unif", [50000], initializer=tf.random_uniform_initializer(-2, 2))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        zv, ov, cv, iv, sv, mv, gv, nv, tv, uv = sess.run([z, o, c, i, s, m, g, n, t, u])
    assert zv.tolist() == [[0, 0], [0, 0]] and ov.tolist() == [1, 1, 1]
    assert cv.tolist() == [[1, 2], [3, 4]]
    assert iv.dtype == np.int32 and iv.shape == (1, 2, 3) and not iv.any()
    assert sv == 3 and s.dtype == tf.int32 and mv.tolist() == [[1, 2], [3, 4]]
    limit = np.sqrt(6.0 / (300 + 200))
    assert np.abs(gv).max() <= limit and np.abs(gv).max() > 0.9 * limit  # glorot_uniform default
    assert abs(nv.mean() - 1.0) < 0.05 and abs(nv.std() - 2.0) < 0.05
    assert np.abs(tv).max() <= 0.2
    assert uv.min() >= -2 and uv.max() < 2


def test_variable_class_names_assign_and_collections():
    with tf.name_scope("layer"):
        w = tf.Variable(tf.zeros([2]), name="W")
        b = tf.Variable(3.0, name="b", trainable=False)
    assert w.name == "layer/W:0" and w.op.type == "VariableV2"
    assert str(w) == "<tf.Variable 'layer/W:0' shape=(2,) dtype=float32>"
    assert tf.trainable_variables() == [w]
    assert tf.global_variables() == [w, b]
    with tf.Session() as sess:
        sess.run(tf.variables_initializer([w, b]))
        assert sess.run(tf.assign(w, [1.0, 2.0])).tolist() == [1.0, 2.0]
        assert sess.run(tf.assign_add(w, [1.0, 1.0])).tolist() == [2.0, 3.0]
        assert sess.run(w.assign_sub([0.5, 0.5])).tolist() == [1.5, 2.5]
        b.load(7.0, sess)
        assert sess.run(b) == 7.0
        with pytest.raises(ValueError, match="shape"):
            w.load([1.0, 2.0, 3.0], sess)
    with pytest.raises(ValueError, match="shape"):
        w.assign([1.0, 2.0, 3.0])


def test_variable_creator_scope_chain():
    seen = []

    def outer(next_creator, **kwargs):
        seen.append(("outer", kwargs["name"]))
        return next_creator(**kwargs)

    def inner(next_creator, **kwargs):
        seen.append(("inner", kwargs["name"]))
        kwargs["initial_value"] = 42.0
        return next_creator(**kwargs)

    with tf.variable_creator_scope(outer), tf.variable_creator_scope(inner):
        v = tf.Variable(1.0, name="v")
    assert seen == [("inner", "v"), ("outer", "v")]
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(v) == 42.0
    assert isinstance(tf.Variable(1.0), tf.Variable)  # outside the scope: no creators


class RecordingContext:
    """A stand-in distribution context recording what the core hands it."""

    def __init__(self):
        self.initial = []
        self.aggregated = []

    def initial_value(self, name, value):
        self.initial.append(name)
        return value * 0.0 + 5.0  # every replica would get the chief's value; here: 5

    def aggregate_gradients(self, grads_and_vars):
        self.aggregated.append([v.op.name for _, v in grads_and_vars])
        return [(None if g is None else g * 2.0, v) for g, v in grads_and_vars]


def test_distribution_hooks_for_variables_and_optimizers():
    ctx = RecordingContext()
    assert distribution.current() is None
    with distribution.use(ctx):
        assert distribution.current() is ctx
        w = tf.get_variable("w", [], initializer=tf.constant_initializer(1.0))
        opt = tf.train.GradientDescentOptimizer(0.1)
    plain = tf.train.GradientDescentOptimizer(0.1)
    assert distribution.current() is None
    assert ctx.initial == ["w"]
    loss = tf.square(w)
    step = opt.minimize(loss)
    step_plain = plain.minimize(loss)
    assert ctx.aggregated == [["w"]]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(w) == 5.0                # initial value went through the context
        sess.run(step)
        assert sess.run(w) == pytest.approx(5.0 - 0.1 * 2 * (2 * 5.0))  # gradient doubled
        sess.run(step_plain)
        assert sess.run(w) == pytest.approx(3.0 - 0.1 * 2 * 3.0)


def test_scope_defaults_and_regularizer_collection():
    with tf.variable_scope("reg", initializer=tf.ones_initializer(),
                           regularizer=lambda v: tf.reduce_sum(tf.square(v))):
        v = tf.get_variable("v", [3])
    (loss,) = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(v).tolist() == [1.0, 1.0, 1.0]
        assert sess.run(loss) == 3.0


def test_variance_scaling_is_one_rule_for_the_core_and_keras():
    # tf.initializers.variance_scaling: variance scale / n, n = fan_in, fan_out or their mean;
    # a conv kernel (kh, kw, in, out) has fan_in = kh*kw*in and fan_out = kh*kw*out.
    from ringtrain.core.variables import fans, variance_scaling_spread
    assert fans((3, 3, 4, 8)) == (36.0, 72.0)
    assert fans((5, 7)) == (5.0, 7.0) and fans((6,)) == (6.0, 6.0) and fans(()) == (1.0, 1.0)
    np.testing.assert_allclose(variance_scaling_spread((3, 3, 4, 8), 1.0, "fan_avg", "uniform"),
                               np.sqrt(6 / 108))  # Glorot uniform's limit sqrt(6/(in+out))
    np.testing.assert_allclose(
        variance_scaling_spread((3, 3, 4, 8), 2.0, "fan_in", "truncated_normal"),
        np.sqrt(2 / 36) / 0.87962566103423978)  # He normal, before truncation at 2 stddevs
    shape = (3, 3, 40, 80)
    limit = np.sqrt(6 / (9 * 40))  # He uniform: sqrt(6 / fan_in)
    keras_values = tf.keras.initializers.HeUniform(seed=1)(shape)
    with tf.Graph().as_default():
        core_values = tf.Session().run(tf.variance_scaling_initializer(
            2.0, "fan_in", "uniform", seed=1)(shape))
    for values in (keras_values, core_values):
        assert np.abs(values).max() <= limit and np.abs(values).max() > 0.99 * limit
        np.testing.assert_allclose(values.var(), limit ** 2 / 3, rtol=0.05)
    for bad in ({"scale": 0.0}, {"mode": "fan_sum"}, {"distribution": "cauchy"}):
        with pytest.raises(ValueError, match="VarianceScaling"):
            tf.keras.initializers.VarianceScaling(**bad)
        with pytest.raises(ValueError, match="VarianceScaling"):
            tf.variance_scaling_initializer(**bad)
