"""Worker script: Horovod's documented semantics of every ringtrain.torch function, with
rank-dependent inputs and closed-form expectations, at whatever world size it is started with.

Usage: torch_api.py TMPDIR. Rank 0 prints "OK <check>" per check group and "DONE <count>";
any failure raises on the rank that saw it (non-zero exit).
"""

import os
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch_checks import expect_raises, finish, ok

import ringtrain
import ringtrain.torch as hvd
from ringtrain.errors import CollectiveMismatch

TMP = sys.argv[1]
hvd.init()
R, N = hvd.rank(), hvd.size()


def rank_input(n, rank=R, dtype=torch.float32):
    return (rank * 1000 + torch.arange(n)).to(dtype)


def sum_over_ranks(n, dtype=torch.float64):
    return sum(rank_input(n, r, dtype) for r in range(N))


# --- process group ---------------------------------------------------------------------------------
assert hvd.is_initialized() and 0 <= R < N and 0 <= hvd.local_rank() < hvd.local_size()
assert hvd.size() == ringtrain.size() and hvd.rank() == ringtrain.rank()
assert hvd.is_chief() == (R == 0)
ok("process-group")

# --- allreduce ---------------------------------------------------------------------------------------
for n in (0, 1, 7, 13):
    x = rank_input(n)
    before = x.clone()
    total = sum_over_ranks(n)
    assert torch.allclose(hvd.allreduce(x).double(), total / N), n            # default: Average
    assert torch.equal(hvd.allreduce(x, op=hvd.Sum).double(), total)
    assert torch.equal(hvd.allreduce(x, op=hvd.Min), rank_input(n, 0))
    assert torch.equal(hvd.allreduce(x, op=hvd.Max), rank_input(n, N - 1))
    assert torch.equal(hvd.allreduce(x, average=False, name="s").double(), total)
    assert torch.allclose(hvd.allreduce(x, average=True).double(), total / N)
    scaled = hvd.allreduce(x, op=hvd.Sum, prescale_factor=2.0, postscale_factor=0.25)
    assert torch.allclose(scaled.double(), total * 0.5)
    assert torch.equal(x, before), "allreduce modified its input"
expect_raises(ValueError, lambda: hvd.allreduce(torch.ones(2), average=True, op=hvd.Sum), "op=")
if N & (N - 1):      # Adasum pairs workers in a tree: a power of 2 of them (as Horovod's)
    expect_raises(NotImplementedError, lambda: hvd.allreduce(torch.ones(2), op=hvd.Adasum),
                  "Adasum", "power of 2")
expect_raises(TypeError, lambda: hvd.allreduce([1.0, 2.0]), "torch.Tensor")
for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64):
    x = rank_input(5, dtype=dtype) if dtype.is_floating_point else \
        (R * 10 + torch.arange(5)).to(dtype)
    s = hvd.allreduce(x, op=hvd.Sum)
    assert s.dtype == dtype and s.shape == x.shape, (dtype, s)
    if dtype.is_floating_point:
        assert torch.allclose(s.double(), sum_over_ranks(5), rtol=1e-2), (dtype, s)
    else:
        exp = sum((r * 10 + torch.arange(5)) for r in range(N))
        assert torch.equal(s.long(), exp), (dtype, s)
        avg = hvd.allreduce(x)           # integer average truncates, like Horovod's
        assert torch.equal(avg.long(), torch.div(exp, N, rounding_mode="trunc")), avg
m = (R * 100 + torch.arange(12.0)).reshape(3, 4).t()                 # non-contiguous, 2-d
out = hvd.allreduce(m, op=hvd.Sum)
assert out.shape == (4, 3) and torch.equal(out, sum((r * 100 + torch.arange(12.0)).reshape(3, 4).t()
                                                    for r in range(N)))
