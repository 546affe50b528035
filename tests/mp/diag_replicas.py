"""Worker for tests/test_diagnostics.py: the replica guard.

``diag_replicas.py FRONT_END PERTURB``: trains 6 steps (``torch``: a DistributedOptimizer;
``graph``: MirroredStrategy and a TF1 Session) with RINGTRAIN_CHECK_REPLICAS_EVERY from the
environment. After step 3, rank PERTURB (``-1``: none) adds 0.25 to element (1, 2) of the first
layer's weight. Prints ``STEP k`` after each step and ``DIVERGED <message>`` if the guard stops
the run."""

import sys

import numpy as np

front_end, perturb = sys.argv[1], int(sys.argv[2])


def train_torch():
    import torch

    import ringtrain.torch as hvd

    hvd.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    x = torch.arange(20, dtype=torch.float32).reshape(5, 4) / 10 + hvd.rank()
    for step in range(1, 7):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        print(f"STEP {step}", flush=True)
        if step == 3 and hvd.rank() == perturb:
            with torch.no_grad():
                model[0].weight[1, 2] += 0.25


def train_graph():
    import ringtrain as tf

    strategy = tf.distribute.MirroredStrategy()
    rank = strategy.extended.worker_index
    with tf.Graph().as_default(), strategy.scope():
        x = tf.placeholder(tf.float64, [None, 4])
        w1 = tf.get_variable("w1", [4, 3], tf.float64, initializer=tf.ones_initializer())
        w2 = tf.get_variable("w2", [3, 2], tf.float64, initializer=tf.ones_initializer())
        loss = tf.reduce_mean(tf.square(tf.matmul(tf.tanh(tf.matmul(x, w1)), w2)))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        bump = tf.assign_add(w1, np.where(np.arange(12).reshape(4, 3) == 5, 0.25, 0.0))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            batch = np.arange(20.0).reshape(5, 4) / 10 + rank
            for step in range(1, 7):
                sess.run(train_op, feed_dict={x: batch})
                print(f"STEP {step}", flush=True)
                if step == 3 and rank == perturb:
                    sess.run(bump)


try:
    train_torch() if front_end == "torch" else train_graph()
except Exception as exc:  # the guard's error, printed for the test, then the run fails
    if type(exc).__name__ != "ReplicasDiverged":
        raise
    print(f"DIVERGED {exc}", flush=True)
    sys.exit(3)
print("DONE", flush=True)
