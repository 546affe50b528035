"""Checkpoint / CheckpointManager in one process: format, atomicity, rotation, resume."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from ringtrain import checkpoint as ck
from ringtrain import errors


class Weights:
    """A stand-in for a Keras model: get_weights/set_weights."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.w = [rng.normal(size=(3, 4)), rng.normal(size=(4,)).astype(np.float32)]

    def get_weights(self):
        return [w.copy() for w in self.w]

    def set_weights(self, weights):
        self.w = [np.array(w) for w in weights]


class Position:
    """An object using the _checkpoint_state protocol."""

    def __init__(self):
        self.epoch, self.batch = 0, 0

    def _checkpoint_state(self):
        return {"epoch": self.epoch, "batch": self.batch}

    def _restore_checkpoint_state(self, state):
        self.epoch, self.batch = state["epoch"], state["batch"]


def test_roundtrip_restores_every_kind_of_state(tmp_path):
    model, arr, gen = Weights(1), np.arange(6.0).reshape(2, 3), np.random.default_rng(5)
    pyrand, legacy, pos = random.Random(3), np.random.RandomState(4), Position()
    pos.epoch, pos.batch = 2, 7
    ckpt = ck.Checkpoint(model=model, arr=arr, rng=gen, pyrand=pyrand, legacy=legacy, pos=pos,
                         nested={"a": np.ones(2), "b": [np.zeros(1)]})
    path = ckpt.save(tmp_path / "ckpt")
    assert path == str(tmp_path / "ckpt-1") and os.path.exists(path + ".npz")
    expected = (gen.random(3), pyrand.random(), legacy.rand(2))

    other_model = Weights(2)
    arr2, gen2 = np.zeros((2, 3)), np.random.default_rng(99)
    pyrand2, legacy2, pos2 = random.Random(0), np.random.RandomState(0), Position()
    nested2 = {"a": np.zeros(2), "b": [np.ones(1)]}
    ckpt2 = ck.Checkpoint(model=other_model, arr=arr2, rng=gen2, pyrand=pyrand2, legacy=legacy2,
                          pos=pos2, nested=nested2)
    status = ckpt2.restore(path)
    status.assert_consumed()
    assert status.save_path == path and ckpt2.save_counter == 1
    for a, b in zip(other_model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(arr2, arr)
    np.testing.assert_array_equal(gen2.random(3), expected[0])
    assert pyrand2.random() == expected[1]
    np.testing.assert_array_equal(legacy2.rand(2), expected[2])
    assert (pos2.epoch, pos2.batch) == (2, 7)
    np.testing.assert_array_equal(nested2["a"], np.ones(2))
    np.testing.assert_array_equal(nested2["b"][0], np.zeros(1))


def test_file_is_plain_npz_without_pickle(tmp_path):
    ckpt = ck.Checkpoint(x=np.arange(3, dtype=np.int32))
    path = ckpt.write(tmp_path / "one")
    assert path == str(tmp_path / "one")
    with np.load(path + ".npz", allow_pickle=False) as npz:
        meta = json.loads(bytes(npz["__meta__"]).decode())
        assert meta["format"] == "ringtrain-checkpoint" and meta["version"] == 1
        np.testing.assert_array_equal(npz["a/objects/x"], np.arange(3))


def test_restore_none_is_a_no_op(tmp_path):
    x = np.ones(2)
    status = ck.Checkpoint(x=x).restore(None)
    assert status.save_path is None and not status
    np.testing.assert_array_equal(x, np.ones(2))


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(TypeError, match="cannot checkpoint bad=object"):
        ck.Checkpoint(bad=object())
    with pytest.raises(errors.NotFoundError, match="does not exist"):
        ck.Checkpoint(x=np.ones(1)).restore(tmp_path / "missing-3")
    path = ck.Checkpoint(x=np.ones(2)).write(tmp_path / "a")
    with pytest.raises(ValueError, match=r"cannot restore x .*shape \(2,\)"):
        ck.Checkpoint(x=np.ones(3)).restore(path)
    with pytest.raises(errors.NotFoundError, match=r"no entry for \['y'\]"):
        ck.Checkpoint(y=np.ones(2)).restore(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(errors.DataLossError, match="junk.npz' is damaged"):
        ck.Checkpoint(x=np.ones(2)).restore(tmp_path / "junk")
    with pytest.raises(ValueError, match="save_counter"):
        ck.Checkpoint(save_counter=np.ones(1))


def test_unused_entries_are_reported(tmp_path):
    path = ck.Checkpoint(x=np.ones(2), y=np.zeros(1)).write(tmp_path / "a")
    status = ck.Checkpoint(x=np.zeros(2)).restore(path)
    assert status.unused == ["y"]
    with pytest.raises(AssertionError, match="y"):
        status.assert_consumed()


def test_atomic_write_leaves_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "f.bin"
    ck.atomic_write(target, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ck.atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]           # no temporary file left behind


def test_manager_keeps_last_k_and_resumes_numbering(tmp_path):
    x = np.zeros(1)
    manager = ck.CheckpointManager(ck.Checkpoint(x=x), tmp_path, max_to_keep=2)
    assert manager.latest_checkpoint is None
    paths = []
    for i in range(5):
        x[0] = i
        paths.append(manager.save())
    assert paths == [str(tmp_path / f"ckpt-{i}") for i in range(1, 6)]
    assert manager.checkpoints == paths[-2:]
    assert [os.path.basename(p) for p in ck.all_checkpoint_files(tmp_path)] == \
        ["ckpt-4.npz", "ckpt-5.npz"]
    assert ck.latest_checkpoint(tmp_path) == paths[-1]

    # A new process: the manager reads the index, restores, and numbering continues.
    y = np.full(1, -1.0)
    checkpoint = ck.Checkpoint(x=y)
    again = ck.CheckpointManager(checkpoint, tmp_path, max_to_keep=2)
    assert again.latest_checkpoint == paths[-1] and again.checkpoints == paths[-2:]
    assert again.restore_or_initialize() == paths[-1]
    assert y[0] == 4 and checkpoint.save_counter == 5
    assert again.save() == str(tmp_path / "ckpt-6")
    assert [os.path.basename(p) for p in ck.all_checkpoint_files(tmp_path)] == \
        ["ckpt-5.npz", "ckpt-6.npz"]


def test_manager_init_fn_and_interval(tmp_path):
    calls = []
    step = np.zeros((), dtype=np.int64)
    manager = ck.CheckpointManager(ck.Checkpoint(step=step), tmp_path / "d", max_to_keep=None,
                                   step_counter=lambda: int(step), checkpoint_interval=3,
                                   init_fn=lambda: calls.append(1))
    assert manager.restore_or_initialize() is None and calls == [1]
    saved = []
    for i in range(10):
        step[()] = i
        saved.append(manager.save() is not None)
    assert saved == [i % 3 == 0 for i in range(10)]
    assert len(manager.checkpoints) == 4
    with pytest.raises(ValueError, match="step_counter"):
        ck.CheckpointManager(ck.Checkpoint(), tmp_path, checkpoint_interval=2)
    with pytest.raises(ValueError, match="max_to_keep"):
        ck.CheckpointManager(ck.Checkpoint(), tmp_path, max_to_keep=0)


def test_numpy_scalars_keep_their_dtype(tmp_path):
    state = {"f": np.float32(1.5), "i": np.int64(2**40), "b": np.bool_(True), "big": 2**100,
             "list": (1, "two", None), "x/y": np.zeros(2), "x": {"y": np.ones(3)}}
    path = tmp_path / "s.npz"
    ck.write_state(path, state, note="x")
    tree, meta = ck.read_state(path)
    assert tree["f"].dtype == np.float32 and tree["f"] == 1.5
    assert tree["i"] == 2**40 and tree["b"] is True and tree["big"] == 2**100
    assert tree["list"] == [1, "two", None] and meta["note"] == "x"
    np.testing.assert_array_equal(tree["x/y"], np.zeros(2))       # same path, kept apart
    np.testing.assert_array_equal(tree["x"]["y"], np.ones(3))


def _graph_model(seed: int):
    import ringtrain as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        x = tf.placeholder(tf.float64, [None, 3])
        w = tf.get_variable("w", [3, 2], tf.float64)
        noise = tf.random_normal([2], dtype=tf.float64)          # a stateful random op
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + noise))
        opt = tf.train.AdamOptimizer(0.1)
        step = tf.train.get_or_create_global_step()
        train = opt.minimize(loss, global_step=step)
        init = tf.global_variables_initializer()
    return graph, x, w, noise, opt, step, train, init


