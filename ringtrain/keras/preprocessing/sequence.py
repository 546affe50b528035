"""tf.keras.preprocessing.sequence.pad_sequences."""

from __future__ import annotations

from typing import Any

import numpy as np


def pad_sequences(sequences: Any, maxlen: int | None = None, dtype: Any = "int32",
                  padding: str = "pre", truncating: str = "pre", value: Any = 0.0) -> np.ndarray:
    """Sequences of different lengths as one (n, maxlen, ...) array, as Keras does.

    Longer sequences lose their start (``truncating='pre'``) or end ('post'); shorter ones get
    ``value`` before (``padding='pre'``) or after ('post'). ``maxlen`` defaults to the longest.
    """
    for what, side in (("padding", padding), ("truncating", truncating)):
        if side not in ("pre", "post"):
            raise ValueError(f'{what} type "{side}" not understood: use "pre" or "post"')
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    rows = [np.asarray(s) for s in sequences]
    for i, row in enumerate(rows):
        if row.ndim == 0:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: "
                             f"{sequences[i]!r}")
    lengths = [len(r) for r in rows]
    if maxlen is None:
        maxlen = max(lengths, default=0)
    trailing = next((r.shape[1:] for r in rows if len(r)), ())
    is_text = np.issubdtype(np.dtype(dtype), np.str_) or np.dtype(dtype) == object
    if isinstance(value, str) and not is_text:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type "
                         f"{type(value)}; use dtype=object for text")
    out = np.full((len(rows), maxlen, *trailing), value, dtype=dtype)
    for i, row in enumerate(rows):
        if not len(row) or not maxlen:
            continue
        kept = row[-maxlen:] if truncating == "pre" else row[:maxlen]
        if kept.shape[1:] != trailing:
            raise ValueError(f"sequence {i} has element shape {kept.shape[1:]}, unlike the "
                             f"others' {trailing}")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, -len(kept):] = kept
    return out
