"""A lock file that keeps two processes from training one run at once.

The lock is a file created with O_EXCL (atomic on local disks and NFS,
unlike fcntl locks), holding the host, pid and start time of its holder,
whose mtime is a heartbeat renewed by a background thread. A lock whose
holder is gone is reclaimed: on the same host when its pid no longer
exists, elsewhere when its heartbeat is older than `stale_after` seconds.
Studies use the same lock to tell a running run from a dead one.
"""

import contextlib
import json
import os
import socket
import threading
import time

from keras_lottery.errors import LotteryError

HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 180.0


def holder(path):
    """The holder of the lock at `path` as a dict (host, pid, started,
    heartbeat, alive), or None when there is no lock."""
    try:
        with open(path) as f:
            info = json.load(f)
        info["heartbeat"] = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # being written, or damaged
        info = {"host": None, "pid": None, "started": None}
        try:
            info["heartbeat"] = os.stat(path).st_mtime
        except FileNotFoundError:
            return None
    info["alive"] = _alive(info)
    return info


def _alive(info, stale_after=STALE_AFTER_SECONDS):
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return _pid_exists(info["pid"])
    return time.time() - info["heartbeat"] < stale_after


def _pid_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return not _zombie(pid)


def _zombie(pid):
    # A process that has exited but whose parent has not reaped it yet (a
    # killed run under a busy driver) holds nothing any more.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Lock:
    """An exclusive lock on `path`, held while the `with` block runs.

    Example:

    >>> with Lock("runs/resnet20/train-s0/run.lock", what="runs/resnet20/train-s0"):
    ...     train()

    Args:
        path: the lock file (its folder must exist).
        what: how to name the locked thing in the error.
        heartbeat: seconds between heartbeats (the file's mtime).

    Raises:
        LotteryError: on entering, when a live process holds the lock.
    """

    def __init__(self, path, *, what=None, heartbeat=HEARTBEAT_SECONDS):
        self.path = os.fspath(path)
        self.what = what or self.path
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread = None

    def acquire(self):
        for _ in range(2):  # a stale lock is removed once, then retried
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                found = holder(self.path)
                if found is not None and found["alive"]:
                    raise LotteryError(self._in_use(found)) from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(),
                           "started": time.time()}, f)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return self
        raise LotteryError(f"{self.what} is being locked by another process at "
                           "this moment; try again")

    def _in_use(self, found):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found["started"])) \
            if found.get("started") else "an unknown time"
        return (f"{self.what} is in use by process {found['pid']} on "
                f"{found['host']} (since {since}); wait for it to finish, or stop "
                f"it; a lock left by a dead process is reclaimed by itself")

    def _beat(self):
        while not self._stop.wait(self.heartbeat):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            found = holder(self.path)
            if found is not None and found.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
