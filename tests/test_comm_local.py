"""One-process tests: the process group without a launcher, the local backend, argument errors,
the ordered executor, fusion buckets and the contract descriptors' messages."""

import threading
import time

import numpy as np
import pytest

import ringtrain as rt
from ringtrain import ReduceOp
from ringtrain.comm import contract
from ringtrain.comm.common import plan_buckets
from ringtrain.comm.executor import OrderedExecutor
from ringtrain.errors import CollectiveMismatch, CommError, ConfigError, NotInitializedError

LAUNCH_VARS = ["PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_SIZE",
               "OMPI_COMM_WORLD_RANK", "SLURM_NTASKS", "SLURM_PROCID", "RINGTRAIN_BACKEND",
               "RINGTRAIN_LAUNCHER", "RINGTRAIN_CONFIG", "TF_CONFIG", "RANK", "WORLD_SIZE"]


@pytest.fixture
def comm(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    rt.shutdown()
    c = rt.init()
    yield c
    rt.shutdown()


def test_without_a_launcher_the_world_is_one_process(comm):
    assert comm.backend == "local"
    assert (rt.rank(), rt.size(), rt.local_rank(), rt.local_size()) == (0, 1, 0, 1)
    assert rt.is_chief() and rt.is_initialized()
    assert rt.init() is comm and rt.comm() is comm


def test_shutdown_then_init_again(comm):
    rt.shutdown()
    assert not rt.is_initialized()
    with pytest.raises(NotInitializedError, match="init"):
        rt.rank()
    with pytest.raises(CommError, match="shut down"):
        comm.allreduce(np.ones(2))
    again = rt.init()
    assert again is not comm and again.allreduce(np.ones(2)).tolist() == [1, 1]


def test_unknown_backend_is_a_config_error(monkeypatch):
    rt.shutdown()
    monkeypatch.setenv("RINGTRAIN_BACKEND", "carrier-pigeon")
    with pytest.raises(ConfigError, match="carrier-pigeon"):
        rt.init()
    assert not rt.is_initialized()


def test_launch_detection(monkeypatch):
    from ringtrain.world.process_group import detect_launch
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    assert detect_launch().size == 1
    monkeypatch.setenv("PMI_RANK", "2")
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("MPI_LOCALRANKID", "0")
    monkeypatch.setenv("MPI_LOCALNRANKS", "2")
    got = detect_launch()
    assert (got.launcher, got.rank, got.size, got.local_rank, got.local_size) == \
        ("mpiexec", 2, 4, 0, 2)
    monkeypatch.setenv("RINGTRAIN_LAUNCHER", "ringrun")
    assert detect_launch().launcher == "ringrun"
    for name in ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    got = detect_launch()
    assert (got.rank, got.size, got.local_rank) == (5, 8, None)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64,
                                   np.uint8])
def test_local_collectives_are_copies(comm, dtype):
    x = (np.arange(12) % 7).astype(dtype).reshape(3, 4)
    for op in (ReduceOp.SUM, ReduceOp.MIN, ReduceOp.MAX):
        y = comm.allreduce(x, op=op)
        assert y is not x and y.dtype == x.dtype and np.array_equal(y, x)
    if np.dtype(dtype).kind == "f":
        assert np.array_equal(comm.allreduce(x, op="avg"), x)
    h = comm.allreduce(x, async_op=True)       # runs on the communication thread
    assert np.array_equal(h.wait(), x) and h.done()
    out = np.zeros_like(x)
    assert comm.allreduce(x, out=out) is out and np.array_equal(out, x)
    assert np.array_equal(comm.broadcast(x), x)
    assert np.array_equal(comm.allgather(x), x)
    assert np.array_equal(comm.reduce_scatter(x), x)
    assert np.array_equal(comm.alltoall(x), x)
    got = comm.allreduce_many([x, x[0], x.astype(np.float64)])
    assert [g.shape for g in got] == [(3, 4), (4,), (3, 4)]
    assert all(np.array_equal(g, e) for g, e in zip(got, [x, x[0], x]))


def test_local_zero_length_and_scalars(comm):
    empty = np.zeros((0, 3), np.float32)
    assert comm.allreduce(empty).shape == (0, 3)
    assert comm.allgather(empty).shape == (0, 3)
    assert comm.allgather(np.float64(2.5)).tolist() == [2.5]
    assert comm.allreduce(np.float32(3)).item() == 3
    assert comm.broadcast_object({"a": 1}) == {"a": 1}
    assert comm.allgather_object("x") == ["x"]
    comm.barrier()


