"""The cluster description (RINGTRAIN_CONFIG / TF_CONFIG) as the library sees it.

The parser itself lives in the launcher package (``ringrun.cluster_config``, stdlib only) so that
``ringrun`` can reject a malformed config before starting anything; this module re-exports it and
turns its errors into ``ringtrain.errors.ConfigError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ringrun.cluster_config import ClusterConfig, ClusterConfigError, Task, parse_config
from ringrun.cluster_config import from_environ as _from_environ

from ..errors import ConfigError

__all__ = ["ClusterConfig", "Task", "cluster_config", "parse_config"]


def cluster_config(environ: Mapping[str, str] | None = None) -> ClusterConfig | None:
    """This process's cluster from ``RINGTRAIN_CONFIG`` (else ``TF_CONFIG``), or None.

    Raises ``ConfigError`` naming the field when the description is malformed.
    """
    try:
        return _from_environ(environ)
    except ClusterConfigError as exc:
        raise ConfigError(str(exc)) from None
