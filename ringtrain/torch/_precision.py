"""Mixed precision for torch: 16-bit gradient all-reduces that add in float32, and the
strategy scope's ``mixed_precision`` setting (autocast and loss scaling done for the user).

**16-bit all-reduce.** Summed in their own dtype along the ring, 16-bit values are rounded at
every hop (float16: 11 significant bits, so 2048 + 1 + 1 stays 2048) and the sum can overflow
where the average would not (float16 ends at 65504). ``SixteenBitAllreduce`` sends them as 16
bits but adds them in float32:

1. ``alltoall`` (started at launch): rank r receives part r (an even split) of every rank's
   tensor;
2. at ``wait()``: rank r adds the N copies of its part in float32 (divides by N for an
   average) and rounds once back to the 16-bit dtype, then an ``allgather`` gives every rank
   every reduced part.

The bytes moved per rank are the ring's, 2 (N - 1) / N of the tensor; the result is the float32
sum (or average) rounded once to the 16-bit dtype, identical on every rank, and it overflows
only where the result itself does. A sum of at most 2^(24 - 11) = 8192 float16 values (2^16
bfloat16 values) of one binade is exact in float32, so for gradient sums this is the exact sum
rounded once.

Ordering: the two halves are two collectives. Every rank must issue collectives in the same
order, so the engine starts every bucket's first half in bucket order and runs the second
halves only when it waits for the buckets, again in bucket order.

**The scope's setting** (``strategy.scope(mixed_precision=...)``, Accelerate's values):
``"no"``; ``"bf16"``: the forward of every model created in the scope runs under
``torch.autocast`` with bfloat16 (float32's range: no loss scaling needed); ``"fp16"``: float16
autocast plus a ``torch.amp.GradScaler``: ``strategy.backward(loss)`` scales the loss, and
``optimizer.step()`` unscales the (already averaged) gradients, skips the step on every rank
when any gradient is inf or NaN, and updates the scale. Model outputs come back in float32
(as Accelerate's ``convert_outputs_to_fp32``), so losses computed outside are float32.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from ..comm.base import ReduceOp
from . import _convert

SIXTEEN_BIT = (torch.float16, torch.bfloat16)
# The scope's settings and their autocast dtypes (Accelerate's names).
PRECISIONS: dict[str, torch.dtype | None] = {"no": None, "bf16": torch.bfloat16,
                                             "fp16": torch.float16}


def even_split(length: int, parts: int) -> list[int]:
    """``np.array_split``'s part sizes: the first ``length % parts`` parts one longer."""
    base, extra = divmod(length, parts)
    return [base + (1 if r < extra else 0) for r in range(parts)]


class SixteenBitAllreduce:
    """All-reduces the 1-d contiguous 16-bit ``tensor`` in place (see the module docstring).

    The alltoall starts at once (on the communicator's thread when ``async_op``); ``wait()``
    adds this rank's part, runs the allgather and writes the result into ``tensor``.
    Every rank must call ``wait()`` in the same order relative to its other collectives.
    """

    def __init__(self, group: Any, tensor: torch.Tensor, op: ReduceOp, async_op: bool = True):
        if op not in (ReduceOp.SUM, ReduceOp.AVG):
            raise ValueError(f"16-bit all-reduce sums or averages, got {op!r}")
        self.group, self.tensor, self.op = group, tensor, op
        self.splits = even_split(tensor.numel(), group.world_size)
        self.handle = group.alltoall(_convert.as_array(tensor), splits=self.splits,
                                     async_op=async_op)
        self.done = False

    def wait(self) -> None:
        if self.done:
            return
        received = self.handle.wait() if hasattr(self.handle, "wait") else self.handle
        world = self.group.world_size
        mine = self.splits[self.group.rank]
        copies = _convert.from_array(np.asarray(received), self.tensor.dtype).view(world, mine)
        total = copies.float().sum(dim=0)
        if self.op is ReduceOp.AVG:
            total /= world
        part = total.to(self.tensor.dtype)
        gathered = self.group.allgather(_convert.as_array(part))
        self.tensor.copy_(_convert.from_array(np.asarray(gathered), self.tensor.dtype))
        self.done = True


# --- the strategy scope's setting ----------------------------------------------------------------

def check_precision(setting: Any) -> str:
    """``setting`` as one of PRECISIONS' keys (None: "no"), else ValueError naming them."""
    if setting is None:
        return "no"
    if isinstance(setting, str) and setting.strip().lower() in PRECISIONS:
        return setting.strip().lower()
    raise ValueError(f"mixed_precision={setting!r}: use 'no', 'bf16' (bfloat16 autocast) or "
                     f"'fp16' (float16 autocast with loss scaling)")


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in SIXTEEN_BIT else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):        # namedtuple
        return type(value)(*(_to_float32(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _to_float32(v)) for k, v in value.items())
    return value


class MixedPrecision:
    """A strategy's precision setting: autocast for its models, a GradScaler for fp16."""

    def __init__(self, setting: str):
        self.setting = setting
        self.dtype = PRECISIONS[setting]
        self.device_type = _convert.device().type
        self.scaler = torch.amp.GradScaler(self.device_type) if setting == "fp16" else None
        self.scaled = False             # strategy.backward ran since the last step

    def wrap_model(self, module: torch.nn.Module) -> None:
        """Run ``module``'s forward under autocast (once per module), outputs in float32."""
        if self.dtype is None or getattr(module, "_ringtrain_autocast", None) is not None:
            return
        forward = module.forward
        dtype, device_type = self.dtype, self.device_type

        @functools.wraps(forward)
        def autocast_forward(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(device_type, dtype=dtype):
                out = forward(*args, **kwargs)
            return _to_float32(out)

        module.forward = autocast_forward
        module._ringtrain_autocast = dtype

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """``loss.backward()``, on the scaled loss with fp16."""
        if self.scaler is None:
            loss.backward(**kwargs)
            return
        self.scaled = True
        self.scaler.scale(loss).backward(**kwargs)

    def attach(self, optimizer: torch.optim.Optimizer, engine: Any) -> None:
        """With fp16, ``optimizer.step()`` becomes GradScaler's step and update."""
        scaler = self.scaler
        if scaler is None:
            return
        inside = False

        def step(*args: Any, **kwargs: Any) -> Any:
            nonlocal inside
            if inside:                  # GradScaler.step calling the optimizer's own step
                return type(optimizer).step(optimizer, *args, **kwargs)
            if not self.scaled and any(p.grad is not None for group in optimizer.param_groups
                                       for p in group["params"]):
                raise RuntimeError("mixed_precision='fp16': gradients must come from "
                                   "strategy.backward(loss) (it scales the loss so that float16 "
                                   "gradients do not underflow), not loss.backward()")
            if engine is not None:
                engine.synchronize()    # averaged first: every rank sees the same inf/NaN
            inside = True
            try:
                result = scaler.step(optimizer, *args, **kwargs)
            finally:
                inside = False
            scaler.update()
            self.scaled = False
            return result

        optimizer.step = step
