"""Every RINGTRAIN_* environment variable: its default, parser and meaning (standard library only).

The one table both sides read: ringrun (``ringrun --help-env``, cluster mode) and the library
(``ringtrain.env``, which turns :class:`EnvError` into ``ringtrain.errors.ConfigError``). Add a
variable by adding one ``_var(...)`` line below and read it with ``get(name)``. Values
are read at call time, so tests and launchers can set them late; a blank value counts as unset.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class EnvError(ValueError):
    """A RINGTRAIN_* variable holds a value its parser refuses; the message names it."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: Any
    parse: Callable[[str], Any]
    doc: str


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected one of 1/0/true/false/yes/no/on/off, got {text!r}")


def _str(text: str) -> str:
    return text


def _float(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "greater than 0"
        raise ValueError(f"must be a number of seconds {bound}")
    return value


def _seconds(text: str) -> float:
    return _float(text, allow_zero=False)


def _seconds_or_off(text: str) -> float:
    return _float(text, allow_zero=True)


def _count(text: str) -> int:
    # int() accepts '1_000' and digits of every script; a count is plain ASCII digits.
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or len(stripped) > 18:
        raise ValueError("must be a whole number (ASCII digits, 0 or more)")
    return int(stripped)


VARIABLES: dict[str, Variable] = {}


def _var(name: str, default: Any, parse: Callable[[str], Any], doc: str) -> None:
    VARIABLES[name] = Variable(name, default, parse, doc)


# --- cluster and launch ------------------------------------------------------------------------
_var("RINGTRAIN_CONFIG", None, _str,
     "TF_CONFIG-style JSON describing a multi-machine cluster (falls back to TF_CONFIG).")
_var("RINGTRAIN_SECRET", None, _str,
     "Shared secret a worker must present to join the chief; ringrun generates one per job.")
_var("RINGTRAIN_LAUNCHER", None, _str,
     "Set by ringrun in every worker ('ringrun'); tells init() who started the process.")
_var("RINGTRAIN_BACKEND", "auto", _str,
     "Communicator backend: auto (mpi when launched with several workers, else local), "
     "local, mpi or nccl.")
_var("RINGTRAIN_JOIN_TIMEOUT", 300.0, _seconds,
     "Seconds the machines of a cluster may take to start and join the chief before the job "
     "fails naming the missing ones.")
_var("RINGTRAIN_JOIN", None, _str,
     "Set by ringrun in cluster mode: host:port of the chief's rendezvous (internal).")
_var("RINGTRAIN_GROUP", 0, _count,
     "Set by ringrun in cluster mode: this machine's index in rank order (internal).")
_var("RINGTRAIN_RANK_OFFSET", 0, _count,
     "Set by ringrun in cluster mode: global rank of this machine's first worker (internal).")
_var("RINGTRAIN_WORLD_SIZE", None, _count,
     "Set by ringrun in cluster mode: workers on all machines together (internal).")
_var("RINGTRAIN_REEXEC", None, _str,
     "Set when init() re-executed a launcher-less process under 'mpiexec -n 1' (internal).")
# --- collectives -------------------------------------------------------------------------------
_var("RINGTRAIN_ALGORITHM", "auto", _str,
     "Default all-reduce algorithm: auto (picked by message size), ring or native.")
_var("RINGTRAIN_CHECK_COLLECTIVES", True, _bool,
     "Check that every rank calls the same collective with the same shape/dtype/op "
     "(raises CollectiveMismatch instead of hanging). Default on.")
_var("RINGTRAIN_TIMEOUT", 30.0, _seconds,
     "Seconds after which a worker (or, in a cluster, a machine) that stopped answering is "
     "declared dead (job fails).")
_var("RINGTRAIN_CHECK_REPLICAS_EVERY", 1000, _count,
     "Every this many training steps, compare a hash of every parameter across the replicas "
     "and stop with ReplicasDiverged naming the first differing tensor (0: never).")
_var("RINGTRAIN_STALL_WARNING", 10.0, _seconds_or_off,
     "Seconds a collective may wait for other ranks before a warning names the missing ones "
     "(0: no warning and no watchdog).")
_var("RINGTRAIN_REPORT_EVERY", 100, _count,
     "Every this many training steps (and when the loop ends) the chief prints one line naming "
     "the straggler rank, how late it arrives and in which phase (0: no report, no timing).")
_var("RINGTRAIN_TIMELINE", None, _str,
     "Write a Chrome/Perfetto trace of the training steps here (each rank writes PATH.rank<r>; "
     "ringrun merges them into PATH when the job ends), like HOROVOD_TIMELINE.")
_var("RINGTRAIN_BUCKET_BYTES", 16 * 1024 * 1024, _count,
     "Bytes per all-reduce bucket, for graph models (allreduce_many, MirroredStrategy) and "
     "PyTorch models alike (0: no fusion). Smaller buckets start sooner during backward, "
     "larger ones send fewer messages; the default is measured by benchmarks/bucket_bytes.py. "
     "ringtrain.torch also honours Horovod's HOROVOD_FUSION_THRESHOLD when this is unset.")
_var("RINGTRAIN_OVERLAP", "auto", _str,
     "Start all-reducing gradient buckets of PyTorch models while backward still runs: auto "
     "(when the machine has a core per worker to spare for communication), 1 or 0 (all "
     "buckets at the end of backward).")
_var("RINGTRAIN_NO_CEXT", False, _bool,
     "Do not load the optional C extension (use the NumPy reduction kernels).")
_var("RINGTRAIN_CROSS_MEMORY", True, _bool,
     "On one machine, large all-reduces (from the last-level cache / 4 per worker there) read "
     "the other workers' inputs and write their results directly (process_vm_readv/writev: "
     "one copy, where the shared-memory ring takes two). Where the system refuses that (Yama "
     "ptrace_scope 2 or 3, a seccomp filter) the ring is used; under ptrace_scope 1 each "
     "worker lets this user's processes access its memory. 0: always the ring.")
# --- devices -----------------------------------------------------------------------------------
_var("RINGTRAIN_DEVICE", None, _str,
     "This worker's device: cpu, cuda (GPU local_rank % count, the default when a GPU is "
     "visible) or cuda:N.")


def get(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The parsed value of ``name`` in ``environ`` (default: this process's environment), or
    its default when unset or blank; a value the parser refuses raises :class:`EnvError`."""
    try:
        var = VARIABLES[name]
    except KeyError:
        raise KeyError(f"{name} is not a ringtrain environment variable; add it to "
                       f"launcher/ringrun/env.py") from None
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return var.default
    try:
        return var.parse(raw)
    except ValueError as exc:
        raise EnvError(f"environment variable {name}={raw[:80]!r} is invalid: {exc}. "
                       f"{var.doc}") from None


def describe() -> str:
    """A table of every variable, its default and meaning (``ringrun --help-env``)."""
    rows = [f"{v.name:32} default={v.default!r}\n    {v.doc}" for v in VARIABLES.values()]
    return "\n".join(rows)
