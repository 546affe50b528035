"""Worker script: Horovod's process sets (collectives among a subset of the workers) with
rank-dependent inputs and closed-form expectations, at whatever world size it is started with.

The workers split into the even and the odd ranks. Rank 0 prints "OK <check>" per check group
and "DONE <count>"; any failure raises.
"""

import torch
from torch import nn
from torch_checks import expect_raises, finish, ok

import ringtrain.torch as hvd
from ringtrain.errors import CollectiveMismatch

hvd.init()
R, N = hvd.rank(), hvd.size()


def rank_input(n, rank=R):
    return (rank * 1000 + torch.arange(n)).double()


even_ranks = [r for r in range(N) if r % 2 == 0]
odd_ranks = [r for r in range(N) if r % 2 == 1]
even = hvd.add_process_set(even_ranks)
odd = hvd.add_process_set(odd_ranks)            # empty in a world of one: no members
mine, members = (even, even_ranks) if R % 2 == 0 else (odd, odd_ranks)
assert mine.included() and mine.size() == len(members) and mine.rank() == members.index(R)
assert odd.size() == len(odd_ranks) and odd.included() == (R % 2 == 1)
assert even.process_set_id != hvd.global_process_set.process_set_id
ok("add")

# --- collectives within the set ----------------------------------------------------------------------
total = sum(rank_input(5, r) for r in members)
assert torch.equal(hvd.allreduce(rank_input(5), op=hvd.Sum, process_set=mine), total)
assert torch.allclose(hvd.allreduce(rank_input(5), process_set=mine), total / len(members))
h = hvd.allreduce_async(rank_input(5), op=hvd.Max, process_set=mine, name="m")
assert torch.equal(hvd.synchronize(h), rank_input(5, members[-1]))
gathered = hvd.allgather(torch.full((R + 1,), float(R)), process_set=mine)
assert torch.equal(gathered, torch.cat([torch.full((r + 1,), float(r)) for r in members]))
root = members[-1]                                   # a global rank, as in Horovod
assert torch.equal(hvd.broadcast(rank_input(3), root_rank=root, process_set=mine),
                   rank_input(3, root))
y = rank_input(3)
hvd.broadcast_(y, root_rank=members[0], process_set=mine)
assert torch.equal(y, rank_input(3, members[0]))
k = len(members)
part = hvd.reducescatter(rank_input(2 * k), op=hvd.Sum, process_set=mine)
i = members.index(R)
assert torch.equal(part, sum(rank_input(2 * k, r) for r in members)[2 * i:2 * i + 2])
got = hvd.alltoall(torch.full((k,), float(R)), process_set=mine)
assert torch.equal(got, torch.tensor([float(r) for r in members]))
grouped = hvd.grouped_allreduce([rank_input(2), rank_input(1)], op=hvd.Sum, process_set=mine)
assert torch.equal(grouped[1], sum(rank_input(1, r) for r in members))
hvd.barrier(process_set=mine)
assert hvd.allgather_object(R, process_set=mine) == members
assert hvd.broadcast_object(R, root_rank=root, process_set=mine) == root
g = rank_input(4).requires_grad_()
(hvd.allreduce(g, op=hvd.Sum, process_set=mine) * (R + 1)).sum().backward()
assert torch.equal(g.grad, torch.full((4,), float(sum(r + 1 for r in members)),
                                      dtype=torch.float64))
# the world still works alongside
assert torch.equal(hvd.allreduce(rank_input(2), op=hvd.Sum),
                   sum(rank_input(2, r) for r in range(N)))
ok("collectives")

# --- errors ------------------------------------------------------------------------------------------
expect_raises(ValueError, lambda: hvd.broadcast(rank_input(2), root_rank=N, process_set=mine),
              "not in process set")
if odd_ranks and R % 2 == 0:
    expect_raises(ValueError, lambda: hvd.allreduce(rank_input(2), process_set=odd),
                  "not in")
if len(members) > 1:
    # a mismatch inside a set raises on its members, and the set carries on
    expect_raises(CollectiveMismatch,
                  lambda: hvd.allreduce(torch.ones(2 + members.index(R)), process_set=mine))
    assert torch.equal(hvd.allreduce(rank_input(5), op=hvd.Sum, process_set=mine), total)
stray = hvd.ProcessSet([0])
expect_raises(ValueError, lambda: hvd.allreduce(torch.ones(1), process_set=stray),
              "add_process_set")
if N > 1:
    expect_raises(CollectiveMismatch, lambda: hvd.add_process_set([0, R]), "same process set")
ok("errors")

# --- DistributedOptimizer within a set ------------------------------------------------------------------
def world_optimizer_averages():
    """An optimizer over the world on every rank (its step report's set-up is a collective of
    the world, whatever sets this rank's earlier optimizers used)."""
    lin = nn.Linear(2, 1, bias=False)
    hvd.DistributedOptimizer(torch.optim.SGD(lin.parameters(), lr=0.0),
                             named_parameters=lin.named_parameters())
    lin(torch.full((1, 2), float(R + 1))).sum().backward()
    assert torch.allclose(lin.weight.grad, torch.full((1, 2), (N + 1) / 2))


world_optimizer_averages()
lin = nn.Linear(2, 1, bias=False)
opt = hvd.DistributedOptimizer(torch.optim.SGD(lin.parameters(), lr=0.0),
                               named_parameters=lin.named_parameters(), process_set=mine)
lin(torch.full((1, 2), float(R + 1))).sum().backward()
mean = sum(r + 1 for r in members) / len(members)
assert torch.allclose(lin.weight.grad, torch.full((1, 2), mean)), lin.weight.grad
opt.step()
# An optimizer of the even set on every rank (Horovod's rule): the odd ranks step with their
# own gradients; then one over the world again.
lin = nn.Linear(2, 1, bias=False)
opt = hvd.DistributedOptimizer(torch.optim.SGD(lin.parameters(), lr=0.0),
                               named_parameters=lin.named_parameters(), process_set=even)
lin(torch.full((1, 2), float(R + 1))).sum().backward()
opt.synchronize()
even_mean = sum(r + 1 for r in even_ranks) / len(even_ranks)
assert torch.equal(lin.weight.grad, torch.full((1, 2), even_mean if R % 2 == 0 else R + 1.0))
with opt.skip_synchronize():
    opt.step()
world_optimizer_averages()
ok("optimizer")

# --- remove, and init(process_sets=...) ---------------------------------------------------------------
assert hvd.remove_process_set(even) is True
expect_raises(ValueError, lambda: hvd.allreduce(torch.ones(1), process_set=even), "registered")
first = hvd.ProcessSet([0])
hvd.init(process_sets=[first])
assert first.process_set_id is not None and first.included() == (R == 0)
if R == 0:
    assert torch.equal(hvd.allreduce(torch.ones(2), op=hvd.Sum, process_set=first),
                       torch.ones(2))
assert hvd.remove_process_set(first) is True
assert hvd.remove_process_set(odd) is True
hvd.add_process_set(even_ranks)     # left registered: released at exit, before MPI finalizes
ok("remove")

finish(5)
