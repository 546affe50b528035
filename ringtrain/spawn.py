"""``ringtrain.launch(fn, args, np=2)``: run a Python function on N workers from a script or a
notebook and get their return values (Horovod's ``horovod.run``, Accelerate's
``notebook_launcher``).

The function and its arguments are pickled with cloudpickle (functions defined in a notebook
or in ``__main__`` travel by value), the job runs under the real ``ringrun`` launcher as
``python -m ringtrain._launched DIR`` on every worker, and each worker writes its return value —
or its exception and traceback — back into DIR. The workers' output is forwarded line by line
to ``sys.stdout``, so it appears in a notebook's cell too.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import RingtrainError


class LaunchError(RingtrainError):
    """A worker of ``launch()`` failed: ``rank``, ``returncode``, the worker's ``traceback``
    text (None when it died without raising, e.g. killed) and the job's ``output``."""

    def __init__(self, message: str, rank: int | None, returncode: int,
                 traceback_text: str | None, output: str):
        super().__init__(message)
        self.rank = rank
        self.returncode = returncode
        self.traceback = traceback_text
        self.output = output


def launch(fn: Callable[..., Any], args: Sequence = (), kwargs: Mapping | None = None, *,
           np: int = 2, env: Mapping[str, str] | None = None, timeout: float | None = None,
           ringrun_args: Sequence[str] = ()) -> list:
    """Run ``fn(*args, **kwargs)`` on ``np`` workers; return their results in rank order.

    Inside ``fn``, call ``ringtrain.init()`` (or ``hvd.init()``, or create a strategy) as in a
    script. A failure on any worker stops the job and raises :class:`LaunchError` naming the
    first rank that failed, with its traceback. ``env`` adds variables to the workers'
    environment, ``timeout`` stops the job after that many seconds (ringrun's ``--timeout``),
    ``ringrun_args`` passes other ringrun options.
    """
    import cloudpickle

    if isinstance(np, bool) or not isinstance(np, int) or np < 1:
        raise ValueError(f"launch: np must be a positive number of workers, got {np!r}")
    if not callable(fn):
        raise TypeError(f"launch: fn must be callable, got {type(fn).__name__}")
    workdir = Path(tempfile.mkdtemp(prefix="ringtrain-launch-"))
    try:
        try:
            payload = cloudpickle.dumps((fn, tuple(args), dict(kwargs or {})))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(f"launch: fn and its arguments must be picklable by cloudpickle "
                            f"to reach the workers: {exc}") from None
        (workdir / "payload.pkl").write_bytes(payload)
        command = [sys.executable, "-m", "ringrun", "-np", str(np)]
        if timeout is not None:
            command += ["--timeout", str(timeout)]
        command += [*ringrun_args, sys.executable, "-m", "ringtrain._launched", str(workdir)]
        returncode, output = _run(command, env)
        return _collect(workdir, np, returncode, output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(command: list[str], extra_env: Mapping[str, str] | None) -> tuple[int, str]:
    """Run ringrun, forwarding its output to sys.stdout as it comes; (exit code, output)."""
    environ = dict(os.environ)
    environ.update(extra_env or {})
    # the workers import what the caller can (this ringtrain, the modules that define fn)
    paths = [str(Path(__file__).resolve().parent.parent), *sys.path]
    environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, env=environ, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()
    return proc.returncode, "".join(lines)


def _collect(workdir: Path, np: int, returncode: int, output: str) -> list:
    results: dict[int, Any] = {}
    failures = []
    for rank in range(np):
        path = workdir / f"result.{rank}.pkl"
        if not path.exists():
            continue
        outcome = pickle.loads(path.read_bytes())
        if outcome["ok"]:
            results[rank] = outcome["value"]
        else:
            failures.append((outcome["time"], rank, outcome["traceback"]))
    if failures:
        _, rank, text = min(failures)
        last = text.strip().splitlines()[-1]
        raise LaunchError(f"launch: rank {rank} failed: {last}\n--- traceback of rank {rank} "
                          f"---\n{text}", rank, returncode, text, output)
    if returncode != 0 or len(results) != np:
        missing = [r for r in range(np) if r not in results]
        raise LaunchError(f"launch: the job exited with code {returncode}; ranks {missing} "
                          f"returned no result (see the output above: ringrun names the "
                          f"worker that stopped the job)", None, returncode, None, output)
    return [results[r] for r in range(np)]


def worker_main(workdir: Path) -> int:
    """One worker: call the function, write its outcome (value, or exception) for launch()."""
    import cloudpickle

    from .world import process_group

    fn, args, kwargs = pickle.loads((workdir / "payload.pkl").read_bytes())
    rank = process_group.detect_launch().rank
    try:
        outcome = {"ok": True, "value": fn(*args, **kwargs)}
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            outcome = {"ok": True, "value": None}
        else:
            outcome = {"ok": False, "time": time.time(), "traceback": traceback.format_exc()}
    try:
        data = cloudpickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable return value is the user's error
        outcome = {"ok": False, "time": time.time(),
                   "traceback": f"launch: rank {rank}'s return value cannot be pickled: {exc}\n"}
        data = cloudpickle.dumps(outcome)
    tmp = workdir / f".result.{rank}.tmp"
    tmp.write_bytes(data)
    tmp.replace(workdir / f"result.{rank}.pkl")
    if not outcome["ok"]:
        sys.stderr.write(outcome["traceback"])
        sys.stderr.flush()
        os._exit(1)     # the job stops: ringrun names this rank and stops the others
    return 0

