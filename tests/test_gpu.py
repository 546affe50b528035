"""GPU support: placement rules, staging and the NCCL ring schedule on CPUs (NumPy standing in
for a GPU), and tests marked ``gpu`` that run only where CuPy finds an NVIDIA GPU."""

import importlib.util

import numpy as np
import pytest

from ringtrain import devices
from ringtrain.comm import device
from ringtrain.comm.nccl import nccl_dtype
from ringtrain.errors import ConfigError


def _has_gpu() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    from ringtrain.devices import cuda_device_count

    return cuda_device_count() > 0


def _has_torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


gpu = pytest.mark.skipif(not _has_gpu(), reason="needs CuPy and an NVIDIA GPU")
torch_cuda = pytest.mark.skipif(not _has_torch_cuda(), reason="needs torch with CUDA and a GPU")


# --- placement --------------------------------------------------------------------------------

@pytest.mark.parametrize("local_rank, count, spec, expected", [
    (0, 0, None, "cpu"),            # no GPU: CPU
    (3, 0, "cpu", "cpu"),
    (0, 2, None, "cuda:0"),
    (1, 2, None, "cuda:1"),
    (2, 2, None, "cuda:0"),         # local_rank % device_count: workers share round-robin
    (5, 4, "cuda", "cuda:1"),
    (5, 4, "cuda:3", "cuda:3"),     # an explicit GPU wins over the rule
    (0, 4, "gpu:2", "cuda:2"),
    (0, 4, "/device:GPU:1", "cuda:1"),
    (1, 4, "CPU", "cpu"),
])
def test_placement_rule(local_rank, count, spec, expected):
    assert devices.select(local_rank, count, spec) == expected


@pytest.mark.parametrize("spec, count, words", [
    ("tpu", 1, "not a device"),
    ("cuda:x", 1, "not a device"),
    ("cuda:²", 1, "not a device"),
    ("cuda:-1", 1, "not a device"),
    ("cuda:4", 4, "only 4 GPU"),
    ("cuda", 0, "none is visible"),
    ("cuda:0", 0, "none is visible"),
])
def test_placement_errors_name_the_variable_and_the_fix(spec, count, words):
    with pytest.raises(ConfigError) as err:
        devices.select(0, count, spec)
    assert "RINGTRAIN_DEVICE" in str(err.value) and words in str(err.value)


def test_worker_device_follows_the_environment(monkeypatch):
    monkeypatch.setenv("RINGTRAIN_DEVICE", "cpu")
    assert devices.worker_device(3) == "cpu"
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 2)
    monkeypatch.delenv("RINGTRAIN_DEVICE")
    assert devices.worker_device(3) == "cuda:1"
    assert devices.device_index("cuda:1") == 1 and devices.device_index("cpu") is None


# --- device arrays and staging ----------------------------------------------------------------

def test_host_data_is_never_a_device_array():
    torch = pytest.importorskip("torch")
    for x in (np.zeros(3), [1, 2], 3.0, torch.zeros(2)):
        assert device.adapter_for(x) is None


def test_pinned_pool_reuses_buffers_by_size():
    made = []
    pool = device.PinnedPool(lambda n: made.append(n) or np.empty(n, np.uint8))
    a = pool.take((4, 2), np.dtype(np.float32))
    assert a.shape == (4, 2) and a.dtype == np.float32
    pool.give(a)
    b = pool.take((8,), np.dtype(np.float32))       # same bytes, other shape: reused
    c = pool.take((8,), np.dtype(np.float32))       # the first is lent out: a new one
    assert made == [32, 32] and not np.shares_memory(b, c)
    pool.give(b)
    pool.give(c)
    assert pool.take((2,), np.dtype(np.float64)).nbytes == 16 and made == [32, 32, 16]


def test_nccl_dtype_codes_follow_nccl_h():
    assert [nccl_dtype(n) for n in ("int8", "uint8", "int32", "float16", "float32", "float64",
                                    "bfloat16", "bool")] == [0, 1, 2, 6, 7, 8, 9, 1]
    with pytest.raises(TypeError, match="complex64"):
        nccl_dtype("complex64")


