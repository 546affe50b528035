"""The library's reader of the RINGTRAIN_* table in ``ringrun.env`` (one table for launcher and
library); a value the table refuses raises :class:`~ringtrain.errors.ConfigError` here."""

from __future__ import annotations

from typing import Any

from ringrun import env as _table
from ringrun.env import VARIABLES, describe

from .errors import ConfigError

__all__ = ["VARIABLES", "describe", "get"]


def get(name: str) -> Any:
    """The parsed value of ``name`` from the environment, or its default when unset."""
    try:
        return _table.get(name)
    except _table.EnvError as exc:
        raise ConfigError(str(exc)) from None
