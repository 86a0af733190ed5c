"""Claims: the lock a driver holds on a node while it dispatches its run.

Two drivers of one study (two terminals, a requeued job and a manual
re-run) each claim a node before starting its process, so the second sees
it taken and waits instead of starting a process that would only find the
run locked. A claim is a `keras_lottery.runs.locks.Lock` file (O_EXCL, host,
pid, heartbeat) in `<root>/.claims/`, so a claim left by a killed driver is
reclaimed like any stale lock. The run's own lock (`<run>/run.lock`, held
by the run's process) is what keeps a run from being trained twice; the
claim keeps drivers from racing to it.
"""

import contextlib
import pathlib

from keras_lottery.runs import locks
from keras_lottery.errors import LotteryError

CLAIMS_DIR = ".claims"


def path(root, node_id):
    """The claim file of a node."""
    return pathlib.Path(root) / CLAIMS_DIR / (node_id.replace("/", "__") + ".lock")


def alive(root, node_id):
    """Whether a live driver holds the node's claim."""
    found = locks.holder(path(root, node_id))
    return found is not None and found["alive"]


def take(root, node_id):
    """The node's claim, held (release it with `.release()`), or None when
    a live driver holds it."""
    where = path(root, node_id)
    for _ in range(3):  # another driver may remove the empty folder meanwhile
        where.parent.mkdir(parents=True, exist_ok=True)
        try:
            return locks.Lock(where, what=node_id).acquire()
        except LotteryError:
            return None
        except FileNotFoundError:
            continue
    raise LotteryError(f"cannot create the claim {where}; check the study root")


def remove_dead(root):
    """Deletes claims whose driver is gone, and the folder once empty."""
    folder = pathlib.Path(root) / CLAIMS_DIR
    if not folder.is_dir():
        return
    for claim in folder.glob("*.lock"):
        found = locks.holder(claim)
        if found is not None and not found["alive"]:
            claim.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: another driver works
        folder.rmdir()
