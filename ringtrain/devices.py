"""Which device a worker computes on: GPU ``local_rank % device_count``, else the CPU.

``RINGTRAIN_DEVICE`` overrides the choice: ``cpu``, ``cuda`` (the default GPU rule), or
``cuda:N`` / ``gpu:N`` (GPU N of those visible — ``CUDA_VISIBLE_DEVICES`` renumbers them, as
CUDA itself does). The rule is a pure function (``select``); counting GPUs asks torch when
the program imported it, else CuPy, else finds none — no CUDA library is imported just to
learn that there is no GPU.
"""

from __future__ import annotations

import os
import sys

from . import env
from .errors import ConfigError


def parse(spec: str) -> tuple[str, int | None]:
    """``RINGTRAIN_DEVICE``'s value as ("cpu", None), ("cuda", None) or ("cuda", N)."""
    text = spec.strip().lower().removeprefix("/")
    kind, _, index = text.partition(":")
    if kind in ("device", "physical_device") and index:      # TF's "/device:GPU:0"
        kind, _, index = index.partition(":")
    if kind == "cpu" and index in ("", "0"):
        return "cpu", None
    if kind in ("cuda", "gpu"):
        if index == "":
            return "cuda", None
        if index.isascii() and index.isdigit():
            return "cuda", int(index)
    raise ConfigError(f"RINGTRAIN_DEVICE={spec!r} is not a device; use cpu, cuda or cuda:N "
                      f"(N counts the GPUs visible to the process)")


def select(local_rank: int, device_count: int, spec: str | None = None) -> str:
    """The device of the worker with ``local_rank`` on a machine with ``device_count`` GPUs:
    "cpu" or "cuda:N"."""
    kind, index = parse(spec) if spec else ("cuda" if device_count else "cpu", None)
    if kind == "cpu":
        return "cpu"
    if device_count == 0:
        raise ConfigError(f"RINGTRAIN_DEVICE={spec!r} asks for a GPU but none is visible "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                          f"use RINGTRAIN_DEVICE=cpu or unset it")
    if index is None:
        return f"cuda:{local_rank % device_count}"
    if index >= device_count:
        raise ConfigError(f"RINGTRAIN_DEVICE={spec!r}: only {device_count} GPU(s) are visible "
                          f"(cuda:0 .. cuda:{device_count - 1})")
    return f"cuda:{index}"


def cuda_device_count() -> int:
    """GPUs visible to this process, 0 when there is no CUDA (or no library to ask)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    try:
        import cupy
    except ImportError:
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:   # CuPy installed, but no driver or GPU
        return 0


def worker_device(local_rank: int) -> str:
    """This worker's device under the rule above ("cpu" or "cuda:N")."""
    spec = env.get("RINGTRAIN_DEVICE")
    if spec and parse(spec)[0] == "cpu":
        return "cpu"
    return select(local_rank, cuda_device_count(), spec)


_chosen: str | None = None      # this worker's device, once ringtrain.init() formed the world


def choose(local_rank: int) -> str:
    """Decide this worker's device (``ringtrain.init()``, which knows the local rank) and
    remember it for the layers that do not see the world (the graph core)."""
    global _chosen
    _chosen = worker_device(local_rank)
    return _chosen


def chosen() -> str | None:
    """The device ``choose`` decided, None before the world was formed."""
    return _chosen


def device_index(device: str) -> int | None:
    """N of "cuda:N", None for the CPU."""
    return int(device.split(":")[1]) if device.startswith("cuda:") else None
