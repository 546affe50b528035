"""Scaling of MirroredStrategy through the graph core: samples/s of 1 and 2 workers.

    python benchmarks/scaling.py [--steps 30] [--repeats 3]     # runs ringrun -np 1 and -np 2
    ringrun -np 2 benchmarks/scaling.py --worker --model mlp     # one measurement, JSON on rank 0

Models: the lecture CNN (Conv2D(32, 3) + MaxPooling2D + Dense(10) on 28x28x1, batch 64 per
worker) and an MLP (784-1024-1024-10, batch 128 per worker), Adam, one training step per
Session.run, on synthetic data. Every worker uses one thread. Weak scaling: the per-worker
batch is fixed, so efficiency = samples/s(2 workers) / (2 x samples/s(1 worker)), the median
of the ratios of back-to-back runs; target >= 0.9.
The all-reduce share is the time spent in the gradient all-reduce op (including waiting for
the other worker) over the step time. Two independent one-worker jobs run at the same time show
what the machine itself allows two workers (shared cores, memory bandwidth, other load).
"""

from __future__ import annotations

import os

# One thread per worker, also for NumPy's BLAS; set before NumPy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time

import numpy as np

MODELS = {"cnn": 64, "mlp": 128}


def build(model: str, batch: int):
    import ringtrain as tf

    if model == "cnn":
        x = tf.placeholder(tf.float32, [None, 28, 28, 1])
        w = tf.get_variable("conv/kernel", [3, 3, 1, 32])
        b = tf.get_variable("conv/bias", [32], initializer=tf.zeros_initializer())
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 1, 1, 1], "VALID"), b))
        h = tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
        h = tf.reshape(h, [-1, 13 * 13 * 32])
        sizes = [13 * 13 * 32, 10]
        shape = (batch, 28, 28, 1)
    else:
        x = tf.placeholder(tf.float32, [None, 784])
        h = x
        sizes = [784, 1024, 1024, 10]
        shape = (batch, 784)
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = tf.get_variable(f"dense{i}/kernel", [n_in, n_out])
        b = tf.get_variable(f"dense{i}/bias", [n_out], initializer=tf.zeros_initializer())
        h = tf.matmul(h, w) + b
        if i < len(sizes) - 2:
            h = tf.nn.relu(h)
    y = tf.placeholder(tf.int64, [None])
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h))
    train = tf.train.AdamOptimizer(1e-4).minimize(loss)
    rng = np.random.default_rng(0)
    feed = {x: rng.random(shape, dtype=np.float32), y: rng.integers(0, 10, batch)}
    return train, feed


def worker(model: str, steps: int, warmup: int, algorithm: str = "auto",
           bucket_bytes: int | None = None) -> dict:
    """One measurement in this process (under ringrun: one of N workers)."""
    import ringtrain as tf

    ops = tf.distribute.CrossDeviceOps(algorithm, bucket_bytes)
    strategy = tf.distribute.MirroredStrategy(cross_device_ops=ops)
    batch = MODELS[model]
    with strategy.scope():
        train, feed = build(model, batch)
        init = tf.global_variables_initializer()
    ext = strategy.extended
    with tf.Session() as sess:
        sess.run(init)
        for _ in range(warmup):
            sess.run(train, feed)
        ext.barrier()
        ext.allreduce_seconds = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            sess.run(train, feed)
        # Every worker's elapsed time; the job's throughput is set by the slowest.
        elapsed = max(ext.allgather_object(time.perf_counter() - start))
        share = ext.allreduce_seconds / (time.perf_counter() - start)
    workers = strategy.num_replicas_in_sync
    return {"model": model, "workers": workers, "batch_per_worker": batch,
            "samples_per_s": steps * batch * workers / elapsed,
            "step_ms": 1e3 * elapsed / steps,
            "allreduce_share": float(np.mean(ext.allgather_object(share))) if workers > 1
            else 0.0}


