"""TF1 graph-mode iterators: initializable, reinitializable (from_structure), feedable
(from_string_handle), and the TF1 output_types / output_shapes properties."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf


def drain(sess, tensor):
    out = []
    while True:
        try:
            out.append(sess.run(tensor))
        except tf.errors.OutOfRangeError:
            return out


def test_output_types_and_shapes_of_datasets():
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((5, 3), np.float32),
                                             np.arange(5))).batch(2)
    assert ds.output_types == (tf.float32, tf.int64)
    shapes = ds.output_shapes
    assert shapes[0].as_list() == [None, 3] and shapes[1].as_list() == [None]
    assert tf.data.get_output_types(ds) == ds.output_types
    named = tf.data.Dataset.from_tensor_slices({"a": np.zeros(3), "b": np.zeros((3, 2))})
    assert named.output_types == {"a": tf.float64, "b": tf.float64}
    assert named.output_shapes["b"].as_list() == [2]


def test_initializable_iterator_needs_its_initializer_and_restarts_each_pass():
    with tf.Graph().as_default():
        ds = tf.data.Dataset.range(5).batch(2)
        iterator = ds.make_initializable_iterator()
        batch = iterator.get_next()
        assert batch.shape.as_list() == [None] and batch.dtype == tf.int64
        with tf.Session() as sess:
            with pytest.raises(tf.errors.FailedPreconditionError, match="not been initialized"):
                sess.run(batch)
            for _ in range(2):
                sess.run(iterator.initializer)
                assert [b.tolist() for b in drain(sess, batch)] == [[0, 1], [2, 3], [4]]
            sess.run(iterator.initializer)
            assert sess.run(batch).tolist() == [0, 1]


def test_initializable_iterator_reshuffles_each_pass():
    # The CS20 pattern: one iterator, a new pass (here of a reshuffling dataset) per epoch.
    with tf.Graph().as_default():
        ds = tf.data.Dataset.range(6).shuffle(6, seed=3)
        iterator = ds.make_initializable_iterator()
        value = iterator.get_next()
        with tf.Session() as sess:
            passes = []
            for _ in range(3):
                sess.run(iterator.initializer)
                passes.append([int(v) for v in drain(sess, value)])
    assert all(sorted(p) == list(range(6)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # reshuffled each pass (seed 3: fixed orders)


def test_reinitializable_iterator_switches_between_datasets_of_one_structure():
    with tf.Graph().as_default():
        train = tf.data.Dataset.from_tensor_slices((np.arange(4, dtype=np.float32),
                                                    np.arange(4))).batch(3)
        test = tf.data.Dataset.from_tensor_slices((np.full(2, 9, np.float32),
                                                   np.array([7, 8]))).batch(3)
        iterator = tf.data.Iterator.from_structure(train.output_types, train.output_shapes)
        features, labels = iterator.get_next()
        assert features.shape.as_list() == [None]
        train_init = iterator.make_initializer(train)
        test_init = iterator.make_initializer(test)
        with tf.Session() as sess:
            sess.run(train_init)
            assert sess.run(labels).tolist() == [0, 1, 2]
            sess.run(test_init)
            test_features, test_labels = sess.run([features, labels])
            assert test_features.tolist() == [9, 9] and test_labels.tolist() == [7, 8]
            with pytest.raises(tf.errors.OutOfRangeError):
                sess.run(labels)
            sess.run(train_init)
            assert sess.run(labels).tolist() == [0, 1, 2]
        other = tf.data.Dataset.range(3)
        with pytest.raises(TypeError, match="Expected structure"):
            iterator.make_initializer(other)
        wrong = tf.data.Dataset.from_tensor_slices((np.arange(4), np.arange(4))).batch(3)
        with pytest.raises(TypeError, match="output types"):
            iterator.make_initializer(wrong)
        with pytest.raises(ValueError, match="make_initializer"):
            iterator.initializer  # noqa: B018 -- the property raises


def test_from_structure_with_shapes_given_as_lists_and_tuples():
    with tf.Graph().as_default():
        iterator = tf.data.Iterator.from_structure((tf.float32, tf.int32),
                                                   ((None, 2), [None]))
        x, y = iterator.get_next()
        assert x.shape.as_list() == [None, 2] and y.dtype == tf.int32
        ds = tf.data.Dataset.from_tensor_slices((np.ones((3, 2), np.float32),
                                                 np.arange(3, dtype=np.int32))).batch(2)
        with tf.Session() as sess:
            sess.run(iterator.make_initializer(ds))
            assert sess.run(y).tolist() == [0, 1]
        with pytest.raises(TypeError, match="output shapes"):
            iterator.make_initializer(ds.unbatch().batch(2).map(lambda a, b: (a[:, :1], b)))


def test_feedable_iterator_reads_the_iterator_whose_handle_is_fed():
    with tf.Graph().as_default():
        train = tf.data.Dataset.range(100).repeat()
        valid = tf.data.Dataset.range(50, 53)
        handle = tf.placeholder(tf.string, shape=[])
        iterator = tf.data.Iterator.from_string_handle(handle, train.output_types,
                                                       train.output_shapes)
        value = iterator.get_next()
        train_it = train.make_one_shot_iterator()
        valid_it = valid.make_initializable_iterator()
        with tf.Session() as sess:
            train_h, valid_h = sess.run([train_it.string_handle(), valid_it.string_handle()])
            sess.run(valid_it.initializer)
            got = [sess.run(value, {handle: h}) for h in (train_h, train_h, valid_h, train_h)]
            assert [int(v) for v in got] == [0, 1, 50, 2]
            with pytest.raises(tf.errors.InvalidArgumentError, match="no iterator"):
                sess.run(value, {handle: "nonsense"})


# --- dataset functions written with graph ops ----------------------------------------------------

def test_map_and_filter_with_graph_ops_as_the_tutorials_write_them():
    images = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    labels = np.arange(6)

    def scale(image, label):
        return tf.cast(image, tf.float32) / 255.0, tf.one_hot(label, 6), "kept"

    graph = tf.get_default_graph()
    ops_before = len(graph.get_operations())
    ds = (tf.data.Dataset.from_tensor_slices((images, labels))
          .map(scale, num_parallel_calls=3)
          .filter(lambda image, onehot, tag: tf.greater(tf.reduce_sum(image), 0.05))
          .batch(4))
    got = list(ds)
    assert len(graph.get_operations()) == ops_before  # traced in graphs of their own
    kept = [i for i in range(6) if (images[i] / 255.0).sum() > 0.05]
    x = np.concatenate([b[0] for b in got])
    np.testing.assert_allclose(x, images[kept].astype(np.float32) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), np.eye(6)[kept])
    assert got[0][2].tolist() == ["kept"] * 4  # a Python constant passes through
    assert ds.element_spec[0].shape == (None, 2, 2)


def test_map_of_a_dict_with_graph_ops_and_a_numpy_map_still_runs_on_numpy():
    ds = tf.data.Dataset.from_tensor_slices({"a": np.arange(3.0), "b": np.ones(3)})
    doubled = ds.map(lambda d: {"sum": d["a"] + tf.constant(1.0, tf.float64) * d["b"]})
    assert [float(e["sum"]) for e in doubled] == [1.0, 2.0, 3.0]
    flipped = tf.data.Dataset.from_tensor_slices(np.arange(6).reshape(3, 2)).map(np.flip)
    assert [e.tolist() for e in flipped] == [[1, 0], [3, 2], [5, 4]]
    with pytest.raises(ZeroDivisionError):
        list(tf.data.Dataset.range(2).map(lambda x: 1 // 0))