@pytest.mark.mpi
@pytest.mark.parametrize("np_", [1, 2, 3])
def test_staging_and_the_nccl_ring_schedule_with_numpy_as_the_device(ringrun, np_):
    res = ringrun(np_, "tests/mp/device_staging.py", timeout=90).check()
    for rank in range(np_):
        lines = [ln for ln in res.stdout_of(rank) if ln.startswith("DEVICE-OK")]
        assert lines, res.describe()
        fields = dict(f.split("=") for f in lines[0].split()[1:])
        assert int(fields["rank"]) == rank and int(fields["checks"]) > 60


# --- on a GPU ---------------------------------------------------------------------------------

@pytest.mark.gpu
@gpu
def test_nccl_world_of_one_on_cupy_and_torch():
    import cupy

    from ringtrain.comm.local import LocalCommunicator
    from ringtrain.comm.nccl import NcclCommunicator

    comm = NcclCommunicator(LocalCommunicator(), 0)
    try:
        x = cupy.arange(1031, dtype=cupy.float32)
        for alg in ("native", "ring"):
            assert cupy.array_equal(comm.allreduce(x, algorithm=alg), x)
        assert cupy.array_equal(comm.allreduce(x, op="avg"), x)
        assert cupy.array_equal(comm.broadcast(x), x)
        assert cupy.array_equal(comm.allgather(x[:7]), x[:7])
        assert cupy.array_equal(comm.reduce_scatter(x[:13]), x[:13])
        assert cupy.array_equal(comm.alltoall(x[:5]), x[:5])
        h = comm.allreduce(x, async_op=True)
        assert cupy.array_equal(h.wait(), x)
        torch = pytest.importorskip("torch")
        t = torch.arange(7, dtype=torch.bfloat16, device="cuda")
        assert torch.equal(comm.allreduce(t), t)
        assert np.array_equal(comm.allreduce(np.arange(3.0)), np.arange(3.0))  # host: MPI path
    finally:
        comm.shutdown()


@pytest.mark.gpu
@gpu
@pytest.mark.mpi
def test_staged_gpu_collectives_two_workers_on_one_gpu(ringrun):
    code = (
        "import cupy, numpy as np, ringtrain as rt\n"
        "from ringtrain.comm.device import StagedCommunicator\n"
        "c = StagedCommunicator(rt.init()); R, N = c.rank, c.world_size\n"
        "x = cupy.arange(1 << 20, dtype=cupy.float32) + R\n"
        "want = cupy.arange(1 << 20, dtype=cupy.float32) * N + N * (N - 1) / 2\n"
        "assert cupy.array_equal(c.allreduce(x), want)\n"
        "print('GPU-STAGED-OK')\n")
    res = ringrun(2, code=code, timeout=120).check()
    assert all("GPU-STAGED-OK" in res.stdout_of(r) for r in range(2))


# --- the process group on a GPU worker, with the GPU pieces replaced by stand-ins ----------------

def test_init_wraps_the_host_backend_for_gpu_workers(monkeypatch):
    from ringtrain.comm.device import StagedCommunicator
    from ringtrain.world import process_group as pg

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 2)
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)     # CuPy not installed
    monkeypatch.setattr(pg, "_comm", None)
    monkeypatch.setattr(devices, "_chosen", devices.chosen())       # init() chooses: undo
    monkeypatch.setattr(pg, "_device", pg._device)
    comm = pg.init(backend="local")
    try:
        assert pg.device() == "cuda:0" and devices.chosen() == "cuda:0"
        assert isinstance(comm, StagedCommunicator) and comm.host.backend == "local"
    finally:
        pg.shutdown()
    with pytest.raises(ConfigError, match="needs CuPy"):
        pg.init(backend="nccl")
    assert not pg.is_initialized()


def test_nccl_backend_needs_a_gpu(monkeypatch):
    from ringtrain.world import process_group as pg

    monkeypatch.setenv("RINGTRAIN_DEVICE", "cpu")
    monkeypatch.setattr(pg, "_comm", None)      # an earlier test may have joined a world
    with pytest.raises(ConfigError, match="needs a GPU"):
        pg.init(backend="nccl")
    assert not pg.is_initialized()


