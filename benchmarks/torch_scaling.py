"""Scaling of PyTorch training through ringtrain, against one plain torch process and torch DDP.

    ringrun -np 2 benchmarks/torch_scaling.py [--steps 20] [--repeats 5] [--json out.json]

In one run, for a CNN (2 conv + 2 linear, batch 64 per worker) and an MLP (784-1024-1024-10,
batch 128 per worker), all with one torch thread per process, it measures samples/s of

- ``plain``: one plain torch process (rank 0; the other workers sleep meanwhile),
- ``alone``: every worker trains its own plain model at the same time, with no communication
  (the ceiling for any data-parallel scheme on this machine: cores and memory are shared),
- ``np1``: ringtrain's hooks and buckets forced on in a world of one (rank 0 alone, local
  backend); a real one-worker run skips them, so this is the worst-case wrapper overhead,
- ``ringtrain``: every worker through ``ringtrain.torch.DistributedOptimizer``,
- ``ddp``: every worker through ``torch.nn.parallel.DistributedDataParallel`` (gloo).

Scaling efficiency = samples/s of N workers / (N x samples/s of ``plain``); ``/ceil`` =
samples/s of N workers / samples/s of ``alone``, the share of what this machine allows. Each
repeat measures every configuration back to back; reported are the medians over repeats of
the samples/s and of each repeat's ratios (of neighbouring measurements, so they are steadier
than ratios of medians on a machine shared with other jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import ringtrain.torch as hvd
from ringtrain.comm.local import LocalCommunicator
from ringtrain.torch._engine import GradientEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from torch_synthetic_benchmark import CNN, mlp

# The models of examples/torch_synthetic_benchmark.py, so both measure the same networks.
MODELS = {"cnn": (CNN, 64), "mlp": (mlp, 128)}


class Trainer:
    """One configuration: a model, an optimizer and a fixed synthetic batch."""

    def __init__(self, name: str, kind: str, bucket_bytes: int | None):
        build, batch = MODELS[name]
        torch.manual_seed(0)
        self.batch = batch
        self.model = build()
        self.data = torch.randn(batch, 1, 28, 28)
        self.target = torch.randint(0, 10, (batch,))
        self.ddp = False
        params = self.model.parameters()
        if kind == "ddp":
            self.model = nn.parallel.DistributedDataParallel(self.model)
            self.ddp = True
            params = self.model.parameters()
        self.optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        if kind == "ringtrain":
            self.optimizer = hvd.DistributedOptimizer(
                self.optimizer, named_parameters=self.model.named_parameters(),
                bucket_bytes=bucket_bytes)
            hvd.broadcast_parameters(self.model.state_dict(), root_rank=0)
        elif kind == "np1":
            engine = GradientEngine(list(self.model.named_parameters()), active=True,
                                    bucket_bytes=bucket_bytes, group=LocalCommunicator())
            engine.attach(self.optimizer)

    def step(self) -> None:
        self.optimizer.zero_grad()
        F.cross_entropy(self.model(self.data), self.target).backward()
        self.optimizer.step()

    def rate(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return self.batch * steps / (time.perf_counter() - start)


def sleepy_barrier() -> None:
    """Wait for every worker without spinning a core (MPI's own barrier busy-polls)."""
    if hvd.size() == 1:
        return
    from mpi4py import MPI

    request = MPI.COMM_WORLD.Ibarrier()
    while not request.Test():
        time.sleep(0.002)


def start_ddp() -> None:
    import torch.distributed as dist

    port = None
    if hvd.rank() == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = hvd.broadcast_object(port, root_rank=0)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=hvd.rank(),
                            world_size=hvd.size())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--steps", type=int, default=20, help="steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bucket-bytes", type=int, default=None)
    parser.add_argument("--no-ddp", action="store_true")
    parser.add_argument("--json", default=None, help="write the results to this file (chief)")
    args = parser.parse_args()

    hvd.init()
    torch.set_num_threads(1)
    n, rank = hvd.size(), hvd.rank()
    kinds = ["plain", "np1", "alone", "ringtrain"] + \
        ([] if args.no_ddp or n == 1 else ["ddp"])
    if "ddp" in kinds:
        start_ddp()
    results: dict = {"workers": n, "steps": args.steps, "repeats": args.repeats,
                     "machine_cores": os.cpu_count(), "models": {}}
    for name in args.models.split(","):
        trainers = {}
        for kind in kinds:
            if kind in ("plain", "np1") and rank != 0:
                continue
            trainers[kind] = Trainer(name, "plain" if kind == "alone" else kind,
                                     args.bucket_bytes)
        rates: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.repeats):
            for kind in kinds:
                sleepy_barrier()
                trainer = trainers.get(kind)
                if trainer is None:             # a single-process measurement on rank 0
                    continue
                for _ in range(args.warmup):
                    trainer.step()
                rate = trainer.rate(args.steps)
                if kind in ("alone", "ringtrain", "ddp"):
                    # The job's rate is set by its slowest worker.
                    rate = hvd.allreduce(torch.tensor(rate, dtype=torch.float64),
                                         op=hvd.Min).item() * n
                rates[kind].append(rate)
        if rank == 0:
            medians = {kind: statistics.median(values) for kind, values in rates.items()}
            plain = rates["plain"]
            entry = {"batch_per_worker": MODELS[name][1], "samples_per_s": medians,
                     "all_runs": rates,
                     "np1_overhead": statistics.median(
                         1 - a / b for a, b in zip(rates["np1"], plain))}
            for kind in ("alone", "ringtrain", "ddp"):
                if kind in medians:
                    entry[f"{kind}_efficiency"] = statistics.median(
                        a / (n * b) for a, b in zip(rates[kind], plain))
                if kind in medians and kind != "alone":
                    entry[f"{kind}_of_ceiling"] = statistics.median(
                        a / b for a, b in zip(rates[kind], rates["alone"]))
            results["models"][name] = entry
    if rank != 0:
        return
    print(f"{n} worker(s), 1 torch thread each, {args.steps} steps x {args.repeats} repeats "
          f"(medians, samples/s)")
    print(f"{'model':6} {'plain':>9} {'np1':>9} {'ovh':>6} {'alone':>9} {'eff':>6} "
          f"{'ringtrain':>10} {'eff':>6} {'/ceil':>6} {'ddp':>9} {'eff':>6} {'/ceil':>6}")
    nan = float("nan")
    for name, e in results["models"].items():
        s = e["samples_per_s"]
        print(f"{name:6} {s['plain']:9.1f} {s['np1']:9.1f} {e['np1_overhead']:6.1%} "
              f"{s['alone']:9.1f} {e['alone_efficiency']:6.3f} "
              f"{s['ringtrain']:10.1f} {e['ringtrain_efficiency']:6.3f} "
              f"{e['ringtrain_of_ceiling']:6.3f} "
              f"{s.get('ddp', nan):9.1f} {e.get('ddp_efficiency', nan):6.3f} "
              f"{e.get('ddp_of_ceiling', nan):6.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
