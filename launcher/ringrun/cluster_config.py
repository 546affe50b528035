"""Parse and validate a TF_CONFIG-style cluster description (stdlib only, shared with the library).

The schema is TensorFlow's::

    {"cluster": {"chief": ["a:2222"], "worker": ["b:2222", "c:2222"], "evaluator": ["d:2222"]},
     "task": {"type": "worker", "index": 1}}

Training machines, in rank order, are the chief (if any) and then worker 0..n; each runs the same
``ringrun -np K train.py`` and its workers get global ranks ``offset + local_rank``, where
``offset`` is the sum of K over the machines before it (K may differ per machine: it is sent to
the chief when the machine joins). The chief machine is the ``chief`` task, or worker 0 when the
cluster has none. An evaluator is not part of the training job: it runs its program on its own.

Every rule is checked here, before any network traffic, and a violation raises
``ClusterConfigError`` whose message names the variable and the field.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .protocol import MAX_DEPTH, HugeInt, json_nesting, loads

TASK_TYPES = ("chief", "worker", "evaluator")
_TOP_LEVEL_KEYS = ("cluster", "task", "environment", "rpc_layer")
_TASK_KEYS = ("type", "index")
_PS_MESSAGE = ("parameter servers are not supported: ringtrain trains synchronously with "
               "all-reduce; list the machines as 'worker' (and optionally one 'chief')")
#: One DNS label (RFC 1123; '_' tolerated, as some clusters use it); a name is up to 253 chars.
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")



class ClusterConfigError(ValueError):
    """A malformed cluster configuration; the message names the variable and the field."""


@dataclass(frozen=True)
class Task:
    """One task of the cluster: its type, index within that type, and ``host:port`` address."""

    type: str
    index: int
    address: str

    @property
    def name(self) -> str:
        return f"{self.type}:{self.index}"

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]


@dataclass(frozen=True)
class ClusterConfig:
    """A validated cluster description and this process's task in it."""

    source: str                               # the variable it came from
    cluster: dict[str, tuple[str, ...]]       # job name -> addresses
    task_type: str
    task_index: int

    @property
    def task(self) -> Task:
        return Task(self.task_type, self.task_index, self.cluster[self.task_type][self.task_index])

    @property
    def machines(self) -> tuple[Task, ...]:
        """The training machines in rank order: the chief (if any), then worker 0..n."""
        out = [Task("chief", i, a) for i, a in enumerate(self.cluster.get("chief", ()))]
        out += [Task("worker", i, a) for i, a in enumerate(self.cluster.get("worker", ()))]
        return tuple(out)

    @property
    def chief(self) -> Task:
        """The chief machine: the ``chief`` task, else worker 0."""
        return self.machines[0]

    @property
    def is_evaluator(self) -> bool:
        return self.task_type == "evaluator"

    @property
    def machine_index(self) -> int | None:
        """This machine's position in ``machines`` (None for an evaluator)."""
        for i, task in enumerate(self.machines):
            if (task.type, task.index) == (self.task_type, self.task_index):
                return i
        return None

    @property
    def is_chief_machine(self) -> bool:
        return self.machine_index == 0

    @property
    def num_machines(self) -> int:
        return len(self.machines)

    def to_json(self) -> str:
        return json.dumps({"cluster": {k: list(v) for k, v in self.cluster.items()},
                           "task": {"type": self.task_type, "index": self.task_index}})


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port), without validation messages."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_address(host: str, port: int) -> str:
    """(host, port) -> ``"host:port"``, or ``"[v6]:port"`` for an IPv6 host; see split_address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _valid_hostname(host: str) -> bool:
    """A DNS name or IPv4 address: labels of 1-63 characters, 253 in all, one trailing dot
    allowed (a fully qualified name)."""
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _check_address(source: str, where: str, address: object) -> str:
    if not isinstance(address, str):
        raise ClusterConfigError(f"{source}: {where} must be a 'host:port' string, "
                                 f"got {type(address).__name__} {address!r:.80}")
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ClusterConfigError(f"{source}: {where} {address!r:.80} is not 'host:port' "
                                 f"(e.g. 'node1.example.com:2222')")
    # isdigit() is true for '²' and other digits int() refuses: ports are ASCII digits.
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ClusterConfigError(f"{source}: {where} {address!r:.80} has port {port!r:.20}; "
                                 f"expected a number from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ClusterConfigError(f"{source}: {where} {address!r:.80}: {host:.80} is not an "
                                     f"IPv6 address") from None
    elif ":" in host:
        raise ClusterConfigError(f"{source}: {where} {address!r:.80}: write an IPv6 address in "
                                 f"brackets, e.g. '[{host:.80}]:{port}'")
    elif not _valid_hostname(host):
        raise ClusterConfigError(f"{source}: {where} {address!r:.80}: {host!r:.80} is not a "
                                 f"valid host name or IP address (labels of 1-63 letters, "
                                 f"digits and '-', 253 characters in all)")
    return address


def _load(text: str, source: str) -> dict:
    """The JSON object of ``text``; too deep, too long a number, or not JSON: an error."""
    too_deep = json_nesting(text)
    if too_deep is not None:
        depth, where = too_deep
        raise ClusterConfigError(f"{source}: {where:.120} nests {depth} levels deep; a cluster "
                                 f"description needs 3 (cluster -> task type -> addresses), at "
                                 f"most {MAX_DEPTH} are accepted")
    try:
        doc = loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterConfigError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} "
                                 f"column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise ClusterConfigError(f"{source} must be a JSON object with 'cluster' and 'task', "
                                 f"got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ClusterConfigError(f"{source}: unknown key {unknown[0]!r:.80}; expected "
                                 f"'cluster' and 'task'")
    return doc


def _parse_cluster(doc: dict, source: str) -> dict[str, tuple[str, ...]]:
    """``cluster``: known task types, each a non-empty list of distinct valid addresses."""
    if "cluster" not in doc:
        raise ClusterConfigError(f"{source}: cluster is missing; e.g. "
                                 f"{{\"cluster\": {{\"worker\": [\"a:2222\", \"b:2222\"]}}, ...}}")
    cluster_doc = doc["cluster"]
    if not isinstance(cluster_doc, dict):
        raise ClusterConfigError(f"{source}: cluster must be an object mapping task types to "
                                 f"address lists, got {type(cluster_doc).__name__}")
    cluster: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for job, addresses in cluster_doc.items():
        if job == "ps":
            raise ClusterConfigError(f"{source}: cluster.ps: {_PS_MESSAGE}")
        if job not in TASK_TYPES:
            hint = " (TensorFlow's old name for 'chief')" if job == "master" else ""
            raise ClusterConfigError(f"{source}: cluster.{job:.80}: unknown task type{hint}; "
                                     f"expected one of {', '.join(TASK_TYPES)}")
        if not isinstance(addresses, list):
            raise ClusterConfigError(f"{source}: cluster.{job} must be a list of 'host:port' "
                                     f"strings, got {type(addresses).__name__}")
        if not addresses:
            raise ClusterConfigError(f"{source}: cluster.{job} is empty; remove it or list at "
                                     f"least one 'host:port'")
        for i, address in enumerate(addresses):
            where = f"cluster.{job}[{i}]"
            _check_address(source, where, address)
            key = address.lower()
            if key in seen:
                raise ClusterConfigError(f"{source}: {where} {address!r} duplicates {seen[key]}; "
                                         f"every task needs its own host:port")
            seen[key] = where
        cluster[job] = tuple(addresses)
    for job in ("chief", "evaluator"):
        if len(cluster.get(job, ())) > 1:
            raise ClusterConfigError(f"{source}: cluster.{job} has {len(cluster[job])} entries; "
                                     f"at most one {job} is allowed")
    if not cluster.get("chief") and not cluster.get("worker"):
        raise ClusterConfigError(f"{source}: cluster has no 'chief' or 'worker' entries; the "
                                 f"training machines are listed under 'worker'")
    return cluster


def _parse_task(doc: dict, source: str, cluster: dict[str, tuple[str, ...]]) -> tuple[str, int]:
    """``task``: this process's type (one listed in ``cluster``) and index into its list."""
    if "task" not in doc:
        raise ClusterConfigError(f"{source}: task is missing; add "
                                 f"\"task\": {{\"type\": \"worker\", \"index\": N}} naming this "
                                 f"machine")
    task = doc["task"]
    if not isinstance(task, dict):
        raise ClusterConfigError(f"{source}: task must be an object like "
                                 f"{{\"type\": \"worker\", \"index\": 0}}, got "
                                 f"{type(task).__name__}")
    unknown = sorted(set(task) - set(_TASK_KEYS))
    if unknown:
        raise ClusterConfigError(f"{source}: task.{unknown[0]:.80} is not a known field; "
                                 f"expected 'type' and 'index'")
    if "type" not in task:
        raise ClusterConfigError(f"{source}: task.type is missing; expected one of "
                                 f"{', '.join(TASK_TYPES)}")
    task_type = task["type"]
    if task_type == "ps":
        raise ClusterConfigError(f"{source}: task.type 'ps': {_PS_MESSAGE}")
    if task_type not in TASK_TYPES:
        raise ClusterConfigError(f"{source}: task.type {task_type!r:.80} is not one of "
                                 f"{', '.join(TASK_TYPES)}")
    if task_type not in cluster:
        raise ClusterConfigError(f"{source}: task.type {task_type!r} has no entries in cluster; "
                                 f"add cluster.{task_type} or fix task.type")
    index = task.get("index", 0)
    count = len(cluster[task_type])
    if isinstance(index, bool) or not isinstance(index, int | HugeInt):
        raise ClusterConfigError(f"{source}: task.index must be an integer, got {index!r:.80}")
    if isinstance(index, HugeInt) or not 0 <= index < count:
        raise ClusterConfigError(f"{source}: task.index {index} is out of range: "
                                 f"cluster.{task_type} has {count} "
                                 f"{'entry' if count == 1 else 'entries'}")
    return task_type, index


def parse_config(text: str | None, source: str = "RINGTRAIN_CONFIG") -> ClusterConfig | None:
    """Validate ``text`` (the JSON of ``source``); None when it is unset, empty or ``{}``."""
    if text is None or not text.strip():
        return None
    doc = _load(text, source)
    if not doc:
        return None
    cluster = _parse_cluster(doc, source)
    task_type, index = _parse_task(doc, source, cluster)
    return ClusterConfig(source, cluster, task_type, index)


def from_environ(environ: Mapping[str, str] | None = None) -> ClusterConfig | None:
    """The cluster from ``RINGTRAIN_CONFIG``, else ``TF_CONFIG``; None when neither describes one.

    ``RINGTRAIN_CONFIG`` wins even when it is empty, so ``RINGTRAIN_CONFIG=`` switches off a
    ``TF_CONFIG`` that was meant for TensorFlow.
    """
    environ = os.environ if environ is None else environ
    if "RINGTRAIN_CONFIG" in environ:
        return parse_config(environ["RINGTRAIN_CONFIG"], "RINGTRAIN_CONFIG")
    return parse_config(environ.get("TF_CONFIG"), "TF_CONFIG")
