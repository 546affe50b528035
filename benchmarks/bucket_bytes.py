"""Which bucket size? One measurement for both users of ``comm.common.plan_buckets``.

    ringrun -np 2 benchmarks/bucket_bytes.py [--sizes 256K,1M,4M,16M,64M] [--steps 10]

For each model's gradients (the CNN and MLP of examples/torch_synthetic_benchmark.py, and a
deep MLP of 16 x 512x512 layers: many mid-sized tensors) and each bucket size it measures

- ``graph``: one ``comm.allreduce_many`` of the gradient arrays (what a graph model's
  MirroredStrategy step sends), milliseconds per call;
- ``torch``: one training step through ``ringtrain.torch.DistributedOptimizer`` (buckets
  all-reduced at the end of backward), milliseconds per step;
- ``torch+overlap``: the same with buckets launched during backward (``RINGTRAIN_OVERLAP=1``:
  what a machine with a core per worker to spare does).

Each repeat measures every (size, path) back to back, so drifts of a shared machine hit them
alike; the slowest rank's time counts; the table shows medians over repeats and each time's
ratio to the best size of its column (1.00 = best), then per size the geometric mean of its
ratios over every model and path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import ringtrain.torch as hvd
from ringtrain.torch._engine import GradientEngine
from ringtrain.torch._ops import comm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from torch_synthetic_benchmark import CNN, mlp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from allreduce import human, parse_size


def deep() -> nn.Module:
    """16 hidden layers of 512x512 (4.2 M parameters in 34 tensors)."""
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(784, 512)]
    for _ in range(16):
        layers += [nn.ReLU(), nn.Linear(512, 512)]
    return nn.Sequential(*layers, nn.ReLU(), nn.Linear(512, 10))


MODELS = {"cnn": (CNN, 64), "mlp": (mlp, 128), "deep": (deep, 64)}
PATHS = ("graph", "torch", "torch+overlap")


class Step:
    """One (model, path, bucket size): ``run()`` does one call or training step."""

    def __init__(self, model_name: str, path: str, bucket_bytes: int):
        build, batch = MODELS[model_name]
        torch.manual_seed(0)
        self.model = build()
        self.data = torch.randn(batch, 1, 28, 28)
        self.target = torch.randint(0, 10, (batch,))
        self.path = path
        self.bucket_bytes = bucket_bytes
        if path == "graph":
            self.arrays = [p.detach().numpy().copy() for p in self.model.parameters()]
            return
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        GradientEngine(list(self.model.named_parameters()), bucket_bytes=bucket_bytes,
                       active=True, overlap=path == "torch+overlap").attach(self.optimizer)

    def run(self) -> None:
        if self.path == "graph":
            comm().allreduce_many(self.arrays, op=hvd.Average,
                                  bucket_bytes=self.bucket_bytes)
            return
        self.optimizer.zero_grad()
        F.cross_entropy(self.model(self.data), self.target).backward()
        self.optimizer.step()

    def millis(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.run()
        mine = (time.perf_counter() - start) * 1000 / steps
        return hvd.allreduce(torch.tensor(mine, dtype=torch.float64), op=hvd.Max).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,mlp,deep")
    parser.add_argument("--sizes", default="256K,1M,2M,4M,16M,64M")
    parser.add_argument("--steps", type=int, default=10, help="calls per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    hvd.init()
    torch.set_num_threads(1)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    ratios: dict[int, list[float]] = {size: [] for size in sizes}
    for name in args.models.split(","):
        steps = {(size, path): Step(name, path, size) for size in sizes for path in PATHS}
        times: dict[tuple, list[float]] = {key: [] for key in steps}
        for step in steps.values():             # warm-up (the first round re-plans buckets)
            step.run()
            step.run()
        for _ in range(args.repeats):
            for key, step in steps.items():
                times[key].append(step.millis(args.steps))
        if hvd.rank():
            continue
        medians = {key: statistics.median(v) for key, v in times.items()}
        best = {path: min(medians[size, path] for size in sizes) for path in PATHS}
        grads = sum(p.numel() * 4 for p in steps[sizes[0], "graph"].model.parameters())
        print(f"\n{name}: {human(grads)} of gradients in "
              f"{len(steps[sizes[0], 'graph'].arrays)} tensors, {hvd.size()} workers, "
              f"{args.steps} calls x {args.repeats} repeats (median ms, ratio to best)")
        print(f"{'bucket':>10} " + " ".join(f"{p:>20}" for p in PATHS))
        for size in sizes:
            ratios[size] += [medians[size, p] / best[p] for p in PATHS]
            cells = [f"{medians[size, p]:9.2f} ms {medians[size, p] / best[p]:5.2f}x"
                     for p in PATHS]
            print(f"{human(size):>10} " + " ".join(f"{c:>20}" for c in cells))
    if hvd.rank() == 0:
        print("\nover every model and path (geometric mean of the ratios to the best size):")
        for size in sizes:
            print(f"{human(size):>10} {statistics.geometric_mean(ratios[size]):5.2f}x")


if __name__ == "__main__":
    main()
