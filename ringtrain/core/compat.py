"""``tf.compat``: text/bytes conversions (``as_bytes``, ``as_str``...), as TensorFlow 1 has them.

``tf.compat.v1`` is ringtrain itself (bound by ``ringtrain/__init__.py``): ringtrain speaks
TensorFlow 1's API, so ``import ringtrain.compat.v1 as tf`` and ``import ringtrain as tf`` are
the same.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["as_bytes", "as_str", "as_str_any", "as_text", "path_to_str"]


def as_bytes(bytes_or_text: Any, encoding: str = "utf-8") -> bytes:
    """``bytes_or_text`` as bytes: str is encoded with ``encoding``, bytes/bytearray kept."""
    if isinstance(bytes_or_text, bytearray):
        return bytes(bytes_or_text)
    if isinstance(bytes_or_text, str):
        return bytes_or_text.encode(encoding)
    if isinstance(bytes_or_text, bytes):
        return bytes_or_text
    raise TypeError(f"Expected binary or unicode string, got {bytes_or_text!r}")


def as_text(bytes_or_text: Any, encoding: str = "utf-8") -> str:
    """``bytes_or_text`` as str: bytes are decoded with ``encoding``, str kept."""
    if isinstance(bytes_or_text, str):
        return bytes_or_text
    if isinstance(bytes_or_text, (bytes, bytearray)):
        return bytes(bytes_or_text).decode(encoding)
    raise TypeError(f"Expected binary or unicode string, got {bytes_or_text!r}")


as_str = as_text  # Python 3: a str is text


def as_str_any(value: Any) -> str:
    """``value`` as str: bytes decoded, anything else through ``str()``."""
    return as_str(value) if isinstance(value, (bytes, bytearray)) else str(value)


def path_to_str(path: Any) -> Any:
    """A path-like object (``pathlib.Path``) as its str; anything else unchanged."""
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def __getattr__(name: str):
    from .unsupported import missing
    raise missing(__name__, name)
