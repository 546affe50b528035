"""Forming the world: who the workers are, which one is rank 0, how machines join one job.

- ``process_group``: ``init()`` reads the launcher's environment (ringrun, mpiexec, srun, none)
  and builds the communicator; ``rank()``, ``size()``, ``comm()``... answer from it.
- ``join``: one MPI world across separately started groups (a ``RINGTRAIN_CONFIG``/``TF_CONFIG``
  cluster, torchrun's variables), through the launcher's rendezvous.
- ``cluster``: the cluster description (``ringrun.cluster_config``) with library errors.

Nothing here is a collective: those are in ``ringtrain.comm``.
"""

from .process_group import (
    comm,
    init,
    is_chief,
    is_initialized,
    local_rank,
    local_size,
    rank,
    shutdown,
    size,
)

__all__ = ["comm", "init", "is_chief", "is_initialized", "local_rank", "local_size", "rank",
           "shutdown", "size"]
