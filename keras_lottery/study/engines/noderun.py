"""One node's run where a cluster engine placed it (a Ray worker).

The worker has the study root and the node, not the plan. It claims the
node (waiting while another driver's process holds it), reads its status
again, tidies what a killed attempt left, and runs the node's `lottery`
command as a child process, its output appended to the node's log. The
child is polled, so an interruption (a cancelled task) reaches it as
Ctrl-C and the run marks itself resumable (it resumes from its latest
saved state).
"""

import os
import signal
import socket
import subprocess
import sys
import time

from keras_lottery.study import claims
from keras_lottery.study import devices as devices_lib
from keras_lottery.study import state

# Seconds between looks at a node another process holds.
WAIT_SECONDS = 5.0
# Seconds an interrupted run has to mark itself resumable before it is killed.
GRACE_SECONDS = 60.0


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


def run(root, node, python=None, device=None, backend=None):
    """Runs `node` under `root` to its end; returns (status, seconds).

    Args:
        device: the GPU ids this worker was given as text ("0"), or None
            for the CPU.
        backend: the Keras backend the run trains on (the driver's); None:
            this process's.

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
                            device or devices_lib.CPU, backend)
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


def _child(root, node, python, device, backend):
    log_path = state.log_in(root, node)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"$ lottery {' '.join(node.argv)}  # host {socket.gethostname()}, "
                  f"device {device}\n")
        log.flush()
        child = subprocess.Popen(
            [python, "-m", "keras_lottery.cli", *node.argv], stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT,
            env=devices_lib.environment(device, backend=backend))
    try:
        while child.poll() is None:
            time.sleep(0.5)
    except BaseException:  # cancelled: let the run save itself, as Ctrl-C does
        _stop(child)
        raise
    return child.returncode


def _stop(child):
    if child.poll() is None:
        os.kill(child.pid, signal.SIGINT)
    try:
        child.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
