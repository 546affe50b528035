"""Where a Session computes: NumPy on the CPU, or CuPy on this worker's GPU.

The kernels are written against an array namespace (``rt.xp``); this module picks it. A
Session computes on a GPU when ``RINGTRAIN_DEVICE`` names one (``cuda``, ``cuda:N``) or when
its graph has an op placed on a GPU (``with tf.device("/gpu:0")``). The whole graph then runs
on one GPU: this worker's as ``ringtrain.init()`` chose it (``ringtrain.devices``' rule:
``local_rank % device_count``, ``RINGTRAIN_DEVICE=cuda:N``; GPU 0 when the Session runs before
the world was formed), or the first entry of
``config.gpu_options.visible_device_list`` when it is set (Horovod's
``visible_device_list = str(hvd.local_rank())``). Feeds are copied to the device, fetches
come back as NumPy arrays, variables stay on the device between runs.

CuPy is imported only here and only when a GPU is wanted. ``gpu_namespace`` is the one place
that returns it, so tests stand a NumPy-backed namespace in for CuPy there.
"""

from __future__ import annotations

from typing import Any

from .. import devices, env
from ..errors import ConfigError
from .graph import DeviceSpec, Graph


def placed_on_gpu(device: str) -> bool:
    """True when an op's device string (``/gpu:0``, ``/device:GPU:1``...) names a GPU."""
    return bool(device) and "GPU" in device.upper() and \
        DeviceSpec.from_string(device).device_type == "GPU"


def wants_gpu(graph: Graph) -> bool:
    """Whether a Session of ``graph`` computes on a GPU: ``RINGTRAIN_DEVICE`` decides when
    set, else whether some op is placed on a GPU."""
    spec = env.get("RINGTRAIN_DEVICE")
    if spec:
        return devices.parse(spec)[0] == "cuda"
    return any(placed_on_gpu(op._device) for op in graph.get_operations())


def gpu_index(visible_device_list: str = "") -> int | None:
    """The GPU a Session of this worker computes on (None: no GPU visible)."""
    if visible_device_list:
        first = visible_device_list.split(",")[0].strip()
        if not (first.isascii() and first.isdigit()):
            raise ConfigError(f"gpu_options.visible_device_list={visible_device_list!r}: use "
                              f"GPU numbers separated by commas, e.g. str(hvd.local_rank())")
        return int(first)
    # The world (ringtrain.init, hvd.init) chose this worker's device knowing its local rank;
    # before that, the rule for the first local worker.
    return devices.device_index(devices.chosen() or devices.worker_device(0))


def gpu_namespace(index: int) -> Any | None:
    """CuPy, with GPU ``index`` current for this thread; None when CuPy is not installed or
    cannot reach that GPU."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        if index >= cupy.cuda.runtime.getDeviceCount():
            return None
    except cupy.cuda.runtime.CUDARuntimeError:   # CuPy installed, no driver or no GPU
        return None
    cupy.cuda.Device(index).use()
    return cupy


def activate(xp: Any, index: int) -> None:
    """Make GPU ``index`` current for the calling thread (CuPy allocates on the current
    device; a Session may be run from several threads). No-op for namespaces without CUDA."""
    cuda = getattr(xp, "cuda", None)
    if cuda is not None:
        cuda.Device(index).use()