def test_graph_variables_optimizer_slots_and_session_rng(tmp_path):
    import ringtrain as tf

    feed = np.arange(12.0).reshape(4, 3) / 10
    graph, x, w, noise, opt, step, train, init = _graph_model(1)
    sess = tf.Session(graph=graph)
    sess.run(init)
    for _ in range(3):
        sess.run(train, {x: feed})
    ckpt = tf.train.Checkpoint(w=w, optimizer=opt, step=step)
    path = ckpt.save(tmp_path / "g", session=sess)
    whole = tf.train.Checkpoint(session=sess).write(tmp_path / "whole", session=sess)
    w_saved = sess.run(w)
    expected = [sess.run([train, w, noise], {x: feed})[1:] for _ in range(2)]

    # A fresh graph with other random values: restoring puts it exactly where the first was.
    graph2, x2, w2, noise2, opt2, step2, train2, init2 = _graph_model(2)
    sess2 = tf.Session(graph=graph2)
    sess2.run(init2)
    with sess2.as_default():
        tf.train.Checkpoint(w=w2, optimizer=opt2, step=step2).restore(path)
    assert sess2.run(step2) == 3
    np.testing.assert_array_equal(sess2.run(w2), w_saved)
    sess3 = tf.Session(graph=graph2)
    tf.train.Checkpoint(session=sess3).restore(whole, session=sess3)
    got = [sess3.run([train2, w2, noise2], {x2: feed})[1:] for _ in range(2)]
    for (ew, en), (gw, gn) in zip(expected, got):
        np.testing.assert_array_equal(gw, ew)       # same variables and Adam slots
        np.testing.assert_array_equal(gn, en)       # same random stream


def test_graph_variable_needs_a_session(tmp_path):
    import ringtrain as tf

    _graph, _x, w, *_ = _graph_model(1)
    with pytest.raises(ValueError, match="session=sess"):
        tf.train.Checkpoint(w=w).write(tmp_path / "x")
