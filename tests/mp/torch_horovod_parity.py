"""Worker script: the Horovod behaviours beyond the basic collectives, with rank-dependent
inputs and closed-form expectations, at whatever world size it is started with: errors that
leave the job usable, names in flight, grouped collectives, reducescatter, Product, scaling of
integer tensors, sparse all-reduce, asynchronous handles, the optimizer's warnings and state.

Rank 0 prints "OK <check>" per check group and "DONE <count>"; any failure raises.
"""

import warnings

import numpy as np
import torch
from torch import nn
from torch_checks import expect_raises, finish, ok

import ringtrain.torch as hvd
from ringtrain.errors import CollectiveMismatch, CommError

hvd.init()
R, N = hvd.rank(), hvd.size()


def rank_input(n, rank=R, dtype=torch.float64):
    return (rank * 1000 + torch.arange(n)).to(dtype)


def total(n, dtype=torch.float64):
    return sum(rank_input(n, r, dtype) for r in range(N))


def still_works():
    """After an error on every rank the next collectives pair up as before."""
    assert torch.equal(hvd.allreduce(rank_input(5), op=hvd.Sum), total(5))
    assert torch.equal(hvd.allgather(torch.tensor([R])), torch.arange(N))


# --- errors: catchable as Horovod's, and the job carries on ----------------------------------------
assert issubclass(CollectiveMismatch, RuntimeError) and issubclass(CommError, RuntimeError)
if N > 1:
    expect_raises(RuntimeError, lambda: hvd.allreduce(torch.ones(17 + R, 3)), "shape")
    still_works()
    expect_raises(RuntimeError, lambda: hvd.allreduce(
        torch.ones(3, dtype=torch.int32 if R % 2 == 0 else torch.float32)))
    still_works()
    expect_raises(RuntimeError, lambda: hvd.broadcast(torch.ones(3), root_rank=R))
    still_works()
    expect_raises(RuntimeError, lambda: hvd.allgather(torch.ones(2, 10 * (R + 1))))
    still_works()
    expect_raises(RuntimeError, lambda: hvd.alltoall(torch.ones(2 * N, R + 1)))
    still_works()
    # Only rank 0's splits are invalid: it raises ValueError, the others CollectiveMismatch.
    splits = [0.5] * N if R == 0 else [1] * N
    expect_raises(ValueError if R == 0 else CollectiveMismatch,
                  lambda: hvd.alltoall(torch.ones(N), splits))
    still_works()
expect_raises(ValueError, lambda: hvd.alltoall(torch.ones(N), torch.ones(N)), "integer")
expect_raises(ValueError, lambda: hvd.alltoall(torch.ones(N), [1.5] * N), "integers")
expect_raises(ValueError, lambda: hvd.alltoall(torch.ones(N + 1), [1] * N), "summing")
still_works()
ok("errors")

