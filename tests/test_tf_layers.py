"""tf.layers: TF1's variable names and reuse over the Keras layers, numbers from closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf
from ringtrain.errors import UnsupportedFeatureError

R = np.random.default_rng(0)


def test_variable_names_scopes_and_reuse_follow_tf1():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 6])
        a = tf.layers.dense(x, 3)
        b = tf.layers.dense(a, 2)
        with tf.variable_scope("head"):
            c = tf.layers.dense(x, 4, name="fc")
        with tf.variable_scope("head", reuse=True):
            c2 = tf.layers.dense(x, 4, name="fc")
        with tf.variable_scope("tower", reuse=tf.AUTO_REUSE):
            d = tf.layers.dense(x, 4, name="shared")
            d2 = tf.layers.dense(x, 4, name="shared")
        e = tf.layers.dense(x, 4, name="head/fc", reuse=True)
        names = [v.op.name for v in tf.global_variables()]
        assert names == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias",
                         "head/fc/kernel", "head/fc/bias", "tower/shared/kernel",
                         "tower/shared/bias"]
        assert [v.op.name for v in tf.trainable_variables()] == names
        with pytest.raises(ValueError, match="already exists"):
            tf.layers.dense(x, 4, name="dense")  # accidental reuse is refused, as in TF1
        with pytest.raises(ValueError, match="does not exist"):
            tf.layers.dense(x, 4, name="nothing_here", reuse=True)
        frozen = tf.layers.dense(x, 2, trainable=False, name="frozen")
        assert "frozen/kernel:0" not in [v.name for v in tf.trainable_variables()]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            feed = {x: R.normal(size=(5, 6))}
            rc, rc2, rd, rd2, re_ = sess.run([c, c2, d, d2, e], feed)
            sess.run([b, frozen], feed)
    np.testing.assert_array_equal(rc, rc2)
    np.testing.assert_array_equal(rd, rd2)
    np.testing.assert_array_equal(rc, re_)


def test_dense_and_conv2d_compute_their_closed_forms():
    xv = R.normal(size=(2, 5, 5, 3)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.constant(xv)
        y = tf.layers.conv2d(x, 4, (3, 2), strides=(2, 1), padding="valid",
                             kernel_initializer=tf.truncated_normal_initializer(stddev=0.1),
                             bias_initializer=tf.constant_initializer(0.5), name="c")
        flat = tf.layers.flatten(y)
        z = tf.layers.dense(flat, 3, activation=tf.nn.relu, name="d")
        assert y.shape.as_list() == [2, 2, 4, 4] and flat.shape.as_list() == [2, 32]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            yv, zv, k, b, w, bd = sess.run([y, z] + [tf.get_default_graph().get_tensor_by_name(n)
                                                     for n in ("c/kernel:0", "c/bias:0",
                                                               "d/kernel:0", "d/bias:0")])
    assert np.abs(k).max() <= 0.2 + 1e-6 and (b == 0.5).all() and (bd == 0).all()
    want = np.zeros((2, 2, 4, 4), np.float32)
    for i in range(2):
        for j in range(4):
            patch = xv[:, 2 * i:2 * i + 3, j:j + 2, :]
            want[:, i, j, :] = np.tensordot(patch, k, axes=([1, 2, 3], [0, 1, 2])) + 0.5
    np.testing.assert_allclose(yv, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(zv, np.maximum(want.reshape(2, -1) @ w + bd, 0), rtol=1e-5,
                               atol=1e-5)


def test_pooling_dropout_and_regularizers():
    xv = np.arange(32, dtype=np.float32).reshape(1, 4, 4, 2)
    with tf.Graph().as_default():
        x = tf.constant(xv)
        mx = tf.layers.max_pooling2d(x, 2, 2)
        av = tf.layers.average_pooling2d(x, 2, 2)
        train = tf.placeholder(tf.bool, [])
        ones = tf.ones([1000, 10])
        dropped = tf.layers.dropout(ones, rate=0.25, training=train, seed=1)
        kept = tf.layers.dropout(ones, rate=0.25)  # training=False by default, as TF1
        tf.layers.dense(tf.ones([2, 3]), 2, kernel_regularizer=lambda w: tf.reduce_sum(w * w),
                        name="reg")
        (penalty,) = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            m, a, d_on, d_off, k, p, w = sess.run(
                [mx, av, dropped, dropped, kept, penalty,
                 tf.get_default_graph().get_tensor_by_name("reg/kernel:0")],
                {train: True})
            d_off = sess.run(dropped, {train: False})
    np.testing.assert_array_equal(m[0, :, :, 0], [[10, 14], [26, 30]])
    np.testing.assert_array_equal(a[0, :, :, 0], [[5, 9], [21, 25]])
    assert set(np.unique(d_on)) == {0.0, np.float32(1 / 0.75)}
    assert abs((d_on == 0).mean() - 0.25) < 0.02
    assert (d_off == 1).all() and (k == 1).all()
    np.testing.assert_allclose(p, (w * w).sum(), rtol=1e-6)


def test_batch_normalization_with_a_training_placeholder():
    xv = R.normal(3.0, 2.0, size=(64, 5)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.constant(xv)
        training = tf.placeholder(tf.bool, [])
        y = tf.layers.batch_normalization(x, momentum=0.9, training=training)
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        assert len(updates) == 2
        names = [v.op.name for v in tf.global_variables()]
        assert names == ["batch_normalization/gamma", "batch_normalization/beta",
                         "batch_normalization/moving_mean", "batch_normalization/moving_variance"]
        mean, var = (tf.get_default_graph().get_tensor_by_name(f"batch_normalization/{n}:0")
                     for n in ("moving_mean", "moving_variance"))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            inference = sess.run(y, {training: False})
            sess.run(updates, {training: False})  # not training: the averages stay put
            assert (sess.run(mean) == 0).all() and (sess.run(var) == 1).all()
            yt, _ = sess.run([y, updates], {training: True})
            m, v = sess.run([mean, var])
    np.testing.assert_allclose(inference, xv / np.sqrt(1 + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(yt.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(yt.var(0), xv.var(0) / (xv.var(0) + 1e-3), rtol=1e-4)
    np.testing.assert_allclose(m, 0.1 * xv.mean(0), rtol=1e-5)
    np.testing.assert_allclose(v, 0.9 + 0.1 * xv.var(0), rtol=1e-5)


def test_layers_train_a_small_model():
    xv = R.normal(size=(256, 4)).astype(np.float32)
    yv = (xv @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32) + 0.25)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        x = tf.placeholder(tf.float32, [None, 4])
        y = tf.placeholder(tf.float32, [None, 1])
        h = tf.layers.dense(x, 16, activation=tf.nn.tanh)
        loss = tf.reduce_mean(tf.square(tf.layers.dense(h, 1) - y))
        step = tf.train.AdamOptimizer(0.05).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            first = sess.run(loss, {x: xv, y: yv})
            for _ in range(300):
                sess.run(step, {x: xv, y: yv})
            last = sess.run(loss, {x: xv, y: yv})
    assert last < first / 50


def test_left_out_tf_layers_name_the_alternative():
    with pytest.raises(UnsupportedFeatureError, match=r"tf\.layers\.conv1d .*conv2d"):
        tf.layers.conv1d  # noqa: B018
    with pytest.raises(UnsupportedFeatureError, match="renorm"), tf.Graph().as_default():
        tf.layers.batch_normalization(tf.ones([2, 3]), renorm=True)
