"""Run under ``ringrun -np N``: torch training under MirroredStrategy that checkpoints its
``distribute_dataloader(..., split_batches=True)`` position and resumes on another number of
workers.

``torch_resume_world_size.py DIR [--stop-after S]``: float64 softmax regression on 47 fixed
rows, shuffled each epoch, global batches of 6 rows (the last of each epoch padded from the
epoch's start), SGD with momentum, 4 epochs of 8 steps. The chief prints ``step <k> loss <mean
loss of the global batch before the step>``; every 3 steps ``hvd.save_checkpoint`` writes the
model, optimizer, loader position and step to DIR/checkpoint.pt; the run stops after step S.
A rerun resumes from that file.
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import ringtrain
import ringtrain.torch as hvd

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--stop-after", type=int, default=-1)
args = parser.parse_args()
path = os.path.join(args.dir, "checkpoint.pt")

rows = np.random.default_rng(0)
features = torch.from_numpy(rows.normal(size=(47, 5)))
labels = torch.from_numpy(rows.integers(0, 3, size=47))
strategy = ringtrain.distribute.MirroredStrategy()
loader = strategy.distribute_dataloader(
    DataLoader(TensorDataset(features, labels), batch_size=6, shuffle=True), split_batches=True)

with strategy.scope():
    model = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        model.weight.copy_(torch.linspace(-1, 1, 15, dtype=torch.float64).reshape(3, 5))
        model.bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)

step = 0
saved = hvd.load_checkpoint(path, default=None)
if saved is not None:
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    loader.load_state_dict(saved["data"])
    step = saved["step"]

for epoch in range(loader.epoch, 4):
    loader.set_epoch(epoch)                     # the DistributedSampler idiom keeps the position
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)     # equal parts: the mean of means is the mean
        loss.backward()
        optimizer.step()
        step += 1
        mean = strategy.reduce("MEAN", loss.detach())
        if hvd.rank() == 0:
            print(f"step {step} loss {mean.item():.17g}", flush=True)
        if step % 3 == 0:
            hvd.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                 "data": loader.state_dict(), "step": step}, path)
        if step == args.stop_after:
            raise SystemExit(0)
