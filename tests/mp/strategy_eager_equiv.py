"""Run under ``ringrun -np N``: TensorFlow 2's custom training loop under MirroredStrategy.

``strategy_eager_equiv.py OUT_DIR --optimizer sgd,adam --mode eager,function,run_in_function
--global-batch G``
The MLP of strategy_graph_equiv.py, trained eagerly by ``strategy.run`` (or with the step in a
tf.function, or with ``strategy.run`` and ``strategy.reduce`` inside one): the loss is ``tf.nn.compute_average_loss`` over the global batch,
``tape.gradient`` then the Keras optimizer's ``apply_gradients``, which sums the gradients
across the replicas. Every worker starts from a different random initialisation (seeded by rank);
the strategy must broadcast the chief's. Each rank writes ``OUT_DIR/<mode>_<optimizer>_rank<r>
.npz`` with its initial and final parameters and the reduced losses.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import ringtrain.v2 as tf


def data(total: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(total, 5))
    y = (x @ rng.normal(size=(5,)) > 0).astype(np.int64) + (x[:, 0] > 1).astype(np.int64)
    return x, y


def train(strategy, mode: str, optimizer_name: str, global_batch: int, steps: int) -> dict:
    rank = strategy.extended.worker_index
    x_all, y_all = data(global_batch * steps)
    dataset = tf.data.Dataset.from_tensor_slices((x_all, y_all)).batch(global_batch)
    with strategy.scope():
        init = np.random.default_rng(10 + rank)   # differs per rank: only the broadcast helps
        params = [tf.Variable(init.normal(scale=0.5, size=shape), name=name)
                  for name, shape in (("w1", (5, 7)), ("b1", (7,)), ("w2", (7, 3)),
                                      ("b2", (3,)))]
        optimizer = tf.keras.optimizers.Adam(0.05) if optimizer_name == "adam" else \
            tf.keras.optimizers.SGD(0.5)
    w1, b1, w2, b2 = params
    initial = [p.numpy() for p in params]

    def train_step(inputs):
        x, y = inputs
        with tf.GradientTape() as tape:
            logits = tf.matmul(tf.tanh(tf.matmul(x, w1) + b1), w2) + b2
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        grads = tape.gradient(loss, params)
        optimizer.apply_gradients(zip(grads, params))
        return loss

    def distributed_step(batch):
        per_replica = strategy.run(train_step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    if mode == "function":              # the step traced, strategy.run called eagerly
        train_step = tf.function(train_step)
    elif mode == "run_in_function":     # strategy.run and reduce traced too (the tutorial's)
        distributed_step = tf.function(distributed_step)
    calls_before = strategy.extended.allreduce_calls
    losses = []
    for batch in strategy.experimental_distribute_dataset(dataset):
        losses.append(float(distributed_step(batch)))
    all_reduces = strategy.extended.allreduce_calls - calls_before
    if strategy.num_replicas_in_sync > 1:  # one fused all-reduce of the gradients per step
        assert all_reduces == steps, (all_reduces, steps)
    assert int(optimizer.iterations.numpy()) == steps
    return {**{f"initial_{i}": a for i, a in enumerate(initial)},
            **{f"final_{i}": p.numpy() for i, p in enumerate(params)},
            "loss": np.array(losses)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--optimizer", default="sgd", help="comma-separated: sgd,adam")
    parser.add_argument("--mode", default="eager",
                        help="comma-separated: eager,function,run_in_function")
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    strategy = tf.distribute.MirroredStrategy()
    rank = strategy.extended.worker_index
    for mode in args.mode.split(","):
        for name in args.optimizer.split(","):
            result = train(strategy, mode, name, args.global_batch, args.steps)
            np.savez(os.path.join(args.out, f"{mode}_{name}_rank{rank}.npz"), **result)
    print("strategy_eager_equiv ok", flush=True)


if __name__ == "__main__":
    main()
