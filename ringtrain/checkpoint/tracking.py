"""What a checkpoint can track, and how each kind of object gives and takes its state.

Objects of the library say it themselves through the checkpoint protocol (methods, all
optional in pairs):

- ``_checkpoint_state()`` / ``_restore_checkpoint_state(state)``: what replicas share
  (variables, a data position); the chief's copy is everyone's.
- ``_checkpoint_worker_state()`` / ``_restore_checkpoint_worker_state(state)``: what differs
  per worker (random streams); every worker's copy is gathered and each gets its own back.
- ``_checkpoint_unshared_keys()`` (optional): keys of ``_checkpoint_state()`` that workers may
  hold differently (a Session's local variables); saved as the chief's, but left out of the
  replica comparison that runs before every save.

State is arrays, numbers, strings and dicts/lists of them. Graph objects (Session, Variable,
optimizers) read the values from the default session, which ``Checkpoint`` sets to the
``session=`` it was given. Objects of other libraries (NumPy, ``random``) and anything with
``get_weights``/``set_weights`` are handled here by adapters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np


class Adapter:
    """How to read and restore one kind of object (either pair may be None)."""

    def __init__(self, name: str, accepts: Callable[[Any], bool],
                 state: Callable[[Any], Any] | None, restore: Callable[[Any, Any], None] | None,
                 worker_state: Callable[[Any], Any] | None = None,
                 restore_worker: Callable[[Any, Any], None] | None = None):
        self.name, self.accepts = name, accepts
        self.state, self.restore = state, restore
        self.worker_state, self.restore_worker = worker_state, restore_worker


def _protocol_adapter(obj: Any) -> Adapter:
    shared = hasattr(obj, "_checkpoint_state")
    per_worker = hasattr(obj, "_checkpoint_worker_state")
    return Adapter(
        type(obj).__name__, lambda o: True,
        (lambda o: o._checkpoint_state()) if shared else None,
        (lambda o, v: o._restore_checkpoint_state(v)) if shared else None,
        (lambda o: o._checkpoint_worker_state()) if per_worker else None,
        (lambda o, v: o._restore_checkpoint_worker_state(v)) if per_worker else None)


def _has_protocol(obj: Any) -> bool:
    return hasattr(obj, "_checkpoint_state") or hasattr(obj, "_checkpoint_worker_state")


def _restore_array(obj: np.ndarray, value: Any) -> None:
    value = np.asarray(value)
    if value.shape != obj.shape:
        raise ValueError(f"checkpoint holds shape {value.shape}, the array has {obj.shape}")
    obj[...] = value


def _restore_weights(obj: Any, value: Any) -> None:
    obj.set_weights([np.asarray(v) for v in value])


def _restore_python_random(obj: random.Random, value: Any) -> None:
    version, internal, gauss = value
    obj.setstate((version, tuple(internal), gauss))


def generator_state(gen: np.random.Generator) -> dict:
    """A NumPy Generator's state as checkpoint state."""
    return {"bit_generator": type(gen.bit_generator).__name__, "state": gen.bit_generator.state}


def restore_generator(gen: np.random.Generator, value: Any) -> None:
    """Put a ``generator_state`` back into ``gen`` (same bit generator)."""
    if value["bit_generator"] != type(gen.bit_generator).__name__:
        raise ValueError(f"checkpoint holds a {value['bit_generator']} generator state, the "
                         f"generator uses {type(gen.bit_generator).__name__}")
    gen.bit_generator.state = value["state"]


_ADAPTERS: list[Adapter] = [
    Adapter("numpy Generator", lambda o: isinstance(o, np.random.Generator), None, None,
            generator_state, restore_generator),
    Adapter("numpy RandomState", lambda o: isinstance(o, np.random.RandomState), None, None,
            lambda o: o.get_state(legacy=False), lambda o, v: o.set_state(v)),
    Adapter("random.Random", lambda o: isinstance(o, random.Random), None, None,
            lambda o: o.getstate(), _restore_python_random),
    Adapter("array", lambda o: isinstance(o, np.ndarray),
            lambda o: np.array(o, copy=True), _restore_array),
    Adapter("weights", lambda o: hasattr(o, "get_weights") and hasattr(o, "set_weights"),
            lambda o: [np.asarray(w) for w in o.get_weights()], _restore_weights),
]


def register_adapter(accepts: Callable[[Any], bool], state: Callable[[Any], Any] | None,
                     restore: Callable[[Any, Any], None] | None, name: str = "custom",
                     worker_state: Callable[[Any], Any] | None = None,
                     restore_worker: Callable[[Any, Any], None] | None = None) -> None:
    """Teach checkpoints a new kind of object: ``state(obj)`` returns arrays/numbers/dicts/lists
    (the same on every replica), ``restore(obj, state)`` puts them back; ``worker_state`` /
    ``restore_worker`` do the same for state that differs per worker. Objects may instead
    implement the checkpoint protocol (see the module docstring)."""
    _ADAPTERS.insert(0, Adapter(name, accepts, state, restore, worker_state, restore_worker))


def adapter_for(obj: Any, name: str) -> Adapter:
    """How to checkpoint ``obj`` (tracked as ``name``); TypeError when nothing knows how."""
    if _has_protocol(obj):
        return _protocol_adapter(obj)
    for adapter in _ADAPTERS:
        if adapter.accepts(obj):
            return adapter
    raise TypeError(f"cannot checkpoint {name}={type(obj).__name__}: track variables, models "
                    "and optimizers (get_weights/set_weights), NumPy arrays, random generators, "
                    "iterators of strategy.experimental_distribute_dataset, or objects with "
                    "_checkpoint_state()/_restore_checkpoint_state()")


def guarded(adapter: Adapter, name: str, fn: Callable[[Any, Any], None], obj: Any,
            value: Any) -> None:
    """``fn(obj, value)``, its errors turned into one ValueError naming what failed."""
    try:
        fn(obj, value)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"cannot restore {name} ({adapter.name}) from the checkpoint: "
                         f"{exc}") from exc