# --- torch on CUDA: the stream/event ordering of gradient buckets, with CPU stand-ins --------------

class FakeStreams:
    """Streams as names, events as numbers, every call logged: the engine's ordering on a CPU
    (``ringtrain.torch._streams.Streams``' interface)."""

    def __init__(self, log):
        self.log, self.using, self.events = log, ["compute"], 0

    def current(self, device):
        return self.using[-1]

    def side(self, device):
        return "side"

    def record(self, stream):
        self.events += 1
        self.log.append(("record", stream, self.events))
        return self.events

    def wait(self, stream, event):
        self.log.append(("wait", stream, event))

    def use(self, stream):
        import contextlib

        @contextlib.contextmanager
        def block():
            self.using.append(stream)
            try:
                yield
            finally:
                self.using.pop()
        return block()

    def keep(self, tensor, stream):
        self.log.append(("keep", stream))


class DeviceHandle:
    """An NCCL-like handle: ``wait_on_device`` orders the current stream (here it also finishes
    the host stand-in's work), ``wait`` is the host's check."""

    def __init__(self, inner, log, streams):
        self.inner, self.log, self.streams = inner, log, streams

    def wait_on_device(self):
        self.log.append(("device-wait", self.streams.using[-1]))
        return self.inner.wait()

    def wait(self, timeout=None):
        self.log.append(("host-check",))
        return self.inner.wait()


def _device_like_comm(log, streams):
    from ringtrain.comm.local import LocalCommunicator

    class DoublingOnDevice(LocalCommunicator):
        """A world of one whose all-reduce doubles (SUM over two identical ranks), launched on
        whatever stream is current and handing out NCCL-like handles."""

        def _allreduce(self, src, dst, op, alg):
            np.multiply(src, 2, out=dst)

        def allreduce(self, x, op="sum", algorithm=None, out=None, async_op=False):
            log.append(("launch", streams.using[-1]))
            assert async_op, "bucket all-reduces on a GPU are asynchronous"
            inner = super().allreduce(x, op, algorithm, out=out, async_op=True)
            return DeviceHandle(inner, log, streams)

    return DoublingOnDevice()


def test_bucket_collectives_are_ordered_by_events_and_step_waits_on_the_device():
    torch = pytest.importorskip("torch")
    from ringtrain.comm.base import ReduceOp
    from ringtrain.torch._engine import GradientEngine

    log = []
    streams = FakeStreams(log)

    class LoggedSGD(torch.optim.SGD):
        def step(self, closure=None):
            log.append(("update",))
            return super().step(closure)

    def net(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))

    model, plain = net(0), net(0)
    engine = GradientEngine(list(model.named_parameters()), active=True, op=ReduceOp.SUM,
                            bucket_bytes=1, group=_device_like_comm(log, streams),
                            streams=streams)
    assert engine.overlap                       # on a device overlap is the default
    optimizer = LoggedSGD(model.parameters(), lr=0.1)
    engine.attach(optimizer)
    n_buckets = len(engine.buckets)
    for step in range(3):                       # the plan changes after the first round
        del log[:]
        x = torch.randn(3, 4, dtype=torch.float32)
        for m in (model, plain):
            m.zero_grad()
            m(x).pow(2).sum().backward()
        for (name, p), q in zip(model.named_parameters(), plain.parameters()):
            assert torch.allclose(p.grad, 2 * q.grad), (step, name)
        optimizer.step()
        with torch.no_grad():
            for p, q in zip(model.parameters(), plain.parameters()):
                q.copy_(p)

        launches = [i for i, e in enumerate(log) if e[0] == "launch"]
        assert len(launches) == n_buckets and all(log[i] == ("launch", "side")
                                                  for i in launches)
        for i in launches:
            # the side stream waits for an event recorded on the producer's stream, then the
            # collective is launched there
            (_, producer, ev), waited, kept = log[i - 3:i]
            assert producer == "compute" and waited == ("wait", "side", ev), log
            assert kept == ("keep", "side")
        end = launches[-1] + 1
        assert log[end:end + n_buckets] == [("device-wait", "side")] * n_buckets
        (_, side, done), compute_waits = log[end + n_buckets:end + n_buckets + 2]
        assert side == "side" and compute_waits == ("wait", "compute", done)
        # optimizer.step() waits for the same event on the device before its update
        assert log[-2:] == [("wait", "compute", done), ("update",)], log
        # The host checks each handle (NCCL errors, timeouts) only later: before the bucket is
        # launched again, or before re-planning the buckets after the first round.
        checks = [i for i, e in enumerate(log) if e == ("host-check",)]
        expected = {0: [end + n_buckets + 2 + k for k in range(n_buckets)], 1: [],
                    2: [i - 4 for i in launches]}[step]
        assert checks == expected, (step, log)


