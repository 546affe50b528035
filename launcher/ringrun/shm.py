"""Leave /dev/shm as the job found it: remove the MPI shared-memory files of this job's workers.

MPICH (and UCX under it) keep each node's shared memory in files such as
``/dev/shm/mpich_shm_*``, which ``MPI_Finalize`` removes; a worker that is killed, aborts or
skips finalising leaves them behind (about 1 MiB per rank). ringrun therefore looks, while the
job runs, at which such files its own processes have mapped or opened (``/proc/PID/maps`` and
``/proc/PID/fd``) and, once every worker is gone, removes each of them that is still the same
file (same inode). Only files that were not there when the job started and that a process of
this job used are touched, so other jobs' files are never removed. Linux only (elsewhere the
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
    """Records the MPI shared-memory files a job's processes use; removes them at the end."""

    def __init__(self, directory: str = SHM_DIR) -> None:
        self.directory = directory
        self.before = self._listing()        # (name, inode) present when the job started
        self.used: dict[str, int] = {}       # path -> inode, created and used by this job
        self.pids: set[int] = set()          # every process of the job seen so far

    def _listing(self) -> set[tuple[str, int]]:
        try:
            with os.scandir(self.directory) as entries:
                return {(e.name, e.inode()) for e in entries}
        except OSError:
            return set()

    def _note(self, path: str, inode: int) -> None:
        folder, _, name = path.rpartition("/")
        if (folder == self.directory and name.startswith(MPI_PREFIXES)
                and (name, inode) not in self.before):
            self.used[path] = inode

    def scan(self, roots: list[int]) -> None:
        """Look at what the processes under ``roots`` (and those seen before) have mapped or
        opened in the shared-memory directory."""
        for root in roots:
            self.pids.update(_descendants(root))
        prefix = self.directory + "/"
        for pid in list(self.pids):
            try:
                with open(f"/proc/{pid}/maps") as f:
                    maps = f.read()
            except OSError:
                self.pids.discard(pid)          # gone
                continue
            for line in maps.splitlines():
                fields = line.split(maxsplit=5)
                if (len(fields) == 6 and fields[5].startswith(prefix)
                        and not fields[5].endswith(" (deleted)")):
                    self._note(fields[5], int(fields[4]))
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith(prefix) and not target.endswith(" (deleted)"):
                        self._note(target, os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
                except OSError:
                    pass

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
