"""tf.nn.rnn_cell and dynamic_rnn/static_rnn: TensorFlow 1's equations and variable names,
forward values and gradients checked against torch in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ringtrain as tf

R = np.random.default_rng(0)
B, T, D, N = 3, 6, 4, 5  # batch, time steps, input depth, units


def tf_loss_and_grads(make_cell, x_value, lengths, values, loss_fn, **rnn_kwargs):
    """dynamic_rnn in float64 with the trainable variables loaded from ``values``; returns
    the variables' names, the loss, dL/dx and dL/d(each variable)."""
    with tf.Graph().as_default():
        x = tf.constant(x_value)
        seq = None if lengths is None else tf.constant(lengths, tf.int32)
        outputs, state = tf.nn.dynamic_rnn(make_cell(), x, sequence_length=seq,
                                           dtype=tf.float64, **rnn_kwargs)
        loss = loss_fn(outputs, state)
        variables = tf.trainable_variables()
        grads = tf.gradients(loss, [x, *variables])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for v, value in zip(variables, values):
                v.load(value, sess)
            got = sess.run([loss, *grads])
    return [v.op.name for v in variables], got[0], got[1], got[2:]


def torch_loop(step, x, state, lengths):
    """outputs [B, T, n] and the final state (a tuple), finished sequences masked as TF."""
    outs = []
    for t in range(x.shape[1]):
        out, new = step(x[:, t], state)
        if lengths is not None:
            keep = torch.as_tensor(t < np.asarray(lengths))[:, None]
            out = torch.where(keep, out, torch.zeros_like(out))
            new = tuple(torch.where(keep, n, o) for n, o in zip(new, state))
        outs.append(out)
        state = new
    return torch.stack(outs, 1), state


def leaf(a):
    return torch.tensor(a, requires_grad=True)


def check(got, want_loss, tensors):
    _, loss, gx, grads = got
    want_loss.backward()
    np.testing.assert_allclose(loss, want_loss.item(), rtol=1e-10)
    for g, t in zip([gx, *grads], tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("lengths", [None, [6, 1, 3]])
def test_basic_lstm_matches_torch_lstm_cell(lengths):
    x, kernel, bias = R.normal(size=(B, T, D)), R.normal(0, .4, (D + N, 4 * N)), \
        R.normal(0, .4, 4 * N)
    w_out, w_c = R.normal(size=(B, T, N)), R.normal(size=(B, N))
    got = tf_loss_and_grads(
        lambda: tf.nn.rnn_cell.BasicLSTMCell(N), x, lengths, [kernel, bias],
        lambda out, st: tf.reduce_sum(out * w_out) + tf.reduce_sum(st.c * w_c)
        + tf.reduce_sum(st.h))
    assert got[0] == ["rnn/basic_lstm_cell/kernel", "rnn/basic_lstm_cell/bias"]
    # torch.nn.LSTMCell's gate order is (i, f, g, o); TF's kernel columns are (i, j, f, o)
    # and TF adds forget_bias = 1 to f.
    i, j, f, o = np.split(kernel, 4, axis=1)
    bi, bj, bf, bo = np.split(bias, 4)
    cell = torch.nn.LSTMCell(D, N).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(np.concatenate([i, f, j, o], 1)[:D].T))
        cell.weight_hh.copy_(torch.tensor(np.concatenate([i, f, j, o], 1)[D:].T))
        cell.bias_ih.copy_(torch.tensor(np.concatenate([bi, bf + 1.0, bj, bo])))
        cell.bias_hh.zero_()
    xt = leaf(x)
    zeros = torch.zeros(B, N, dtype=torch.float64)

    def step(xs, state):
        h, c = cell(xs, (state[1], state[0]))
        return h, (c, h)
    outs, (c, h) = torch_loop(step, xt, (zeros, zeros), lengths)
    want = (outs * torch.tensor(w_out)).sum() + (c * torch.tensor(w_c)).sum() + h.sum()
    want.backward()
    _, loss, gx, (gk, gb) = got
    np.testing.assert_allclose(loss, want.item(), rtol=1e-10)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    gi, gf, gj, go = np.split(np.concatenate([cell.weight_ih.grad.numpy().T,
                                              cell.weight_hh.grad.numpy().T]), 4, axis=1)
    np.testing.assert_allclose(gk, np.concatenate([gi, gj, gf, go], 1), rtol=1e-8, atol=1e-12)
    gi, gf, gj, go = np.split(cell.bias_ih.grad.numpy(), 4)
    np.testing.assert_allclose(gb, np.concatenate([gi, gj, gf, go]), rtol=1e-8, atol=1e-12)


