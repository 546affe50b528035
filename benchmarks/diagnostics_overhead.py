"""What the straggler report and RINGTRAIN_TIMELINE cost per training step (issue 17).

    ringrun -np 2 python benchmarks/diagnostics_overhead.py [--steps 40 --rounds 5]

A torch MLP (784-256-256-10, batch 64 per rank) trained with hvd.DistributedOptimizer over a
distribute_dataloader, in four modes on the same processes: ``off`` (no recorder), ``timing``
(phases recorded, no report), ``report`` (the report every 20 of its steps: its allgather included) and
``timeline`` (timing plus the trace's spans). The modes take turns step by step (each with its
own pass over the loader), so a shared machine's drifts hit all alike; a sample is one step's
time on rank 0 (every step ends in an all-reduce, so the ranks keep pace); the table shows
the median and mean over ``--steps`` x ``--rounds`` steps per mode and their ratios to ``off``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import ringtrain as rt
import ringtrain.torch as hvd
from ringtrain.comm import stragglers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    hvd.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    optimizer = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.01),
                                         named_parameters=model.named_parameters())
    engine = optimizer._ringtrain_engine
    group = engine.comm
    directory = tempfile.mkdtemp(prefix="ringtrain_timeline_bench_")
    # Each recorder's constructor is a collective: built once, in the same order everywhere.
    recorders = {"off": None, "timing": stragglers.StepRecorder(group, every=0),
                 "report": stragglers.StepRecorder(group, every=20),
                 "timeline": stragglers.StepRecorder(group, every=0,
                                                     timeline=f"{directory}/trace.json")}
    n = 64 * args.steps * hvd.size()
    samples = torch.utils.data.TensorDataset(torch.randn(n, 784), torch.randint(0, 10, (n,)))
    strategy = rt.distribute.MirroredStrategy()
    times: dict[str, list[float]] = {mode: [] for mode in recorders}
    for _ in range(args.rounds):
        batches = {}
        for mode, recorder in recorders.items():
            # A pass over distribute_dataloader times its batches into the current recorder.
            stragglers._current = recorder
            batches[mode] = iter(strategy.distribute_dataloader(
                torch.utils.data.DataLoader(samples, batch_size=64)))
        for step in range(args.steps * len(recorders)):
            mode = list(recorders)[step % len(recorders)]
            engine.recorder = recorders[mode]
            started = time.perf_counter()
            x, y = next(batches[mode])
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            times[mode].append(time.perf_counter() - started)
    if hvd.rank() == 0:
        base = statistics.median(times["off"])
        mean_base = statistics.fmean(times["off"])
        print(f"{hvd.size()} ranks, {args.steps} steps x {args.rounds} rounds per mode")
        print(f"{'mode':<10}{'median ms':>10}{'vs off':>8}{'mean ms':>10}{'vs off':>8}")
        for mode, steps in times.items():
            median, mean = statistics.median(steps), statistics.fmean(steps)
            print(f"{mode:<10}{median * 1e3:>10.2f}{median / base:>8.3f}{mean * 1e3:>10.2f}"
                  f"{mean / mean_base:>8.3f}")
        # The recorder's own work per step, without the step around it: what the table's
        # differences are made of when the machine's noise hides them.
        for mode in ("timing", "timeline"):
            cost = _recorder_cost(recorders[mode])
            print(f"{mode}: {cost * 1e6:.1f} us of recorder work per step = "
                  f"{cost / base * 100:.3f} % of the median 'off' step")


def _recorder_cost(recorder: stragglers.StepRecorder, steps: int = 20000) -> float:
    """Seconds per step of the calls one training step makes into ``recorder`` (no report:
    ``every`` is 0, so nothing here is a collective): arrival, data, comm, one bucket's span,
    optimizer, step end."""
    timeline = recorder.timeline
    started = time.perf_counter()
    for _ in range(steps):
        recorder.add("data", 1e-4)
        recorder.arrive()
        queued = time.time()
        recorder.add("comm", 1e-4)
        if timeline is not None:
            timeline.span("allreduce", "bucket 0", queued, time.time() - queued,
                          {"bytes": 4096, "parameters": 6})
        recorder.add("optimizer", 1e-4)
        recorder.step_done()
    return (time.perf_counter() - started) / steps


if __name__ == "__main__":
    main()
