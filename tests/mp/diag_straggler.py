"""Worker for tests/test_stragglers.py: a torch training loop (hvd.DistributedOptimizer over a
distribute_dataloader) in which rank ``SLOW`` (argv[1]; -1: none) spends ``DELAY`` seconds
(argv[2]) more per step loading its batch (its Dataset's __getitem__ sleeps)."""

import sys
import time

import torch

import ringtrain as rt
import ringtrain.torch as hvd

SLOW, DELAY, STEPS, BATCH = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), 2
hvd.init()


class Samples(torch.utils.data.Dataset):
    def __len__(self):
        return STEPS * BATCH * hvd.size()

    def __getitem__(self, i):
        if hvd.rank() == SLOW:
            time.sleep(DELAY / BATCH)
        x = torch.full((4,), float(i + hvd.rank()))
        return x, x.sum().reshape(1)


model = torch.nn.Linear(4, 1)
optimizer = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=1e-3),
                                     named_parameters=model.named_parameters())
hvd.broadcast_parameters(model.state_dict(), root_rank=0)
loader = rt.distribute.MirroredStrategy().distribute_dataloader(
    torch.utils.data.DataLoader(Samples(), batch_size=BATCH))
steps = 0
for x, y in loader:
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
    steps += 1
print(f"STEPS {steps}", flush=True)
