"""Horovod's gradient compression: ``Compression.none`` and ``Compression.fp16``, and
``Compression.bf16`` (bfloat16: float32's range, 8 significant bits). Compressed 16-bit
gradients are added in float32 (``_precision``), so only the compression itself rounds."""

from __future__ import annotations

from typing import Any

import torch


class Compressor:
    """Turns a tensor into what travels between workers and back (Horovod's interface)."""

    @staticmethod
    def compress(tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    @staticmethod
    def decompress(tensor: torch.Tensor, ctx: Any) -> torch.Tensor:
        raise NotImplementedError


class NoneCompressor(Compressor):
    """No compression: the tensor travels as it is."""

    @staticmethod
    def compress(tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return tensor, None

    @staticmethod
    def decompress(tensor: torch.Tensor, ctx: Any) -> torch.Tensor:
        return tensor


class _CastCompressor(Compressor):
    """Floating tensors travel as ``wire_dtype`` and come back in their own dtype."""

    wire_dtype: torch.dtype

    @classmethod
    def compress(cls, tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if tensor.is_floating_point() and tensor.dtype != cls.wire_dtype:
            return tensor.to(cls.wire_dtype), tensor.dtype
        return tensor, None

    @staticmethod
    def decompress(tensor: torch.Tensor, ctx: Any) -> torch.Tensor:
        return tensor if ctx is None else tensor.to(ctx)


class FP16Compressor(_CastCompressor):
    """Floating tensors travel as float16 (half the bytes of float32; values beyond 65504
    become inf, which a GradScaler then sees on every rank and skips the step)."""

    wire_dtype = torch.float16


class BF16Compressor(_CastCompressor):
    """Floating tensors travel as bfloat16 (half the bytes of float32, its range, 8
    significant bits)."""

    wire_dtype = torch.bfloat16


class Compression:
    """Horovod's compressors ``Compression.none`` and ``Compression.fp16``, and ``bf16``."""

    none = NoneCompressor
    fp16 = FP16Compressor
    bf16 = BF16Compressor
