"""ringrun's command line: parse arguments, find mpiexec, build the plan, run the supervisor."""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence

from . import __version__
from .doctor import DOCTOR_JOIN_TIMEOUT, probe_hosts
from .plan import (
    ClusterSeat,
    Host,
    Options,
    Plan,
    PlanError,
    find_local_mpiexec,
    find_mpiexec,
    plan,
)
from .protocol import TOKEN_SIZE

USAGE = ("ringrun -np N [-H host:slots,...] [--hostfile F] [--timeout S] [--max-restarts N] "
         "[--no-prefix] [--timestamp] [--output-filename DIR] PROG [ARGS...]\n       "
         "ringrun -np N [-H ...] --doctor")
DESCRIPTION = """\
Start N workers of a ringtrain program and supervise them.

PROG ending in .py runs with this Python; anything else is a command run as given
(ringrun -np 4 python -m mypkg.train --lr 0.1). One worker runs directly; several run
through MPICH's mpiexec. Each output line is prefixed with its rank ("[1] ..."). When a
worker exits non-zero or dies by a signal, the others are stopped and ringrun exits with
that worker's code (128+N for signal N); Ctrl-C or SIGTERM stops all workers.
With RINGTRAIN_TIMELINE=PATH the ranks' traces are merged into PATH at the end;
ringrun --merge-timeline OUT IN... merges trace files by hand.
"""
EPILOG = """\
exit codes: the first failing worker's code; 124 after --timeout; 128+N after signal N;
2 for bad arguments; 1 when the job cannot be started (e.g. no mpiexec).
"""
_VALUE_OPTIONS = {"-np", "-n", "--np", "-H", "--hosts", "--hostfile", "--timeout",
                  "--max-restarts", "--output-filename"}
#: seconds before restart k (1-based) of --max-restarts: 1, 2, 4, ... at most 30
RESTART_BACKOFF = (1.0, 30.0)
#: Seconds after which ringrun --doctor stops a check that hangs (exit code 124).
DOCTOR_TIMEOUT = 60.0
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"ringrun: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of workers, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1 worker, got {value}")
    return value


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number of restarts, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, e.g. 600 or 1.5; got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def parse_host(text: str, where: str = "-H") -> Host:
    """``name`` (one slot) or ``name:slots``."""
    name, sep, slots = text.strip().rpartition(":")
    if not sep:
        name, slots = slots, "1"
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{where}: {text!r} is not host or host:slots (e.g. node1:4)")
    if not slots.isdigit() or int(slots) < 1:
        raise ValueError(f"{where}: {text!r} needs a positive number of slots "
                         f"(e.g. {name}:4)")
    return Host(name, int(slots))


def parse_hosts(text: str) -> tuple[Host, ...]:
    """``-H a:2,b:2`` -> hosts in order."""
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("-H: expected host:slots[,host:slots...], e.g. -H node1:4,node2:4")
    return tuple(parse_host(item) for item in items)