y = rank_input(6)
same = hvd.allreduce_(y, op=hvd.Sum)
assert same is y and torch.equal(y.double(), sum_over_ranks(6))
mt = (R * 100 + torch.arange(12.0)).reshape(3, 4).t()
hvd.allreduce_(mt, op=hvd.Max)
assert torch.equal(mt, ((N - 1) * 100 + torch.arange(12.0)).reshape(3, 4).t())
h1 = hvd.allreduce_async(rank_input(4), op=hvd.Sum, name="a")
z = rank_input(3)
h2 = hvd.allreduce_async_(z, op=hvd.Sum)
res1 = hvd.synchronize(h1)
assert hvd.synchronize(h2) is z and torch.equal(z.double(), sum_over_ranks(3))
assert torch.equal(res1.double(), sum_over_ranks(4))
h3 = hvd.allreduce_async(rank_input(2))
while not hvd.poll(h3):
    pass
assert torch.allclose(hvd.synchronize(h3).double(), sum_over_ranks(2) / N)
assert hvd.synchronize(h3) is None                                   # already synchronized
expect_raises(ValueError, lambda: hvd.poll(h3), "handle")
c = hvd.allreduce(rank_input(5), op=hvd.Sum, compression=hvd.Compression.fp16)
assert c.dtype == torch.float32 and torch.allclose(c.double(), sum_over_ranks(5), rtol=1e-3)
g = rank_input(4, dtype=torch.float64).requires_grad_()
(hvd.allreduce(g, op=hvd.Sum) * (R + 1)).sum().backward()
# d/dg_r of sum_k (k+1) * sum_j g_j = sum_k (k+1), the same on every rank
assert torch.equal(g.grad, torch.full((4,), float(N * (N + 1) // 2), dtype=torch.float64))
if N > 1:
    # different shapes on different ranks: an error on every rank saying what differed
    expect_raises(CollectiveMismatch, lambda: hvd.allreduce(torch.ones(R + 2)), "shape")
ok("allreduce")

# --- allgather ---------------------------------------------------------------------------------------
x = (R * 1000 + torch.arange(R * 3.0)).reshape(R, 3)                  # rank 0 sends no rows
gathered = hvd.allgather(x)
exp = torch.cat([(r * 1000 + torch.arange(r * 3.0)).reshape(r, 3) for r in range(N)])
assert torch.equal(gathered, exp), gathered
assert torch.equal(hvd.allgather(torch.tensor(R * 2.0)), torch.arange(N) * 2.0)
h = hvd.allgather_async(torch.full((2,), R, dtype=torch.int64), name="g")
assert torch.equal(hvd.synchronize(h), torch.arange(N).repeat_interleave(2))
bf = hvd.allgather(torch.full((1, 2), R + 0.5, dtype=torch.bfloat16))
assert bf.dtype == torch.bfloat16 and torch.equal(bf.float()[:, 0], torch.arange(N) + 0.5)
v = torch.full((R + 1, 2), 1.0 + R, dtype=torch.float64, requires_grad=True)
base = torch.arange(sum(r + 1 for r in range(N)) * 2.0, dtype=torch.float64).reshape(-1, 2)
(hvd.allgather(v) * base * (R + 1)).sum().backward()
start = sum(r + 1 for r in range(R))
# Horovod averages the ranks' gradients of the gathered tensor: mean_k (k + 1) = (N + 1) / 2
assert torch.equal(v.grad, (N + 1) / 2 * base[start:start + R + 1]), v.grad
if N > 1:
    expect_raises(CollectiveMismatch, lambda: hvd.allgather(torch.ones(2, R + 1)))
ok("allgather")

# --- broadcast ---------------------------------------------------------------------------------------
root = N - 1
x = rank_input(5)
b = hvd.broadcast(x, root_rank=root)
assert torch.equal(b, rank_input(5, root)) and torch.equal(x, rank_input(5))
hvd.broadcast_(x, root_rank=root, name="b")
assert torch.equal(x, rank_input(5, root))
xt = (R * 100 + torch.arange(6.0)).reshape(2, 3).t()
assert hvd.broadcast_(xt, 0) is xt and torch.equal(xt, torch.arange(6.0).reshape(2, 3).t())
h = hvd.broadcast_async(rank_input(3, dtype=torch.float16), root_rank=0)
assert torch.equal(hvd.synchronize(h), rank_input(3, 0, torch.float16))
y = torch.zeros(2, dtype=torch.int64) + R
hvd.synchronize(hvd.broadcast_async_(y, root_rank=root))
assert torch.equal(y, torch.full((2,), root))
e = torch.empty(0)
assert hvd.broadcast(e, 0).shape == (0,)
gb = rank_input(3, dtype=torch.float64).requires_grad_()
(hvd.broadcast(gb, root_rank=0) * (R + 1)).sum().backward()
avg_weight = sum(r + 1 for r in range(N)) / N
assert torch.allclose(gb.grad, torch.full((3,), avg_weight if R == 0 else 0.0,
                                          dtype=torch.float64)), gb.grad
expect_raises(ValueError, lambda: hvd.broadcast(x, root_rank=N), f"root_rank={N}")
if N > 1:
    expect_raises(CollectiveMismatch, lambda: hvd.broadcast(torch.ones(R + 1), 0))
ok("broadcast")

# --- alltoall ----------------------------------------------------------------------------------------
# rank R sends j + 1 rows to rank j; row k of the block for j holds R * 1000 + j * 10 + k
blocks = [R * 1000 + j * 10 + torch.arange(j + 1.0) for j in range(N)]
out, received = hvd.alltoall(torch.cat(blocks), splits=[j + 1 for j in range(N)])
exp = torch.cat([j * 1000 + R * 10 + torch.arange(R + 1.0) for j in range(N)])
assert torch.equal(out, exp), out
assert received.dtype == torch.int32 and received.tolist() == [R + 1] * N
even = hvd.alltoall((R * 1000 + torch.arange(2.0 * N)).reshape(N, 2))
exp = torch.stack([j * 1000 + torch.arange(2.0) + 2 * R for j in range(N)])
assert isinstance(even, torch.Tensor) and torch.equal(even, exp), even
out, received = hvd.alltoall(torch.arange(3.0) + R, splits=torch.tensor([3] + [0] * (N - 1)))
assert received.tolist() == ([3] * N if R == 0 else [0] * N)
expect_raises(ValueError, lambda: hvd.alltoall(torch.ones(N + 1)) if N > 1 else
              hvd.alltoall(torch.ones(2), splits=[3]), "splits" if N == 1 else "divisible")
# async: synchronize gives (rows, row counts) whether or not splits were given, as Horovod's
first = hvd.alltoall_async(torch.cat(blocks), splits=[j + 1 for j in range(N)], name="a2a")
second = hvd.alltoall_async((R * 1000 + torch.arange(2.0 * N)).reshape(N, 2))
expect_raises(ValueError, lambda: hvd.alltoall_async(torch.cat(blocks), name="a2a"),
              "still in flight")
out, received = hvd.synchronize(first)
assert torch.equal(out, torch.cat([j * 1000 + R * 10 + torch.arange(R + 1.0) for j in range(N)]))
assert received.dtype == torch.int32 and received.tolist() == [R + 1] * N
out, received = hvd.synchronize(second)
assert torch.equal(out, exp) and received.tolist() == [1] * N, (out, received)
ok("alltoall")

# --- barrier, join, objects --------------------------------------------------------------------------
hvd.barrier()
last = hvd.join()
assert isinstance(last, int) and 0 <= last < N
assert hvd.allgather_object({"r": R}) == [{"r": r} for r in range(N)]
got = hvd.broadcast_object({"from": R, "list": [R] * 3}, root_rank=root)
assert got == {"from": root, "list": [root] * 3}
assert hvd.broadcast_object(torch.tensor([R])).tolist() == [0]
ok("barrier-join-objects")

# --- broadcast_parameters and broadcast_optimizer_state ---------------------------------------------
torch.manual_seed(R)
model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
model(torch.randn(5, 3))                                           # rank-dependent BN stats
hvd.broadcast_parameters(model.state_dict(), root_rank=root)
state = {k: v.clone() for k, v in model.state_dict().items()}
gathered = hvd.allgather_object({k: v.tolist() for k, v in state.items()})
assert all(g == gathered[root] for g in gathered)
opt = torch.optim.SGD(model.parameters(), lr=0.1 * (R + 1), momentum=0.5)
model(torch.randn(4, 3)).sum().backward()
opt.step()                                                          # rank-dependent momentum
hvd.broadcast_optimizer_state(opt, root_rank=root)
sd = opt.state_dict()
assert sd["param_groups"][0]["lr"] == 0.1 * N
flat = {k: [t.tolist() for t in v.values() if isinstance(t, torch.Tensor)]
        for k, v in sd["state"].items()}
everyone = hvd.allgather_object(flat)
assert all(f == everyone[root] for f in everyone)
adam = torch.optim.Adam(model.parameters(), lr=0.01 * (R + 1))     # empty state
groups = adam.param_groups[0]
schedule = torch.optim.lr_scheduler.StepLR(adam, step_size=1, gamma=0.5)
hvd.broadcast_optimizer_state(adam, 0)
assert adam.param_groups[0] is groups and groups["lr"] == 0.01
# Horovod's rule for an optimizer without state: zero gradients and one step create it first
steps = hvd.allgather_object([float(adam.state[p]["step"]) for p in model.parameters()])
assert steps == [[1.0] * len(list(model.parameters()))] * N, steps
adam.step()
schedule.step()                                 # the scheduler still drives the same dicts
assert adam.param_groups[0]["lr"] == 0.005
hvd.broadcast_parameters(list(model.parameters()), 0)
hvd.broadcast_parameters(model.named_parameters(), 0)
if N > 1:
    extra = nn.Linear(2, 2) if R == 1 else nn.Linear(2, 3)
    msg = expect_raises(CollectiveMismatch,
                        lambda: hvd.broadcast_parameters(extra.state_dict(), 0), "shape")
    assert "rank 1" in msg and "weight" in msg, msg
    named = dict(model.named_parameters())
    if R == 1:
        named["surprise"] = named.pop("0.bias")
    msg = expect_raises(CollectiveMismatch, lambda: hvd.broadcast_parameters(named, 0),
                        "surprise", "0.bias")
ok("broadcast-parameters")

# --- DistributedOptimizer semantics -----------------------------------------------------------------
torch.manual_seed(0)
lin = nn.Linear(3, 2, bias=False)
side = nn.Parameter(torch.ones(2))                                  # used on rank 0 only
dopt = hvd.DistributedOptimizer(torch.optim.SGD(list(lin.parameters()) + [side], lr=0.0),
                                named_parameters=list(lin.named_parameters()) + [("side", side)])
assert isinstance(dopt, torch.optim.SGD) and type(dopt).__name__ == "SGD"
inp = torch.full((1, 3), float(R + 1))
loss = lin(inp).sum() + ((side * 2).sum() if R == 0 else 0)
loss.backward()
# gradients are averaged when backward returns
assert torch.allclose(lin.weight.grad, torch.full((2, 3), (N + 1) / 2)), lin.weight.grad
assert torch.allclose(side.grad, torch.full((2,), 2.0 / N)), side.grad   # rank 0's / N
dopt.synchronize()
with dopt.skip_synchronize():
    dopt.step()
dopt.zero_grad()
if R != 0:          # a rank whose backward is skipped still joins the step's all-reduce
    lin(inp).sum().backward()
dopt.step()
exp = (sum(r + 1 for r in range(1, N)) / N) if N > 1 else None
if exp is None:
    assert lin.weight.grad is None
else:
    assert torch.allclose(lin.weight.grad, torch.full((2, 3), exp)), lin.weight.grad
sopt = hvd.DistributedOptimizer(torch.optim.SGD(lin.parameters(), lr=0.0),
                                named_parameters=lin.named_parameters(), op=hvd.Sum)
sopt.zero_grad()
lin(inp).sum().backward()
assert torch.allclose(lin.weight.grad, torch.full((2, 3), N * (N + 1) / 2))
expect_raises(RuntimeError, dopt.step, "no longer averages")        # taken over by sopt
fopt = hvd.DistributedOptimizer(torch.optim.SGD(lin.parameters(), lr=0.0),
                                named_parameters=lin.named_parameters(),
                                compression=hvd.Compression.fp16, gradient_predivide_factor=2.0)
fopt.zero_grad()
lin(inp).sum().backward()
assert torch.allclose(lin.weight.grad, torch.full((2, 3), (N + 1) / 2), rtol=1e-3)
if N & (N - 1):
    expect_raises(NotImplementedError, lambda: hvd.DistributedOptimizer(
        torch.optim.SGD(lin.parameters(), lr=0.1), op=hvd.Adasum), "power of 2")
expect_raises(ValueError, lambda: hvd.DistributedOptimizer(
    torch.optim.SGD(lin.parameters(), lr=0.1), op=hvd.Sum, gradient_predivide_factor=2.0),
    "gradient_predivide_factor")
expect_raises(ValueError, lambda: hvd.DistributedOptimizer(
    torch.optim.SGD(lin.parameters(), lr=0.1), named_parameters=[("a", lin.weight)] * 2),
    "duplicates")
if N > 1:
    torch.manual_seed(0)
    other = nn.Linear(3, 2) if R == 0 else nn.Linear(2, 3)
    msg = expect_raises(CollectiveMismatch, lambda: hvd.DistributedOptimizer(
        torch.optim.SGD(other.parameters(), lr=0.1), named_parameters=other.named_parameters()),
        "weight", "rank 0")
    renamed = [("w" if R == 0 else "W", p) for p in lin.parameters()]
    msg = expect_raises(CollectiveMismatch, lambda: hvd.DistributedOptimizer(
        torch.optim.SGD(lin.parameters(), lr=0.1), named_parameters=renamed), "'w'", "'W'")
ok("distributed-optimizer")

# --- chief duties ------------------------------------------------------------------------------------
path = os.path.join(TMP, "ckpt.pt")
wrote = hvd.save_checkpoint({"step": 7, "w": torch.arange(3.0) + R}, path)
assert wrote == (R == 0)
hvd.barrier()
loaded = hvd.load_checkpoint(path)
assert loaded["step"] == 7 and torch.equal(loaded["w"], torch.arange(3.0))
assert hvd.load_checkpoint(path, from_chief=False)["step"] == 7
assert hvd.load_checkpoint(os.path.join(TMP, "none.pt"), default="fresh") == "fresh"
expect_raises(FileNotFoundError, lambda: hvd.load_checkpoint(os.path.join(TMP, "none.pt")),
              "none.pt")
writer = hvd.SummaryWriter(os.path.join(TMP, "logs"))
writer.add_scalar("loss", 1.0 + R, 0)
writer.close()
hvd.barrier()
if R == 0:
    files = os.listdir(os.path.join(TMP, "logs"))
    assert len(files) == 1 and files[0].startswith("events."), files
ok("chief")

# --- MirroredStrategy with torch: data, reduce, run --------------------------------------------------
strategy = ringtrain.distribute.MirroredStrategy()
assert strategy.num_replicas_in_sync == N
dataset = TensorDataset(torch.arange(10))
shards = strategy.distribute_dataloader(DataLoader(dataset, batch_size=3, shuffle=True))
epochs = []
for _ in range(2):
    seen = [int(v) for (batch,) in shards for v in batch]
    assert len(seen) == -(-10 // N)
    everyone = hvd.allgather_object(seen)
    assert set().union(*map(set, everyone)) == set(range(10)), everyone
    assert len({len(s) for s in everyone}) == 1
    epochs.append(everyone)
assert epochs[0] != epochs[1], "no reshuffle between epochs"
shards.set_epoch(1)
assert [int(v) for (b,) in shards for v in b] == epochs[1][R], "epoch order not reproducible"
total = strategy.reduce("SUM", torch.tensor([R, 1.0]), axis=None)
assert torch.equal(total, torch.tensor([N * (N - 1) / 2, N]))
mean = strategy.reduce("MEAN", torch.tensor(float(R)), axis=None)
assert torch.allclose(mean, torch.tensor((N - 1) / 2))
rows = torch.full((R + 1, 2), float(R))                            # rank r holds r + 1 rows
weighted = strategy.reduce(ringtrain.distribute.ReduceOp.MEAN, rows, axis=0)
exp = sum(r * (r + 1) for r in range(N)) / sum(r + 1 for r in range(N))
assert torch.allclose(weighted, torch.full((2,), exp)), weighted
assert torch.equal(strategy.run(lambda t: t * 2, args=(torch.ones(2),)), torch.full((2,), 2.0))
ok("strategy")

finish(10)
