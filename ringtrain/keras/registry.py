"""Keras's ``get(identifier)`` for activations, initializers, losses, metrics and optimizers.

One resolver: a registered name (case-insensitive), an instance of the family's class (as is),
the class itself (instantiated), or another object the family adapts (a plain function becomes
a Loss, say).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def resolve(identifier: Any, what: str, by_name: dict[str, Any], *, base: type | None = None,
            make: Callable[[Any, str], Any] = lambda entry, name: entry(),
            adapt: Callable[[Any], Any] = lambda obj: obj if callable(obj) else None) -> Any:
    """The object ``identifier`` names, for the family ``what`` ('loss', 'optimizer'...).

    ``make(entry, name)`` turns a registered entry into the object (default: call it);
    ``adapt(obj)`` takes anything else, returning None when it does not fit the family.
    """
    if base is not None and isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str):
        entry = by_name.get(identifier.lower())
        if entry is None:
            raise ValueError(f"unknown {what} {identifier!r}; use one of {sorted(by_name)}")
        return make(entry, identifier)
    if base is not None and isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    adapted = adapt(identifier)
    if adapted is None:
        raise TypeError(f"a{'n' if what[0] in 'aeiou' else ''} {what} must be a name, "
                        f"a{'n' if what[0] in 'aeiou' else ''} {what} object or a function, "
                        f"got {identifier!r}")
    return adapted


# --- configs: the arguments an object was made with, to make it again (model files) ----------

class Configurable:
    """Remembers the arguments of its constructor call, so ``config_of`` can describe it."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        remember_arguments(obj, args, kwargs)
        return obj


def remember_arguments(obj: Any, args: tuple, kwargs: dict) -> None:
    object.__setattr__(obj, "_init_arguments", (args, dict(kwargs)))


def config_of(obj: Any) -> dict:
    """The keyword arguments that make ``obj`` again: its constructor call's arguments, bound
    by name (``type(obj)(**config_of(obj))``)."""
    args, kwargs = getattr(obj, "_init_arguments", ((), {}))
    signature = inspect.signature(type(obj).__init__)
    bound = signature.bind_partial(None, *args, **kwargs).arguments
    config: dict = {}
    for name, value in bound.items():
        kind = signature.parameters[name].kind
        if name == "self" or kind == inspect.Parameter.VAR_POSITIONAL:
            continue
        if kind == inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        else:
            config[name] = value
    return config
