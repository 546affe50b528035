"""Every differentiable op's gradient against central finite differences and torch (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf

try:
    import torch
except ImportError:  # torch comparisons are skipped, finite differences still run
    torch = None

R = np.random.default_rng(1234)


def pos(*shape):
    return R.uniform(0.5, 2.0, shape)


def rnd(*shape):
    return R.standard_normal(shape)


def distinct(*shape):
    """Values far apart from each other (no ties for max/min/relu kinks)."""
    n = int(np.prod(shape))
    return (R.permutation(n) - n / 2 + 0.37).reshape(shape) * 0.31


def away_from_zero(*shape):
    return np.sign(rnd(*shape)) * pos(*shape)


T = torch  # shorthand in the table below

# id, builder(tf, *inputs) -> tensor, input factories, torch reference or None
CASES = [
    ("add_bcast", lambda tf, a, b: a + b, [lambda: rnd(3, 4), lambda: rnd(4)],
     lambda a, b: a + b),
    ("add_col", lambda tf, a, b: tf.add(a, b), [lambda: rnd(3, 4), lambda: rnd(3, 1)],
     lambda a, b: a + b),
    ("sub_scalar", lambda tf, a, b: a - b, [lambda: rnd(2, 3), lambda: rnd()], lambda a, b: a - b),
    ("mul_bcast", lambda tf, a, b: a * b, [lambda: rnd(2, 3, 4), lambda: rnd(3, 1)],
     lambda a, b: a * b),
    ("div", lambda tf, a, b: a / b, [lambda: rnd(3, 4), lambda: pos(4)], lambda a, b: a / b),
    ("rdiv_const", lambda tf, a: 2.0 / a, [lambda: pos(5)], lambda a: 2.0 / a),
    ("pow", lambda tf, a, b: tf.pow(a, b), [lambda: pos(3, 4), lambda: rnd(3, 4)],
     lambda a, b: a ** b),
    ("pow_const", lambda tf, a: a ** 3.0, [lambda: rnd(6)], lambda a: a ** 3.0),
    ("maximum", lambda tf, a, b: tf.maximum(a, b), [lambda: distinct(3, 4),
                                                    lambda: distinct(3, 4) + 0.05],
     lambda a, b: torch.maximum(a, b)),
    ("minimum_bcast", lambda tf, a, b: tf.minimum(a, b), [lambda: distinct(3, 4),
                                                          lambda: np.array([0.013])],
     lambda a, b: torch.minimum(a, b)),
    ("neg", lambda tf, a: -a, [lambda: rnd(4)], lambda a: -a),
    ("square", lambda tf, a: tf.square(a), [lambda: rnd(3, 2)], lambda a: a * a),
    ("sqrt", lambda tf, a: tf.sqrt(a), [lambda: pos(5)], lambda a: torch.sqrt(a)),
    ("rsqrt", lambda tf, a: tf.rsqrt(a), [lambda: pos(5)], lambda a: torch.rsqrt(a)),
    ("exp", lambda tf, a: tf.exp(a), [lambda: rnd(5)], lambda a: torch.exp(a)),
    ("log", lambda tf, a: tf.log(a), [lambda: pos(5)], lambda a: torch.log(a)),
    ("log1p", lambda tf, a: tf.log1p(a), [lambda: pos(5)], lambda a: torch.log1p(a)),
    ("abs", lambda tf, a: tf.abs(a), [lambda: away_from_zero(5)], lambda a: torch.abs(a)),
    ("reciprocal", lambda tf, a: tf.reciprocal(a), [lambda: pos(5)], lambda a: 1 / a),
    ("sin", lambda tf, a: tf.sin(a), [lambda: rnd(5)], lambda a: torch.sin(a)),
    ("cos", lambda tf, a: tf.cos(a), [lambda: rnd(5)], lambda a: torch.cos(a)),
    ("tanh", lambda tf, a: tf.tanh(a), [lambda: rnd(3, 3)], lambda a: torch.tanh(a)),
    ("sigmoid", lambda tf, a: tf.sigmoid(a), [lambda: rnd(3, 3) * 3],
     lambda a: torch.sigmoid(a)),
    ("relu", lambda tf, a: tf.nn.relu(a), [lambda: distinct(3, 4)], lambda a: torch.relu(a)),
    ("leaky_relu", lambda tf, a: tf.nn.leaky_relu(a, 0.1), [lambda: distinct(3, 4)],
     lambda a: torch.nn.functional.leaky_relu(a, 0.1)),
    ("elu", lambda tf, a: tf.nn.elu(a), [lambda: distinct(3, 4)],
     lambda a: torch.nn.functional.elu(a)),
    ("softplus", lambda tf, a: tf.nn.softplus(a), [lambda: rnd(3, 4)],
     lambda a: torch.nn.functional.softplus(a)),
    ("matmul", lambda tf, a, b: tf.matmul(a, b), [lambda: rnd(3, 4), lambda: rnd(4, 5)],
     lambda a, b: a @ b),
    ("matmul_ta", lambda tf, a, b: tf.matmul(a, b, transpose_a=True),
     [lambda: rnd(4, 3), lambda: rnd(4, 5)], lambda a, b: a.T @ b),
    ("matmul_tb", lambda tf, a, b: tf.matmul(a, b, transpose_b=True),
     [lambda: rnd(3, 4), lambda: rnd(5, 4)], lambda a, b: a @ b.T),
    ("matmul_tab", lambda tf, a, b: tf.matmul(a, b, transpose_a=True, transpose_b=True),
     [lambda: rnd(4, 3), lambda: rnd(5, 4)], lambda a, b: a.T @ b.T),
    ("matmul_batch", lambda tf, a, b: a @ b, [lambda: rnd(2, 3, 4), lambda: rnd(2, 4, 2)],
     lambda a, b: a @ b),
    ("matmul_bcast_batch", lambda tf, a, b: tf.matmul(a, b), [lambda: rnd(2, 3, 4),
                                                               lambda: rnd(1, 4, 2)],
     lambda a, b: a @ b),
    ("add_n", lambda tf, a, b, c: tf.add_n([a, b, c]), [lambda: rnd(3), lambda: rnd(3),
                                                        lambda: rnd(3)],
     lambda a, b, c: a + b + c),
    ("reduce_sum_all", lambda tf, a: tf.reduce_sum(a), [lambda: rnd(3, 4)],
     lambda a: a.sum()),
    ("reduce_sum_axis", lambda tf, a: tf.reduce_sum(a, axis=1), [lambda: rnd(3, 4, 2)],
     lambda a: a.sum(1)),
    ("reduce_sum_ri_keep", lambda tf, a: tf.reduce_sum(a, reduction_indices=[0, 2],
                                                       keep_dims=True),
     [lambda: rnd(3, 4, 2)], lambda a: a.sum((0, 2), keepdim=True)),
    ("reduce_mean", lambda tf, a: tf.reduce_mean(a, axis=-1), [lambda: rnd(3, 5)],
     lambda a: a.mean(-1)),
    ("reduce_mean_all", lambda tf, a: tf.reduce_mean(a), [lambda: rnd(3, 5)],
     lambda a: a.mean()),
    ("reduce_max", lambda tf, a: tf.reduce_max(a, axis=0), [lambda: distinct(4, 3)],
     lambda a: a.max(0).values),
    ("reduce_min_keep", lambda tf, a: tf.reduce_min(a, axis=1, keepdims=True),
     [lambda: distinct(4, 3)], lambda a: a.min(1, keepdim=True).values),
    ("reduce_prod", lambda tf, a: tf.reduce_prod(a, axis=1), [lambda: pos(3, 4)],
     lambda a: a.prod(1)),
    ("logsumexp", lambda tf, a: tf.reduce_logsumexp(a, axis=1), [lambda: rnd(3, 4)],
     lambda a: torch.logsumexp(a, 1)),
    ("reshape", lambda tf, a: tf.reshape(a, [2, -1]) * tf.constant(np.arange(6.0).reshape(2, 3)),
     [lambda: rnd(3, 2)], None),
    ("transpose", lambda tf, a: tf.transpose(a, [2, 0, 1]), [lambda: rnd(2, 3, 4)],
     lambda a: a.permute(2, 0, 1)),
    ("concat", lambda tf, a, b: tf.concat([a, b], axis=1), [lambda: rnd(2, 3), lambda: rnd(2, 1)],
     lambda a, b: torch.cat([a, b], 1)),
    ("split", lambda tf, a: tf.split(a, [1, 3], axis=1)[1] * 2.0, [lambda: rnd(2, 4)],
     lambda a: a[:, 1:] * 2.0),
    ("split_num_unused", lambda tf, a: tf.split(a, 2)[0], [lambda: rnd(4, 3)],
     lambda a: a[:2]),
    ("stack", lambda tf, a, b: tf.stack([a, b], axis=1), [lambda: rnd(3), lambda: rnd(3)],
     lambda a, b: torch.stack([a, b], 1)),
    ("unstack", lambda tf, a: tf.unstack(a, axis=1)[2], [lambda: rnd(2, 3)],
     lambda a: a[:, 2]),
    ("slice", lambda tf, a: tf.slice(a, [1, 0], [2, -1]), [lambda: rnd(4, 3)],
     lambda a: a[1:3, :]),
    ("getitem", lambda tf, a: a[1:, ::2, 0], [lambda: rnd(3, 5, 2)], lambda a: a[1:, ::2, 0]),
    ("getitem_newaxis", lambda tf, a: a[..., None, 1], [lambda: rnd(3, 4)],
     lambda a: a[..., None, 1]),
    ("gather", lambda tf, a: tf.gather(a, [2, 0, 2]), [lambda: rnd(4, 3)],
     lambda a: a[torch.tensor([2, 0, 2])]),
    ("gather_axis1", lambda tf, a: tf.gather(a, [[1, 1], [0, 2]], axis=1), [lambda: rnd(2, 3)],
     lambda a: a[:, torch.tensor([[1, 1], [0, 2]])]),
    ("embedding_lookup", lambda tf, a: tf.nn.embedding_lookup(a, [[0, 3], [3, 3]]),
     [lambda: rnd(5, 2)], lambda a: a[torch.tensor([[0, 3], [3, 3]])]),
    ("expand_dims", lambda tf, a: tf.expand_dims(a, 1), [lambda: rnd(3, 2)],
     lambda a: a.unsqueeze(1)),
    ("squeeze", lambda tf, a: tf.squeeze(a, [0, 2]), [lambda: rnd(1, 3, 1)],
     lambda a: a.squeeze(2).squeeze(0)),
    ("where", lambda tf, a, b: tf.where(tf.greater(a, 0.0), a * 2.0, b),
     [lambda: away_from_zero(3, 4), lambda: rnd(3, 4)],
     lambda a, b: torch.where(a > 0, a * 2, b)),
    ("clip_by_value", lambda tf, a: tf.clip_by_value(a, -0.5, 0.7), [lambda: distinct(3, 4)],
     lambda a: torch.clamp(a, -0.5, 0.7)),
    ("tile", lambda tf, a: tf.tile(a, [2, 3]), [lambda: rnd(2, 2)], lambda a: a.repeat(2, 3)),
    ("pad", lambda tf, a: tf.pad(a, [[1, 0], [2, 1]]), [lambda: rnd(2, 3)],
     lambda a: torch.nn.functional.pad(a, (2, 1, 1, 0))),
    ("cast_same", lambda tf, a: tf.cast(a, tf.float64) * 3.0, [lambda: rnd(3)], lambda a: a * 3),
    ("identity", lambda tf, a: tf.identity(a), [lambda: rnd(3)], lambda a: a),
    ("softmax", lambda tf, a: tf.nn.softmax(a), [lambda: rnd(3, 5)],
     lambda a: torch.softmax(a, -1)),
    ("log_softmax", lambda tf, a: tf.nn.log_softmax(a), [lambda: rnd(3, 5)],
     lambda a: torch.log_softmax(a, -1)),
    ("softmax_axis0", lambda tf, a: tf.nn.softmax(a, axis=0), [lambda: rnd(3, 5)],
     lambda a: torch.softmax(a, 0)),
    ("log_softmax_axis1_of_3d", lambda tf, a: tf.nn.log_softmax(a, axis=1),
     [lambda: rnd(2, 3, 2)], lambda a: torch.log_softmax(a, 1)),
    ("softmax_xent", lambda tf, a: tf.nn.softmax_cross_entropy_with_logits(
        labels=np.eye(5)[[1, 0, 4]] * 0.9 + 0.02, logits=a), [lambda: rnd(3, 5)],
     lambda a: -(torch.tensor(np.eye(5)[[1, 0, 4]] * 0.9 + 0.02) *
                 torch.log_softmax(a, -1)).sum(-1)),
    ("softmax_xent_v2_labels", lambda tf, a, b: tf.nn.softmax_cross_entropy_with_logits_v2(
        labels=b, logits=a), [lambda: rnd(3, 4), lambda: pos(3, 4)],
     lambda a, b: -(b * torch.log_softmax(a, -1)).sum(-1)),
    ("sparse_xent", lambda tf, a: tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=[3, 0, 1], logits=a), [lambda: rnd(3, 4)],
     lambda a: torch.nn.functional.cross_entropy(a, torch.tensor([3, 0, 1]), reduction="none")),
    ("sparse_xent_3d", lambda tf, a: tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=[[3, 0], [1, 1]], logits=a), [lambda: rnd(2, 2, 4)], None),
    ("sigmoid_xent", lambda tf, a: tf.nn.sigmoid_cross_entropy_with_logits(
        labels=np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3]]), logits=a), [lambda: rnd(2, 3) * 3],
     lambda a: torch.nn.functional.binary_cross_entropy_with_logits(
         a, torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3]], dtype=torch.float64),
         reduction="none")),
    ("bias_add", lambda tf, a, b: tf.nn.bias_add(a, b), [lambda: rnd(2, 3, 4), lambda: rnd(4)],
     lambda a, b: a + b),
    ("l2_loss", lambda tf, a: tf.nn.l2_loss(a), [lambda: rnd(3, 4)],
     lambda a: (a * a).sum() / 2),
    ("l2_normalize", lambda tf, a: tf.nn.l2_normalize(a, axis=1), [lambda: rnd(3, 4)],
     lambda a: torch.nn.functional.normalize(a, dim=1)),
    ("moments_bn", lambda tf, a: tf.nn.batch_normalization(
        a, *tf.nn.moments(a, [0]), offset=0.5, scale=2.0, variance_epsilon=1e-3),
     [lambda: rnd(5, 3)],
     lambda a: torch.nn.functional.batch_norm(a, None, None, training=True, eps=1e-3) * 2.0
     + 0.5),
    ("clip_by_norm", lambda tf, a: tf.clip_by_norm(a, 1.0), [lambda: rnd(3, 4)], None),
    ("global_norm", lambda tf, a, b: tf.global_norm([a, b]), [lambda: rnd(3), lambda: rnd(2, 2)],
     lambda a, b: torch.sqrt((a * a).sum() + (b * b).sum())),
    ("conv2d_same", lambda tf, x, w: tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME"),
     [lambda: rnd(2, 5, 4, 3), lambda: rnd(3, 3, 3, 2)],
     lambda x, w: torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1),
                                             padding=1).permute(0, 2, 3, 1)),
    ("conv2d_valid_stride2", lambda tf, x, w: tf.nn.conv2d(x, w, [1, 2, 2, 1], "VALID"),
     [lambda: rnd(2, 7, 6, 2), lambda: rnd(3, 2, 2, 3)],
     lambda x, w: torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1),
                                             stride=2).permute(0, 2, 3, 1)),
    ("conv2d_same_stride2_even", lambda tf, x, w: tf.nn.conv2d(x, w, 2, "SAME"),
     [lambda: rnd(1, 6, 6, 2), lambda: rnd(4, 4, 2, 2)], None),
    ("conv2d_1x1", lambda tf, x, w: tf.nn.conv2d(x, w, [1, 1, 1, 1], "VALID"),
     [lambda: rnd(2, 3, 3, 4), lambda: rnd(1, 1, 4, 2)],
     lambda x, w: torch.einsum("nhwc,co->nhwo", x, w[0, 0])),
    ("max_pool_2x2", lambda tf, x: tf.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID"),
     [lambda: distinct(2, 4, 6, 3)],
     lambda x: torch.nn.functional.max_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)),
    ("max_pool_3x3_s2_same", lambda tf, x: tf.nn.max_pool(x, [1, 3, 3, 1], [1, 2, 2, 1],
                                                         "SAME"),
     [lambda: distinct(1, 5, 5, 2)],
     lambda x: torch.nn.functional.max_pool2d(x.permute(0, 3, 1, 2), 3, 2, padding=1)
     .permute(0, 2, 3, 1)),
    ("avg_pool_valid", lambda tf, x: tf.nn.avg_pool(x, [1, 2, 2, 1], [1, 1, 1, 1], "VALID"),
     [lambda: rnd(2, 3, 4, 2)],
     lambda x: torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), 2, 1).permute(0, 2, 3, 1)),
    ("avg_pool_same", lambda tf, x: tf.nn.avg_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], "SAME"),
     [lambda: rnd(1, 5, 5, 2)],
     lambda x: torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), 3, 2, padding=1,
                                              count_include_pad=False).permute(0, 2, 3, 1)),
    ("tensordot", lambda tf, a, b: tf.tensordot(a, b, 1), [lambda: rnd(2, 3), lambda: rnd(3, 4)],
     lambda a, b: a @ b),
    ("squared_difference", lambda tf, a, b: tf.squared_difference(a, b),
     [lambda: rnd(3), lambda: rnd(3)], lambda a, b: (a - b) ** 2),
]


def _graph_for(builder, values):
    g = tf.Graph()
    with g.as_default():
        phs = [tf.placeholder(tf.float64, v.shape) for v in values]
        y = builder(tf, *phs)
        weights = tf.constant(R.uniform(0.5, 1.5, [d or 1 for d in y.shape.as_list()]))
        loss = tf.reduce_sum(y * weights)
        grads = tf.gradients(loss, phs)
    return g, phs, y, weights, loss, grads


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(case):
    _, builder, factories, _ = case
    values = [np.asarray(f(), dtype=np.float64) for f in factories]
    g, phs, _, _, loss, grads = _graph_for(builder, values)
    with tf.Session(graph=g) as sess:
        feed = dict(zip(phs, values))
        analytic = sess.run(grads, feed)
        for i, v in enumerate(values):
            numeric = np.zeros_like(v)
            flat = numeric.reshape(-1)
            for j in range(v.size):
                plus, minus = v.copy(), v.copy()
                plus.reshape(-1)[j] += 1e-6
                minus.reshape(-1)[j] -= 1e-6
                fp = sess.run(loss, {**feed, phs[i]: plus})
                fm = sess.run(loss, {**feed, phs[i]: minus})
                flat[j] = (fp - fm) / 2e-6
            assert analytic[i] is not None, f"no gradient for input {i}"
            assert analytic[i].shape == v.shape
            np.testing.assert_allclose(analytic[i], numeric, rtol=1e-5, atol=1e-6,
                                       err_msg=f"input {i}")


TORCH_CASES = [c for c in CASES if c[3] is not None]


@pytest.mark.torch
@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("case", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_forward_and_gradient_match_torch(case):
    _, builder, factories, reference = case
    values = [np.asarray(f(), dtype=np.float64) for f in factories]
    g, phs, y, weights, _, grads = _graph_for(builder, values)
    with tf.Session(graph=g) as sess:
        out, w, analytic = sess.run([y, weights, grads], dict(zip(phs, values)))
    ts = [torch.tensor(v, requires_grad=True) for v in values]
    ref = reference(*ts)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    (ref * torch.tensor(w)).sum().backward()
    for a, t in zip(analytic, ts):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_gradients_of_unconnected_and_integer_inputs_are_none():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        z = tf.placeholder(tf.float32, [3])
        i = tf.placeholder(tf.int32, [3])
        y = tf.reduce_sum(x * tf.cast(i, tf.float32))
        gx, gz, gi = tf.gradients(y, [x, z, i])
        assert gx is not None and gz is None and gi is None
        (zero,) = tf.gradients(y, [z], unconnected_gradients="zero")
        with tf.Session() as sess:
            assert sess.run(zero).tolist() == [0.0, 0.0, 0.0]


def test_stop_gradient_blocks_and_multiple_ys_are_summed():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [2])
        a = tf.reduce_sum(x * x)
        b = tf.reduce_sum(tf.stop_gradient(x) * x)
        ga, gab = tf.gradients(a, x)[0], tf.gradients([a, b], x)[0]
        gw = tf.gradients(a, x, grad_ys=tf.constant(3.0, tf.float64))[0]
        with tf.Session() as sess:
            xv = np.array([1.5, -2.0])
            ra, rab, rw = sess.run([ga, gab, gw], {x: xv})
    np.testing.assert_allclose(ra, 2 * xv)
    np.testing.assert_allclose(rab, 3 * xv)  # d/dx (x.x + const(x).x) = 2x + x
    np.testing.assert_allclose(rw, 6 * xv)


def test_stop_gradients_argument_treats_the_tensors_as_constants():
    # TF 1.15's tf.gradients docs: a = 0; b = 2 * a; gradients(a + b, [a, b],
    # stop_gradients=[a, b]) is [1.0, 1.0] (the 2 through b is not added to a's gradient).
    with tf.Graph().as_default():
        a = tf.constant(0.0)
        b = 2 * a
        stopped = tf.gradients(a + b, [a, b], stop_gradients=[a, b])
        total = tf.gradients(a + b, [a, b])
        with tf.Session() as sess:
            assert sess.run(stopped) == [1.0, 1.0]
            assert sess.run(total) == [3.0, 1.0]


def test_gradient_adds_ops_to_the_graph_and_names_them():
    with tf.Graph().as_default() as g:
        x = tf.placeholder(tf.float32, [], name="x")
        y = tf.square(x, name="y")
        n_before = len(g.get_operations())
        (gx,) = tf.gradients(y, [x])
        assert len(g.get_operations()) > n_before
        assert gx.name.startswith("gradients/y_grad/")


def test_dropout_gradient_uses_the_same_mask():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float64, [200])
        y = tf.nn.dropout(x, rate=0.25, seed=3)
        (gx,) = tf.gradients(tf.reduce_sum(y), [x])
        with tf.Session() as sess:
            xv = R.uniform(1, 2, 200)
            yv, gv = sess.run([y, gx], {x: xv})
    np.testing.assert_allclose(gv, yv / xv)
    assert set(np.round(np.unique(gv), 6)) <= {0.0, round(1 / 0.75, 6)}


def test_second_order_is_reported_clearly_where_missing():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        (g1,) = tf.gradients(tf.reduce_sum(tf.nn.relu(x)), [x])
        with pytest.raises(LookupError, match="No gradient defined for operation"):
            tf.gradients(tf.reduce_sum(g1), [x])
