"""Worker for tests/test_timeline.py: a torch MLP (Linear 4->3->2->1: six parameters, 26
floats) trained ``STEPS`` (argv[1]) steps with hvd.DistributedOptimizer; run with
RINGTRAIN_BUCKET_BYTES=0 (a bucket per parameter, and one of the flags) and RINGTRAIN_TIMELINE,
so every step's trace holds seven bucket all-reduces, each with its queued, started and done
marks. Inputs depend on
the rank. Prints ``STEPS <n>``."""

import sys

import torch

import ringtrain.torch as hvd

STEPS = int(sys.argv[1])
hvd.init()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2),
                            torch.nn.Tanh(), torch.nn.Linear(2, 1))
optimizer = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=1e-2),
                                     named_parameters=model.named_parameters())
hvd.broadcast_parameters(model.state_dict(), root_rank=0)
for step in range(STEPS):
    x = torch.arange(8.0).reshape(2, 4) / 8 + hvd.rank() + step
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True)).backward()
    optimizer.step()
print(f"STEPS {STEPS}", flush=True)