def test_cuda_tensors_get_a_communicator_that_takes_them():
    pytest.importorskip("torch")
    from ringtrain.comm.device import StagedCommunicator
    from ringtrain.comm.local import LocalCommunicator
    from ringtrain.torch import _convert

    group = LocalCommunicator()
    assert _convert.communicator(group, cuda=False) is group
    staged = _convert.communicator(group, cuda=True)
    assert isinstance(staged, StagedCommunicator) and staged.host is group
    assert _convert.communicator(group, cuda=True) is staged           # kept: pinned buffers too
    assert _convert.communicator(staged, cuda=True) is staged
    x = np.arange(5.0)
    assert np.array_equal(staged.allreduce(x), x)       # host arrays pass straight through


# --- the graph core on a device namespace (NumPy standing in for CuPy) ---------------------------

def test_the_fake_device_refuses_numpy_functions_like_cupy():
    from fake_device import DeviceArray, FakeDevice

    xp = FakeDevice()
    x = xp.arange(6.0).reshape(2, 3)
    assert type(x) is DeviceArray and type(xp.concatenate([x, x])) is DeviceArray
    assert type(x + 1) is DeviceArray                       # operators stay on the device
    with pytest.raises(TypeError, match="rt.xp.concatenate"):
        np.concatenate([x, x])
    assert type(xp.asnumpy(x)) is np.ndarray and xp.to_host == 1


@pytest.fixture
def on_fake_gpu(monkeypatch):
    """Sessions placed on a GPU get the fake namespace; the worker sees 2 GPUs and is the first
    process of no launcher (so it takes GPU 0)."""
    from fake_device import FakeDevice

    from ringtrain.core import placement

    fake = FakeDevice()
    asked = []
    monkeypatch.setattr(devices, "_chosen", None)       # no world formed yet: GPU 0
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 2)
    monkeypatch.setattr(placement, "gpu_namespace", lambda index: asked.append(index) or fake)
    monkeypatch.delenv("RINGTRAIN_DEVICE", raising=False)
    fake.asked = asked
    return fake


