"""How a strategy all-reduces: TF's cross_device_ops objects and CommunicationOptions."""

from __future__ import annotations

import enum

_ALGORITHMS = ("auto", "ring", "native")


def _check_bucket_bytes(bucket_bytes: int | None, what: str) -> int | None:
    if bucket_bytes is None:
        return None
    if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int):
        raise TypeError(f"{what} must be an int number of bytes or None, "
                        f"got {type(bucket_bytes).__name__}")
    if bucket_bytes < 0:
        raise ValueError(f"{what} must be >= 0 (0 or None: the RINGTRAIN_BUCKET_BYTES "
                         f"default), got {bucket_bytes}")
    return bucket_bytes or None


def _check_num_packs(num_packs: int) -> None:
    if not isinstance(num_packs, int) or num_packs < 0:
        raise ValueError(f"num_packs must be a non-negative int, got {num_packs!r}")


class CrossDeviceOps:
    """The all-reduce a strategy uses for gradients: an algorithm and a bucket size.

    ``algorithm`` is ``"ring"`` (ringtrain's own ring all-reduce), ``"native"`` (the engine's
    MPI_Allreduce / ncclAllReduce) or ``"auto"`` (picked by message size). ``bucket_bytes`` is
    the size of one fusion bucket; ``None`` uses ``RINGTRAIN_BUCKET_BYTES``.
    """

    def __init__(self, algorithm: str = "auto", bucket_bytes: int | None = None):
        if algorithm not in _ALGORITHMS:
            raise ValueError(f"all-reduce algorithm must be one of {_ALGORITHMS}, "
                             f"got {algorithm!r}")
        self.algorithm = algorithm
        self.bucket_bytes = _check_bucket_bytes(bucket_bytes, "bucket_bytes")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(algorithm={self.algorithm!r}, "
                f"bucket_bytes={self.bucket_bytes!r})")

    def __eq__(self, other) -> bool:
        return (isinstance(other, CrossDeviceOps) and self.algorithm == other.algorithm
                and self.bucket_bytes == other.bucket_bytes)

    def __hash__(self) -> int:
        return hash((self.algorithm, self.bucket_bytes))


class RingAllReduce(CrossDeviceOps):
    """ringtrain's bandwidth-optimal ring all-reduce (reduce-scatter then all-gather)."""

    def __init__(self, bucket_bytes: int | None = None):
        super().__init__("ring", bucket_bytes)


class NativeAllReduce(CrossDeviceOps):
    """The engine's own all-reduce (MPI_Allreduce, ncclAllReduce)."""

    def __init__(self, bucket_bytes: int | None = None):
        super().__init__("native", bucket_bytes)


class NcclAllReduce(NativeAllReduce):
    """TensorFlow's name for the engine's all-reduce; ``num_packs`` is accepted and ignored
    (packing is done by fusion buckets)."""

    def __init__(self, num_packs: int = 1):
        _check_num_packs(num_packs)
        super().__init__()


class HierarchicalCopyAllReduce(RingAllReduce):
    """TensorFlow's name for a copy-based all-reduce; here the ring all-reduce."""

    def __init__(self, num_packs: int = 1):
        _check_num_packs(num_packs)
        super().__init__()


class CommunicationImplementation(enum.Enum):
    """``tf.distribute.experimental.CommunicationImplementation``: which all-reduce to use."""

    AUTO = "AUTO"
    RING = "RING"
    NCCL = "NCCL"       # TensorFlow's name for the engine's own all-reduce
    NATIVE = "NATIVE"


_IMPLEMENTATION_ALGORITHM = {
    CommunicationImplementation.AUTO: "auto",
    CommunicationImplementation.RING: "ring",
    CommunicationImplementation.NCCL: "native",
    CommunicationImplementation.NATIVE: "native",
}


class CommunicationOptions:
    """``tf.distribute.experimental.CommunicationOptions``.

    ``bytes_per_pack`` is the fusion-bucket size (0: the default), ``implementation`` picks the
    all-reduce, ``timeout_seconds`` is accepted for compatibility (worker failures are detected
    after ``RINGTRAIN_TIMEOUT`` seconds).
    """

    def __init__(self, bytes_per_pack: int = 0, timeout_seconds: float | None = None,
                 implementation: CommunicationImplementation | str
                 = CommunicationImplementation.AUTO):
        self.bytes_per_pack = _check_bucket_bytes(bytes_per_pack, "bytes_per_pack") or 0
        if timeout_seconds is not None and not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive or None, got {timeout_seconds!r}")
        self.timeout_seconds = timeout_seconds
        if isinstance(implementation, str):
            try:
                implementation = CommunicationImplementation[implementation.upper()]
            except KeyError:
                names = [m.name for m in CommunicationImplementation]
                raise ValueError(f"implementation must be one of {names}, "
                                 f"got {implementation!r}") from None
        if not isinstance(implementation, CommunicationImplementation):
            raise TypeError("implementation must be a CommunicationImplementation, "
                            f"got {type(implementation).__name__}")
        self.implementation = implementation

    def to_cross_device_ops(self) -> CrossDeviceOps:
        return CrossDeviceOps(_IMPLEMENTATION_ALGORITHM[self.implementation],
                              self.bytes_per_pack or None)

    def __repr__(self) -> str:
        return (f"CommunicationOptions(bytes_per_pack={self.bytes_per_pack}, "
                f"timeout_seconds={self.timeout_seconds}, "
                f"implementation={self.implementation})")


def resolve(cross_device_ops, communication_options) -> CrossDeviceOps:
    """One CrossDeviceOps from a strategy's arguments (either may be given, not both)."""
    if cross_device_ops is not None and communication_options is not None:
        raise ValueError("pass either cross_device_ops or communication_options, not both")
    if communication_options is not None:
        if not isinstance(communication_options, CommunicationOptions):
            raise TypeError("communication_options must be a "
                            "tf.distribute.experimental.CommunicationOptions, got "
                            f"{type(communication_options).__name__}")
        return communication_options.to_cross_device_ops()
    if cross_device_ops is None:
        return CrossDeviceOps()
    if isinstance(cross_device_ops, str):
        return CrossDeviceOps(cross_device_ops.lower())
    if not isinstance(cross_device_ops, CrossDeviceOps):
        raise TypeError("cross_device_ops must be tf.distribute.RingAllReduce(...), "
                        "NativeAllReduce(...), 'ring', 'native' or None, got "
                        f"{type(cross_device_ops).__name__}")
    return cross_device_ops
