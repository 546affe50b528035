"""Worker for tests/test_torch_mp.py: named operations pair by name, not by call order, as in
Horovod. Prints ``NAMED-OK rank=R cases=K``.

1. Every rank starts the same named operations of every kind (allreduce, grouped_allreduce,
   allgather, broadcast, alltoall, reducescatter, sparse_allreduce, allreduce with Product) in
   its own order (a rotation by its rank, reversed on odd ranks) and synchronizes them in yet
   another order; every result has its closed form.
2. Named operations beside unnamed ones: the unnamed ones keep one order on every rank, the
   named ones sit at rank-dependent places between them.
3. A rank starts its part late: rank 0 waits for 'first' while the others start 'second',
   sleep, and only then start 'first'; rank 0 starts 'second' once 'first' is back.
4. A longer wait (1.2 s: rank 0's 'late-a' against the others' 'late-b'), long enough for
   a stall warning when the test sets RINGTRAIN_STALL_WARNING=1.
5. Within a process set (even ranks, odd ranks), names in different orders on its members.
6. After all this, an unnamed allreduce and a DistributedOptimizer step still pair up.
"""

import time

import torch

import ringtrain.torch as hvd

hvd.init()
R, N = hvd.rank(), hvd.size()


def of_rank(r: int, name_index: int) -> torch.Tensor:
    """Rank r's input for the operation numbered ``name_index``: (N + 1, 3), rank dependent."""
    base = torch.arange((N + 1) * 3, dtype=torch.float64).reshape(N + 1, 3)
    return base * (r + 1) + 100.0 * name_index


def own(name_index: int) -> torch.Tensor:
    return of_rank(R, name_index)


def everyone(i: int) -> list[torch.Tensor]:
    return [of_rank(r, i) for r in range(N)]


# name -> (start on this rank, expected result)
def cases() -> dict:
    out = {}

    def add(i, kind, start, expect):
        out[f"{kind}-{i}"] = (start, expect)

    add(0, "allreduce", lambda: hvd.allreduce_async(own(0), name="allreduce-0", op=hvd.Sum),
        lambda: sum(everyone(0)))
    add(1, "allreduce", lambda: hvd.allreduce_async(own(1), name="allreduce-1"),
        lambda: sum(everyone(1)) / N)
    add(2, "grouped", lambda: hvd.grouped_allreduce_async([own(2), own(2)[:1] * 2],
                                                          name="grouped-2", op=hvd.Sum),
        lambda: [sum(everyone(2)), sum(t[:1] * 2 for t in everyone(2))])
    add(3, "allgather", lambda: hvd.allgather_async(own(3)[:R % 2 + 1], name="allgather-3"),
        lambda: torch.cat([t[:r % 2 + 1] for r, t in enumerate(everyone(3))]))
    add(4, "broadcast", lambda: hvd.broadcast_async(own(4), root_rank=N - 1,
                                                    name="broadcast-4"),
        lambda: everyone(4)[N - 1])
    add(5, "alltoall", lambda: hvd.alltoall_async(own(5)[:N], name="alltoall-5"),
        lambda: (torch.cat([t[R:R + 1] for t in everyone(5)]), torch.ones(N, dtype=torch.int32)))
    add(6, "reducescatter", lambda: hvd.reducescatter_async(own(6)[:N], name="rs-6",
                                                            op=hvd.Sum),
        lambda: sum(everyone(6))[R:R + 1])
    add(7, "product", lambda: hvd.allreduce_async(own(7)[:1] / 100, name="product-7",
                                                  op=hvd.Product),
        lambda: torch.stack([t[:1] / 100 for t in everyone(7)]).prod(0))
    sparse_rows = torch.tensor([[R % 3]])
    add(8, "sparse", lambda: hvd.sparse_allreduce_async(
        torch.sparse_coo_tensor(sparse_rows, torch.full((1, 2), R + 1.0), (3, 2)),
        name="sparse-8", op=hvd.Sum),
        lambda: sum(torch.sparse_coo_tensor(torch.tensor([[r % 3]]),
                                            torch.full((1, 2), r + 1.0), (3, 2)).to_dense()
                    for r in range(N)))
    return out


