"""Worker script: N workers with batch B each end with the parameters of one process with batch
N*B (float64, 5 steps), through ringtrain.torch and through MirroredStrategy.

Every rank starts from a different random initialisation (the broadcast must fix that); the
model has a parameter that never gets a gradient. Models and data live on the worker's device
(its GPU on a machine with one, as init() chose it; tests/test_gpu.py runs this on CUDA). Prints one "OK <case>" line per case on
rank 0; any failure raises (non-zero exit).
"""

import sys

import torch
from torch import nn

import ringtrain
import ringtrain.torch as hvd
from ringtrain.world import process_group

torch.set_default_dtype(torch.float64)
hvd.init()
RANK, SIZE = hvd.rank(), hvd.size()
DEVICE = torch.device(process_group.device())
if DEVICE.type == "cuda":
    torch.cuda.set_device(DEVICE)
B = 3
STEPS = 5
CHIEF_SEED = 1000


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, kernel_size=3)
        self.fc1 = nn.Linear(3 * 4, 8)
        self.fc2 = nn.Linear(8, 3)
        self.unused = nn.Linear(2, 2)          # never receives a gradient

    def forward(self, x):
        h = torch.tanh(self.conv(x)).flatten(1)
        return self.fc2(torch.tanh(self.fc1(h)))


def make(seed):
    torch.manual_seed(seed)
    with torch.device("cpu"):       # the CPU generator's values on every device, then moved
        net = Net()
    return net.to(DEVICE)


def optimizer_for(kind, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9)
    return torch.optim.Adam(params, lr=0.05)


torch.manual_seed(4321)
X = torch.randn(STEPS, SIZE * B, 2, 6).to(DEVICE)
Y = torch.randn(STEPS, SIZE * B, 3).to(DEVICE)


def loss_of(model, x, y):
    return ((model(x) - y) ** 2).mean()


def reference(kind):
    model = make(CHIEF_SEED)
    opt = optimizer_for(kind, model.parameters())
    for s in range(STEPS):
        opt.zero_grad()
        loss_of(model, X[s], Y[s]).backward()
        opt.step()
    return model


def mine(s):
    rows = slice(RANK * B, (RANK + 1) * B)
    return X[s][rows], Y[s][rows]


def compare(case, model, ref):
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        scale = q.abs().max().clamp_min(1e-12)
        rel = ((p - q).abs().max() / scale).item()
        if rel > 1e-6:
            raise AssertionError(f"{case}: rank {RANK}: {name} differs from the single-process "
                                 f"run by {rel:.3g} (relative)")
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = hvd.allgather(flat.unsqueeze(0))
    if not torch.equal(gathered, flat.unsqueeze(0).expand_as(gathered)):
        raise AssertionError(f"{case}: replicas are not bit-identical")
    unused = dict(model.named_parameters())["unused.weight"]
    if unused.grad is not None:
        raise AssertionError(f"{case}: a parameter without gradient got .grad")
    if RANK == 0:
        print(f"OK {case}", flush=True)


def run_hvd(kind, passes=1, set_to_none=True, bucket_bytes=256):
    model = make(CHIEF_SEED + RANK)
    opt = optimizer_for(kind, model.parameters())
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                   backward_passes_per_step=passes, bucket_bytes=bucket_bytes)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    if kind == "sgd":
        # On an optimizer that has not stepped, Horovod's rule takes one step with zero
        # gradients first: harmless for SGD (momentum buffers start from the first gradient
        # either way), but Adam's step count would then run one ahead of the reference.
        hvd.broadcast_optimizer_state(opt, root_rank=0)
    for s in range(STEPS):
        opt.zero_grad(set_to_none=set_to_none)
        x, y = mine(s)
        for part in range(passes):     # accumulate: each pass sees 1/passes of the batch
            rows = slice(part * B // passes, (part + 1) * B // passes)
            (loss_of(model, x[rows], y[rows]) * (len(range(B)[rows]) / B)).backward()
        opt.step()
    return model


def run_strategy(kind, accumulate=False):
    strategy = ringtrain.distribute.MirroredStrategy()
    with strategy.scope():
        model = make(CHIEF_SEED + RANK)
        opt = optimizer_for(kind, model.parameters())
    for s in range(STEPS):
        opt.zero_grad()
        x, y = mine(s)
        if accumulate:
            with strategy.no_sync():
                (loss_of(model, x[:1], y[:1]) * (1 / B)).backward()
            (loss_of(model, x[1:], y[1:]) * ((B - 1) / B)).backward()
        else:
            loss_of(model, x, y).backward()
        opt.step()
    return model


cases = sys.argv[1:] or ["hvd-sgd", "hvd-adam", "strategy-sgd", "strategy-adam",
                         "hvd-sgd-accumulate", "hvd-adam-zero", "strategy-sgd-no-sync"]
refs = {kind: reference(kind) for kind in ("sgd", "adam")}
for case in cases:
    if case == "hvd-sgd":
        compare(case, run_hvd("sgd"), refs["sgd"])
    elif case == "hvd-adam":
        compare(case, run_hvd("adam", bucket_bytes=1 << 20), refs["adam"])
    elif case == "hvd-sgd-accumulate":
        compare(case, run_hvd("sgd", passes=3), refs["sgd"])
    elif case == "hvd-adam-zero":
        compare(case, run_hvd("adam", set_to_none=False), refs["adam"])
    elif case == "strategy-sgd":
        compare(case, run_strategy("sgd"), refs["sgd"])
    elif case == "strategy-adam":
        compare(case, run_strategy("adam"), refs["adam"])
    elif case == "strategy-sgd-no-sync":
        compare(case, run_strategy("sgd", accumulate=True), refs["sgd"])
    else:
        raise SystemExit(f"unknown case {case}")
