"""Eager execution and tf.function vs the graph Session and torch eager, on one CPU thread.

    python benchmarks/eager.py [--rounds 9] [--steps 5] [--batch 128]

The MLP of core_vs_torch.py (784-1024-1024-10, ReLU, softmax cross entropy, Adam, float32), one
training step four ways from the same initial weights: ``Session.run`` of the graph's train op,
the eager step (``GradientTape`` + ``apply_gradients``), the same step under ``tf.function``,
and torch eager. They alternate in rounds so machine load hits all alike; medians per step and
the ratios are printed (targets: tf.function <= 1.2 x graph, eager <= 1.5 x torch). The per-op
overhead is the median time of an eager ``tf.add`` of two scalars (target <= 10 us), next to
``torch.add``'s.
"""

from __future__ import annotations

import os

# One thread for NumPy's BLAS: must be set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import statistics
import time

import numpy as np
from core_vs_torch import SIZES, build_core, build_torch

import ringtrain as tf


def eager_step_fn(weights: list):
    params = [tf.Variable(w) for w in weights]
    optimizer = tf.train.AdamOptimizer(1e-3)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            h = xb
            for i in range(0, len(params), 2):
                h = tf.matmul(h, params[i]) + params[i + 1]
                if i < len(params) - 2:
                    h = tf.nn.relu(h)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb,
                                                                                 logits=h))
        optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss
    return step


def timed(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def mlp(rounds: int, steps: int, batch: int) -> dict:
    import torch
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
    ys = rng.integers(0, SIZES[-1], batch)
    sess, train, loss, x, y, params = build_core(batch)
    weights = sess.run(params)
    torch_step, _ = build_torch(weights)
    eager = eager_step_fn(weights)
    function = tf.function(eager_step_fn(weights))
    xe, ye = tf.constant(xs), tf.constant(ys)
    xt, yt = torch.from_numpy(xs), torch.from_numpy(ys)
    feed = {x: xs, y: ys}
    first = [float(sess.run(loss, feed)), float(eager(xe, ye)), float(function(xe, ye))]
    if max(first) - min(first) > 1e-5 * max(1.0, abs(first[0])):
        raise SystemExit(f"graph, eager and tf.function disagree on the first loss: {first}")
    runs = {"graph Session.run": lambda: sess.run(train, feed),
            "tf.function": lambda: function(xe, ye),
            "eager": lambda: eager(xe, ye),
            "torch eager": lambda: torch_step(xt, yt)}
    for run in runs.values():  # warm up
        for _ in range(2):
            run()
    samples: dict = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(timed(run, steps))
    return {name: statistics.median(values) for name, values in samples.items()}


def per_op_overhead(repeats: int = 2000) -> tuple[float, float]:
    """Median seconds per eager ``tf.add`` and per ``torch.add`` of two scalars."""
    import torch
    a, b = tf.constant(1.0), tf.constant(2.0)
    ta, tb = torch.tensor(1.0), torch.tensor(2.0)
    ours, theirs = [], []
    for _ in range(15):
        start = time.perf_counter()
        for _ in range(repeats):
            tf.add(a, b)
        ours.append((time.perf_counter() - start) / repeats)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.add(ta, tb)
        theirs.append((time.perf_counter() - start) / repeats)
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    tf.enable_eager_execution()
    t = mlp(args.rounds, args.steps, args.batch)
    print(f"MLP 784-1024-1024-10, batch {args.batch}, Adam, float32, 1 thread "
          f"(median of {args.rounds} rounds x {args.steps} steps)")
    for name, seconds in t.items():
        print(f"  {name:18s}: {seconds * 1e3:7.2f} ms/step")
    print(f"  tf.function / graph : {t['tf.function'] / t['graph Session.run']:5.2f}  "
          f"(target <= 1.2)")
    print(f"  eager / torch eager : {t['eager'] / t['torch eager']:5.2f}  (target <= 1.5)")
    ours, theirs = per_op_overhead()
    print(f"Eager per-op overhead, add of two scalars: tf.add {ours * 1e6:.1f} us "
          f"(target <= 10 us), torch.add {theirs * 1e6:.1f} us, ratio {ours / theirs:.1f}")


if __name__ == "__main__":
    main()
