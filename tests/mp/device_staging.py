"""Worker for tests/test_gpu.py (CPU part): the GPU code paths with NumPy standing in for a GPU.

1. ``StagedCommunicator`` (GPU arrays through pinned host buffers over the MPI backend) with a
   fake device array type registered as a device adapter: every collective, sync and async,
   rank-dependent inputs, closed-form results; staging buffers are reused across steps.
2. ``nccl.ring_allreduce`` — the ring the NCCL backend runs over ncclSend/ncclRecv — with MPI
   Sendrecv as the transport, for awkward lengths.
Prints ``DEVICE-OK rank=R checks=N``.
"""

import numpy as np

import ringtrain as rt
from ringtrain import ReduceOp
from ringtrain.comm import device
from ringtrain.comm.nccl import ring_allreduce


class FakeDeviceArray:
    """A 'GPU array' that is a NumPy array the collectives must not touch directly."""

    def __init__(self, data):
        self.data = np.array(data)

    @property
    def shape(self):
        return self.data.shape

    def __array__(self, *args, **kwargs):
        raise TypeError("a device array cannot be converted to NumPy implicitly")


class FakeAdapter(device.DeviceArrays):
    name = "fake"
    copies = 0

    def owns(self, x):
        return isinstance(x, FakeDeviceArray)

    def wire_dtype(self, x, reducing):
        return x.data.dtype

    def to_host(self, x, host):
        FakeAdapter.copies += 1
        host[...] = x.data

    def from_host(self, host, like, out=None):
        if out is not None:
            out.data[...] = host
            return out
        return FakeDeviceArray(host.copy())

    def empty(self, shape, like):
        return FakeDeviceArray(np.empty(shape, like.data.dtype))


device.ADAPTERS.append(FakeAdapter())
host = rt.init()
R, N = host.rank, host.world_size
comm = device.StagedCommunicator(host, device.PinnedPool(lambda n: np.empty(n, np.uint8)))
checks = 0


def check(got, expected, what):
    global checks
    assert isinstance(got, FakeDeviceArray), f"{what}: result is a {type(got).__name__}"
    if got.data.dtype != expected.dtype or not np.array_equal(got.data, expected):
        raise AssertionError(f"rank {R}: {what}: got {got.data!r}, expected {expected!r}")
    checks += 1


def value(rank, n, dtype=np.float64):
    return (rank * 1000 + np.arange(n)).astype(dtype)


for n in sorted({0, 1, 2, N - 1, 7, 13, 97}):
    everyone = [value(r, n) for r in range(N)]
    total = sum(everyone)
    check(comm.allreduce(FakeDeviceArray(value(R, n))), total, f"allreduce sum n={n}")
    check(comm.allreduce(FakeDeviceArray(value(R, n)), op=ReduceOp.AVG), total / N,
          f"allreduce avg n={n}")
    check(comm.allreduce(FakeDeviceArray(value(R, n, np.int32)), op=ReduceOp.MAX),
          value(N - 1, n, np.int32), f"allreduce max n={n}")
    out = FakeDeviceArray(np.zeros(n))
    assert comm.allreduce(FakeDeviceArray(value(R, n)), out=out) is out
    check(out, total, f"allreduce out= n={n}")
    handle = comm.allreduce(FakeDeviceArray(value(R, n)), async_op=True)
    check(handle.wait(), total, f"allreduce async n={n}")
    check(comm.broadcast(FakeDeviceArray(value(R, n)), root=N - 1), value(N - 1, n),
          f"broadcast n={n}")
    # ragged first dimension: rank r contributes r + n % 3 rows of 2
    rows = [np.full((r + n % 3, 2), r, np.int64) for r in range(N)]
    check(comm.allgather(FakeDeviceArray(rows[R])), np.concatenate(rows), f"allgather n={n}")
    parts = np.array_split(total, N)
    check(comm.reduce_scatter(FakeDeviceArray(value(R, n))), parts[R], f"reduce_scatter n={n}")
    sent = np.arange(N * 2, dtype=np.int64).reshape(N, 2) + 100 * R
    got = comm.alltoall(FakeDeviceArray(sent))
    check(got, np.stack([np.arange(R * 2, R * 2 + 2) + 100 * r for r in range(N)]),
          f"alltoall n={n}")

# mixed host and device arrays in one allreduce_many; host arrays stay NumPy
mixed = [FakeDeviceArray(value(R, 5)), value(R, 3), FakeDeviceArray(value(R, 1, np.float32))]
results = comm.allreduce_many(mixed)
check(results[0], sum(value(r, 5) for r in range(N)), "allreduce_many device 0")
assert isinstance(results[1], np.ndarray)
assert np.array_equal(results[1], sum(value(r, 3) for r in range(N)))
check(results[2], sum(value(r, 1, np.float32) for r in range(N)), "allreduce_many device 2")

# a training loop's staging buffers are pinned once and reused every step
before = comm.pool.allocations
for _ in range(5):
    comm.allreduce(FakeDeviceArray(value(R, 257)))
    comm.allreduce_many([FakeDeviceArray(value(R, 31)), FakeDeviceArray(value(R, 17))])
assert comm.pool.allocations - before <= 3, comm.pool.allocations - before

# the NCCL backend's ring schedule over MPI point-to-point messages
mpi = getattr(host, "mpi_comm", None)
for n in sorted({0, 1, 2, N - 1, N + 1, 7, 13, 97, 1031}):
    mine = value(R, n)
    result = mine.copy()
    scratch = np.empty_like(result)

    def sendrecv(send, right, recv, left, result=result, scratch=scratch):
        if mpi is None:
            raise AssertionError("a world of one never sends")
        mpi.Sendrecv(result[send[0]:send[1]], dest=right, recvbuf=scratch[recv[0]:recv[1]],
                     source=left)

    def reduce(r, result=result, scratch=scratch):
        result[r[0]:r[1]] += scratch[r[0]:r[1]]

    def copy(r, result=result, scratch=scratch):
        result[r[0]:r[1]] = scratch[r[0]:r[1]]

    ring_allreduce(n, R, N, sendrecv, reduce, copy)
    if not np.array_equal(result, sum(value(r, n) for r in range(N))):
        raise AssertionError(f"rank {R}: ring over MPI n={n}: {result}")
    checks += 1

print(f"DEVICE-OK rank={R} checks={checks} copies={FakeAdapter.copies}", flush=True)
