"""GPU benchmark on one NVIDIA GPU: collective bandwidth next to the copy bandwidths that bound it,
and a torch training step through ringtrain against plain torch.

    python benchmarks/gpu.py [--sizes 1M,16M,256M,1G] [--repeats 20]

(a) torch CNN training step (examples/torch_synthetic_benchmark.py's CNN, batch 64) with
    ringtrain.torch's DistributedOptimizer at world size 1 vs plain torch; the overhead.
(b) the graph core's MLP (784-1024-1024-10, batch 512, SGD) on CuPy vs the same model in torch
    on CUDA; both copy the batch from host memory every step.
(c) all-reduce algbw (bytes / time) at world size 1 of NCCL native, our ring over NCCL and the
    MPI backend's pinned staging, next to device-to-device copy and pinned host<->device copy.
Medians over ``--repeats``, CUDA events for GPU-side times. Needs CuPy (``pip install
cupy-cuda12x``) and torch with CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * UNITS[text[-1]]) if text[-1] in UNITS else int(text)


def gpu_time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` measured with CUDA events on the current stream."""
    import cupy

    fn()
    cupy.cuda.get_current_stream().synchronize()
    samples = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        samples.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return statistics.median(samples)


def wall_time(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def collectives(sizes: list[int], repeats: int) -> None:
    import ringtrain as rt
    from ringtrain.comm.device import StagedCommunicator
    from ringtrain.comm.nccl import NcclCommunicator

    host = rt.init()
    nccl = NcclCommunicator(host, 0)
    staged = StagedCommunicator(host)
    print("\n(c) all-reduce at world size 1, algbw GB/s (median)")
    print("| size | device copy | pinned H2D | pinned D2H | NCCL native | NCCL ring | MPI staged |")
    print("|---|---|---|---|---|---|---|")
    for nbytes in sizes:
        row = _measure(nbytes, repeats, nccl, staged)
        cells = " | ".join(f"{nbytes / row[k] / 1e9:.1f}" for k in
                           ("copy", "h2d", "d2h", "native", "ring", "staged"))
        print(f"| {nbytes >> 20} MiB | {cells} |")
    nccl.shutdown()


def _measure(nbytes: int, repeats: int, nccl, staged) -> dict[str, float]:
    """Median seconds of each transfer of ``nbytes`` (float32)."""
    import cupy
    import cupyx

    x = cupy.ones(nbytes // 4, cupy.float32)
    y = cupy.empty_like(x)
    pinned = cupyx.empty_pinned(x.shape, np.float32)
    stream = cupy.cuda.get_current_stream()
    return {
        "copy": gpu_time(lambda: y.__setitem__(Ellipsis, x), repeats),
        "h2d": wall_time(lambda: (y.set(pinned, stream=stream), stream.synchronize()), repeats),
        "d2h": wall_time(lambda: x.get(out=pinned), repeats),
        "native": wall_time(lambda: nccl.allreduce(x, algorithm="native", out=y), repeats),
        "ring": wall_time(lambda: nccl.allreduce(x, algorithm="ring", out=y), repeats),
        "staged": wall_time(lambda: staged.allreduce(x, out=y), max(3, repeats // 4)),
    }


def torch_step(repeats: int) -> None:
    import torch
    import torch.nn.functional as F
    from torch_synthetic_benchmark import CNN

    import ringtrain.torch as hvd

    hvd.init()
    torch.cuda.set_device(hvd.local_rank())
    data = torch.randn(64, 1, 28, 28, device="cuda")
    target = torch.randint(0, 10, (64,), device="cuda")

    def make(distributed: bool):
        torch.manual_seed(0)
        model = CNN().cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        if distributed:
            opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters())

        def step():
            opt.zero_grad()
            F.cross_entropy(model(data), target).backward()
            opt.step()
            torch.cuda.synchronize()
        return step

    plain = wall_time(make(False), repeats * 5)
    ours = wall_time(make(True), repeats * 5)
    print("\n(a) torch CNN step, batch 64, world size 1 (median ms)")
    print("| plain torch | ringtrain.torch | overhead |")
    print("|---|---|---|")
    print(f"| {plain * 1e3:.3f} | {ours * 1e3:.3f} | {100 * (ours / plain - 1):+.1f} % |")


def core_step(repeats: int) -> None:
    import cupy
    import torch

    import ringtrain as tf

    rng = np.random.default_rng(0)
    xs = rng.random((512, 784), dtype=np.float32)
    ys = rng.integers(0, 10, 512)
    graph = tf.Graph()
    with graph.as_default(), tf.device("/gpu:0"):
        x = tf.placeholder(tf.float32, [None, 784])
        y = tf.placeholder(tf.int64, [None])
        h = tf.layers.dense(x, 1024, activation=tf.nn.relu)
        h = tf.layers.dense(h, 1024, activation=tf.nn.relu)
        logits = tf.layers.dense(h, 10)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                             logits=logits))
        train = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
        init = tf.global_variables_initializer()
    session = tf.Session(graph=graph)
    session.run(init)
    if "GPU" not in [d.device_type for d in session.list_devices()]:
        raise SystemExit("(b): the Session did not place the graph on the GPU")

    def core():
        session.run(train, {x: xs, y: ys})
        cupy.cuda.get_current_stream().synchronize()

    model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def plain():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(xs).cuda()),
                                          torch.from_numpy(ys).cuda()).backward()
        opt.step()
        torch.cuda.synchronize()

    theirs, ours = wall_time(plain, repeats * 5), wall_time(core, repeats * 5)
    print("\n(b) MLP 784-1024-1024-10, batch 512, one SGD step (median ms)")
    print("| torch CUDA | ringtrain core on CuPy | ratio |")
    print("|---|---|---|")
    print(f"| {theirs * 1e3:.3f} | {ours * 1e3:.3f} | {ours / theirs:.2f} x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,16M,256M,1G")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    print(f"GPU: {props['name'].decode()}, CuPy {cupy.__version__}, "
          f"NCCL {cupy.cuda.nccl.get_version()}")
    collectives([parse_size(s) for s in args.sizes.split(",")], args.repeats)
    torch_step(args.repeats)
    core_step(args.repeats)


if __name__ == "__main__":
    main()
