"""A NumPy-backed stand-in for CuPy: the array namespace a Session uses on a GPU.

Arrays it makes are ``DeviceArray`` (an ndarray subclass, "on the device"). Like CuPy, it
refuses NumPy functions called on its arrays from outside the namespace (``np.concatenate(x)``
in a kernel instead of ``rt.xp.concatenate(x)`` raises TypeError), so a kernel that would break
on CuPy breaks here too. It counts copies to and from the device.
"""

from __future__ import annotations

import threading
import types

import numpy as np

_inside = threading.local()


class DeviceArray(np.ndarray):
    def __array_function__(self, func, types_, args, kwargs):
        if not getattr(_inside, "depth", 0):
            raise TypeError(f"numpy.{func.__name__} was called on a device array; a kernel must "
                            f"call rt.xp.{func.__name__} (CuPy refuses NumPy functions)")
        return super().__array_function__(func, types_, args, kwargs)


def _on_device(result):
    if type(result) is np.ndarray:
        return result.view(DeviceArray)
    if isinstance(result, (list, tuple)) and not hasattr(result, "_fields"):
        return type(result)(_on_device(r) for r in result)
    return result


def _call(fn, *args, **kwargs):
    _inside.depth = getattr(_inside, "depth", 0) + 1
    try:
        return _on_device(fn(*args, **kwargs))
    finally:
        _inside.depth -= 1


class _Proxy:
    """A NumPy module, ufunc or generator seen through the device namespace."""

    def __init__(self, target):
        self._target = target

    def __call__(self, *args, **kwargs):
        return _call(self._target, *args, **kwargs)

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if isinstance(attr, (types.ModuleType, np.ufunc, np.random.Generator)):
            return _Proxy(attr)
        if callable(attr) and not isinstance(attr, type):
            if name == "default_rng":   # generators draw "on the device" too
                return lambda *a, **k: _Proxy(attr(*a, **k))
            return lambda *a, **k: _call(attr, *a, **k)
        return attr


class FakeDevice(_Proxy):
    """``xp``: NumPy's functions, results on the fake device; ``asnumpy`` copies to the host."""

    ndarray = DeviceArray

    def __init__(self):
        super().__init__(np)
        self.to_device = 0      # host arrays moved to the device by asarray
        self.to_host = 0

    def asarray(self, a, dtype=None):
        if not isinstance(a, DeviceArray):
            self.to_device += 1
        return _call(np.asarray, a, dtype=dtype)

    def asnumpy(self, a):
        self.to_host += 1
        return np.array(a).view(np.ndarray)


class FakeDeviceArrays:
    """The communicators' adapter (``ringtrain.comm.device.DeviceArrays``) for the stand-in's
    arrays: with it registered, ``StagedCommunicator`` stages them through host buffers as it
    stages CuPy arrays, and the host backend never sees a device array."""

    name = "fake"
    staged = 0      # arrays copied to host buffers for a collective

    def owns(self, x):
        return isinstance(x, DeviceArray)

    def wire_dtype(self, x, reducing):
        return np.dtype(x.dtype)

    def shape(self, x):
        return tuple(x.shape)

    def empty(self, shape, like):
        return np.empty(shape, like.dtype).view(DeviceArray)

    def to_host(self, x, host):
        type(self).staged += 1
        host[...] = x.view(np.ndarray)

    def from_host(self, host, like, out=None):
        dst = out if out is not None else self.empty(like.shape, like)
        dst.view(np.ndarray)[...] = host
        return dst


def pytest_configure(config):
    """``python -m pytest -p fake_device tests/test_core_ops.py ...`` (with ``tests`` on the
    path): every graph Session of the run computes on the stand-in, as on a machine with one
    GPU and ``RINGTRAIN_DEVICE=cuda`` (the variable itself stays unset); a sweep for kernels that would break on CuPy. Eager
    code and worker subprocesses are not affected."""
    from ringtrain import devices
    from ringtrain.core import placement

    fake = FakeDevice()
    devices.cuda_device_count = lambda: 1
    placement.wants_gpu = lambda graph: True
    placement.gpu_namespace = lambda index: fake
