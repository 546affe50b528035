"""tf.losses and tf.initializers: TensorFlow 1's formulas and reductions in closed form."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf


def run(t):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(t)


def test_weighted_reductions():
    losses = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    weights = np.array([[0.0, 1.0], [2.0, 0.0]], np.float32)
    R = tf.losses.Reduction
    with tf.Graph().as_default():
        got = run([tf.losses.compute_weighted_loss(losses, weights, reduction=r)
                   for r in (R.NONE, R.SUM, R.MEAN, R.SUM_OVER_BATCH_SIZE,
                             R.SUM_BY_NONZERO_WEIGHTS)]
                  + [tf.losses.compute_weighted_loss(losses, [[0.0], [0.0]]),
                     tf.losses.compute_weighted_loss(losses, 2.0)])
        assert len(tf.losses.get_losses()) == 7
    np.testing.assert_allclose(got[0], losses * weights)
    # weighted sum 2 + 6 = 8; sum of weights 3; 4 losses; 2 non-zero weights
    np.testing.assert_allclose(got[1:5], [8.0, 8 / 3, 2.0, 4.0], rtol=1e-6)
    assert got[5] == 0.0  # no non-zero weight: 0, not NaN
    np.testing.assert_allclose(got[6], 2 * losses.sum() / 4)  # a scalar weight broadcasts
    with pytest.raises(ValueError, match="Invalid Reduction Key"):
        tf.losses.compute_weighted_loss(losses, reduction="mean")


def test_loss_functions_closed_forms():
    y = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    p = np.array([[0.2, 0.7], [0.6, 0.1]], np.float32)
    logits = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    with tf.Graph().as_default():
        got = run([
            tf.losses.mean_squared_error(y, p), tf.losses.absolute_difference(y, p),
            tf.losses.log_loss(y, p), tf.losses.hinge_loss(y, logits),
            tf.losses.huber_loss(y, logits, delta=1.0),
            tf.losses.sigmoid_cross_entropy(y, logits, label_smoothing=0.2),
            tf.losses.softmax_cross_entropy(y, logits, label_smoothing=0.1),
            tf.losses.sparse_softmax_cross_entropy([1, 0], logits, weights=[1.0, 3.0]),
            tf.losses.cosine_distance(y, y, axis=1)])
    sig = lambda z: 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(got[0], ((p - y) ** 2).mean(), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.abs(p - y).mean(), rtol=1e-6)
    eps = 1e-7
    np.testing.assert_allclose(got[2], (-y * np.log(p + eps) - (1 - y) * np.log(1 - p + eps))
                               .mean(), rtol=1e-6)
    np.testing.assert_allclose(got[3], np.maximum(0, 1 - (2 * y - 1) * logits).mean(), rtol=1e-6)
    e = np.abs(logits - y)
    np.testing.assert_allclose(got[4], np.where(e <= 1, 0.5 * e ** 2, e - 0.5).mean(), rtol=1e-6)
    ys = y * 0.8 + 0.1
    np.testing.assert_allclose(got[5], (-(ys * np.log(sig(logits)) + (1 - ys) *
                                        np.log(1 - sig(logits)))).mean(), rtol=1e-5)
    ys = y * 0.9 + 0.05
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(got[6], (-(ys * logp).sum(1)).mean(), rtol=1e-5)
    per = -logp[[0, 1], [1, 0]]
    np.testing.assert_allclose(got[7], (per * [1, 3]).sum() / 2, rtol=1e-5)
    assert got[8] == pytest.approx(0.0, abs=1e-6)


def test_total_loss_adds_regularization_and_trains():
    with tf.Graph().as_default():
        w = tf.get_variable("w", [3, 1], regularizer=lambda v: 0.01 * tf.reduce_sum(v * v))
        x = tf.constant(np.eye(3, dtype=np.float32))
        tf.losses.mean_squared_error(tf.constant([[1.0], [2.0], [3.0]]), tf.matmul(x, w))
        total = tf.losses.get_total_loss()
        reg = tf.losses.get_regularization_loss()
        step = tf.train.GradientDescentOptimizer(0.5).minimize(total)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            wv, t, r = sess.run([w, total, reg])
            mse = ((wv[:, 0] - [1, 2, 3]) ** 2).mean()
            np.testing.assert_allclose([t, r], [mse + 0.01 * (wv ** 2).sum(),
                                                0.01 * (wv ** 2).sum()], rtol=1e-5)
            for _ in range(200):
                sess.run(step)
            # the minimum of mean((w - t)^2) + 0.01 |w|^2: w = t / (1 + 0.03)
            np.testing.assert_allclose(sess.run(w)[:, 0], np.array([1, 2, 3]) / 1.03, rtol=1e-4)


def test_initializers_namespace():
    with tf.Graph().as_default():
        shape = (200, 300)
        values = run([tf.initializers.zeros()(shape), tf.initializers.ones()(shape),
                      tf.initializers.constant(0.5)(shape),
                      tf.initializers.lecun_uniform(seed=1)(shape),
                      tf.initializers.glorot_uniform(seed=1)(shape),
                      tf.initializers.he_normal(seed=1)(shape)])
    assert (values[0] == 0).all() and (values[1] == 1).all() and (values[2] == 0.5).all()
    assert np.abs(values[3]).max() <= np.sqrt(3 / 200) + 1e-6
    assert np.abs(values[4]).max() <= np.sqrt(6 / 500) + 1e-6
    np.testing.assert_allclose(values[5].std(), np.sqrt(2 / 200), rtol=0.05)
    assert tf.initializers.global_variables is tf.global_variables_initializer
