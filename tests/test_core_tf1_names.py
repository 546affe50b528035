"""TF1 names beyond the basics: division variants, arg_max/arg_min, multinomial, tf.compat,
tf.nn's replica-aware losses, and tf.metrics (values from TensorFlow 1.15's documentation,
closed forms, and scikit-learn for the AUC)."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf


def run(*fetches, feed=None):
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        return sess.run(list(fetches), feed)


def test_division_variants_follow_tf1():
    with tf.Graph().as_default():
        got = run(tf.div(7, 2), tf.div(-7, 2), tf.div(7.0, 2.0), tf.floor_div(-7, 5),
                  tf.truncatediv(-7, 5), tf.truncatediv(7, -5), tf.truncatediv(-10, 5),
                  tf.truncatemod(-7, 5), tf.truncatemod(7.5, -2.0), tf.realdiv(1.0, 4.0),
                  tf.div_no_nan([1.0, -2.0, 0.0], [0.0, 4.0, 0.0]))
    # tf.div is Python 2 division: floor for integers, true division for floats.
    assert got[:4] == [3, -4, 3.5, -2]
    # truncatediv rounds toward zero (-7 / 5 = -1), truncatemod keeps x's sign (C's fmod).
    assert got[4:9] == [-1, -1, -2, -2, 1.5]
    assert got[9] == 0.25
    assert got[10].tolist() == [0.0, -0.5, 0.0]
    with tf.Graph().as_default():
        with pytest.raises(TypeError, match="integer"):
            tf.truncatediv(1.0, 2.0)
        with pytest.raises(tf.errors.InvalidArgumentError, match="division by zero"):
            run(tf.truncatediv(tf.constant([4, 1]), tf.constant([2, 0])))


def test_div_no_nan_gradient_is_zero_where_the_divisor_is_zero():
    with tf.Graph().as_default():
        x = tf.constant([3.0, 3.0], tf.float64)
        y = tf.constant([2.0, 0.0], tf.float64)
        gx, gy = tf.gradients(tf.reduce_sum(tf.div_no_nan(x, y)), [x, y])
        gx, gy = run(gx, gy)
    assert gx.tolist() == [0.5, 0.0] and gy.tolist() == [-0.75, 0.0]


def test_arg_max_and_arg_min_take_dimension():
    with tf.Graph().as_default():
        x = tf.constant([[1, 5, 2], [7, 0, 3]])
        got = run(tf.arg_max(x, 1), tf.arg_min(x, dimension=0), tf.arg_max(x, 0))
    assert [g.tolist() for g in got] == [[1, 0], [0, 1, 0], [1, 0, 1]]
    assert got[0].dtype == np.int64


def test_multinomial_draws_classes_with_the_softmax_probabilities():
    probs = np.array([[0.2, 0.3, 0.5], [0.9, 0.1, 0.0]])
    with tf.Graph().as_default():
        with np.errstate(divide="ignore"):
            logits = tf.constant(np.log(probs), tf.float32)  # log 0 = -inf: never drawn
        draw = tf.multinomial(logits, 20000, seed=7)
        same = tf.random.categorical(logits, 5, seed=3)
        assert draw.shape.as_list() == [2, 20000] and draw.dtype == tf.int64
        a, b = run(draw, same)
        (b2,) = run(same)
    for row in range(2):
        freq = np.bincount(a[row], minlength=3) / a.shape[1]
        np.testing.assert_allclose(freq, probs[row], atol=0.015)
    assert (a[1] != 2).all()  # probability 0 is never drawn
    assert b.tolist() == b2.tolist()  # an op seed makes it reproducible


def test_compat_text_and_bytes():
    assert tf.compat.as_bytes("héllo") == "héllo".encode()
    assert tf.compat.as_bytes(bytearray(b"ab")) == b"ab"
    assert tf.compat.as_str(b"caf\xc3\xa9") == "café" and tf.compat.as_text("x") == "x"
    assert tf.compat.as_str_any(12) == "12"
    with pytest.raises(TypeError, match="Expected binary or unicode string"):
        tf.compat.as_bytes(3)
    assert tf.compat.v1 is tf
    assert tf.compat.v1.placeholder is tf.placeholder


def test_compute_average_loss_outside_a_strategy_is_tf1s():
    with tf.Graph().as_default():
        per_example = tf.constant([1.0, 2.0, 3.0, 4.0])
        got = run(tf.nn.compute_average_loss(per_example),
                  tf.nn.compute_average_loss(per_example, global_batch_size=8),
                  tf.nn.compute_average_loss(per_example, sample_weight=[1.0, 0.0, 1.0, 0.0]),
                  tf.nn.scale_regularization_loss([0.5, 0.25]))
    np.testing.assert_allclose(got, [2.5, 10 / 8, 4 / 4, 0.75])


def test_streaming_mean_accuracy_precision_recall():
    with tf.Graph().as_default():
        labels = tf.placeholder(tf.int64, [None])
        preds = tf.placeholder(tf.int64, [None])
        w = tf.placeholder(tf.float32, [None])
        acc, acc_up = tf.metrics.accuracy(labels, preds, metrics_collections=["m"])
        wacc, wacc_up = tf.metrics.accuracy(labels, preds, weights=w, name="weighted")
        prec, prec_up = tf.metrics.precision(labels, preds)
        rec, rec_up = tf.metrics.recall(labels, preds)
        tp, tp_up = tf.metrics.true_positives(labels, preds)
        mean, mean_up = tf.metrics.mean(tf.cast(labels, tf.float32))
        assert tf.get_collection("m") == [acc]
        names = [v.op.name for v in tf.local_variables()]
        assert names[:2] == ["accuracy/total", "accuracy/count"]
        assert tf.get_collection(tf.GraphKeys.METRIC_VARIABLES) == tf.local_variables()
        assert tf.trainable_variables() == [] and tf.global_variables() == []
        with tf.Session() as sess:
            sess.run(tf.local_variables_initializer())
            assert sess.run([acc, prec, rec]) == [0.0, 0.0, 0.0]  # 0 while nothing was seen
            ups = [acc_up, wacc_up, prec_up, rec_up, tp_up, mean_up]
            sess.run(ups, {labels: [1, 0, 1, 1], preds: [1, 1, 0, 1], w: [1, 1, 1, 2]})
            sess.run(ups, {labels: [0, 0], preds: [0, 1], w: [3, 0]})
            got = sess.run([acc, wacc, prec, rec, tp, mean])
            sess.run(tf.local_variables_initializer())
            reset = sess.run([acc, tp])
    # 3 of 6 right; weighted (1+0+0+2+3+0)/(1+1+1+2+3+0) = 6/8; tp 2, fp 2, fn 1; mean 3/6
    np.testing.assert_allclose(got, [0.5, 0.75, 0.5, 2 / 3, 2.0, 0.5], rtol=1e-6)
    assert reset == [0.0, 0.0]


def test_streaming_errors_and_thresholds():
    with tf.Graph().as_default():
        y = tf.constant([1.0, 2.0, 3.0, 4.0])
        p = tf.constant([1.5, 2.0, 2.0, 6.0])
        got = run(tf.metrics.mean_absolute_error(y, p)[1], tf.metrics.mean_squared_error(y, p)[1],
                  tf.metrics.root_mean_squared_error(y, p)[1],
                  tf.metrics.mean_relative_error(y, p, normalizer=y)[1],
                  tf.metrics.percentage_below(y, 2.5)[1],
                  tf.metrics.true_positives_at_thresholds(
                      [1, 0, 1, 1], [0.9, 0.6, 0.3, 0.5], [0.25, 0.5, 0.75])[1])
    np.testing.assert_allclose(got[:5], [3.5 / 4, 5.25 / 4, np.sqrt(5.25 / 4),
                                         (0.5 + 0 + 1 / 3 + 0.5) / 4, 0.5], rtol=1e-6)
    assert got[5].tolist() == [3.0, 1.0, 1.0]  # strictly greater than each threshold


def test_auc_matches_the_exact_area_for_well_spread_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    scores = np.clip(0.35 * y + 0.65 * rng.random(2000), 0, 1).astype(np.float32)
    from sklearn.metrics import average_precision_score, roc_auc_score
    with tf.Graph().as_default():
        labels = tf.placeholder(tf.int64, [None])
        s = tf.placeholder(tf.float32, [None])
        roc, roc_up = tf.metrics.auc(labels, s, num_thresholds=1000)
        pr, pr_up = tf.metrics.auc(labels, s, curve="PR", num_thresholds=1000)
        lo, lo_up = tf.metrics.auc(labels, s, summation_method="minoring")
        hi, hi_up = tf.metrics.auc(labels, s, summation_method="majoring")
        with tf.Session() as sess:
            sess.run(tf.local_variables_initializer())
            for part in np.array_split(np.arange(2000), 3):  # streamed over three batches
                sess.run([roc_up, pr_up, lo_up, hi_up], {labels: y[part], s: scores[part]})
            got_roc, got_pr, got_lo, got_hi = sess.run([roc, pr, lo, hi])
    assert abs(got_roc - roc_auc_score(y, scores)) < 2e-3
    assert abs(got_pr - average_precision_score(y, scores)) < 2e-2
    assert got_lo <= roc_auc_score(y, scores) + 1e-6 <= got_hi + 2e-6


def test_confusion_matrix_mean_iou_and_mean_per_class_accuracy():
    with tf.Graph().as_default():
        # TF's documented example: labels [1, 2, 4], predictions [2, 2, 4] -> 5 x 5
        doc = tf.confusion_matrix([1, 2, 4], [2, 2, 4])
        weighted = tf.confusion_matrix([0, 1, 1], [1, 1, 0], num_classes=3, dtype=tf.float32,
                                       weights=[0.5, 2.0, 3.0])
        labels = tf.placeholder(tf.int64, [None])
        preds = tf.placeholder(tf.int64, [None])
        iou, iou_up = tf.metrics.mean_iou(labels, preds, 3)
        acc, acc_up = tf.metrics.mean_per_class_accuracy(labels, preds, 3)
        with tf.Session() as sess:
            sess.run(tf.local_variables_initializer())
            got_doc, got_w = sess.run([doc, weighted])
            sess.run([iou_up, acc_up], {labels: [0, 0, 1], preds: [0, 1, 1]})
            sess.run([iou_up, acc_up], {labels: [1, 2, 2], preds: [1, 2, 0]})
            got_iou, got_acc = sess.run([iou, acc])
            with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
                sess.run(iou_up, {labels: [3], preds: [0]})
    want = np.zeros((5, 5), np.int32)
    want[1, 2] = want[2, 2] = want[4, 4] = 1
    np.testing.assert_array_equal(got_doc, want)
    np.testing.assert_array_equal(got_w, [[0, 0.5, 0], [3.0, 2.0, 0], [0, 0, 0]])
    # confusion [[1,1,0],[0,2,0],[1,0,1]]: IoU 1/3, 2/3, 1/2; per-class accuracy 1/2, 1, 1/2
    np.testing.assert_allclose(got_iou, (1 / 3 + 2 / 3 + 1 / 2) / 3, rtol=1e-6)
    np.testing.assert_allclose(got_acc, 2 / 3, rtol=1e-6)
