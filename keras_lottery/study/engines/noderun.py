"""One node's run where a cluster engine placed it (a Ray worker).

The worker has the study root and the node, not the plan. It claims the
node (waiting while another driver's process holds it), reads its status
again, tidies what a killed attempt left, and hands the node's `lottery`
command to a warm worker (`lottery worker`, as the local engine's) that
this process keeps from one node to the next, its output appended to the
node's log. So the backend's import and start-up are paid once per warm
worker, not once per run. The warm worker is polled, so an interruption
(a cancelled task) reaches it as Ctrl-C and the run marks itself
resumable (it resumes from its latest saved state); a warm worker that
dies (killed, out of memory) ends its run as a killed process would.

A process keeps one warm worker, for one interpreter, device and backend;
it is replaced after `local.RUNS_PER_WORKER` runs, by a node on another device,
after an interruption, and it ends when left idle `IDLE_SECONDS` (handing
its device's memory back) or when this process ends (its input closes).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from keras_lottery.study import claims
from keras_lottery.study import devices as devices_lib
from keras_lottery.study import state
from keras_lottery.study.engines import local

# Seconds between looks at a node another process holds.
WAIT_SECONDS = 5.0
# Seconds an interrupted run has to mark itself resumable before it is killed.
GRACE_SECONDS = 60.0
# Seconds a warm worker waits for this process's next node before it ends.
IDLE_SECONDS = 30.0


class RunKilled(RuntimeError):
    """The run's process ended by a signal (killed, out of memory): the
    attempt is worth retrying, the run resumes from its saved state."""


class RunFailed(RuntimeError):
    """The run ended without finishing (a NaN loss, a refused command)."""


def visible(paths):
    """{path: text of the file, or None} as this worker sees them."""
    found = {}
    for path in paths:
        try:
            with open(path) as f:
                found[path] = f.read()
        except OSError:
            found[path] = None
    return {"host": socket.gethostname(), "files": found}


def run(root, node, python=None, device=None, backend=None, where=None):
    """Runs `node` under `root` to its end; returns (status, seconds).

    Args:
        device: the GPU ids this worker was given as text ("0"), or None
            for the CPU.
        backend: the Keras backend the run trains on (the driver's); None:
            this process's.
        where: where it runs, for the log (default: "host NAME").

    Raises:
        RunKilled: the process died by a signal.
        RunFailed: it ended and the run is not finished.
    """
    claim = _claim(root, node)
    try:
        status = state.status_in(root, node, claimed=True)
        if status == state.FINISHED:
            return status, 0.0
        state.tidy_in(root, node)
        started = time.monotonic()
        returncode = _child(root, node, python or sys.executable,
                            device or devices_lib.CPU, backend,
                            where or f"host {socket.gethostname()}")
        status = state.status_in(root, node, claimed=True)
    finally:
        claim.release()
    if status == state.FINISHED:
        return status, time.monotonic() - started
    log = state.log_in(root, node)
    if returncode < 0:
        raise RunKilled(f"{node.id}: the run's process was killed by signal "
                        f"{-returncode} (log: {log})")
    raise RunFailed(f"{node.id}: {status} after exit status {returncode} (log: {log})")


def _claim(root, node):
    while True:
        claim = claims.take(root, node.id)
        if claim is not None:
            if state.status_in(root, node, claimed=True) != state.RUNNING:
                return claim
            claim.release()  # the run's own process is still alive
        time.sleep(WAIT_SECONDS)


def _child(root, node, python, device, backend, where):
    log_path = state.log_in(root, node)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worker = WARM.take(python, device, backend)
    with open(log_path, "a") as log:
        log.write(f"$ lottery {' '.join(node.argv)}  # {where}, device {device}, "
                  f"worker {worker.pid}\n")
    worker.send(node.argv, log_path)
    try:
        while worker.poll() is None:
            time.sleep(0.1)
    except BaseException:  # cancelled: let the run save itself, as Ctrl-C does
        _stop(worker)
        raise
    WARM.give_back(worker)
    return worker.returncode


def _stop(worker):
    if worker.poll() is None:
        os.kill(worker.pid, signal.SIGINT)
    try:
        worker.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    worker.kill()


class WarmWorkers:
    """The one warm worker a process keeps between the nodes it is given."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kept = None  # (key, worker)
        self.lent = None  # the key of the worker taken
        self.timer = None

    def take(self, python, device, backend):
        """A warm worker for `python`, `device` and `backend`: the kept one
        if it is theirs and alive, else a new one."""
        key = self.lent = (python, device, backend)
        with self.lock:
            kept, self.kept = self.kept, None
            if self.timer is not None:
                self.timer.cancel()
        if kept is not None:
            if kept[0] == key and kept[1].process.poll() is None:
                return kept[1]
            kept[1].close()
        return local.start_worker(python, device,
                                  devices_lib.environment(device, backend=backend))

    def give_back(self, worker):
        """Keeps `worker` for the next node (closes it once it has made
        `local.RUNS_PER_WORKER` runs, or died); it ends if none comes within
        `IDLE_SECONDS`."""
        if worker.process.poll() is not None or worker.runs >= local.RUNS_PER_WORKER:
            worker.close()
            return
        with self.lock:
            self.kept = (self.lent, worker)
            self.timer = threading.Timer(IDLE_SECONDS, self.close)
            self.timer.daemon = True
            self.timer.start()

    def close(self):
        """Ends the kept worker, if any (at the end of its input)."""
        with self.lock:
            kept, self.kept = self.kept, None
        if kept is not None:
            kept[1].close()


WARM = WarmWorkers()
