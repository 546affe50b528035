"""CUDA stream ordering for gradient buckets, behind a small interface.

Gradients of CUDA parameters are all-reduced on a side stream, so backward keeps computing on
the current ("compute") stream while buckets travel. Ordering is by events only, never by the
host waiting: the side stream waits for an event recorded on the compute stream after the
bucket's gradients were produced; when the round ends the compute stream waits for an event
recorded on the side stream after the collective, so ``optimizer.step()``'s kernels (queued on
the compute stream) run after the averaged gradients exist while the host runs ahead.

``CudaStreams`` is torch's CUDA API; the engine sees only ``Streams``, so the ordering logic is
unit-tested on CPU with a fake that records the calls (tests/test_gpu.py).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch


class Streams:
    """What the gradient engine needs of a device's streams and events."""

    def current(self, device: torch.device) -> Any:
        """The stream the caller's kernels are queued on (the producer of the gradients)."""
        raise NotImplementedError

    def side(self, device: torch.device) -> Any:
        """The device's communication stream (one per device, kept)."""
        raise NotImplementedError

    def record(self, stream: Any) -> Any:
        """An event that passes when everything queued on ``stream`` so far has run."""
        raise NotImplementedError

    def wait(self, stream: Any, event: Any) -> None:
        """Make work queued on ``stream`` from now on wait for ``event`` (the host goes on)."""
        raise NotImplementedError

    def use(self, stream: Any) -> AbstractContextManager:
        """Make ``stream`` the current stream inside the block."""
        raise NotImplementedError

    def keep(self, tensor: torch.Tensor, stream: Any) -> None:
        """Tell the allocator ``tensor`` is in use on ``stream`` (its memory must not be reused
        until the work queued there has run)."""
        raise NotImplementedError


class CudaStreams(Streams):
    def __init__(self) -> None:
        self._side: dict[int, Any] = {}

    def current(self, device: torch.device) -> Any:
        return torch.cuda.current_stream(device)

    def side(self, device: torch.device) -> Any:
        index = device.index if device.index is not None else torch.cuda.current_device()
        stream = self._side.get(index)
        if stream is None:
            stream = self._side[index] = torch.cuda.Stream(device=index)
        return stream

    def record(self, stream: Any) -> Any:
        event = torch.cuda.Event()
        event.record(stream)
        return event

    def wait(self, stream: Any, event: Any) -> None:
        stream.wait_event(event)

    def use(self, stream: Any) -> AbstractContextManager:
        return torch.cuda.stream(stream)

    def keep(self, tensor: torch.Tensor, stream: Any) -> None:
        tensor.record_stream(stream)


_cuda: CudaStreams | None = None


def for_device(device: torch.device) -> Streams | None:
    """The streams of ``device``'s buckets: CUDA's for a GPU, None for the CPU (buckets there
    are all-reduced by the communication thread and waited for by the host)."""
    global _cuda
    if device.type != "cuda":
        return None
    if _cuda is None:
        _cuda = CudaStreams()
    return _cuda
