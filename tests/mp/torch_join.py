"""Worker script: Horovod's join() for uneven data, with rank-dependent inputs and closed-form
expectations. Rank r runs r + 1 steps, then joins: until every rank has joined, the joined
ranks stand in for the others' allreduces with zeros (an average still divides by size()), any
other collective raises on the ranks that called it, and join() returns the last rank to join.

With the argument "abandon", rank 0 joins and the other ranks end without joining: rank 0's
join() must raise, naming them, instead of waiting forever.

Rank 0 prints "OK <check>" per check group and "DONE <count>"; any failure raises.
"""

import sys

import torch
from torch import nn
from torch_checks import expect_raises, finish, ok

import ringtrain.torch as hvd
from ringtrain.errors import CollectiveMismatch

hvd.init()
R, N = hvd.rank(), hvd.size()

if sys.argv[1:] == ["abandon"]:
    if R == 0:
        others = "rank 1" if N == 2 else "ranks 1, 2"
        text = expect_raises(CollectiveMismatch, hvd.join, "ended without calling join()",
                             others)
        print(f"RAISED {text}", flush=True)
    else:
        hvd.allreduce(torch.ones(3))
    sys.exit(0)


def step_input(rank, step, n=5, dtype=torch.float64):
    return (rank * 1000 - 37 + step * 10 + torch.arange(n)).to(dtype)


def present(step):
    """The ranks that still run step ``step`` (rank r runs steps 0..r)."""
    return range(step, N)


# --- allreduce: Sum, Average (float and integer), fused lists, while ranks have joined ---------------
for step in range(R + 1):
    for dtype in (torch.float64, torch.float32, torch.int32):
        x = step_input(R, step, dtype=dtype)
        total = sum(step_input(r, step, dtype=torch.float64) for r in present(step))
        got = hvd.allreduce(x, op=hvd.Sum)
        assert got.dtype == dtype and torch.equal(got.double(), total), (step, dtype, got)
        avg = hvd.allreduce(x)      # the joined ranks' zeros count: divided by N, not by those left
        if dtype.is_floating_point:
            assert torch.allclose(avg.double(), total / N), (step, dtype, avg)
        else:                       # Horovod: integers averaged in float64, truncated
            assert torch.equal(avg, torch.trunc(total / N).to(dtype)), (step, avg)
    lengths = (0, 1, 7, 13)
    group = [step_input(R, step, n) for n in lengths] + [step_input(R, step, 12).reshape(3, 4)]
    summed = hvd.grouped_allreduce(group, op=hvd.Sum)
    for n, s in zip((*lengths, 12), summed):
        exp = sum(step_input(r, step, n) for r in present(step))
        assert torch.equal(s.reshape(-1), exp), (step, n, s)
assert hvd.join() == N - 1      # rank N - 1 ran the most steps: it joins last
ok("allreduce")

# --- other collectives while a rank has joined: an error on the callers, the job goes on -----------
if N > 1:
    if R == 0:
        assert hvd.join() == N - 1
    else:
        x = step_input(R, 0)
        expect_raises(RuntimeError, lambda: hvd.allgather(x), "rank 0 called join()",
                      "only allreduce")
        expect_raises(RuntimeError, lambda: hvd.broadcast(x, root_rank=1), "allreduce")
        expect_raises(RuntimeError, lambda: hvd.allreduce(x, op=hvd.Max), "Sum or Average")
        got = hvd.allreduce(x, op=hvd.Sum)      # still usable
        assert torch.equal(got, sum(step_input(r, 0) for r in range(1, N)))
        assert hvd.join() == N - 1
assert hvd.join() == N - 1      # everyone joins at once: the tie goes to the highest rank
if N > 1:   # rank N - 1 joins first; a refused call counts: the others joined after it
    if R == N - 1:
        assert hvd.join() == N - 2
    else:
        expect_raises(RuntimeError, lambda: hvd.allgather(step_input(R, 0)), "called join()")
        assert hvd.join() == N - 2
ok("refused")

# --- DistributedOptimizer on uneven data: the joined ranks' zeros are in every average ------------
# Model y = w . x (no bias), loss 0.5 * (w . x_r - t_r)^2 on rank r's sample of step k; its
# gradient is (w . x_r - t_r) x_r. Every rank steps with the average over N of the gradients of
# the ranks still present, so rank r's weights after its r + 1 steps follow the closed form below.
def sample(rank, step):
    x = torch.tensor([1.0 + rank, 0.5 * step - 1.0, 2.0], dtype=torch.float64)
    return x, torch.tensor(float(rank - step), dtype=torch.float64)


lr = 0.05
model = nn.Linear(3, 1, bias=False).double()
with torch.no_grad():
    model.weight.copy_(torch.tensor([[0.3, -0.2, 0.1]], dtype=torch.float64))
opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=lr),
                               named_parameters=model.named_parameters())
for step in range(R + 1):
    x, t = sample(R, step)
    opt.zero_grad()
    (0.5 * (model(x.reshape(1, 3)).reshape(()) - t) ** 2).backward()
    opt.step()
hvd.join()
w = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
for step in range(R + 1):
    grad = sum((w @ x - t) * x for x, t in (sample(r, step) for r in present(step))) / N
    w = w - lr * grad
assert torch.allclose(model.weight.detach().reshape(-1), w, rtol=0, atol=1e-12), \
    (model.weight, w)
ok("optimizer")

finish(3)