# --- names: a name in flight refuses a second operation of the same kind ---------------------------
x = rank_input(7)
first = hvd.allreduce_async(x, name="dup", op=hvd.Sum)
expect_raises(ValueError, lambda: hvd.allreduce_async(x, name="dup"), "'dup'", "in flight")
gathered = hvd.allgather_async(x, name="dup")          # another kind: its own name space
assert torch.equal(hvd.synchronize(first), total(7))
assert torch.equal(hvd.synchronize(gathered), torch.cat([rank_input(7, r) for r in range(N)]))
again = hvd.allreduce_async(x, name="dup", op=hvd.Sum)   # synchronized: the name is free again
assert torch.equal(hvd.synchronize(again), total(7))
b = hvd.broadcast_async(x, root_rank=N - 1, name="bdup")
expect_raises(ValueError, lambda: hvd.broadcast_async(x, root_rank=0, name="bdup"), "'bdup'")
assert torch.equal(hvd.synchronize(b), rank_input(7, N - 1))
if N > 1:
    # A duplicate on rank 0 only: ValueError there, CollectiveMismatch on the others.
    h = hvd.allreduce_async(x, name="solo", op=hvd.Sum)
    expect_raises(ValueError if R == 0 else CollectiveMismatch,
                  lambda: hvd.allreduce_async(x, name="solo") if R == 0 else hvd.allreduce(x))
    assert torch.equal(hvd.synchronize(h), total(7))
    still_works()
    # Names pair by name: a named operation on rank 0 against an unnamed one elsewhere, every
    # worker waiting for its result, is a deadlock; every worker raises instead of waiting.
    h = hvd.allreduce_async(x, name="lonely" if R == 0 else None, op=hvd.Sum)
    expect_raises(CollectiveMismatch, lambda: hvd.synchronize(h), "rank 0 in allreduce 'lonely'",
                  "rank 1 in an unnamed allreduce", "not started on rank")
    still_works()
    # ... and against a synchronous collective that runs in the main thread itself
    expect_raises(CollectiveMismatch,
                  (lambda: hvd.synchronize(hvd.allreduce_async(x, name="alone"))) if R == 0
                  else (lambda: hvd.allgather_object(R)),
                  "rank 0 in allreduce 'alone'", "rank 1 in an unnamed allgather_object")
    still_works()
ok("names")

# --- grouped allreduce / allgather -----------------------------------------------------------------
lengths = (0, 1, 7, 13)
ts = [rank_input(n, dtype=torch.float32) for n in lengths] + [
    (R * 10 + torch.arange(5)).to(torch.int32)]
int_total = sum((r * 10 + torch.arange(5)) for r in range(N))
summed = hvd.grouped_allreduce(ts, op=hvd.Sum)
for n, s in zip(lengths, summed):
    assert s.dtype == torch.float32 and torch.equal(s.double(), total(n)), (n, s)
assert summed[-1].dtype == torch.int32 and torch.equal(summed[-1].long(), int_total)
averaged = hvd.grouped_allreduce(ts)                    # default Average; integers truncate
for n, a in zip(lengths, averaged):
    assert torch.allclose(a.double(), total(n) / N), (n, a)
assert torch.equal(averaged[-1].long(), torch.div(int_total, N, rounding_mode="trunc"))
scaled = hvd.grouped_allreduce(ts[:4], op=hvd.Sum, prescale_factor=2.0, postscale_factor=0.25)
for n, s in zip(lengths, scaled):
    assert torch.allclose(s.double(), total(n) * 0.5)