_EXTRA: list[str] = []       # options passed on to every worker


def _command(n: int, model: str, steps: int, warmup: int) -> list[str]:
    return [sys.executable, "-m", "ringrun", "-np", str(n), "--no-prefix",
            os.path.abspath(__file__), "--worker", "--model", model, "--steps", str(steps),
            "--warmup", str(warmup), *_EXTRA]


def _result(stdout: str) -> dict:
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])


def run_job(n: int, model: str, steps: int, warmup: int) -> dict:
    out = subprocess.run(_command(n, model, steps, warmup), check=True, capture_output=True,
                         text=True, timeout=600).stdout
    return _result(out)


def run_independent_pair(model: str, steps: int, warmup: int) -> float:
    """Samples/s of two one-worker jobs running at the same time (no communication): what
    two workers get from this machine when they only compete for cores and memory."""
    procs = [subprocess.Popen(_command(1, model, steps, warmup), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    return sum(_result(p.communicate(timeout=600)[0])["samples_per_s"] for p in procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help="measure in this job (ringrun)")
    parser.add_argument("--model", choices=sorted(MODELS), default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cross-device-ops", default="auto", choices=["auto", "ring", "native"],
                        help="the all-reduce algorithm")
    parser.add_argument("--bucket-bytes", type=int, default=None,
                        help="bucket size (default RINGTRAIN_BUCKET_BYTES)")
    args = parser.parse_args()

    if args.worker:
        result = worker(args.model or "mlp", args.steps, args.warmup, args.cross_device_ops,
                        args.bucket_bytes)
        import ringtrain as tf

        if tf.rank() == 0:
            print(json.dumps(result), flush=True)
        return

    _EXTRA.extend(["--cross-device-ops", args.cross_device_ops])
    if args.bucket_bytes is not None:
        _EXTRA.extend(["--bucket-bytes", str(args.bucket_bytes)])
    print("MirroredStrategy scaling through the graph core (1 thread per worker; medians of "
          f"{args.repeats} alternating runs, {args.steps} steps each; all-reduce "
          f"{args.cross_device_ops}, bucket bytes {args.bucket_bytes or 'default'})")
    for model in ([args.model] if args.model else sorted(MODELS)):
        runs: dict[int, list] = {1: [], 2: []}
        pairs = []
        for _ in range(args.repeats):
            for n in (1, 2):
                runs[n].append(run_job(n, model, args.steps, args.warmup))
            pairs.append(run_independent_pair(model, args.steps, args.warmup))
        one = statistics.median(r["samples_per_s"] for r in runs[1])
        two = statistics.median(r["samples_per_s"] for r in runs[2])
        pair = statistics.median(pairs)
        # Ratios within one repeat (runs back to back) cancel slow changes in the machine's load.
        efficiency = statistics.median(b["samples_per_s"] / (2 * a["samples_per_s"])
                                       for a, b in zip(runs[1], runs[2]))
        ceiling = statistics.median(p / (2 * a["samples_per_s"]) for a, p in zip(runs[1], pairs))
        relative = statistics.median(b["samples_per_s"] / p for b, p in zip(runs[2], pairs))
        share = statistics.median(r["allreduce_share"] for r in runs[2])
        step1 = statistics.median(r["step_ms"] for r in runs[1])
        step2 = statistics.median(r["step_ms"] for r in runs[2])
        print(f"{model} (batch {MODELS[model]}/worker): 1 worker {one:.0f} samples/s "
              f"({step1:.1f} ms/step); 2 workers {two:.0f} samples/s ({step2:.1f} ms/step); "
              f"efficiency {efficiency:.3f}; all-reduce share of the step {share:.1%}; "
              f"two independent 1-worker jobs at once {pair:.0f} samples/s "
              f"(machine-limited efficiency {ceiling:.3f}, ours relative to it "
              f"{relative:.3f})")


if __name__ == "__main__":
    main()