def _softmax_regression(tf, device):
    """A small classifier trained by gradient descent; returns (graph, x, y, loss, train, W)."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(3)
        x = tf.placeholder(tf.float32, [None, 5])
        y = tf.placeholder(tf.int64, [None])
        w = tf.Variable(tf.random_normal([5, 7], stddev=0.5))
        hidden = tf.nn.relu(tf.matmul(x, w))
        logits = tf.layers.dense(hidden, 3)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                             logits=logits))
        train = tf.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
        init = tf.global_variables_initializer()
    return graph, x, y, loss, train, init, w


def _train(tf, session, model, start=None, steps=4):
    """Train from the initializers' values or from ``start`` (values loaded into the
    variables); returns the losses, the final variable values and the starting ones."""
    graph, x, y, loss, train, init, _ = model
    variables = graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
    session.run(init)
    for v, value in zip(variables, start or ()):
        v.load(value, session)
    first = session.run(variables)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        xs, ys = rng.normal(size=(8, 5)).astype(np.float32), rng.integers(0, 3, 8)
        losses.append(session.run([loss, train], {x: xs, y: ys})[0])
    return losses, session.run(variables), first


def test_a_session_placed_on_a_gpu_runs_its_kernels_on_the_device_namespace(on_fake_gpu):
    from fake_device import DeviceArray

    import ringtrain as tf

    on_cpu = _softmax_regression(tf, "/cpu:0")
    cpu_session = tf.Session(graph=on_cpu[0])
    cpu = _train(tf, cpu_session, on_cpu)
    assert on_fake_gpu.asked == []              # a CPU graph never asks for a GPU

    model = _softmax_regression(tf, "/gpu:0")
    session = tf.Session(graph=model[0])
    losses, final, first = _train(tf, session, model)
    assert session._rt.xp is on_fake_gpu and on_fake_gpu.asked == [0]
    # feeds went to the device (two per training run), fetches came back as NumPy
    assert on_fake_gpu.to_device >= 8 and on_fake_gpu.to_host >= 5
    assert all(type(v) is np.ndarray for v in final)
    assert all(type(v) is np.float32 for v in losses)
    # the variables (W, the dense layer's kernel and bias, momentum slots) live on the device,
    # loaded ones too
    live = [v for v in session._rt.store if v is not None]
    assert len(live) >= 6 and all(type(v) is DeviceArray for v in live)
    # the CPU's random numbers (drawn on the host, copied to the device) and the same
    # arithmetic, bit for bit (the stand-in is NumPy underneath)
    assert all(np.array_equal(a, b) for a, b in zip(first, cpu[2]))
    streams = session._checkpoint_worker_state()    # the random streams checkpoint as on a CPU
    assert streams and streams == cpu_session._checkpoint_worker_state()
    assert losses == cpu[0] and all(np.array_equal(a, b) for a, b in zip(final, cpu[1]))
    assert [d.device_type for d in session.list_devices()] == ["CPU", "GPU"]
    # values loaded into variables go to the device too
    again = _softmax_regression(tf, "/gpu:0")
    loaded = tf.Session(graph=again[0])
    assert all(np.array_equal(a, b) for a, b in zip(_train(tf, loaded, again, start=final,
                                                           steps=0)[2], final))
    assert all(type(v) is DeviceArray for v in loaded._rt.store if v is not None)


def test_ringtrain_device_places_an_unplaced_graph_and_visible_device_list_picks_the_gpu(
        on_fake_gpu, monkeypatch):
    import ringtrain as tf

    model = _softmax_regression(tf, "")
    monkeypatch.setenv("RINGTRAIN_DEVICE", "cuda")
    assert tf.Session(graph=model[0])._rt.xp is on_fake_gpu and on_fake_gpu.asked == [0]
    config = tf.ConfigProto(gpu_options=tf.GPUOptions(visible_device_list="1"))
    assert tf.Session(graph=model[0], config=config)._rt.xp is on_fake_gpu
    assert on_fake_gpu.asked == [0, 1]
    monkeypatch.setattr(devices, "_chosen", "cuda:1")   # what init() chose for local rank 1
    assert tf.Session(graph=model[0])._rt.xp is on_fake_gpu and on_fake_gpu.asked == [0, 1, 1]
    monkeypatch.setenv("RINGTRAIN_DEVICE", "cpu")           # the variable wins over /gpu:0
    assert tf.Session(graph=_softmax_regression(tf, "")[0])._rt.xp is np


def test_without_a_reachable_gpu_the_errors_name_the_fix(on_fake_gpu, monkeypatch):
    import ringtrain as tf
    from ringtrain.core import placement

    monkeypatch.setattr(placement, "gpu_namespace", lambda index: None)    # no CuPy
    model = _softmax_regression(tf, "/gpu:0")
    with pytest.raises(tf.errors.InvalidArgumentError, match="allow_soft_placement"):
        tf.Session(graph=model[0]).run(model[-2])
    soft = tf.Session(graph=model[0], config=tf.ConfigProto(allow_soft_placement=True))
    soft.run(model[-2])
    assert soft._rt.xp is np
    monkeypatch.setenv("RINGTRAIN_DEVICE", "cuda")
    with pytest.raises(ConfigError, match="RINGTRAIN_DEVICE=cpu"):
        unplaced = _softmax_regression(tf, "")
        tf.Session(graph=unplaced[0]).run(unplaced[-2])
    with pytest.raises(ConfigError, match="visible_device_list"):
        config = tf.ConfigProto(gpu_options=tf.GPUOptions(visible_device_list="gpu1"))
        tf.Session(graph=model[0], config=config).run(model[-2])


def test_keras_fit_runs_on_the_device_namespace(on_fake_gpu, monkeypatch):
    import ringtrain as tf

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def fit(start=None):
        tf.keras.backend.clear_session()
        model = tf.keras.Sequential([tf.keras.layers.Dense(6, activation="relu",
                                                           input_shape=(4,)),
                                     tf.keras.layers.Dense(2, activation="softmax")])
        model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        if start is not None:
            model.set_weights(start)
        first = model.get_weights()
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        return history.history["loss"], model.get_weights(), model.predict(x[:5]), first

    on_cpu = fit()
    before = on_fake_gpu.to_device
    monkeypatch.setenv("RINGTRAIN_DEVICE", "cuda")
    on_gpu = fit(start=on_cpu[3])               # the same start: the generators differ
    assert on_fake_gpu.asked and on_fake_gpu.to_device - before >= 8    # batches went there
    assert on_gpu[0] == on_cpu[0]
    assert all(np.array_equal(a, b) for a, b in zip(on_gpu[1], on_cpu[1]))
    assert type(on_gpu[2]) is np.ndarray and np.array_equal(on_gpu[2], on_cpu[2])


# --- on a GPU: torch CUDA, the core on CuPy --------------------------------------------------------

@pytest.mark.gpu
@gpu
@torch_cuda
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_gradient_buckets_over_nccl_on_cuda_streams(dtype):
    import copy

    import torch

    from ringtrain.comm.base import ReduceOp
    from ringtrain.comm.local import LocalCommunicator
    from ringtrain.comm.nccl import NcclCommunicator
    from ringtrain.torch import _streams
    from ringtrain.torch._engine import GradientEngine

    comm = NcclCommunicator(LocalCommunicator(), 0)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(),
                                    torch.nn.Linear(256, 10)).to("cuda", getattr(torch, dtype))
        plain = copy.deepcopy(model)
        engine = GradientEngine(list(model.named_parameters()), active=True, op=ReduceOp.SUM,
                                bucket_bytes=4096, group=comm)
        assert isinstance(engine.streams, _streams.CudaStreams) and engine.bucket_comm is comm
        assert all(b.flat is None or b.flat.is_cuda for b in engine.buckets)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        engine.attach(optimizer)
        reference = torch.optim.SGD(plain.parameters(), lr=0.01)
        for _ in range(3):          # a world of one sums to itself: exactly plain torch
            x = torch.randn(32, 64, device="cuda", dtype=getattr(torch, dtype))
            for m, opt in ((model, optimizer), (plain, reference)):
                opt.zero_grad()
                m(x).float().pow(2).mean().backward()
                opt.step()
        for p, q in zip(model.parameters(), plain.parameters()):
            assert p.is_cuda and torch.equal(p, q)
    finally:
        comm.shutdown()


@pytest.mark.gpu
@torch_cuda
@pytest.mark.mpi
def test_torch_on_cuda_two_workers_on_one_gpu_equal_one_process(ringrun):
    # Two workers share GPU 0 (NCCL refuses that: the MPI path stages through pinned memory);
    # float64, 5 steps, against one process with the whole batch, within 1e-6.
    res = ringrun(2, "tests/mp/torch_equivalence.py", timeout=300,
                  env={"RINGTRAIN_DEVICE": "cuda", "RINGTRAIN_BUCKET_BYTES": "200"}).check()
    assert [ln for ln in res.stdout_of(0) if ln.startswith("OK")], res.describe()


@pytest.mark.gpu
@gpu
def test_the_core_trains_on_cupy_like_on_the_cpu():
    import cupy

    import ringtrain as tf

    on_cpu = _softmax_regression(tf, "/cpu:0")
    cpu = _train(tf, tf.Session(graph=on_cpu[0]), on_cpu)
    model = _softmax_regression(tf, "/gpu:0")
    session = tf.Session(graph=model[0])
    losses, final, _ = _train(tf, session, model, start=cpu[2])
    assert session._rt.xp is cupy
    assert all(isinstance(v, cupy.ndarray) for v in session._rt.store if v is not None)
    assert all(type(v) is np.ndarray for v in final)
    np.testing.assert_allclose(losses, cpu[0], rtol=1e-4)
    for a, b in zip(final, cpu[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@gpu
def test_keras_fit_on_cupy_like_on_the_cpu(monkeypatch):
    import cupy

    import ringtrain as tf
    from ringtrain.core import placement

    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)

    def fit(start=None):
        tf.keras.backend.clear_session()
        model = tf.keras.Sequential([tf.keras.layers.Dense(32, activation="relu",
                                                           input_shape=(8,)),
                                     tf.keras.layers.Dense(2, activation="softmax")])
        model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        if start is not None:
            model.set_weights(start)
        first = model.get_weights()
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False)
        return history.history, model.get_weights(), first

    on_cpu = fit()
    monkeypatch.setenv("RINGTRAIN_DEVICE", "cuda")
    reached = []
    real = placement.gpu_namespace
    monkeypatch.setattr(placement, "gpu_namespace", lambda i: reached.append(real(i)) or real(i))
    on_gpu = fit(start=on_cpu[2])
    assert reached and all(xp is cupy for xp in reached)
    np.testing.assert_allclose(on_gpu[0]["loss"], on_cpu[0]["loss"], rtol=1e-4)
    assert on_gpu[0]["loss"][-1] < on_gpu[0]["loss"][0]
    for a, b in zip(on_gpu[1], on_cpu[1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_py_func_gets_numpy_arrays_on_a_device(on_fake_gpu):
    import ringtrain as tf

    seen = []
    graph = tf.Graph()
    with graph.as_default(), tf.device("/gpu:0"):
        x = tf.placeholder(tf.float32, [3])
        doubled = tf.py_func(lambda a: seen.append(type(a)) or 2 * a, [x * 1.0], tf.float32)
        y = doubled + 1.0
    session = tf.Session(graph=graph)
    assert np.array_equal(session.run(y, {x: np.arange(3, dtype=np.float32)}), [1, 3, 5])
    before = on_fake_gpu.to_device      # the plan's constants are on the device now
    assert np.array_equal(session.run(y, {x: np.ones(3, dtype=np.float32)}), [3, 3, 3])
    assert seen == [np.ndarray] * 2 and session._rt.xp is on_fake_gpu  # NumPy in, as TF's
    assert on_fake_gpu.to_device - before == 2          # the feed, and the function's result


@pytest.mark.mpi
@pytest.mark.parametrize("script", ["strategy_graph_equiv.py", "strategy_keras_equiv.py"])
def test_mirrored_strategy_on_the_device_namespace_matches_the_cpu(tmp_path, script):
    """Two workers sharing one (stand-in) GPU, MirroredStrategy over the staged communicator,
    the gradients handed to it as device arrays: the same initial and final weights and
    losses as the same job on the CPU, bit for bit."""
    from conftest import run_ringrun

    args = ["--optimizer", "sgd,adam", "--global-batch", "7"]
    (tmp_path / "cpu").mkdir()
    (tmp_path / "device").mkdir()
    run_ringrun(2, f"tests/mp/{script}", str(tmp_path / "cpu"), *args, timeout=120,
                env={"RINGTRAIN_DEVICE": "cpu"}).check()
    res = run_ringrun(2, "tests/mp/on_fake_device.py", f"tests/mp/{script}",
                      str(tmp_path / "device"), *args, timeout=120,
                      env={"RINGTRAIN_DEVICE": "cuda"}).check()
    for rank in range(2):
        line = [ln for ln in res.stdout_of(rank) if ln.startswith("FAKE-DEVICE")]
        assert line, res.describe()
        fields = dict(f.split("=") for f in line[0].split()[1:])
        assert int(fields["sessions"]) >= 1 and fields["gpus"] == "[0]"
        assert int(fields["to_device"]) >= 5, line          # the batches went to the device
        # the gradients reached the communicator as device arrays (staged, as CuPy's would be)
        assert int(fields["staged"]) >= 5, line
    for optimizer in ("sgd", "adam"):
        for rank in range(2):
            name = f"{optimizer}_rank{rank}.npz"
            with np.load(tmp_path / "cpu" / name) as cpu, \
                    np.load(tmp_path / "device" / name) as dev:
                assert cpu.files == dev.files and len(cpu.files) > 3
                for key in cpu.files:
                    np.testing.assert_array_equal(dev[key], cpu[key], err_msg=key)


def test_device_communicators_hand_the_host_every_method_they_do_not_define():
    from ringtrain.comm.base import Communicator
    from ringtrain.comm.device import StagedCommunicator
    from ringtrain.comm.local import LocalCommunicator
    from ringtrain.comm.nccl import NcclCommunicator

    declared = [n for n, v in vars(Communicator).items() if callable(v) and not n.startswith("_")]
    assert {"broadcast_object", "allgather_object", "barrier", "join"} <= set(declared)
    for cls in (StagedCommunicator, NcclCommunicator):
        for name in declared:       # no NotImplementedError left from the base class
            assert getattr(cls, name) is not getattr(Communicator, name), (cls, name)
    staged = StagedCommunicator(LocalCommunicator())
    assert staged.broadcast_object({"a": 1}) == {"a": 1}
    assert staged.allgather_object(7) == [7] and staged.join() == 0
    staged.barrier()
    staged.shutdown()


def test_staging_adds_16_bit_floats_in_float32(monkeypatch):
    from ringtrain.comm.device import StagedCommunicator
    from ringtrain.comm.local import LocalCommunicator

    class Boxed:
        """An array 'on the device'."""

        def __init__(self, data):
            self.data, self.shape = data, data.shape

    class BoxedArrays(device.DeviceArrays):
        def owns(self, x):
            return isinstance(x, Boxed)

        def wire_dtype(self, x, reducing):
            return x.data.dtype

        def empty(self, shape, like):
            return Boxed(np.empty(shape, like.data.dtype))

        def to_host(self, x, host):
            host[...] = x.data

        def from_host(self, host, like, out=None):
            dst = out if out is not None else Boxed(np.empty_like(like.data))
            with np.errstate(over="ignore"):        # float32 sums beyond float16's range
                dst.data[...] = host
            return dst

    seen = []

    class Host(LocalCommunicator):
        def _allreduce(self, src, dst, op, alg):
            seen.append(("allreduce", src.dtype))
            np.multiply(src, 2, out=dst)            # two identical ranks

        def _broadcast(self, buf, root):
            seen.append(("broadcast", buf.dtype))

    monkeypatch.setattr(device, "ADAPTERS", [BoxedArrays()])
    made = []
    pool = device.PinnedPool(lambda n: made.append(n) or np.empty(n, np.uint8))
    staged = StagedCommunicator(Host(), pool)
    x = Boxed(np.array([40000.0, 1.0, 2049.0], np.float16))
    out = staged.allreduce(x)
    # float32 on the wire: 2 x 40000 overflows float16 only when stored back (as one rounding)
    assert seen == [("allreduce", np.float32)] and out.data.dtype == np.float16
    assert out.data.tolist() == [np.inf, 2.0, 4096.0]
    assert np.array_equal(staged.broadcast(x).data, x.data)
    assert made == [12, 6]          # float32 to add; moved as its own 16 bits


def test_input_pipelines_stay_on_the_cpu(on_fake_gpu, monkeypatch):
    import ringtrain as tf

    monkeypatch.setenv("RINGTRAIN_DEVICE", "cuda")
    dataset = tf.data.Dataset.from_tensor_slices(np.arange(4.0)).map(
        lambda v: tf.square(v) + 1.0)
    assert [float(v) for v in dataset.as_numpy_iterator()] == [1.0, 2.0, 5.0, 10.0]
    assert on_fake_gpu.asked == []          # the traced map function's Session: NumPy
    hidden = tf.ConfigProto(device_count={"GPU": 0})    # TF's way to hide GPUs from a Session
    assert tf.Session(graph=_softmax_regression(tf, "")[0], config=hidden)._rt.xp is np
