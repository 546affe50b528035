"""A small CNN on scikit-learn's digits, trained by every worker through MirroredStrategy.

    ringrun -np 2 examples/torch_digits.py [--epochs 8] [--logdir runs/digits]
                                           [--checkpoint digits.pt]

Plain PyTorch inside ``strategy.scope()``: the model starts from the chief's weights, each
worker trains on its shard of every epoch, gradients are averaged while backward runs. The
chief prints progress, writes TensorBoard logs and checkpoints; rerunning with the same
``--checkpoint`` resumes where the last run stopped.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ringtrain
import ringtrain.torch as rtt


class Net(nn.Module):
    """Two convolutions and two fully connected layers for 8x8 digit images."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def digits() -> tuple[TensorDataset, TensorDataset]:
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target, dtype=torch.int64)
    # The same split on every worker: the last 297 images (1/6) are the test set.
    split = len(labels) - 297
    return (TensorDataset(images[:split], labels[:split]),
            TensorDataset(images[split:], labels[split:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32, help="per worker")
    parser.add_argument("--lr", type=float, default=0.02, help="for one worker (scaled by N)")
    parser.add_argument("--logdir", default=None, help="TensorBoard log directory (chief)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file to resume/save")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    strategy = ringtrain.distribute.MirroredStrategy()
    workers = strategy.num_replicas_in_sync
    train, test = digits()
    torch.manual_seed(ringtrain.rank())   # different on purpose: the scope fixes it
    with strategy.scope():
        model = Net()
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr * workers, momentum=0.9)
    shards = strategy.distribute_dataloader(
        DataLoader(train, batch_size=args.batch_size, shuffle=True))

    start = 0
    if args.checkpoint:
        state = rtt.load_checkpoint(args.checkpoint, default=None)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = state["epoch"] + 1
    writer = rtt.SummaryWriter(args.logdir) if args.logdir else None
    chief = ringtrain.is_chief()
    if chief:
        print(f"{workers} worker(s), {len(shards)} steps per epoch of {args.batch_size} images "
              f"each, starting at epoch {start}", flush=True)

    for epoch in range(start, args.epochs):
        shards.set_epoch(epoch)
        model.train()
        total = torch.zeros(2)                               # loss sum, images
        for images, labels in shards:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            total += torch.tensor([loss.item() * len(labels), len(labels)])
        summed = strategy.reduce("SUM", total, axis=None)
        train_loss = (summed[0] / summed[1]).item()
        model.eval()
        with torch.no_grad():                                # replicas are identical
            images, labels = test.tensors
            accuracy = (model(images).argmax(1) == labels).float().mean().item()
        if chief:
            print(f"epoch {epoch}: train loss {train_loss:.4f}, test accuracy {accuracy:.4f}",
                  flush=True)
        if writer is not None:
            writer.add_scalar("loss/train", train_loss, epoch)
            writer.add_scalar("accuracy/test", accuracy, epoch)
        if args.checkpoint:
            rtt.save_checkpoint({"model": model.state_dict(),
                                 "optimizer": optimizer.state_dict(), "epoch": epoch},
                                args.checkpoint)
    if writer is not None:
        writer.close()


if __name__ == "__main__":
    main()
