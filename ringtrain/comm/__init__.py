"""Collectives: the Communicator interface and its backends (local, mpi, nccl).

``ringtrain.init()`` builds the communicator; ``ringtrain.comm()`` returns it. Modules here:

- ``base``: the interface (``Communicator``, ``Handle``, ``ReduceOp``).
- ``common``: argument and contract checks, async ordering, fusion buckets (all backends).
- ``local`` (a world of one) and ``mpi`` (mpi4py: ``algorithm="native"`` is MPI's own
  collective, ``"ring"`` our ring, ``"auto"`` picks by size; ``MPICommunicator(intracomm)``).
- ``ring``: the ring schedule as pure functions; ``contract``: the mismatch descriptors;
  ``executor``: the communication thread; ``kernels``: reduction loops, C or NumPy
  (``from ringtrain.comm import kernels; kernels.BACKEND``).
- ``replicas``: the replica guard (a hash of every parameter compared across ranks).
"""

from .base import Communicator, Handle, ReduceOp

__all__ = ["Communicator", "Handle", "ReduceOp"]
