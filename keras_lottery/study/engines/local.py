"""Engines: what starts a node's process. An engine only dispatches.

The scheduler (`keras_lottery.study.scheduler`) decides what runs when and
where; an engine starts the node's `lottery` command on the device it is
given and reports when it ends. Every node is an idempotent command whose
state is on disk, so an engine keeps no state of its own: after any
failure, re-running the driver re-plans from disk.

`local` (the single-machine pool, also what runs a Slurm job's bundle)
runs the nodes in warm workers (`lottery worker`): a process per running
slot that imports the backend once and runs node after node, each as the
`lottery` command it stands for, its output appended to the node's log. A
worker that dies (killed, out of memory) ends its node's job with its
signal, as a killed process would; the next node on its device starts a
new worker. Workers are child processes of the driver, in its process
group (so killing the group stops them all). With `warm=False` each node
is a process of its own. The cluster engines take the whole plan instead
and leave the scheduling to Ray (`rayengine`) or Slurm (`slurmengine`).
"""

import dataclasses
import json
import os
import select
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


# Runs a warm worker makes before a new one replaces it. On TensorFlow its
# memory stays flat (`keras_lottery.training.session`; JAX keeps a little,
# about 0.25 MB a run), but a user's own model or callbacks may keep state
# that nothing clears: so a worker is still replaced now and then (a new one
# costs one start-up).
RUNS_PER_WORKER = 100


class LocalEngine:
    """Runs nodes on this machine, in warm workers (or a process each).

    Args:
        python: the interpreter that runs `-m keras_lottery.cli`.
        environ: the environment runs start from (default: this process's).
        preexec: called in each process before it starts (a Slurm job's
            runs ignore the signal submitit handles).
        warm: run nodes in warm workers (False: a process per node).
        runs_per_worker: nodes a worker runs before a new one replaces it
            (default `RUNS_PER_WORKER`).
    """

    name = "local"

    def __init__(self, python=None, environ=None, preexec=None, warm=True,
                 runs_per_worker=RUNS_PER_WORKER):
        self.python = python or sys.executable
        self.environ = environ
        self.preexec = preexec
        self.warm = warm
        self.runs_per_worker = runs_per_worker
        self.idle = []  # Workers waiting for a node
        self.workers_started = 0

    def start(self, node, device, log_path):
        """Starts `node`'s command on `device`; returns its `Job`. Each
        attempt's part of the log starts with a line naming the command, its
        device and its warm worker's pid."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        head = f"$ lottery {' '.join(node.argv)}  # device {device}"
        if not self.warm:
            with open(log_path, "a") as log:
                log.write(head + "\n")
                log.flush()
                handle = subprocess.Popen(
                    [self.python, "-m", "keras_lottery.cli", *node.argv],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=devices_lib.environment(device, self.environ),
                    preexec_fn=self.preexec,
                )
            return Job(node, device, time.monotonic(), handle)
        worker = self._worker(device)
        with open(log_path, "a") as log:
            log.write(f"{head}, worker {worker.pid}\n")
        worker.send(node.argv, log_path)
        return Job(node, device, time.monotonic(), worker)

    def _worker(self, device):
        for worker in self.idle:
            if worker.device == device and worker.process.poll() is None:
                self.idle.remove(worker)
                return worker
        self.workers_started += 1
        return start_worker(self.python, device, devices_lib.environment(device, self.environ),
                            self.preexec)

    def warm_up(self, device):
        """Starts a worker on `device` now, unless one waits there already."""
        if self.warm and not any(w.device == device for w in self.idle):
            self.idle.append(self._worker(device))

    def _ended(self, job):
        """Puts a warm job's worker back in the pool (or closes it)."""
        worker = job.handle
        if not isinstance(worker, Worker):
            return
        if worker in self.idle:
            return
        if worker.process.poll() is None and worker.runs < self.runs_per_worker:
            self.idle.append(worker)
        else:
            worker.close()

    def close(self):
        """Ends the idle workers (each at the end of its input)."""
        for worker in self.idle:
            worker.close()
        self.idle = []

    def wait(self, jobs, timeout):
        """The jobs among `jobs` that ended within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            ended = [job for job in jobs if job.handle.poll() is not None]
            if ended or time.monotonic() >= deadline:
                for job in ended:
                    job.returncode = job.handle.returncode
                    self._ended(job)
                return ended
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

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
            self._ended(job)
        self.close()


def warmed_for(file):
    """A `LocalEngine` for the study file `file`, a warm worker already
    starting on each device it names (read from the file alone: planning
    imports the backend, and the worker does so meanwhile)."""
    from keras_lottery import tomlfiles

    engine = LocalEngine()
    try:
        names = devices_lib.resolve(
            tomlfiles.read(file).get("resources", {}).get("devices", "auto"))
    except Exception:  # the file's errors are reported once it is read in full
        return engine
    for name in names:
        engine.warm_up(name)
    return engine


def start_worker(python, device, env, preexec=None):
    """A new warm worker (`python -m keras_lottery.cli worker`) on `device`,
    in the environment `env`."""
    return Worker(device, subprocess.Popen(
        [python, "-m", "keras_lottery.cli", "worker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, preexec_fn=preexec, text=True, bufsize=1))


class Worker:
    """A warm worker (`lottery worker`) on one device, seen as the process of
    the node it runs: `poll`, `wait`, `kill`, `pid` and `returncode` as a
    `subprocess.Popen` has them.
    """

    def __init__(self, device, process):
        self.device, self.process = device, process
        self.pid = process.pid
        self.returncode = None
        self.runs = 0

    def send(self, argv, log_path):
        """Starts a node: `lottery argv`, its output appended to `log_path`."""
        self.returncode = None
        self.runs += 1
        try:
            self.process.stdin.write(json.dumps({"argv": list(argv),
                                                 "log": str(log_path)}) + "\n")
            self.process.stdin.flush()
        except OSError:  # it died while idle: its exit status ends the job
            pass

    def poll(self):
        """The node's exit status, or None while it runs: the worker's reply,
        or the worker's own exit status when it died."""
        if self.returncode is not None:
            return self.returncode
        ready, _, _ = select.select([self.process.stdout], [], [], 0)
        if ready:
            line = self.process.stdout.readline()
            if line:
                self.returncode = int(json.loads(line)["returncode"])
                return self.returncode
            self.process.wait()
        if self.process.poll() is not None:
            self.returncode = self.process.returncode or 1
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("lottery worker", timeout)
            time.sleep(0.05)
        return self.returncode

    def kill(self):
        self.process.kill()
        self.process.wait()

    def close(self):
        """Ends the worker at the end of its input (one that never ran a
        node at once: it has nothing to finish)."""
        if not self.runs:
            self.kill()
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

