"""Candidate samplers and tf.nn.nce_loss / sampled_softmax_loss: TensorFlow's formulas with the
sampled classes given (closed forms in NumPy, gradients against torch float64) and the samplers'
distributions and expected counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ringtrain as tf

R = np.random.default_rng(3)
B, D, C, S = 4, 3, 10, 5  # batch, dim, classes, sampled


def _setup():
    w, b, x = R.normal(size=(C, D)), R.normal(size=C), R.normal(size=(B, D))
    labels = np.array([[1], [4], [2], [7]])
    sampled = np.array([0, 4, 8, 9, 2])  # rows 1 and 2 have accidental hits (4, 2)
    true_exp = R.uniform(0.1, 0.9, size=(B, 1))
    sampled_exp = R.uniform(0.1, 0.9, size=S)
    return w, b, x, labels, sampled, true_exp, sampled_exp


def _torch_logits(w, b, x, labels, sampled, true_exp, sampled_exp, remove_hits):
    true_logits = (x * w[labels[:, 0]]).sum(1, keepdim=True) + b[labels[:, 0]][:, None]
    sampled_logits = x @ w[sampled].T + b[sampled]
    if remove_hits:
        hits = torch.as_tensor(labels[:, :1] == sampled[None, :])
        sampled_logits = torch.where(hits, sampled_logits + torch.finfo(torch.float64).min,
                                     sampled_logits)
    true_logits = true_logits - torch.log(torch.as_tensor(true_exp))
    sampled_logits = sampled_logits - torch.log(torch.as_tensor(sampled_exp))
    return torch.cat([true_logits, sampled_logits], 1)


@pytest.mark.parametrize("which, remove_hits", [("nce", False), ("nce", True),
                                                ("softmax", True), ("softmax", False)])
def test_sampled_losses_match_tensorflows_formulas(which, remove_hits):
    w, b, x, labels, sampled, true_exp, sampled_exp = _setup()
    fn = tf.nn.nce_loss if which == "nce" else tf.nn.sampled_softmax_loss
    with tf.Graph().as_default():
        tw, tb, tx = (tf.constant(a) for a in (w, b, x))
        loss = fn(tw, tb, tf.constant(labels), tx, S, C,
                  sampled_values=(tf.constant(sampled), tf.constant(true_exp, tf.float32),
                                  tf.constant(sampled_exp, tf.float32)),
                  remove_accidental_hits=remove_hits)
        grads = tf.gradients(tf.reduce_sum(loss), [tw, tb, tx])
        with tf.Session() as sess:
            got, *got_grads = sess.run([loss, *grads])
    pw, pb, px = (torch.tensor(a, requires_grad=True) for a in (w, b, x))
    logits = _torch_logits(pw, pb, px, labels, sampled, true_exp.astype(np.float32)
                           .astype(np.float64), sampled_exp.astype(np.float32)
                           .astype(np.float64), remove_hits)
    target = torch.cat([torch.ones(B, 1), torch.zeros(B, S)], 1).double()
    if which == "nce":
        want = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none").sum(1)
    else:
        want = -(target * torch.log_softmax(logits, 1)).sum(1)
    want.sum().backward()
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-6)
    for g, t in zip(got_grads, (pw, pb, px)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_log_uniform_sampler_distribution_and_expected_counts():
    range_max, n = 20, 200000
    p = (np.log(np.arange(range_max) + 2) - np.log(np.arange(range_max) + 1)) / np.log(21)
    with tf.Graph().as_default():
        true = tf.constant([[0], [19]], tf.int64)
        many, true_exp, sampled_exp = tf.nn.log_uniform_candidate_sampler(
            true, 1, n, unique=False, range_max=range_max, seed=1)
        few, u_true_exp, u_sampled_exp = tf.random.log_uniform_candidate_sampler(
            true, 1, 8, unique=True, range_max=range_max, seed=2)
        uni, uni_true_exp, _ = tf.nn.uniform_candidate_sampler(true, 1, 6, True, 12, seed=3)
        with tf.Session() as sess:
            got = sess.run([many, true_exp, sampled_exp, few, u_true_exp, u_sampled_exp, uni,
                            uni_true_exp])
    freq = np.bincount(got[0], minlength=range_max) / n
    np.testing.assert_allclose(freq, p, atol=3e-3)
    np.testing.assert_allclose(got[1][:, 0], p[[0, 19]] * n, rtol=1e-5)  # p * num_sampled
    np.testing.assert_allclose(got[2], p[got[0]] * n, rtol=1e-5)
    few_ids = got[3]
    assert len(set(few_ids.tolist())) == 8 and few_ids.min() >= 0 and few_ids.max() < range_max
    # unique: 1 - (1 - p)^tries for one common number of tries >= 8
    tries = np.log1p(-got[5]) / np.log1p(-p[few_ids])
    assert np.allclose(tries, tries[0], rtol=1e-3) and tries[0] >= 8 - 1e-3
    np.testing.assert_allclose(got[4][:, 0], -np.expm1(tries[0] * np.log1p(-p[[0, 19]])),
                               rtol=1e-4)
    assert len(set(got[6].tolist())) == 6 and got[6].max() < 12


def test_nce_trains_an_embedding_classifier():
    # 40 classes; each input is its class's one-hot code: NCE learns to rank the true class first
    classes, dim = 40, 40
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        x = tf.placeholder(tf.float32, [None, dim])
        y = tf.placeholder(tf.int64, [None, 1])
        w = tf.Variable(tf.random_normal([classes, dim], stddev=0.1))
        b = tf.Variable(tf.zeros([classes]))
        loss = tf.reduce_mean(tf.nn.nce_loss(w, b, y, x, num_sampled=8, num_classes=classes))
        step = tf.train.AdamOptimizer(0.05).minimize(loss)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(
            tf.argmax(tf.matmul(x, w, transpose_b=True) + b, 1), y[:, 0]), tf.float32))
        ids = np.arange(classes)
        feed = {x: np.eye(classes, dtype=np.float32), y: ids[:, None]}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(300):
                sess.run(step, feed)
            assert sess.run(accuracy, feed) > 0.95
