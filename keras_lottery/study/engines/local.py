"""Engines: what starts a node's process. An engine only dispatches.

The scheduler (`keras_lottery.study.scheduler`) decides what runs when and
where; an engine starts the node's `lottery` command on the device it is
given and reports when it ends. Every node is an idempotent command whose
state is on disk, so an engine keeps no state of its own: after any
failure, re-running the driver re-plans from disk.

`local` (the single-machine pool, also what runs a Slurm job's bundle)
runs each node as a child process of the driver, in the driver's process
group (so killing the group stops them all), its output appended to the
node's log. The cluster engines take the whole plan instead and leave the
scheduling to Ray (`rayengine`) or Slurm (`slurmengine`).
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time

from keras_lottery.study import devices as devices_lib


@dataclasses.dataclass
class Job:
    """A node's process: the node, its device, when it started."""

    node: object
    device: str
    started: float
    handle: object = None
    returncode: int = None


class LocalEngine:
    """One process per run on this machine.

    Args:
        python: the interpreter that runs `-m keras_lottery.cli`.
        environ: the environment runs start from (default: this process's).
        preexec: called in each run's process before it starts (a Slurm
            job's runs ignore the signal submitit handles).
    """

    name = "local"

    def __init__(self, python=None, environ=None, preexec=None):
        self.python = python or sys.executable
        self.environ = environ
        self.preexec = preexec

    def start(self, node, device, log_path):
        """Starts `node`'s command on `device`; returns its `Job`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"$ lottery {' '.join(node.argv)}  # device {device}\n")
            log.flush()
            handle = subprocess.Popen(
                [self.python, "-m", "keras_lottery.cli", *node.argv],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=devices_lib.environment(device, self.environ),
                preexec_fn=self.preexec,
            )
        return Job(node, device, time.monotonic(), handle)

    def wait(self, jobs, timeout):
        """The jobs among `jobs` that ended within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            ended = [job for job in jobs if job.handle.poll() is not None]
            if ended or time.monotonic() >= deadline:
                for job in ended:
                    job.returncode = job.handle.returncode
                return ended
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def interrupt(self, jobs, grace=60):
        """Stops `jobs` as Ctrl-C would (each run marks itself resumable),
        then kills what is still running after `grace` seconds. A Ctrl-C in
        the terminal reached them already, so they get a moment first."""
        self.wait(jobs, 2.0)
        for job in jobs:
            if job.handle.poll() is None:
                os.kill(job.handle.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        for job in jobs:
            try:
                job.handle.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                job.handle.kill()
                job.handle.wait()

