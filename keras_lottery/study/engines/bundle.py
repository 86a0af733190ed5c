"""A Slurm job's work: runs of one dependency wave, side by side on the
job's GPUs (`runs_per_device` on each), by the single-machine pool: its
warm workers run a bundle of more runs than slots in turn.

A submitit callable. Its `checkpoint` (called by submitit when Slurm
signals the time limit, or a preemption where the cluster sends that
signal) stops the runs as Ctrl-C would, so each marks itself resumable,
and resubmits the same bundle: on requeue each run resumes from its latest
saved state. The runs ignore the signal submitit listens for, so they stop
only when told.
"""

import contextlib
import os
import signal
import socket
import time

from keras_lottery.errors import LotteryError
from keras_lottery.runs import layout
from keras_lottery.study import devices as devices_lib
from keras_lottery.study.engines import local as engines
from keras_lottery.study import planner
from keras_lottery.study import state
from keras_lottery.study.scheduler import Scheduler

# The signal submitit asks Slurm to send before the time limit.
REQUEUE_SIGNAL = signal.SIGUSR2
# Seconds the runs have to stop before the job is requeued (Slurm sends the
# signal 90 s before the limit).
STOP_SECONDS = 45


class BundleFailed(RuntimeError):
    """Some runs of the bundle did not finish: the job fails, so the waves
    that depend on it do not start."""


def _ignore_requeue_signal():
    signal.signal(REQUEUE_SIGNAL, signal.SIG_IGN)


class Bundle:
    """Runs `node_ids` of `study`'s plan on this job's devices.

    Args:
        study: the `StudyFile`.
        nodes: the bundle's `Node`s with their (finished) parents.
        node_ids: the ids of the bundle's own nodes.
        gpus: GPUs the job has (0: the CPU).
        runs_per_device: runs sharing one device.
        retry_failed: start failed runs again.
    """

    def __init__(self):
        self.scheduler = None

    def __call__(self, study, nodes, node_ids, gpus, runs_per_device, retry_failed=False):
        for path in [study.root / layout.STUDY_JSON, *filter(None, [study.data_dir])]:
            if not os.path.exists(path):
                raise LotteryError(f"{path} is not visible on {socket.gethostname()}; "
                                   "put the study and its data on a file system every "
                                   "node mounts at the same path")
        plan = planner.Plan(study, nodes)
        names = [devices_lib.CPU] if gpus == 0 else devices_lib.resolve("auto")
        # More runs than slots: the slots' warm workers run them in turn.
        self.scheduler = Scheduler(
            plan, engines.LocalEngine(preexec=_ignore_requeue_signal), names,
            runs_per_device, min(len(node_ids), len(names) * runs_per_device), retry_failed,
            tidy=False)
        try:
            counts = self.scheduler.run()
        finally:
            self.scheduler = None
        state.tidy_nodes(study.root, [plan.by_id[i] for i in node_ids])
        final = state.statuses(plan)
        unfinished = [i for i in node_ids if final[i] != state.FINISHED]
        if unfinished:
            raise BundleFailed(f"{len(unfinished)} of {len(node_ids)} runs did not "
                               f"finish: " + ", ".join(f"{i} ({final[i]})" for i in unfinished))
        return {"finished": counts[state.FINISHED], "host": socket.gethostname(),
                "devices": names}

    def checkpoint(self, *args, **kwargs):
        """submitit's hook before a requeue: the runs stop as Ctrl-C stops
        them, then the same bundle is submitted again.

        It runs in a signal handler, maybe while the main thread is inside
        a `Popen` method: so it signals the runs' processes by pid and
        waits on their run locks, never on `Popen` (whose lock the
        interrupted thread may hold)."""
        import submitit

        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            _stop_runs(scheduler)
        return submitit.helpers.DelayedSubmission(Bundle(), *args, **kwargs)

    def __getstate__(self):
        return {}

    def __setstate__(self, saved):
        self.scheduler = None


def _stop_runs(scheduler, grace=STOP_SECONDS):
    root = scheduler.plan.study.root
    running = [job for job, _ in scheduler.jobs.values() if job.handle.returncode is None]
    for job in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(job.handle.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(
            state.status_in(root, job.node, claimed=True) == state.RUNNING for job in running):
        time.sleep(0.5)
