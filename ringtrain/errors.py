"""The one error hierarchy of ringtrain: collective, launcher, config and TF1-style graph errors."""


class RingtrainError(Exception):
    """Base class of every error ringtrain raises on purpose."""


# --- distribution ----------------------------------------------------------------------------

class CommError(RingtrainError, RuntimeError):
    """A collective or the engine under it (MPI, NCCL) failed.

    Also a RuntimeError, as Horovod's collective errors are, so ``except RuntimeError`` in a
    ported script catches it."""


class CollectiveMismatch(CommError):
    """Ranks broke the collective contract (call order, shape, dtype, op or root differ).

    Raised on every rank, with a message naming what differed and on which ranks.
    ``departed``: the ranks whose program had ended (their shutdown met this collective).
    """

    departed: tuple[int, ...] = ()


class WorkerFailure(CommError):
    """Another worker died or stopped answering."""


class ReplicasDiverged(RingtrainError):
    """The replicas' parameters differ (raised on every rank, with the same message naming the
    first differing tensor, the ranks and the largest difference)."""


class ConfigError(RingtrainError, ValueError):
    """A malformed cluster configuration or environment variable; the message names the field."""


class NotInitializedError(RingtrainError):
    """A process-group function was used before ``ringtrain.init()``."""


# --- TensorFlow-1-style errors (``tf.errors``) -------------------------------------------------

class OpError(RingtrainError):
    """An error while running an operation in a Session (TensorFlow's ``tf.errors.OpError``)."""

    def __init__(self, node_def=None, op=None, message=""):
        # TF's signature is (node_def, op, message); accept a lone message too.
        if message == "" and op is None and isinstance(node_def, str):
            node_def, message = None, node_def
        super().__init__(message)
        self.node_def = node_def
        self.op = op
        self.message = message


class InvalidArgumentError(OpError, ValueError):
    """An op received an invalid argument (bad feed, bad shape)."""


class FailedPreconditionError(OpError):
    """The graph's state does not allow the op (e.g. reading an uninitialized variable)."""


class OutOfRangeError(OpError):
    """An iterator or queue is exhausted."""


class NotFoundError(OpError):
    """A file or a named object does not exist."""


class DataLossError(OpError):
    """A file is damaged: a checkpoint, index or backup that cannot be read back."""


class UnimplementedError(OpError):
    """The operation is not implemented or not supported."""


class UnsupportedFeatureError(UnimplementedError, AttributeError):
    """A TensorFlow API that ringtrain does not provide; the message names the alternative.

    Also an AttributeError, so feature checks such as ``hasattr(tf, "estimator")`` stay False.
    """