def test_argument_errors_name_the_argument(comm):
    x = np.ones(4)
    with pytest.raises(ValueError, match="op must be"):
        comm.allreduce(x, op="product")
    with pytest.raises(ValueError, match="algorithm"):
        comm.allreduce(x, algorithm="tree")
    with pytest.raises(TypeError, match="dtype object"):
        comm.allreduce(np.array([object()]))
    with pytest.raises(TypeError, match="complex64 cannot be reduced"):
        comm.allreduce(np.ones(2, np.complex64))
    with pytest.raises(TypeError, match="AVG needs a floating dtype"):
        comm.allreduce(np.ones(2, np.int32), op=ReduceOp.AVG)
    with pytest.raises(TypeError, match="bool"):
        comm.allreduce(np.ones(2, bool))
    with pytest.raises(ValueError, match="out must have the shape"):
        comm.allreduce(x, out=np.ones(5))
    with pytest.raises(ValueError, match="out must have the shape"):
        comm.allreduce(x, out=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="out must be a NumPy array"):
        comm.allreduce(x, out=[0, 0, 0, 0])
    with pytest.raises(ValueError, match="root=1 is not a rank"):
        comm.broadcast(x, root=1)
    with pytest.raises(TypeError, match="root must be an int"):
        comm.broadcast(x, root="0")
    with pytest.raises(ValueError, match="at least one dimension"):
        comm.reduce_scatter(np.float32(1))
    with pytest.raises(ValueError, match="splits"):
        comm.alltoall(x, splits=[3])
    with pytest.raises(TypeError, match="list or tuple"):
        comm.allreduce_many(x)
    with pytest.raises(ValueError, match="bucket_bytes"):
        comm.allreduce_many([x], bucket_bytes=-1)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.ones(4)
        ro.flags.writeable = False
        comm.allreduce(x, out=ro)


def test_bool_min_max(comm):
    flags = np.array([True, False, True])
    assert comm.allreduce(flags, op=ReduceOp.MIN).tolist() == [True, False, True]
    assert comm.allreduce(flags, op="max").dtype == bool


def test_plan_buckets_groups_by_dtype_and_size():
    f4 = [np.zeros(10, np.float32) for _ in range(5)]       # 40 bytes each
    i8 = np.zeros(3, np.int64)
    big = np.zeros(100, np.float32)
    arrays = [f4[0], f4[1], i8, f4[2], big, f4[3], f4[4]]
    assert plan_buckets(arrays, 80) == [[0, 1], [2], [3, 5], [4], [6]]
    assert plan_buckets(arrays, 1 << 20) == [[0, 1, 3, 4, 5, 6], [2]]
    assert plan_buckets(arrays, 0) == [[i] for i in range(7)]
    assert plan_buckets(arrays, 1 << 20, direct=400) == [[0, 1, 3, 5, 6], [2], [4]]
    assert plan_buckets([], 10) == []


def test_executor_keeps_submission_order_and_reraises():
    ex = OrderedExecutor()
    order = []
    gate = threading.Event()

    def slow(tag):
        def job():
            gate.wait(5)
            order.append(tag)
            return tag
        return job

    handles = [ex.submit(slow(i)) for i in range(5)]
    failing = ex.submit(lambda: 1 / 0)
    assert not handles[0].done()
    threading.Timer(0.05, gate.set).start()
    assert ex.run(lambda: order.append("sync") or "s") == "s"   # waits for the five above
    assert order == [0, 1, 2, 3, 4, "sync"]
    assert [h.wait() for h in handles] == [0, 1, 2, 3, 4]
    with pytest.raises(ZeroDivisionError):
        failing.wait()
    with pytest.raises(TimeoutError):
        ex.submit(lambda: time.sleep(0.5)).wait(timeout=0.01)
    ex.close()
    with pytest.raises(CommError):
        ex.submit(lambda: None)


def test_executor_runs_a_queued_named_job_first_when_asked():
    ex = OrderedExecutor()
    gate, order = threading.Event(), []
    first = ex.submit(lambda: gate.wait(5) and order.append("first"))
    named = {label: ex.submit(lambda: order.append(ex.running_name()) or order[-1], name=label)
             for label in ("allreduce 'x'", "allreduce 'y'")}
    unnamed = ex.submit(lambda: order.append("unnamed"))
    assert ex.queued_names() == ["allreduce 'x'", "allreduce 'y'"]
    ex.run_queued("allreduce 'y'")          # as the thread inside a job would: runs it here
    assert order == ["allreduce 'y'"] and named["allreduce 'y'"].wait(0) == "allreduce 'y'"
    assert ex.queued_names() == ["allreduce 'x'"]
    with pytest.raises(KeyError):
        ex.run_queued("allreduce 'y'")
    gate.set()
    unnamed.wait(5)
    assert first.done() and order == ["allreduce 'y'", "first", "allreduce 'x'", "unnamed"]
    assert ex.run(ex.running_name, name="allreduce 'z'") == "allreduce 'z'"
    assert ex.running_name() is None
    ex.close()