def test_basic_rnn_matches_torch_rnn_cell():
    x, kernel, bias = R.normal(size=(B, T, D)), R.normal(0, .4, (D + N, N)), R.normal(0, .4, N)
    w_out = R.normal(size=(B, T, N))
    lengths = [2, 6, 4]
    got = tf_loss_and_grads(lambda: tf.nn.rnn_cell.BasicRNNCell(N), x, lengths,
                            [kernel, bias],
                            lambda out, st: tf.reduce_sum(out * w_out) + tf.reduce_sum(st * st))
    assert got[0] == ["rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias"]
    xt, k, b = leaf(x), leaf(kernel), leaf(bias)

    def step(xs, state):
        h = torch.rnn_tanh_cell(xs, state[0], k[:D].T, k[D:].T, b,
                                torch.zeros(N, dtype=torch.float64))
        return h, (h,)
    outs, (h,) = torch_loop(step, xt, (torch.zeros(B, N, dtype=torch.float64),), lengths)
    check(got, (outs * torch.tensor(w_out)).sum() + (h * h).sum(), [xt, k, b])


def test_gru_matches_tensorflows_equations_in_torch():
    x = R.normal(size=(B, T, D))
    gk, gb = R.normal(0, .4, (D + N, 2 * N)), R.normal(0, .4, 2 * N)
    ck, cb = R.normal(0, .4, (D + N, N)), R.normal(0, .4, N)
    w_out = R.normal(size=(B, T, N))
    lengths = [5, 6, 0]
    got = tf_loss_and_grads(lambda: tf.nn.rnn_cell.GRUCell(N), x, lengths, [gk, gb, ck, cb],
                            lambda out, st: tf.reduce_sum(out * w_out) + tf.reduce_sum(st))
    assert got[0] == ["rnn/gru_cell/gates/kernel", "rnn/gru_cell/gates/bias",
                      "rnn/gru_cell/candidate/kernel", "rnn/gru_cell/candidate/bias"]
    xt, tgk, tgb, tck, tcb = map(leaf, (x, gk, gb, ck, cb))

    def step(xs, state):
        h = state[0]
        r, u = torch.sigmoid(torch.cat([xs, h], 1) @ tgk + tgb).chunk(2, 1)
        c = torch.tanh(torch.cat([xs, r * h], 1) @ tck + tcb)
        h2 = u * h + (1 - u) * c
        return h2, (h2,)
    outs, (h,) = torch_loop(step, xt, (torch.zeros(B, N, dtype=torch.float64),), lengths)
    check(got, (outs * torch.tensor(w_out)).sum() + h.sum(), [xt, tgk, tgb, tck, tcb])


