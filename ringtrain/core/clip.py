"""Gradient clipping by norm (clip_by_norm, global_norm, clip_by_global_norm), built from ops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import ops as _ops
from .graph import Tensor, get_default_graph
from .ops.array import _tensor_like


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None, name: str | None = None) -> Tensor:
    """t * clip_norm / max(||t||, clip_norm): rescale ``t`` so its L2 norm is <= clip_norm."""
    t = _ops.convert_to_tensor(t)
    with get_default_graph().name_scope(name or "clip_by_norm"):
        norm = _ops.sqrt(_ops.reduce_sum(_ops.square(t), axes, keepdims=True))
        c = _tensor_like(clip_norm, t, "clip_norm")
        return t * c / _ops.maximum(norm, c)


def global_norm(t_list: Sequence[Any], name: str | None = None) -> Tensor:
    """sqrt(sum of squared L2 norms of every tensor in t_list); None entries are skipped."""
    ts = [_ops.convert_to_tensor(t) for t in t_list if t is not None]
    if not ts:
        raise ValueError("global_norm needs at least one tensor")
    with get_default_graph().name_scope(name or "global_norm"):
        return _ops.sqrt(_ops.add_n([_ops.reduce_sum(_ops.square(t)) for t in ts]))


def clip_by_global_norm(t_list: Sequence[Any], clip_norm: Any, use_norm: Any = None,
                        name: str | None = None) -> tuple[list, Tensor]:
    """Scale every tensor by clip_norm / max(global_norm, clip_norm); returns (list, norm)."""
    if isinstance(t_list, Tensor) or not isinstance(t_list, (list, tuple)):
        raise TypeError("clip_by_global_norm needs a list of tensors")
    norm = use_norm if use_norm is not None else global_norm(t_list)
    with get_default_graph().name_scope(name or "clip_by_global_norm"):
        c = _tensor_like(clip_norm, norm, "clip_norm")
        scale = c / _ops.maximum(norm, c)
        out = [None if t is None else _ops.convert_to_tensor(t) * _ops.cast(scale, t.dtype)
               for t in t_list]
    return out, norm