def parse_hostfile(text: str, name: str) -> tuple[Host, ...]:
    """One host per line: ``host``, ``host:slots`` or ``host slots=N``; ``#`` starts a comment."""
    hosts = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{name}:{lineno}"
        fields = line.split()
        if len(fields) == 2 and fields[1].startswith("slots="):
            hosts.append(parse_host(f"{fields[0]}:{fields[1][len('slots='):]}", where))
        elif len(fields) == 1:
            hosts.append(parse_host(fields[0], where))
        else:
            raise ValueError(f"{where}: {raw.strip()!r} is not 'host', 'host:slots' or "
                             f"'host slots=N'")
    if not hosts:
        raise ValueError(f"--hostfile {name} lists no hosts")
    return tuple(hosts)


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """ringrun's own options, and the command (from the first word that is not an option).

    Everything after PROG belongs to the program, so ``ringrun -np 2 train.py --timeout 3``
    passes ``--timeout 3`` to ``train.py``. ``--`` ends ringrun's options explicitly.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return list(argv[:i]), list(argv[i + 1:])
        if not arg.startswith("-") or arg == "-":
            break
        i += 2 if arg in _VALUE_OPTIONS else 1
    return list(argv[:i]), list(argv[i:])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ringrun", usage=USAGE, description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-np", "-n", "--np", dest="np", type=_positive_int, metavar="N",
                        help="number of workers (default: the slots of -H/--hostfile, else "
                             "one per visible GPU, else 1)")
    parser.add_argument("-H", "--hosts", metavar="HOST:SLOTS,...",
                        help="machines and worker slots, e.g. node1:4,node2:4 (MPI over ssh)")
    parser.add_argument("--hostfile", metavar="F",
                        help="file with one 'host', 'host:slots' or 'host slots=N' per line")
    parser.add_argument("--timeout", type=_seconds, metavar="S",
                        help="stop the job after S seconds (exit code 124)")
    parser.add_argument("--max-restarts", type=_count, default=0, metavar="N",
                        help="restart the whole job up to N times when a worker fails "
                             "(torchrun's flag; with a short backoff)")
    parser.add_argument("--no-prefix", action="store_true",
                        help="do not prefix output lines with the rank")
    parser.add_argument("--timestamp", "--prefix-output-with-timestamp", action="store_true",
                        help="prefix output lines with the time as well")
    parser.add_argument("--output-filename", metavar="DIR",
                        help="also write each rank's output to DIR/rank.N/stdout and "
                             "DIR/rank.N/stderr (Horovod's flag)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be started, start nothing")
    parser.add_argument("--doctor", action="store_true",
                        help="instead of a program, check the workers in a few seconds: MPI "
                             "starts everywhere, versions agree, shared memory works, the "
                             "bandwidth of every ring link (the slowest named)")
    parser.add_argument("--help-env", action="store_true",
                        help="list the RINGTRAIN_* environment variables and exit")
    parser.add_argument("--version", action="version", version=f"ringrun {__version__}")
    return parser


def parse_args(argv: Sequence[str]) -> tuple[Options, argparse.Namespace]:
    """Parse ringrun's command line; bad arguments print the usage and exit with code 2."""
    parser = build_parser()
    own, command = split_argv(argv)
    ns = parser.parse_args(own)
    if ns.help_env:
        return Options(np=1, command=()), ns
    if ns.doctor:
        if command:
            parser.error("--doctor runs its own check: give no program")
        # The check runs as the job's program (the launcher never imports the library).
        command = [sys.executable, "-m", "ringtrain.doctor"]
        ns.timeout = ns.timeout or DOCTOR_TIMEOUT
    if not command:
        parser.error("no program given; e.g. ringrun -np 2 train.py")
    if ns.hosts and ns.hostfile:
        parser.error("give -H or --hostfile, not both")
    hosts: tuple[Host, ...] = ()
    try:
        if ns.hosts:
            hosts = parse_hosts(ns.hosts)
        elif ns.hostfile:
            try:
                with open(ns.hostfile, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise ValueError(f"--hostfile {ns.hostfile}: {exc.strerror}") from None
            hosts = parse_hostfile(text, ns.hostfile)
    except ValueError as exc:
        parser.error(str(exc))
    slots = sum(h.slots for h in hosts)
    np = ns.np
    if np is None:
        if hosts:
            np = slots
        else:
            gpus = visible_gpus()
            np = gpus or 1
            found = f"{gpus} GPU(s) visible" if gpus else "no GPU visible"
            print(f"ringrun: -np not given: starting {np} worker(s), one per GPU ({found}); "
                  f"-np N sets the number", file=sys.stderr)
    if hosts and np > slots:
        parser.error(f"-np {np} needs {np} slots but the hosts give {slots}; "
                     f"add slots (host:slots) or lower -np")
    if command[0].endswith(".py") and not os.path.isfile(command[0]):
        parser.error(f"{command[0]}: no such file")
    return Options(np=np, command=tuple(command), hosts=hosts, timeout=ns.timeout,
                   prefix=not ns.no_prefix), ns


def visible_gpus() -> int:
    """NVIDIA GPUs this job may use, without CUDA libraries: ``CUDA_VISIBLE_DEVICES`` when
    set, else the driver's entries under /proc/driver/nvidia/gpus."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        return 0 if not ids or ids[0].strip() in ("-1", "NoDevFiles") else len(ids)
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def cluster_seat(environ: Mapping[str, str], np: int, *, hosts: bool = False,
                 dry_run: bool = False, attempt: int = 0) -> ClusterSeat | None:
    """This machine's place in a multi-machine job (cluster mode, one ringrun per machine,
    ``RINGTRAIN_CONFIG``/``TF_CONFIG``): a :class:`~ringrun.plan.ClusterSeat`, or None for a
    single-machine job; see ``ringrun.cluster.seat`` (``attempt``: the restart it joins).
    """
    from . import cluster

    return cluster.seat(environ, np, hosts=hosts, dry_run=dry_run, attempt=attempt)


def is_local(name: str) -> bool:
    host = socket.gethostname()
    return name in _LOCAL_NAMES or name in (host, host.split(".")[0])


def check_mpiexec(path: str, python: str) -> None:
    """Refuse an mpiexec that is not MPICH's hydra (Open MPI's needs flags and root options)."""
    if os.path.dirname(path) in {os.path.dirname(python), os.path.join(sys.prefix, "bin"),
                                 os.path.join(sys.base_prefix, "bin")}:
        return  # the mpich wheel's own
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return
    text = out.stdout + out.stderr
    if "Open MPI" in text or "OpenRTE" in text:
        raise PlanError(f"{path} is Open MPI's mpiexec; ringrun uses MPICH's. "
                        f"Install it next to this Python with: pip install mpi4py mpich")


def control_listener(local: bool, backlog: int, token: str
                     ) -> tuple[socket.socket, str, str | None]:
    """ringrun's control socket: (listener, the ``RINGRUN_CONTROL`` value, a directory to
    remove afterwards). Workers on this machine only: a Unix socket in a fresh directory of
    mode 0700, so no other user can even connect (TCP on 127.0.0.1 when the path is too long
    for a Unix socket); workers elsewhere (``-H``): TCP on every interface. Either way each
    connection must start with ``token``."""
    if local:
        directory = tempfile.mkdtemp(prefix="ringrun-")
        path = os.path.join(directory, "control")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(backlog)
        except OSError:
            listener.close()
            shutil.rmtree(directory, ignore_errors=True)
        else:
            return listener, f"{path}:{token}", directory
    bind, advertise = ("127.0.0.1", "127.0.0.1") if local else ("", socket.gethostname())
    listener = socket.create_server((bind, 0), backlog=backlog)
    return listener, f"{advertise}:{listener.getsockname()[1]}:{token}", None


def format_plan(p: Plan) -> str:
    """A readable description of the plan (``--dry-run``); the secret is not shown."""
    hide = {"RINGTRAIN_SECRET"}
    lines = [f"ringrun: {p.np} worker(s)" + (" through mpiexec" if p.via_mpiexec else ""),
             f"  start: {shlex.join(p.launch_argv)}"]
    for w in p.workers:
        env = " ".join(f"{k}={'<secret>' if k in hide else v}" for k, v in w.env.items())
        lines.append(f"  rank {w.rank} on {w.host}: {env} {shlex.join(w.argv)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--merge-timeline"]:
        return _merge_timeline(args[1:])
    options, ns = parse_args(args)
    if ns.help_env:
        from . import env

        print(env.describe())
        return 0
    environ = dict(os.environ)
    if ns.doctor:
        # Other machines that do not come are named after a short wait, not the job's 300 s.
        environ.setdefault("RINGTRAIN_JOIN_TIMEOUT", f"{DOCTOR_JOIN_TIMEOUT:g}")
    python = sys.executable
    listener: socket.socket | None = None
    directory: str | None = None
    token = secrets.token_hex(TOKEN_SIZE // 2)
    seat: ClusterSeat | None = None
    try:
        seat = cluster_seat(environ, options.np, hosts=bool(options.hosts), dry_run=ns.dry_run)
        mpiexec = None
        control = None
        if options.np > 1 or options.hosts or seat is not None:
            mpiexec = find_mpiexec(python, prefixes=(sys.prefix, sys.base_prefix))
            if mpiexec is not None:
                check_mpiexec(mpiexec, python)
                if not options.hosts and seat is None:
                    mpiexec = find_local_mpiexec(mpiexec)  # listens nowhere
            local = all(is_local(h.name) for h in options.hosts)
            if not ns.dry_run and mpiexec is not None:
                listener, control, directory = control_listener(
                    local, max(128, 3 * options.np), token)
            else:
                control = f"{'127.0.0.1' if local else socket.gethostname()}:0:{token}"
        if ns.doctor:
            options = dataclasses.replace(options,
                                          command=options.command + doctor_context(seat))
        job = plan(options, environ, python=python, mpiexec=mpiexec, control=control,
                   cluster=seat)
    except PlanError as exc:
        print(f"ringrun: {exc}", file=sys.stderr)
        if seat is not None and seat.session is not None:
            seat.session.finish(1)  # tell the other machines of the cluster
        _close_listener(listener, directory)
        return 1
    if ns.dry_run:
        print(format_plan(job))
        return 0
    if ns.doctor and options.hosts and mpiexec is not None:
        problems = probe_hosts(mpiexec, python, options.hosts, environ)
        for line in problems:
            print(f"ringrun doctor: {line}", file=sys.stderr, flush=True)
        if problems:
            _close_listener(listener, directory)
            return 1
    session = seat.session if seat is not None else None
    rejoin = None
    if session is not None:
        def rejoin(attempt: int) -> tuple[object, Plan]:
            """Every machine restarts together: join the cluster's next attempt (the chief's
            rendezvous tells machines still in the previous one to come back later)."""
            again = cluster_seat(environ, options.np, attempt=attempt)
            assert again is not None
            return again.session, plan(options, environ, python=python, mpiexec=mpiexec,
                                       control=control, cluster=again)
    try:
        code = _supervise(job, listener, token, session, ns, rejoin)
    finally:
        _close_listener(listener, directory)
    _merge_job_timeline(environ)
    return code


def doctor_context(seat: ClusterSeat | None) -> tuple[str, ...]:
    """What only the launcher knows, for ``ringtrain.doctor``'s report: in a cluster, this
    machine's task and where the chief's rendezvous listens (every machine reached it)."""
    if seat is None or seat.session is None:
        return ()
    config = seat.session.config
    return ("--machine", config.task.name,
            "--rendezvous", f"{config.chief.name} at {config.chief.address}")


def _merge_timeline(args: list[str]) -> int:
    """``ringrun --merge-timeline OUT IN...``: one trace of the ranks' RINGTRAIN_TIMELINE
    files (e.g. those of a job that was killed before ringrun could merge them)."""
    from .timeline import merge

    if len(args) < 2:
        print("ringrun: --merge-timeline needs OUT and at least one IN (e.g. ringrun "
              "--merge-timeline trace.json trace.json.rank*)", file=sys.stderr)
        return 2
    try:
        count = merge(args[0], args[1:])
    except ValueError as exc:
        print(f"ringrun: {exc}", file=sys.stderr)
        return 1
    print(f"ringrun: {count} events from {len(args) - 1} file(s): {args[0]}", file=sys.stderr)
    return 0


def _merge_job_timeline(environ: dict[str, str]) -> None:
    """With RINGTRAIN_TIMELINE=PATH in ringrun's environment, the ranks' PATH.rank<r> files
    become PATH (the workers write theirs when they exit)."""
    from . import env
    from .timeline import merge_job

    path = env.get("RINGTRAIN_TIMELINE", environ)
    if not path:
        return
    try:
        line = merge_job(path)
    except (OSError, ValueError) as exc:
        line = f"ringrun: RINGTRAIN_TIMELINE={path}: the ranks' files were not merged: {exc}"
    if line is not None:
        print(line, file=sys.stderr, flush=True)


def _supervise(job: Plan, listener: socket.socket | None, token: str, session: object,
               ns: argparse.Namespace, rejoin: Callable[[int], tuple[object, Plan]] | None = None
               ) -> int:
    """Run the job, restart it after failures (``--max-restarts``), end with one summary line:
    wall time, exit code and what caused it. In a cluster (``session``) each attempt ends
    with the session's goodbye, and a restart first joins the cluster again (``rejoin``)."""
    from .supervisor import TIMEOUT_EXIT_CODE, Supervisor

    started = time.monotonic()
    restarts = 0
    while True:
        sup = Supervisor(job, listener, token, cluster=session, timestamp=ns.timestamp,
                         output_dir=ns.output_filename)
        code = sup.run()
        if session is not None:
            code = session.finish(code)
        stopped_by_user = sup.reason is not None and sup.reason.startswith("received ")
        if (code == 0 or restarts >= ns.max_restarts or stopped_by_user
                or code == TIMEOUT_EXIT_CODE):
            break
        restarts += 1
        delay = min(RESTART_BACKOFF[0] * 2 ** (restarts - 1), RESTART_BACKOFF[1])
        print(f"ringrun: restart {restarts}/{ns.max_restarts} after {sup.reason or 'a failure'}"
              f" (in {delay:g} s)", file=sys.stderr, flush=True)
        time.sleep(delay)
        if rejoin is not None:
            session, job = rejoin(restarts)
    elapsed = time.monotonic() - started
    again = f" and {restarts} restart(s)" if restarts else ""
    workers = f"{job.np} worker(s)"
    if code == 0:
        print(f"ringrun: {workers} finished in {elapsed:.1f} s{again}: exit code 0",
              file=sys.stderr, flush=True)
    else:
        print(f"ringrun: {workers} stopped after {elapsed:.1f} s{again}: exit code {code} "
              f"({sup.reason or 'no worker reported a failure'})", file=sys.stderr, flush=True)
    return code


def _close_listener(listener: socket.socket | None, directory: str | None) -> None:
    if listener is not None:
        listener.close()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
