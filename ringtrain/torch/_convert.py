"""The one place where torch tensors become what the collectives take, and back.

CPU tensors travel as NumPy arrays sharing their memory (``Tensor.numpy()`` /
``torch.from_numpy``), so in-place collectives on an array update the tensor. CUDA tensors
travel as themselves: the device communicators (``comm/nccl.py``, ``comm/device.py``'s
``StagedCommunicator``) take torch CUDA tensors, write in-place results into them and return
new results as CUDA tensors, so nothing is copied to the host where NCCL is used.
``communicator`` picks, for a collective's group, a communicator that accepts CUDA tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# NumPy has no bfloat16: such tensors travel as their int16 bit patterns (exact for broadcast,
# gather and alltoall) and are reduced in float32 (see ``reducible``).
_BITS_AS = {torch.bfloat16: torch.int16}


def device() -> torch.device:
    """The device this worker's models live on: its GPU under the placement rule
    (``ringtrain.devices``), else the CPU."""
    from ..world import process_group

    return torch.device(process_group.device() if process_group.is_initialized() else "cpu")


def check_tensor(tensor: object, what: str, name: str = "tensor") -> torch.Tensor:
    """``tensor`` if it is a tensor the collectives can move, else TypeError naming the fix."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type not in ("cpu", "cuda"):
        raise TypeError(f"{what}: {name} is on {tensor.device}; ringtrain.torch moves CPU and "
                        f"CUDA tensors: call .cpu() or .cuda() first")
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise TypeError(f"{what}: {name} has layout {tensor.layout}; pass a dense tensor "
                        f"(tensor.to_dense())")
    if tensor.is_complex() or tensor.is_quantized:
        raise TypeError(f"{what}: {name} has dtype {tensor.dtype}, which ringtrain cannot "
                        f"communicate; cast it to a real floating or integer dtype")
    return tensor


def as_array(tensor: torch.Tensor) -> Any:
    """What a collective takes for the contiguous ``tensor``: a NumPy array sharing its memory
    (bit view for bf16) on the CPU, the tensor itself on a GPU."""
    data = tensor.detach()
    if data.is_cuda:
        return data
    bits = _BITS_AS.get(data.dtype)
    if bits is not None:
        data = data.view(bits)
    return data.numpy()


def from_array(array: Any, dtype: torch.dtype) -> torch.Tensor:
    """The inverse of ``as_array``: a tensor of ``dtype`` sharing memory with ``array`` (a
    collective's CUDA result is already that tensor)."""
    if isinstance(array, torch.Tensor):
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if dtype in _BITS_AS:
        tensor = tensor.view(dtype)
    return tensor


def reducible(tensor: torch.Tensor) -> bool:
    """True when the collectives can reduce this dtype directly (bf16 is reduced in fp32)."""
    return tensor.dtype not in _BITS_AS


def communicator(group: Any, cuda: bool | None = None) -> Any:
    """``group`` itself when it takes CUDA tensors (NCCL, staged) or no CUDA tensor can exist
    (``cuda``: whether CUDA is usable, asked of torch by default); else one
    ``StagedCommunicator`` over ``group``, kept for it, so that a CPU worker or a process set
    (an MPI sub-communicator) moves CUDA tensors through pinned host buffers. CPU tensors
    (NumPy arrays) pass through a staged communicator to ``group`` unchanged."""
    from ..comm.device import StagedCommunicator
    from ..comm.nccl import NcclCommunicator

    if cuda is None:
        cuda = torch.cuda.is_available()
    if not cuda or isinstance(group, (NcclCommunicator, StagedCommunicator)):
        return group
    staged = getattr(group, "_staged_for_cuda", None)
    if staged is None:
        staged = group._staged_for_cuda = StagedCommunicator(group)
    return staged