def test_lstm_cell_with_peepholes_clip_and_projection():
    P = 3
    x = R.normal(size=(B, T, D))
    kernel, bias = R.normal(0, .5, (D + P, 4 * N)), R.normal(0, .5, 4 * N)
    wf, wi, wo, proj = (R.normal(0, .5, N), R.normal(0, .5, N), R.normal(0, .5, N),
                        R.normal(0, .5, (N, P)))
    got = tf_loss_and_grads(
        lambda: tf.nn.rnn_cell.LSTMCell(N, use_peepholes=True, cell_clip=0.8, num_proj=P,
                                        proj_clip=0.6, forget_bias=0.5),
        x, None, [kernel, bias, wf, wi, wo, proj],
        lambda out, st: tf.reduce_sum(out * out) + tf.reduce_sum(st.c))
    assert got[0] == ["rnn/lstm_cell/kernel", "rnn/lstm_cell/bias", "rnn/lstm_cell/w_f_diag",
                      "rnn/lstm_cell/w_i_diag", "rnn/lstm_cell/w_o_diag",
                      "rnn/lstm_cell/projection/kernel"]
    ts = list(map(leaf, (x, kernel, bias, wf, wi, wo, proj)))
    xt, k, b, tf_, ti, to, tp = ts

    def step(xs, state):
        c, h = state
        i, j, f, o = (torch.cat([xs, h], 1) @ k + b).chunk(4, 1)
        c2 = c * torch.sigmoid(f + 0.5 + tf_ * c) + torch.sigmoid(i + ti * c) * torch.tanh(j)
        c2 = c2.clamp(-0.8, 0.8)
        h2 = (torch.sigmoid(o + to * c2) * torch.tanh(c2)) @ tp
        h2 = h2.clamp(-0.6, 0.6)
        return h2, (c2, h2)
    outs, (c, _) = torch_loop(step, xt, (torch.zeros(B, N, dtype=torch.float64),
                                         torch.zeros(B, P, dtype=torch.float64)), None)
    check(got, (outs * outs).sum() + c.sum(), ts)


def test_multi_rnn_cell_static_rnn_time_major_and_state_layouts():
    x = R.normal(size=(B, T, D))
    with tf.Graph().as_default():
        xt = tf.constant(x)
        cells = lambda: tf.nn.rnn_cell.MultiRNNCell(
            [tf.nn.rnn_cell.BasicLSTMCell(N), tf.nn.rnn_cell.GRUCell(3)])
        out, state = tf.nn.dynamic_rnn(cells(), xt, dtype=tf.float64, scope="dyn")
        assert out.shape.as_list() == [B, T, 3]
        assert isinstance(state[0], tf.nn.rnn_cell.LSTMStateTuple)
        names = [v.op.name for v in tf.global_variables()]
        assert names[:2] == ["dyn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel",
                             "dyn/multi_rnn_cell/cell_0/basic_lstm_cell/bias"]
        assert names[2] == "dyn/multi_rnn_cell/cell_1/gru_cell/gates/kernel"
        s_outs, _ = tf.contrib.rnn.static_rnn(cells(), tf.unstack(xt, axis=1),
                                                    dtype=tf.float64, scope="stat")
        tm_out, _ = tf.nn.dynamic_rnn(cells(), tf.transpose(xt, [1, 0, 2]), dtype=tf.float64,
                                      time_major=True, scope="tm")
        flat, flat_state = tf.nn.dynamic_rnn(
            tf.nn.rnn_cell.BasicLSTMCell(N, state_is_tuple=False), xt, dtype=tf.float64,
            scope="flat")
        tup, tup_state = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicLSTMCell(N), xt,
                                           dtype=tf.float64, scope="tup")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for scope in ("stat", "tm"):  # the same weights in every copy
                for a, b in zip(tf.global_variables(scope), tf.global_variables("dyn")):
                    a.load(sess.run(b), sess)
            tf.global_variables("tup")[0].load(sess.run(tf.global_variables("flat")[0]), sess)
            got = sess.run([out, s_outs, tm_out, flat, flat_state, tup, tup_state])
    np.testing.assert_allclose(np.stack(got[1], 1), got[0], rtol=1e-12)
    np.testing.assert_allclose(np.transpose(got[2], (1, 0, 2)), got[0], rtol=1e-12)
    np.testing.assert_allclose(got[3], got[5], rtol=1e-12)
    np.testing.assert_allclose(got[4], np.concatenate(got[6], 1), rtol=1e-12)


def test_wrappers_and_reuse():
    with tf.Graph().as_default():
        x = tf.constant(R.normal(size=(B, T, D)))
        base = tf.nn.rnn_cell.BasicRNNCell(D)
        res_out, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.ResidualWrapper(base), x,
                                       dtype=tf.float64)
        plain_out, _ = tf.nn.dynamic_rnn(base, x, dtype=tf.float64)  # the same cell: reused
        kept, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.DropoutWrapper(base, output_keep_prob=1.0),
                                    x, dtype=tf.float64)
        dropped, _ = tf.nn.dynamic_rnn(
            tf.nn.rnn_cell.DropoutWrapper(base, output_keep_prob=0.5, seed=1), x,
            dtype=tf.float64)
        assert len(tf.trainable_variables()) == 2
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            r, p, k, d, xv = sess.run([res_out, plain_out, kept, dropped, x])
    np.testing.assert_allclose(r, p + xv, rtol=1e-12)
    np.testing.assert_allclose(k, p, rtol=1e-12)
    assert ((d == 0) | np.isclose(d, 2 * p)).all() and (d == 0).any()