def test_descriptors_with_different_names_ask_for_agreement_not_an_error():
    def call(name, invalid=False):
        return contract.descriptor("allreduce", (4,), np.dtype(np.float32), ReduceOp.SUM,
                                   name=name, flags=contract.FLAG_INVALID if invalid else 0)

    x, y, plain = call("allreduce 'x'"), call("allreduce 'y'"), call(None)
    contract.verify(x + x, x, 2, False)                 # same name: the call proceeds
    for other in (y, plain):
        with pytest.raises(contract.NamesDiffer):
            contract.verify(x + other, x, 2, False)
    # beside a joined rank (no agreement then) the message names both calls
    assert "rank 0 started allreduce 'x'; rank 1 started an unnamed one" in \
        contract.describe_mismatch(_rows(x, plain), False)
    # a rank whose arguments were invalid, or that shut down, is an error, not a reordering
    with pytest.raises(CollectiveMismatch) as info:
        contract.verify(x + call(None, invalid=True), x, 2, False)
    assert not isinstance(info.value, contract.NamesDiffer)
    with pytest.raises(CollectiveMismatch) as info:
        contract.verify(x + contract.descriptor("shutdown"), x, 2, False)
    assert not isinstance(info.value, contract.NamesDiffer)


def _rows(*descs):
    return contract.unpack(b"".join(descs), len(descs))


def test_mismatch_messages_name_what_and_who():
    a = contract.descriptor("allreduce", (4, 3), np.dtype(np.float32), ReduceOp.SUM,
                            algorithm="ring")
    b = contract.descriptor("allreduce", (3, 4), np.dtype(np.float32), ReduceOp.SUM,
                            algorithm="ring")
    assert contract.describe_mismatch(_rows(a, b, a), False) == (
        "allreduce: every rank must pass the same shape; rank 1 sent (3, 4), ranks 0, 2 sent "
        "(4, 3)")
    c = contract.descriptor("allreduce", (4, 3), np.dtype(np.float64), ReduceOp.SUM,
                            algorithm="ring")
    assert "same dtype; rank 2 sent float64, ranks 0, 1 sent float32" in \
        contract.describe_mismatch(_rows(a, a, c), False)
    d = contract.descriptor("broadcast", (4, 3), np.dtype(np.float32), root=0)
    assert contract.describe_mismatch(_rows(a, d), False).startswith(
        "collective mismatch: rank 0 called allreduce; rank 1 called broadcast")
    g1 = contract.descriptor("allgather", (1, 3), np.dtype(np.int8))
    g2 = contract.descriptor("allgather", (5, 3), np.dtype(np.int8))
    assert contract.describe_mismatch(_rows(g1, g2), True) == ""
    assert "shape" in contract.describe_mismatch(_rows(g1, g2), False)
    deep = contract.descriptor("allreduce", (1,) * 9, np.dtype(np.float32), ReduceOp.SUM)
    deeper = contract.descriptor("allreduce", (1,) * 8 + (2,), np.dtype(np.float32),
                                 ReduceOp.SUM)
    assert "shape" in contract.describe_mismatch(_rows(deep, deeper), False)
    with pytest.raises(CollectiveMismatch, match="rank 1 passed invalid arguments"):
        contract.verify(a + contract.invalid_descriptor("allreduce"), a, 2, False)
    contract.verify(a + a, a, 2, False)


def test_results_of_consecutive_allreduces_do_not_alias(comm):
    x = np.arange((1 << 20) // 4, dtype=np.float32)
    kept = [comm.allreduce(x * k) for k in range(3)]
    for _ in range(3):
        comm.allreduce(x)                           # dropped at once: its block is reused
    for k, r in enumerate(kept):
        np.testing.assert_array_equal(r, x * k)
    many = comm.allreduce_many([x, x[:1000], x[:7]])
    np.testing.assert_array_equal(many[0], x)
    np.testing.assert_array_equal(many[2], x[:7])
