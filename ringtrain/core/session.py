"""Session: prunes the graph to what fetches need, caches a flat plan of kernel calls, runs it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import env
from ..errors import ConfigError, InvalidArgumentError, OpError, RingtrainError
from . import dtypes as _dt
from . import placement
from .graph import Graph, GraphKeys, Operation, Tensor, get_default_graph
from .ops.base import KERNELS


class GPUOptions:
    """Accepted for compatibility (``config.gpu_options.allow_growth = True``)."""

    def __init__(self, allow_growth: bool = False, per_process_gpu_memory_fraction: float = 1.0,
                 visible_device_list: str = ""):
        self.allow_growth = allow_growth
        self.per_process_gpu_memory_fraction = per_process_gpu_memory_fraction
        self.visible_device_list = visible_device_list


# TensorFlow ConfigProto fields that are accepted and have no effect here.
_IGNORED_CONFIG_FIELDS = {
    "use_per_session_threads", "session_inter_op_thread_pool", "placement_period",
    "device_filters", "graph_options", "operation_timeout_in_ms", "rpc_options", "cluster_def",
    "isolate_session_state", "experimental", "share_cluster_devices_in_session",
}


class ConfigProto:
    """Session options: ``allow_soft_placement`` (run GPU-placed ops on the CPU when no GPU
    backend is available) and ``log_device_placement`` (print each op's device at plan time)."""

    def __init__(self, allow_soft_placement: bool = False, log_device_placement: bool = False,
                 gpu_options: GPUOptions | None = None, device_count: dict | None = None,
                 intra_op_parallelism_threads: int = 0, inter_op_parallelism_threads: int = 0,
                 **others: Any):
        unknown = sorted(set(others) - _IGNORED_CONFIG_FIELDS)
        if unknown:
            raise TypeError(f"ConfigProto has no field(s) {unknown}")
        self.allow_soft_placement = allow_soft_placement
        self.log_device_placement = log_device_placement
        self.gpu_options = gpu_options or GPUOptions()
        self.device_count = dict(device_count or {})
        self.intra_op_parallelism_threads = intra_op_parallelism_threads
        self.inter_op_parallelism_threads = inter_op_parallelism_threads


class RunOptions:
    """Accepted and ignored (tracing is not implemented)."""

    def __init__(self, **kwargs: Any):
        self.__dict__.update(kwargs)


class RunMetadata:
    """Accepted and ignored (tracing is not implemented)."""


class _Runtime:
    """What kernels see of a Session: the array namespace, variable storage, random generators."""

    def __init__(self, xp: Any):
        self.xp = xp
        self.store: list = []           # variable values by Variable._index (None: uninitialized)
        self.persistent: set[int] = set()  # ids of arrays a fetch must copy (variables, consts)
        self._rngs: dict[int, Any] = {}
        self.op: Operation | None = None  # the op whose kernel is being bound

    def constant(self, value: np.ndarray) -> Any:
        v = self.xp.asarray(value)
        self.persistent.add(id(v))
        return v

    def reserve(self, n_variables: int) -> None:
        """Grow the storage to hold ``n_variables`` (variables may be created after a run)."""
        if len(self.store) < n_variables:
            self.store.extend([None] * (n_variables - len(self.store)))

    def set_variable(self, index: int, value: Any) -> Any:
        old = self.store[index]
        if old is not None:
            self.persistent.discard(id(old))
        self.store[index] = value
        self.persistent.add(id(value))
        return value

    def rng(self, seed: int | None, seed2: int | None) -> Any:
        """The op's generator: created once per Session, so each run draws fresh numbers and
        two Sessions with the same seeds draw the same sequence (TF1 semantics)."""
        key = self.op._id
        gen = self._rngs.get(key)
        if gen is None:
            if seed is None and seed2 is None:
                gen = np.random.default_rng()
            else:
                gen = np.random.default_rng([seed or 0, seed2 or 0])
            self._rngs[key] = gen = self.on_device(gen)
        return gen

    def on_device(self, gen: np.random.Generator) -> Any:
        """``gen`` as the kernels use it: itself on the CPU; on a GPU, its draws copied to the
        device, so a GPU Session draws the CPU's numbers and checkpoints the same streams
        (drawing on the host costs time for large random tensors such as dropout masks)."""
        return gen if self.xp is np else _HostDrawn(gen, self.xp)


class _HostDrawn:
    """A NumPy generator whose draws land on the device (``xp``)."""

    def __init__(self, gen: np.random.Generator, xp: Any):
        self.bit_generator = gen.bit_generator      # what checkpoints save and restore
        self._gen, self._xp = gen, xp

    def __getattr__(self, name: str) -> Any:
        method, xp = getattr(self._gen, name), self._xp

        def draw(*args: Any, **kwargs: Any) -> Any:
            args = tuple(xp.asnumpy(a) if isinstance(a, xp.ndarray) else a for a in args)
            return xp.asarray(method(*args, **kwargs))
        return draw


# The bit generators a checkpoint may name for a random op's stream.
_BIT_GENERATORS = (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox,
                   np.random.SFC64)


class _Plan:
    __slots__ = ("feeds", "fetch_slots", "nslots", "ops", "rebuild", "steps")


# --- fetch structures --------------------------------------------------------------------------

def _flatten_fetches(graph: Graph, fetches: Any, flat: list) -> Callable[[list], Any]:
    """Append the leaves of ``fetches`` to ``flat``; return a function rebuilding the structure."""
    if isinstance(fetches, (Tensor, Operation)):
        if fetches.graph is not graph:
            raise ValueError(f"fetch {fetches.name!r} is not an element of this Session's graph")
        i = len(flat)
        flat.append(fetches)
        return lambda vals: vals[i]
    if isinstance(fetches, str):
        return _flatten_fetches(graph, graph.as_graph_element(fetches), flat)
    if isinstance(fetches, dict):
        keys = list(fetches)
        subs = [_flatten_fetches(graph, fetches[k], flat) for k in keys]
        cls = type(fetches)
        return lambda vals: cls(zip(keys, (s(vals) for s in subs)))
    if isinstance(fetches, (list, tuple)):
        subs = [_flatten_fetches(graph, f, flat) for f in fetches]
        if isinstance(fetches, tuple) and hasattr(fetches, "_fields"):
            cls = type(fetches)
            return lambda vals: cls(*(s(vals) for s in subs))
        cls = type(fetches)
        return lambda vals: cls(s(vals) for s in subs)
    as_op = getattr(fetches, "_as_graph_element", None) or getattr(fetches, "_as_op", None)
    if as_op is not None:
        return _flatten_fetches(graph, as_op(), flat)
    if fetches is None:
        raise TypeError("Fetch argument None has invalid type; fetch Tensors, Operations, or "
                        "lists/tuples/dicts of them")
    raise TypeError(f"Fetch argument {fetches!r} has invalid type {type(fetches).__name__}; "
                    f"fetch Tensors, Operations, or lists/tuples/dicts of them")


def _fetch_key(fetches: Any) -> Any:
    """A hashable key describing the fetch structure (the plan cache is keyed on it)."""
    if isinstance(fetches, (Tensor, Operation, str)):
        return fetches
    if isinstance(fetches, dict):
        return ("d", type(fetches), tuple((k, _fetch_key(v)) for k, v in fetches.items()))
    if isinstance(fetches, (list, tuple)):
        return (type(fetches), tuple(_fetch_key(f) for f in fetches))
    return fetches if getattr(fetches, "__hash__", None) else id(fetches)


# --- default sessions --------------------------------------------------------------------------

_local = threading.local()


def _session_stack() -> list:
    s = getattr(_local, "sessions", None)
    if s is None:
        s = _local.sessions = []
    return s


def get_default_session() -> Session | None:
    stack = _session_stack()
    return stack[-1] if stack else None


def _clear_default_sessions() -> None:
    _session_stack().clear()


def session_holding(graph: Graph) -> Session:
    """The Session whose values of ``graph``'s variables checkpoints read and restore: the
    default session when it runs ``graph``, else the one that owns the graph's variables
    (``graph._variables_session``: Keras keeps one per model graph)."""
    session = get_default_session()
    if session is not None and session.graph is graph:
        return session
    owner = getattr(graph, "_variables_session", None)
    if owner is not None:
        return owner
    raise ValueError("checkpointing graph variables needs their Session: pass session=sess to "
                     "save/restore, or call them inside `with sess.as_default():`")


def _session_for(session: Session | None, graph: Graph) -> Session:
    if session is None:
        session = get_default_session()
        if session is None:
            raise ValueError("Cannot evaluate tensor using `eval()`: No default session is "
                             "registered. Use `with sess.as_default()` or pass session=sess")
    if session.graph is not graph:
        raise ValueError("Cannot use the given session to evaluate tensor: the tensor's graph "
                         "is different from the session's graph")
    return session


# --- the session -------------------------------------------------------------------------------

class Session:
    """A TF1 Session: holds this session's variable values and runs subgraphs of ``graph``.

    ``run(fetches, feed_dict)`` executes only the operations the fetches need, in graph
    creation order (a deterministic topological order), as a cached flat list of kernel calls.
    """

    def __init__(self, target: str = "", graph: Graph | None = None,
                 config: ConfigProto | None = None):
        if target not in ("", None) and not str(target).startswith(("local", "grpc://localhost")):
            raise ValueError(f"Session target {target!r} is not supported: ringtrain runs each "
                             f"worker's graph in-process (use ringrun and MirroredStrategy for "
                             f"several workers)")
        if graph is not None and not isinstance(graph, Graph):
            raise TypeError(f"Session(graph=...) needs a tf.Graph, got {type(graph).__name__}")
        self._graph = graph if graph is not None else get_default_graph()
        self._config = config or ConfigProto()
        # A tf.function's graph runs on the eager context's runtime: its variables are the
        # eager ones (eager.py). Otherwise the runtime (and with it NumPy or CuPy) is chosen at
        # the first run or variable load, when the graph has been built (placement.py).
        self._runtime: _Runtime | None = getattr(self._graph, "_shared_runtime", None)
        self._gpu: int | None = None    # the GPU this Session computes on
        self._plans: dict = {}
        self._closed = False
        self._default_ctx: list = []

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def _rt(self) -> _Runtime:
        rt = self._runtime
        if rt is None:
            rt = self._runtime = _Runtime(self._place())
        return rt

    def _place(self) -> Any:
        """The array namespace this Session computes with: CuPy when the graph is placed on a
        GPU (or RINGTRAIN_DEVICE asks for one) and one is reachable, else NumPy."""
        if self._config.device_count.get("GPU", 1) == 0 or not placement.wants_gpu(self._graph):
            return np       # device_count={"GPU": 0}: this Session sees no GPU, as in TF
        index = placement.gpu_index(self._config.gpu_options.visible_device_list)
        xp = None if index is None else placement.gpu_namespace(index)
        if xp is None:
            if env.get("RINGTRAIN_DEVICE") and not self._config.allow_soft_placement:
                raise ConfigError(f"RINGTRAIN_DEVICE={env.get('RINGTRAIN_DEVICE')}: the graph "
                                  f"core computes on a GPU with CuPy, and CuPy cannot reach "
                                  f"GPU {index}; pip install 'ringtrain[gpu]', or run on the "
                                  f"CPU with RINGTRAIN_DEVICE=cpu")
            return np       # GPU-placed ops: refused by _check_devices unless soft placement
        self._gpu = index
        return xp

    @property
    def graph_def(self) -> Any:
        return self._graph.as_graph_def()

    @property
    def sess_str(self) -> str:
        return ""

    # -- context management --
    def as_default(self):
        return _DefaultSession(self)

    def __enter__(self) -> Session:  # noqa: PYI034
        ctx = _DefaultSession(self)
        ctx.__enter__()
        self._default_ctx.append(ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._default_ctx:
            self._default_ctx.pop().__exit__(*exc)
        self.close()

    def close(self) -> None:
        self._closed = True
        self._plans.clear()
        rt = self._runtime
        if rt is not None and getattr(self._graph, "_shared_runtime", None) is not rt:
            rt.store = []
            rt.persistent = set()

    # -- running --
    def run(self, fetches: Any, feed_dict: dict | None = None, options: Any = None,
            run_metadata: Any = None) -> Any:
        """Compute ``fetches`` (Tensor, Operation, or nested list/tuple/dict of them)."""
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        if type(fetches) is Tensor or isinstance(fetches, (Tensor, Operation)):
            fkey = fetches
        else:
            fkey = _fetch_key(fetches)
        fkeys = tuple(feed_dict) if feed_dict else ()
        key = (fkey, fkeys)
        try:
            plan = self._plans.get(key)
        except TypeError:  # an unhashable feed key or fetch: plan without caching
            plan = None
            key = None
        if plan is None:
            plan = self._build_plan(fetches, fkeys)
            if key is not None:
                self._plans[key] = plan
        vals = [None] * plan.nslots
        rt = self._rt
        xp = rt.xp
        on_gpu = xp is not np
        if on_gpu:
            placement.activate(xp, self._gpu)
        if fkeys:
            for (slot, npd, shape, tensor), value in zip(plan.feeds, feed_dict.values()):
                value = _check_feed(value, npd, shape, tensor)
                if on_gpu and value.dtype.kind not in "OUS":    # strings stay on the host
                    value = xp.asarray(value)
                vals[slot] = value
        i = 0
        try:
            for i, step in enumerate(plan.steps):  # i names the failing op
                step(vals)
        except RingtrainError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as exc:
            failing = plan.ops[i][0]
            if failing.type == "PyFunc":
                raise  # the user's function's own exception, unchanged
            raise InvalidArgumentError(None, failing, f"{failing.type} op {failing.name!r}: "
                                                      f"{exc}") from exc
        out = []
        persistent = rt.persistent
        for i in plan.fetch_slots:
            if i is None:
                out.append(None)
                continue
            v = vals[i]
            if on_gpu and isinstance(v, xp.ndarray):
                v = xp.asnumpy(v)       # a new host array: nothing of a variable's to protect
                out.append(v[()] if v.ndim == 0 else v)
                continue
            if type(v) is np.ndarray:
                if v.ndim == 0:
                    v = v[()]
                else:
                    base = v.base if v.base is not None else v
                    if id(base) in persistent:
                        v = v.copy()  # never hand out (a view of) a variable's storage
            out.append(v)
        return plan.rebuild(out)

    def partial_run_setup(self, *args: Any, **kwargs: Any):
        raise NotImplementedError("partial_run is not supported")

    def list_devices(self) -> list:
        found = [_DeviceAttributes("/job:localhost/replica:0/task:0/device:CPU:0", "CPU")]
        if self._rt.xp is not np:
            found.append(_DeviceAttributes(f"/job:localhost/replica:0/task:0/device:GPU:"
                                           f"{self._gpu}", "GPU"))
        return found

    # -- planning --
    def _build_plan(self, fetches: Any, feed_keys: tuple) -> _Plan:
        graph = self._graph
        flat: list = []
        rebuild = _flatten_fetches(graph, fetches, flat)
        feeds = []
        for k in feed_keys:
            t = graph.as_graph_element(k, allow_operation=False) if isinstance(k, str) else k
            if hasattr(t, "_as_tensor") and not isinstance(t, Tensor):
                t = t._as_tensor()
            if not isinstance(t, Tensor):
                raise TypeError(f"feed_dict key {k!r} is not a Tensor; feed Tensors "
                                f"(placeholders or any other tensor) or their names")
            if t.graph is not graph:
                raise ValueError(f"feed_dict key {t.name!r} is not an element of this "
                                 f"Session's graph")
            feeds.append(t)
        fed = set(feeds)

        # Every op the fetches need, found iteratively (no recursion: graphs may be very deep).
        needed: dict[Operation, None] = {}
        stack = [f._op if isinstance(f, Tensor) else f for f in flat
                 if not (isinstance(f, Tensor) and f in fed)]
        while stack:
            op = stack.pop()
            if op in needed:
                continue
            needed[op] = None
            for t in op._inputs:
                if t not in fed and t._op not in needed:
                    stack.append(t._op)
            for c in op._control_inputs:
                if c not in needed:
                    stack.append(c)
        order = sorted(needed, key=lambda o: o._id)  # creation order is a topological order
        for op in order:
            if op._type == "Placeholder":
                shape = op._outputs[0].shape
                raise InvalidArgumentError(
                    None, op, f"You must feed a value for placeholder tensor '{op.name}' with "
                              f"dtype {op._outputs[0].dtype.name} and shape {shape}")
        self._check_devices(order)

        slots: dict[Tensor, int] = {}
        for t in feeds:
            slots.setdefault(t, len(slots))
        for op in order:
            for t in op._outputs:
                if t not in fed:
                    slots[t] = len(slots)
        rt = self._rt
        rt.reserve(len(graph._variables))
        steps, ops = [], []
        for op in order:
            factory = KERNELS.get(op._type)
            if factory is None:
                raise NotImplementedError(f"no kernel for op type {op._type!r} ({op.name})")
            rt.op = op
            fn = factory(rt, **op._attrs)
            ins = tuple(slots[t] for t in op._inputs)
            outs = tuple(slots[t] if t not in fed else None for t in op._outputs)
            steps.append(_make_step(fn, ins, outs))
            ops.append((op, tuple(o for o in outs if o is not None)))
        rt.op = None
        plan = _Plan()
        plan.steps = steps
        plan.ops = ops
        plan.nslots = len(slots)
        plan.feeds = [(slots[t], t.dtype.np_dtype, t.shape.as_tuple(), t) for t in feeds]
        plan.fetch_slots = [slots[f] if isinstance(f, Tensor) else None for f in flat]
        plan.rebuild = rebuild
        return plan

    def _check_devices(self, order: list[Operation]) -> None:
        cfg = self._config
        on_gpu = self._rt.xp is not np
        where = f"GPU:{self._gpu}" if on_gpu else "CPU:0"
        for op in order:
            if not on_gpu and not cfg.allow_soft_placement and placement.placed_on_gpu(op._device):
                raise InvalidArgumentError(
                    None, op, f"Cannot assign a device for operation {op.name!r}: it is placed "
                              f"on {op._device}, and this Session runs on the CPU (NumPy): no "
                              f"GPU that CuPy can reach (pip install 'ringtrain[gpu]' on a "
                              f"machine with an NVIDIA GPU). Place it on '/cpu:0', or create "
                              f"the Session with tf.ConfigProto(allow_soft_placement=True) to "
                              f"run it on the CPU")
            if cfg.log_device_placement:
                print(f"{op.name}: ({op.type}): /job:localhost/replica:0/task:0/device:{where}")

    # -- the checkpoint protocol (ringtrain.checkpoint.tracking) --
    def _checkpoint_state(self) -> dict:
        """Every initialized variable of the graph by name (what the replicas share)."""
        store = self._rt.store
        live = [v for v in self._graph._variables
                if v._index < len(store) and store[v._index] is not None]
        return dict(zip((v.op.name for v in live),
                        (np.array(value, copy=True) for value in self.run(live))))

    def _checkpoint_unshared_keys(self) -> list[str]:
        """The local variables (``tf.local_variables()``: metric accumulators and the like),
        which each worker may hold differently: saved, but not compared across replicas."""
        return [v.op.name for v in self._graph.get_collection(GraphKeys.LOCAL_VARIABLES)]

    def _restore_checkpoint_state(self, state: dict) -> None:
        by_name = {v.op.name: v for v in self._graph._variables}
        unknown = sorted(set(state) - set(by_name))
        if unknown:
            raise KeyError(f"the session's graph has no variables {unknown}")
        for name in sorted(state):
            by_name[name].load(np.asarray(state[name]), self)

    def _checkpoint_worker_state(self) -> dict:
        """The random generators of the graph's random ops (dropout...) by op name: each
        worker draws its own stream."""
        by_id = {op._id: op for op in self._graph.get_operations()}
        return {by_id[key].name: {"bit_generator": type(gen.bit_generator).__name__,
                                  "state": gen.bit_generator.state}
                for key, gen in self._rt._rngs.items() if key in by_id}

    def _restore_checkpoint_worker_state(self, state: dict) -> None:
        for op_name, value in state.items():
            op = self._graph.get_operation_by_name(op_name)
            bit_generator = getattr(np.random, str(value["bit_generator"]), None)
            if bit_generator not in _BIT_GENERATORS:
                raise ValueError(f"unknown bit generator {value['bit_generator']!r} for "
                                 f"{op_name!r}")
            gen = np.random.Generator(bit_generator())
            gen.bit_generator.state = value["state"]
            self._rt._rngs[op._id] = self._rt.on_device(gen)


class _DeviceAttributes:
    def __init__(self, name: str, device_type: str):
        self.name = name
        self.device_type = device_type
        self.memory_limit_bytes = 0


class _DefaultSession:
    def __init__(self, session: Session):
        self._session = session

    def __enter__(self) -> Session:
        _session_stack().append(self._session)
        return self._session

    def __exit__(self, *exc: object) -> None:
        stack = _session_stack()
        if stack and stack[-1] is self._session:
            stack.pop()


class InteractiveSession(Session):
    """A Session that installs itself as the default session on creation (for shells)."""

    def __init__(self, target: str = "", graph: Graph | None = None,
                 config: ConfigProto | None = None):
        super().__init__(target, graph, config)
        self._ctx = _DefaultSession(self)
        self._ctx.__enter__()

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)
        super().close()


def _make_step(fn: Callable, ins: tuple, outs: tuple) -> Callable[[list], None]:
    """A closure running one kernel on the slot list: specialised by arity to keep calls cheap."""
    n_in, n_out = len(ins), len(outs)
    if n_out == 1:
        o = outs[0]
        if o is None:
            def step(v):
                fn(*[v[i] for i in ins])
        elif n_in == 0:
            def step(v):
                v[o] = fn()
        elif n_in == 1:
            a = ins[0]

            def step(v):
                v[o] = fn(v[a])
        elif n_in == 2:
            a, b = ins

            def step(v):
                v[o] = fn(v[a], v[b])
        else:
            def step(v):
                v[o] = fn(*[v[i] for i in ins])
    elif n_out == 0:
        def step(v):
            fn(*[v[i] for i in ins])
    else:
        def step(v):
            res = fn(*[v[i] for i in ins])
            for slot, r in zip(outs, res):
                if slot is not None:
                    v[slot] = r
    return step


def _check_feed(value: Any, npd: np.dtype, shape: tuple | None, tensor: Tensor) -> Any:
    """The fed value as an array of the tensor's dtype; errors name the tensor."""
    if isinstance(value, Tensor):
        raise TypeError(f"The value of a feed cannot be a tf.Tensor object ({value.name} fed to "
                        f"{tensor.name}); feed a NumPy array or Python value, or use "
                        f"sess.run to compute it first")
    if type(value) is not np.ndarray or value.dtype != npd:
        try:
            if npd.kind == "O":
                value = np.asarray(value, dtype=object)
            else:
                arr = np.asarray(value)
                if arr.dtype.kind in "OUS" or (arr.dtype.kind == "c" and npd.kind != "c"):
                    raise ValueError(f"values of type {arr.dtype}")
                value = arr.astype(npd, copy=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Cannot feed value {_short(value)} to Tensor {tensor.name!r} of "
                            f"dtype {_dt.as_dtype(npd).name}: {exc}") from None
    if shape is not None:
        vs = value.shape
        if len(vs) != len(shape) or any(d is not None and d != e for d, e in zip(shape, vs)):
            pretty = "(" + ", ".join("?" if d is None else str(d) for d in shape) + \
                ("," if len(shape) == 1 else "") + ")"
            raise ValueError(f"Cannot feed value of shape {vs} for Tensor {tensor.name!r}, "
                             f"which has shape {pretty}")
    return value


def _short(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


__all__ = [
    "ConfigProto",
    "GPUOptions",
    "InteractiveSession",
    "OpError",
    "RunMetadata",
    "RunOptions",
    "Session",
    "get_default_session",
]