def check(name, got, want) -> None:
    if isinstance(got, torch.Tensor) and got.is_sparse:
        got = got.to_dense()
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want), (name, got, want)
        for g, w in zip(got, want):
            check(name, g, w)
        return
    assert torch.equal(got.to(want.dtype), want), f"rank {R}: {name}: {got} != {want}"


def rank_order(items: list, salt: int) -> list:
    shift = (R * (salt + 1)) % len(items)
    rotated = items[shift:] + items[:shift]
    return rotated[::-1] if (R + salt) % 2 else rotated


# 1. every kind, started and synchronized in rank-dependent orders
table = cases()
handles = {name: table[name][0]() for name in rank_order(list(table), 0)}
for name in rank_order(list(table), 1):
    check(name, hvd.synchronize(handles[name]), table[name][1]())

# 2. named operations at rank-dependent places among unnamed ones (same order everywhere)
named = {f"among-{i}": own(10 + i) for i in range(3)}
places = rank_order([0, 1, 2], 2)           # which unnamed call each named one follows
unnamed, named_handles = [], {}
for step in range(3):
    unnamed.append(hvd.allreduce_async(own(20 + step), op=hvd.Sum))
    for j, name in enumerate(named):
        if places[j] == step:
            named_handles[name] = hvd.allreduce_async(named[name], name=name, op=hvd.Sum)
for step, handle in enumerate(unnamed):
    check(f"unnamed-{step}", hvd.synchronize(handle), sum(everyone(20 + step)))
for i, name in enumerate(named):
    check(name, hvd.synchronize(named_handles[name]), sum(everyone(10 + i)))

# 3, 4. a rank that starts its part late (rank 0 waits for the first name meanwhile)
def late_start(first: str, second: str, index: int, delay: float) -> None:
    def run_first():
        handle = hvd.allreduce_async(own(index), name=first, op=hvd.Sum)
        check(first, hvd.synchronize(handle), sum(everyone(index)))

    if R == 0:
        run_first()
    later = hvd.allreduce_async(own(index + 1), name=second, op=hvd.Sum)
    if R > 0:
        time.sleep(delay)
        run_first()
    check(second, hvd.synchronize(later), sum(everyone(index + 1)))


late_start("first", "second", 30, 0.3)
late_start("late-a", "late-b", 32, 1.2)        # long enough for a 1 s stall warning

# 5. within a process set (the odd ranks, the even ones): names reversed on every other member
sets = [hvd.add_process_set([r for r in range(N) if r % 2 == parity]) for parity in (0, 1)]
mine = sets[R % 2]
members = mine.ranks
names = ["set-a", "set-b", "set-c"]
if members.index(R) % 2:
    names = names[::-1]
started = {name: hvd.allreduce_async(own(50 + int(name == "set-b") + 2 * int(name == "set-c")),
                                     name=name, op=hvd.Sum, process_set=mine)
           for name in names}
for name, index in (("set-a", 50), ("set-b", 51), ("set-c", 52)):
    check(name, hvd.synchronize(started[name]), sum(of_rank(r, index) for r in members))
for process_set in sets:
    hvd.remove_process_set(process_set)

# 6. the job goes on in step: an unnamed allreduce and a DistributedOptimizer step
check("after", hvd.allreduce(own(40), op=hvd.Sum), sum(everyone(40)))
model = torch.nn.Linear(3, 1, bias=False).double()
with torch.no_grad():
    model.weight.fill_(1.0)
opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=1.0),
                               named_parameters=model.named_parameters())
model(torch.full((1, 3), float(R + 1), dtype=torch.float64)).sum().backward()
opt.step()
# the gradient of w . x is x: averaged over ranks, (N + 1) / 2 in every entry
check("optimizer", model.weight.detach(),
      torch.full((1, 3), 1.0 - (N + 1) / 2, dtype=torch.float64))
print(f"NAMED-OK rank={R} cases={len(table) + 3 + 2 + 3 + 2}", flush=True)
