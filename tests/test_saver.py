"""tf.train.Saver, get_checkpoint_state, latest_checkpoint: TensorFlow 1.15's documented
behaviour (names, return values, the `checkpoint` index), chief-only atomic files, and every
worker restoring the chief's values."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest
from conftest import run_ringrun

import ringtrain as tf
from ringtrain import errors


def _graph(seed: float):
    graph = tf.Graph()
    with graph.as_default():
        w = tf.Variable(np.arange(6.0).reshape(2, 3) + seed, name="w")
        b = tf.Variable(np.full(3, seed), name="layer/b")
        step = tf.train.get_or_create_global_step()
        bump = [tf.assign_add(w, tf.ones_like(w)), tf.assign_add(step, 1)]
        init = tf.global_variables_initializer()
    return graph, w, b, step, bump, init


def test_save_returns_the_numbered_prefix_and_restore_puts_values_back(tmp_path):
    graph, _, _, step, bump, init = _graph(0.0)
    with graph.as_default():
        saver = tf.train.Saver()
    sess = tf.Session(graph=graph)
    sess.run(init)
    prefix = str(tmp_path / "model.ckpt")
    paths = []
    for _ in range(3):
        sess.run(bump)
        paths.append(saver.save(sess, prefix, global_step=step))   # a Variable: its value
    assert paths == [f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"]
    assert saver.save(sess, prefix, global_step=7) == f"{prefix}-7"
    assert saver.save(sess, prefix) == prefix
    assert tf.train.checkpoint_exists(f"{prefix}-2") and os.path.exists(f"{prefix}-2.npz")

    graph2, w2, b2, step2, _, init2 = _graph(10.0)
    with graph2.as_default():
        saver2 = tf.train.Saver()
    sess2 = tf.Session(graph=graph2)
    sess2.run(init2)
    saver2.restore(sess2, f"{prefix}-2")
    np.testing.assert_array_equal(sess2.run(w2), np.arange(6.0).reshape(2, 3) + 2)
    np.testing.assert_array_equal(sess2.run(b2), np.zeros(3))
    assert sess2.run(step2) == 2


def test_the_index_lists_the_kept_checkpoints_as_tensorflow_writes_it(tmp_path):
    graph, *_, init = _graph(0.0)
    with graph.as_default():
        saver = tf.train.Saver(max_to_keep=2)
    sess = tf.Session(graph=graph)
    sess.run(init)
    assert tf.train.get_checkpoint_state(str(tmp_path)) is None
    assert tf.train.latest_checkpoint(str(tmp_path)) is None
    prefix = str(tmp_path / "model.ckpt")
    for step_number in (100, 200, 300):
        saver.save(sess, prefix, global_step=step_number)
    lines = (tmp_path / "checkpoint").read_text().splitlines()
    assert lines[:3] == ['model_checkpoint_path: "model.ckpt-300"',
                         'all_model_checkpoint_paths: "model.ckpt-200"',
                         'all_model_checkpoint_paths: "model.ckpt-300"'], lines
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == f"{prefix}-300"
    assert state.all_model_checkpoint_paths == [f"{prefix}-200", f"{prefix}-300"]
    assert tf.train.latest_checkpoint(str(tmp_path)) == f"{prefix}-300"
    assert saver.last_checkpoints == [f"{prefix}-200", f"{prefix}-300"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.ckpt-200.npz",
                                            "model.ckpt-300.npz"]   # 100 deleted


def test_max_to_keep_none_keeps_every_file_and_indexes_only_the_latest(tmp_path):
    graph, *_, init = _graph(0.0)
    with graph.as_default():
        saver = tf.train.Saver(max_to_keep=None, pad_step_number=True)
    sess = tf.Session(graph=graph)
    sess.run(init)
    for step_number in range(3):
        saver.save(sess, str(tmp_path / "m"), global_step=step_number)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m-00000000.npz", "m-00000001.npz",
                                            "m-00000002.npz"]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.all_model_checkpoint_paths == [str(tmp_path / "m-00000002")]


def test_var_list_names_and_errors_follow_tensorflow(tmp_path):
    graph, w, b, _, _, init = _graph(1.0)
    sess = tf.Session(graph=graph)
    sess.run(init)
    with graph.as_default():
        path = tf.train.Saver({"renamed": w}).save(sess, str(tmp_path / "x"))
        with pytest.raises(ValueError, match="save_path when it is None"):
            tf.train.Saver().restore(sess, None)
        with pytest.raises(ValueError, match="not a valid checkpoint: .*nothing"):
            tf.train.Saver().restore(sess, str(tmp_path / "nothing"))
        with pytest.raises(errors.NotFoundError, match="Key global_step not found in checkpoint"):
            tf.train.Saver().restore(sess, path)
        with pytest.raises(errors.InvalidArgumentError, match="shapes of both tensors"):
            tf.train.Saver({"renamed": b}).restore(sess, path)
        with pytest.raises(ValueError, match="Parent directory of .* doesn't exist"):
            tf.train.Saver().save(sess, str(tmp_path / "no" / "such" / "m"))
        with pytest.raises(errors.UnsupportedFeatureError, match="reshape"):
            tf.train.Saver(reshape=True)
    with tf.Graph().as_default(), pytest.raises(ValueError, match="No variables to save"):
        tf.train.Saver()
    saved = np.asarray(sess.run(w))
    with graph.as_default():
        sess.run(w.assign(np.zeros((2, 3))))
        tf.train.Saver({"renamed": w}).restore(sess, path)
    np.testing.assert_array_equal(sess.run(w), saved)


def test_a_checkpoint_manager_and_a_saver_share_the_index_format(tmp_path):
    graph, *_, init = _graph(0.0)
    sess = tf.Session(graph=graph)
    sess.run(init)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(session=sess), str(tmp_path))
    manager.save(session=sess)
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == str(tmp_path / "ckpt-1")


PROGRAM = textwrap.dedent("""
    import os
    import numpy as np
    import ringtrain as tf
    tf.init()
    rank = tf.rank()
    work = os.environ["SAVER_DIR"]
    mine = os.path.join(work, f"rank{rank}")
    os.makedirs(mine, exist_ok=True)
    w = tf.Variable(np.full(5, 100.0 * rank), name="w")
    step = tf.train.get_or_create_global_step()
    saver = tf.train.Saver(max_to_keep=1)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(tf.assign(step, 10 + rank))
        path = saver.save(sess, os.path.join(mine, "m"), global_step=step)
        sess.run(tf.assign(w, np.full(5, -1.0)))
        saver.restore(sess, path)          # every worker: the chief's file and values
        print(f"path={os.path.basename(path)} w={sess.run(w).tolist()} step={sess.run(step)}")
""")


@pytest.mark.parametrize("np_", [2, 3])
def test_only_the_chief_writes_and_every_worker_restores_its_values(tmp_path, np_):
    result = run_ringrun(np_, code=PROGRAM, env={"SAVER_DIR": str(tmp_path)},
                         timeout=90).check()
    for rank in range(np_):
        assert result.stdout_of(rank) == [f"path=m-{10 + rank} w={[0.0] * 5} step=10"], \
            result.describe()
    assert sorted(os.listdir(tmp_path / "rank0")) == ["checkpoint", "m-10.npz"]
    for rank in range(1, np_):
        assert os.listdir(tmp_path / f"rank{rank}") == []