def test_clear_errors():
    with tf.Graph().as_default():
        cell = tf.nn.rnn_cell.BasicLSTMCell(N)
        with pytest.raises(ValueError, match="number of time steps must be known"):
            tf.nn.dynamic_rnn(cell, tf.placeholder(tf.float32, [None, None, D]),
                              dtype=tf.float32)
        with pytest.raises(ValueError, match="you must give a dtype"):
            tf.nn.dynamic_rnn(cell, tf.placeholder(tf.float32, [None, T, D]))
        with pytest.raises(tf.errors.UnsupportedFeatureError, match=r"tf\.contrib\.rnn"):
            tf.contrib.rnn.NASCell  # noqa: B018


def test_reverse_and_reverse_sequence_follow_tf1():
    x = np.arange(2 * 4 * 2, dtype=np.float64).reshape(2, 4, 2)
    with tf.Graph().as_default():
        xt = tf.constant(x)
        rs = tf.reverse_sequence(xt, [3, 1], seq_axis=1, batch_axis=0)
        rs_t = tf.reverse_sequence(tf.transpose(xt, [1, 0, 2]), tf.constant([3, 1]),
                                   seq_axis=0, batch_axis=1)
        rev = tf.reverse(xt, [1])
        weights = tf.constant(R.normal(size=x.shape))
        (grad,) = tf.gradients(tf.reduce_sum(rs * weights), [xt])
        with tf.Session() as sess:
            got, got_t, got_rev, g, w = sess.run([rs, rs_t, rev, grad, weights])
    want = x.copy()
    want[0, :3] = x[0, 2::-1]  # the first 3 steps of row 0 reversed, the 4th in place
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.transpose(got_t, (1, 0, 2)), want)
    np.testing.assert_array_equal(got_rev, x[:, ::-1])
    want_g = w.copy()
    want_g[0, :3] = w[0, 2::-1]  # the gradient goes back through the same permutation
    np.testing.assert_array_equal(g, want_g)


def test_bidirectional_dynamic_rnn_is_a_forward_and_a_reversed_run():
    x = R.normal(size=(B, T, D))
    lengths = [6, 2, 4]
    with tf.Graph().as_default():
        xt = tf.constant(x)
        (out_fw, out_bw), (_, st_bw) = tf.nn.bidirectional_dynamic_rnn(
            tf.nn.rnn_cell.GRUCell(N), tf.nn.rnn_cell.GRUCell(N), xt, sequence_length=lengths,
            dtype=tf.float64)
        names = [v.op.name for v in tf.global_variables()]
        assert names[0] == "bidirectional_rnn/fw/gru_cell/gates/kernel"
        assert names[4] == "bidirectional_rnn/bw/gru_cell/gates/kernel"
        # the backward cell run by hand on each sequence reversed within its length
        x_rev = x.copy()
        for b, n in enumerate(lengths):
            x_rev[b, :n] = x[b, n - 1::-1]
        check_bw, check_state = tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(N), tf.constant(x_rev),
                                                  sequence_length=lengths, dtype=tf.float64,
                                                  scope="check")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for a, b_ in zip(tf.global_variables("check"),
                             tf.global_variables("bidirectional_rnn/bw")):
                a.load(sess.run(b_), sess)
            got_bw, got_state, want_bw, want_state, fw = sess.run(
                [out_bw, st_bw, check_bw, check_state, out_fw])
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(got_bw[b, :n], want_bw[b, n - 1::-1], rtol=1e-12)
        assert (got_bw[b, n:] == 0).all() and (fw[b, n:] == 0).all()
    np.testing.assert_allclose(got_state, want_state, rtol=1e-12)
