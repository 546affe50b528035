"""Leave /dev/shm as the job found it: remove the MPI shared-memory files of this job's workers.

MPICH (and UCX under it) keep each node's shared memory in files such as
``/dev/shm/mpich_shm_*``, which ``MPI_Finalize`` removes; a worker that is killed, aborts or
skips finalising leaves them behind (about 1 MiB per rank). ringrun therefore notes, while the
job runs, each new such file that its own processes have mapped or opened (``/proc/PID/maps``
and ``/proc/PID/fd``) and, once every worker is gone, removes each of them that is still the
same file (same inode). Only files that were not there when the job started and that a process
of this job used are touched, so other jobs' files are never removed. Linux only (elsewhere the
tracker finds nothing); a remote machine's files are cleaned by that machine's ringrun.
Standard library only.
"""

from __future__ import annotations

import os

SHM_DIR = "/dev/shm"
#: Name prefixes of the files MPI libraries create there (MPICH, UCX); other programs' shared
#: memory (a dataset cache a worker maps) is not ours to remove.
MPI_PREFIXES = ("mpich_shm_", "ucx_shm_", "ucx_posix_")


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (through /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
            except (OSError, ValueError):
                pass
    return found


class ShmTracker:
    """Records the MPI shared-memory files a job's processes use; removes them at the end.

    Cheap while nothing changes: each :meth:`scan` lists the directory, and reads the job's
    ``/proc/PID/maps`` only while a new MPI file (one not there before) is unclaimed; a file
    none of the job's processes has mapped within ``CLAIM_WITHIN`` seconds is another job's.
    """

    #: Seconds a new file may stay unmapped by this job before it counts as another job's.
    CLAIM_WITHIN = 1.0

    def __init__(self, directory: str = SHM_DIR) -> None:
        self.directory = directory
        self.known = self._listing()         # (name, inode): there before, or another job's
        self.unclaimed: dict[tuple[str, int], float] = {}   # new file -> when first seen
        self.used: dict[str, int] = {}       # path -> inode, created and used by this job

    def _listing(self) -> set[tuple[str, int]]:
        try:
            with os.scandir(self.directory) as entries:
                return {(e.name, e.inode()) for e in entries if e.name.startswith(MPI_PREFIXES)}
        except OSError:
            return set()

    def scan(self, roots: list[int], now: float) -> None:
        """Claim the new MPI files that the processes under ``roots`` have mapped or open."""
        for entry in self._listing() - self.known:
            if self.used.get(f"{self.directory}/{entry[0]}") != entry[1]:
                self.unclaimed.setdefault(entry, now)
        if not self.unclaimed:
            return
        mapped = self._mapped(roots)
        for entry, seen in list(self.unclaimed.items()):
            if entry in mapped:
                self.used[f"{self.directory}/{entry[0]}"] = entry[1]
            elif now - seen < self.CLAIM_WITHIN:
                continue
            else:
                self.known.add(entry)
            del self.unclaimed[entry]

    def _mapped(self, roots: list[int]) -> set[tuple[str, int]]:
        """(name, inode) of the directory's files mapped or open in the processes under
        ``roots``."""
        prefix = self.directory + "/"
        found: set[tuple[str, int]] = set()
        for pid in {p for root in roots for p in _descendants(root)}:
            try:
                with open(f"/proc/{pid}/maps") as f:
                    for line in f:
                        fields = line.rstrip("\n").split(maxsplit=5)
                        if (len(fields) == 6 and fields[5].startswith(prefix)
                                and not fields[5].endswith(" (deleted)")):
                            found.add((fields[5][len(prefix):], int(fields[4])))
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue                        # gone meanwhile
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith(prefix):
                        found.add((target[len(prefix):],
                                   os.stat(f"/proc/{pid}/fd/{fd}").st_ino))
                except OSError:
                    pass
        return found

    def remove(self) -> list[str]:
        """Remove the recorded files that are still the ones the job used; returns them."""
        removed = []
        for path, inode in self.used.items():
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass                            # already removed (MPI_Finalize did)
        self.used.clear()
        return removed