inplace = [t.clone() for t in ts]
back = hvd.grouped_allreduce_(inplace, op=hvd.Max)
assert all(a is b for a, b in zip(back, inplace))
assert torch.equal(inplace[2], rank_input(7, N - 1, torch.float32))
h = hvd.grouped_allreduce_async([rank_input(3), rank_input(2)], op=hvd.Min, name="g")
low = hvd.synchronize(h)
assert torch.equal(low[0], rank_input(3, 0)) and torch.equal(low[1], rank_input(2, 0))
h = hvd.grouped_allreduce_async_(inplace[:2], op=hvd.Sum)
assert hvd.synchronize(h)[1] is inplace[1]
ga = [rank_input(4).requires_grad_(), rank_input(2).requires_grad_()]
outs = hvd.grouped_allreduce(ga, op=hvd.Sum)
sum((o * (R + 1)).sum() for o in outs).backward()
for g in ga:           # d/dg_r of sum_k (k+1) * sum_j g_j = sum_k (k+1), the same everywhere
    assert torch.equal(g.grad, torch.full(g.shape, float(N * (N + 1) // 2), dtype=g.dtype))
rows = [torch.full((R + 1, 2), float(R)), torch.tensor([R, -R])]
g1, g2 = hvd.grouped_allgather(rows)
assert torch.equal(g1, torch.cat([torch.full((r + 1, 2), float(r)) for r in range(N)]))
assert torch.equal(g2, torch.tensor([v for r in range(N) for v in (r, -r)]))
h = hvd.grouped_allgather_async([torch.tensor([R])])
assert torch.equal(hvd.synchronize(h)[0], torch.arange(N))
# One fused message of mixed dtypes and awkward lengths: odd byte counts (int8, bool), 0-d,
# no rows on some ranks, bfloat16.
mixed = [torch.tensor([R, -R, 7], dtype=torch.int8), torch.tensor(R * 1.5, dtype=torch.float64),
         torch.ones((R % 2, 3), dtype=torch.int32) * R, torch.tensor([R % 2 == 0]),
         torch.arange(R * 2, dtype=torch.bfloat16).reshape(R, 2)]
g_int8, g_0d, g_rows, g_bool, g_bf16 = hvd.grouped_allgather(mixed)
assert torch.equal(g_int8, torch.tensor([v for r in range(N) for v in (r, -r, 7)],
                                        dtype=torch.int8))
assert torch.equal(g_0d, torch.tensor([r * 1.5 for r in range(N)], dtype=torch.float64))
assert torch.equal(g_rows, torch.cat([torch.ones((r % 2, 3), dtype=torch.int32) * r
                                      for r in range(N)]))
assert torch.equal(g_bool, torch.tensor([r % 2 == 0 for r in range(N)]))
assert torch.equal(g_bf16, torch.cat([torch.arange(r * 2, dtype=torch.bfloat16).reshape(r, 2)
                                      for r in range(N)]))
if N > 1:    # lists that differ: the same error on every rank, naming the first odd rank
    text = expect_raises(CollectiveMismatch, lambda: hvd.grouped_allgather(
        mixed[:2] if R == N - 1 else mixed[:3]), f"rank {N - 1} passed 2 tensors, rank 0 3")
    assert hvd.allgather_object(text) == [text] * N
    still_works()
ok("grouped")

# --- reducescatter ---------------------------------------------------------------------------------
for n_rows in (1, 7, 2 * N + 1):
    x = rank_input(n_rows * 3).reshape(n_rows, 3)
    full = total(n_rows * 3).reshape(n_rows, 3)
    mine = np.array_split(full.numpy(), N)[R]           # the first rows % N ranks get one more
    assert np.array_equal(hvd.reducescatter(x, op=hvd.Sum).numpy(), mine), n_rows
    assert np.allclose(hvd.reducescatter(x).numpy(), mine / N)          # default Average
    pp = hvd.reducescatter(x, op=hvd.Sum, prescale_factor=3.0, postscale_factor=0.5)
    assert np.allclose(pp.numpy(), mine * 1.5)
    xi = (R * 10 + torch.arange(n_rows)).to(torch.int64)
    exp = np.array_split(sum((r * 10 + np.arange(n_rows)) for r in range(N)), N)[R]
    assert np.array_equal(hvd.reducescatter(xi).numpy(), exp // N)      # non-negative: trunc
h = hvd.reducescatter_async(rank_input(2 * N), op=hvd.Sum, name="rs")
assert torch.equal(hvd.synchronize(h), total(2 * N)[2 * R:2 * R + 2])
parts = hvd.grouped_reducescatter([rank_input(N), rank_input(2 * N)], op=hvd.Sum)
assert torch.equal(parts[0], total(N)[R:R + 1])
assert torch.equal(parts[1], total(2 * N)[2 * R:2 * R + 2])
h = hvd.grouped_reducescatter_async([rank_input(N)], op=hvd.Sum)
assert torch.equal(hvd.synchronize(h)[0], total(N)[R:R + 1])
# One fused reduce-scatter per dtype: fewer rows than ranks, rows of several elements,
# integers averaged (truncated), bfloat16 summed in float32.
group = [rank_input(1), rank_input(10).reshape(5, 2), (R * 7 - torch.arange(3 * N + 1) - 5)
         .to(torch.int32), torch.full((N + 2, 2), float(R + 1), dtype=torch.bfloat16)]
for op in (hvd.Sum, hvd.Average):
    got = hvd.grouped_reducescatter(group, op=op)
    exp_int = sum((r * 7 - torch.arange(3 * N + 1) - 5) for r in range(N)).double()
    exps = [total(1), total(10).reshape(5, 2), exp_int,
            torch.full((N + 2, 2), float(N * (N + 1) // 2), dtype=torch.float64)]
    for t, g, e in zip(group, got, exps):
        if op is hvd.Average:
            e = torch.trunc(e / N) if not t.is_floating_point() else e / N
        mine = torch.from_numpy(np.array_split(e.numpy(), N)[R]).to(t.dtype)
        assert g.dtype == t.dtype and g.shape == mine.shape and torch.equal(g, mine), (op, t, g)
if N > 1:    # lists that differ: the same error on every rank
    text = expect_raises(CollectiveMismatch, lambda: hvd.grouped_reducescatter(
        [rank_input(4).reshape(2, 2) if R == N - 1 else rank_input(4)]), "differs from rank 0")
    assert hvd.allgather_object(text) == [text] * N
    still_works()
for op, factor in ((hvd.Sum, N), (hvd.Average, 1)):
    # Horovod's gradient: this rank's part of the upstream gradient gathered from every rank,
    # times size() for a sum. Upstream gradient on rank k: (k + 1) everywhere.
    v = rank_input(N + 1).requires_grad_()
    (hvd.reducescatter(v, op=op) * (R + 1)).sum().backward()
    sizes = [len(p) for p in np.array_split(np.arange(N + 1), N)]
    exp = torch.cat([torch.full((sizes[k],), float(factor * (k + 1))) for k in range(N)])
    assert torch.equal(v.grad, exp.double()), (op, v.grad)
expect_raises(ValueError, lambda: hvd.reducescatter(torch.ones(2), op=hvd.Max), "Average")
ok("reducescatter")

# --- Product and integer scaling -------------------------------------------------------------------
for dtype in (torch.float64, torch.float32, torch.int32, torch.int64):
    x = (torch.arange(4) + R + 1).to(dtype)
    exp = torch.ones(4, dtype=torch.float64)
    for r in range(N):
        exp *= torch.arange(4) + r + 1
    p = hvd.allreduce(x, op=hvd.Product)
    assert p.dtype == dtype and torch.equal(p.double(), exp), (dtype, p)
ph = hvd.grouped_allreduce([torch.full((2,), R + 2.0)], op=hvd.Product)
assert torch.equal(ph[0], torch.full((2,), float(np.prod([r + 2 for r in range(N)]))))
for dtype in (torch.int32, torch.int64):
    x = (R * 10 + torch.arange(6) - 7).to(dtype)
    # Horovod: integers are scaled in float64 and cast back (truncating) before the sum ...
    pre = hvd.allreduce(x, op=hvd.Sum, prescale_factor=0.5)
    exp = sum(((r * 10 + torch.arange(6) - 7).double() * 0.5).to(dtype) for r in range(N))
    assert pre.dtype == dtype and torch.equal(pre, exp.to(dtype)), pre
    # ... and after it.
    post = hvd.allreduce(x, op=hvd.Sum, postscale_factor=0.3)
    exp = (sum((r * 10 + torch.arange(6) - 7) for r in range(N)).double() * 0.3).to(dtype)
    assert post.dtype == dtype and torch.equal(post, exp), post
    y = x.clone()
    hvd.allreduce_(y, op=hvd.Sum, prescale_factor=2.0)
    assert torch.equal(y.long(), 2 * sum((r * 10 + torch.arange(6) - 7) for r in range(N)))
ok("product-scaling")

# --- sparse all-reduce -----------------------------------------------------------------------------
sparse = torch.sparse_coo_tensor(torch.tensor([[R % 4, 5]]), torch.tensor([R + 1.0, 1.0]),
                                 (6,), check_invariants=True)
dense = torch.zeros(6)
for r in range(N):
    dense[r % 4] += r + 1
dense[5] = N
got = hvd.synchronize(hvd.sparse_allreduce_async(sparse, op=hvd.Sum, name="sp"))
assert got.is_sparse and torch.equal(got.to_dense(), dense), got
avg = hvd.synchronize(hvd.sparse_allreduce_async(sparse))
assert torch.allclose(avg.to_dense(), dense / N)
handle = hvd.sparse_allreduce_async(sparse, op=hvd.Average, name="called")
called = handle()               # Horovod's handle is a function returning the result
assert called.is_sparse and torch.allclose(called.to_dense(), dense / N), called
assert hvd.synchronize(handle) is None          # consumed, like a synchronized handle
ok("sparse")

# --- async handles are asynchronous, at every world size -------------------------------------------
handles = [hvd.allreduce_async(torch.full((1 << 16,), float(R)), op=hvd.Sum) for _ in range(10)]
polled = [hvd.poll(h) for h in handles]
for h in handles:
    assert torch.equal(hvd.synchronize(h), torch.full((1 << 16,), float(N * (N - 1) // 2)))
assert not all(polled), "every async allreduce had finished before poll(): not asynchronous"
ok("async")

# --- the optimizer: synchronize() then step() warns; state for parameters without gradients ---------
torch.manual_seed(0)
model = nn.Linear(3, 2)
opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                               named_parameters=model.named_parameters())
model(torch.ones(4, 3) * (R + 1)).sum().backward()
opt.synchronize()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    opt.step()
messages = [str(w.message) for w in caught]
assert len(messages) == 1 and "optimizer.step() called without optimizer.skip_synchronize()" \
    in messages[0], messages
model(torch.ones(4, 3)).sum().backward()
opt.synchronize()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with opt.skip_synchronize():
        opt.step()
    model(torch.ones(4, 3)).sum().backward()
    opt.step()                                  # no synchronize() since the last step
assert not caught, [str(w.message) for w in caught]


class NoGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.index = nn.Parameter(torch.tensor([1, 3], dtype=torch.int32), requires_grad=False)
        self.weight = nn.Parameter(torch.arange(4.0) + R)

    def forward(self, x):
        return self.weight[self.index.long()] * x


net = NoGrad()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3, nesterov=True)
opt = hvd.DistributedOptimizer(opt, named_parameters=net.named_parameters())
hvd.broadcast_parameters(net.state_dict(), root_rank=0)
hvd.broadcast_optimizer_state(opt, root_rank=0)
assert net.index.grad is None
assert torch.equal(net.weight.grad, torch.zeros(4))
buffers = hvd.allgather_object(opt.state[net.weight]["momentum_buffer"].tolist())
assert all(buf == buffers[0] for buf in buffers), buffers
two_groups = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
opt = hvd.DistributedOptimizer(torch.optim.SGD(
    [{"params": two_groups[0].parameters()}, {"params": two_groups[1].parameters()}], lr=0.1))
names = opt._parameter_names                    # Horovod's {parameter: name}
assert list(names) == list(two_groups.parameters()) and len(set(names.values())) == 4, names
assert hvd.allgather_object(sorted(names.values())) == [sorted(names.values())] * N
ok("optimizer")

# --- what this build can do ------------------------------------------------------------------------
assert hvd.mpi_built() is True and hvd.mpi_enabled() == (N > 1)
assert hvd.gloo_built() is False and hvd.gloo_enabled() is False and hvd.ccl_built() is False
assert hvd.cuda_built() is torch.backends.cuda.is_built()       # CUDA tensors are taken
assert hvd.rocm_built() is False and hvd.ddl_built() is False and hvd.sycl_built() is False
assert issubclass(hvd.HorovodInternalError, RuntimeError)       # a failed collective's class
assert isinstance(hvd.nccl_built(), int) and isinstance(hvd.mpi_threads_supported(), bool)
assert hvd.is_homogeneous() is True
ok("introspection")

finish(9)
