"""Worker for tests/test_torch_mp.py: hvd.barrier() does not wait for async operations in flight,
as in Horovod, so workers may start the same named operation on either side of a barrier.

For each kind, rank 0 starts ``X_async(name='twice')``, fails to start it again (ValueError: the
name is in flight) and enters barrier(); the other ranks enter barrier() first, then do the
same. After a second barrier every rank synchronizes its operation, whose result is checked in
closed form, and the next collectives still pair up. Prints ``ASYNC-BARRIER-OK rank=R kinds=K``."""

import torch

import ringtrain.torch as hvd

hvd.init()
R, N = hvd.rank(), hvd.size()


def start(kind):
    rows = torch.full((N, 2), float(R + 1)) + torch.arange(N).reshape(N, 1)
    if kind == "allreduce":
        return hvd.allreduce_async(rows, name="twice", op=hvd.Sum)
    if kind == "allgather":
        return hvd.allgather_async(rows[: R + 1], name="twice")
    if kind == "broadcast":
        return hvd.broadcast_async(rows, root_rank=N - 1, name="twice")
    if kind == "alltoall":
        return hvd.alltoall_async(rows, name="twice")
    return hvd.reducescatter_async(rows, name="twice", op=hvd.Sum)


def expected(kind):
    base = torch.arange(N, dtype=torch.float32).reshape(N, 1)
    of = [torch.full((N, 2), float(r + 1)) + base for r in range(N)]
    if kind == "allreduce":
        return sum(of)
    if kind == "allgather":
        return torch.cat([of[r][: r + 1] for r in range(N)])
    if kind == "broadcast":
        return of[N - 1]
    if kind == "alltoall":
        return torch.cat([of[r][R:R + 1] for r in range(N)])
    return sum(of)[R:R + 1]


def twice(kind):
    handle = start(kind)
    try:
        start(kind)
    except ValueError as exc:
        assert "in flight" in str(exc), exc
    else:
        raise AssertionError(f"rank {R}: a second {kind} named 'twice' was accepted")
    return handle


KINDS = ["allreduce", "allgather", "broadcast", "alltoall", "reducescatter"]
for kind in KINDS:
    handle = twice(kind) if R == 0 else None
    hvd.barrier()
    if R > 0:
        handle = twice(kind)
    hvd.barrier()
    got = hvd.synchronize(handle)
    if kind == "alltoall":
        got, counts = got
        assert counts.tolist() == [1] * N, counts
    assert torch.equal(got, expected(kind)), (kind, got, expected(kind))
    total = hvd.allreduce(torch.tensor([float(R)]), op=hvd.Sum)     # still in step
    assert total.item() == N * (N - 1) / 2, total
print(f"ASYNC-BARRIER-OK rank={R} kinds={len(KINDS)}", flush=True)
