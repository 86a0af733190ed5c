"""Runs a plan: dependency order, longest remaining chain first, packed
onto the devices, every state read back from disk.

A node is ready when its parent has finished and it is pending or
resumable (or failed, with `retry_failed`, once per driver). Among the
ready nodes the one whose chain of descendants has the most training steps
left starts first (the bases, then the first rounds of the longest
iterative chains, ...), on the device running the fewest runs. Before
starting a node the driver claims it (`claims`) and reads its status
again, so two drivers never start one run twice; a node that another
process runs is waited for. A run that fails blocks its descendants; a
command that fails without a failed run.json (a refused directory, say) is
reported and not retried by this driver.
"""

import math
import time

from keras_lottery.study import claims
from keras_lottery.study import state
from keras_lottery.study.progress import Progress

READY = (state.PENDING, state.RESUMABLE)
# How often the status of runs other processes hold is read again.
RECHECK_SECONDS = 2.0


class Scheduler:
    """One driver over a plan.

    Args:
        plan: the `Plan`.
        engine: starts nodes (`engines.LocalEngine`).
        devices: device names ("cpu", "0", "1", ...).
        runs_per_device: runs sharing one device.
        workers: runs at once in all (default devices × runs_per_device;
            more spread evenly over the devices).
        retry_failed: start failed runs again (once each).
        progress: a `Progress`-like reporter factory, called as
            `progress(total, finished, total_steps, remaining_steps)`.
        poll: seconds between checks of the running processes.
        tidy: clear dead claims, locks and temporary files under the root
            at the end (not where other hosts write: a cluster job).
    """

    def __init__(self, plan, engine, devices, runs_per_device=1, workers=None,
                 retry_failed=False, progress=Progress, poll=0.5, tidy=True):
        self.plan, self.engine, self.tidy = plan, engine, tidy
        self.devices = list(devices)
        self.workers = workers or len(self.devices) * runs_per_device
        self.per_device = max(runs_per_device, math.ceil(self.workers / len(self.devices)))
        self.retry_failed = retry_failed
        self.poll = poll
        self.found = state.statuses(plan)
        remaining = {n.id: state.remaining_steps(plan, n, self.found[n.id])
                     for n in plan.nodes}
        self.left = dict(remaining)
        self.report = progress(len(plan.nodes), list(self.found.values()).count(state.FINISHED),
                               plan.total_steps, sum(remaining.values()))
        self.jobs = {}  # node id -> (job, claim)
        self.given_up = set()  # failed in this driver: not started again
        self.order = []  # node ids in the order this driver started them

    def ready(self):
        """Ready node ids, highest priority first."""
        found = []
        for node in self.plan.nodes:
            status = self.found[node.id]
            if node.id in self.jobs or node.id in self.given_up:
                continue
            if not (status in READY or (status == state.FAILED and self.retry_failed)):
                continue
            if node.parent is None or self.found[node.parent] == state.FINISHED:
                found.append(node.id)
        return sorted(found, key=lambda i: (-self.plan.priority[i], i))

    def device(self):
        """The device with the fewest of this driver's runs, or None when
        every one is full."""
        if len(self.jobs) >= self.workers:
            return None
        load = {d: 0 for d in self.devices}
        for job, _ in self.jobs.values():
            load[job.device] += 1
        best = min(self.devices, key=lambda d: load[d])
        return best if load[best] < self.per_device else None

    def run(self):
        """Runs the plan to its end; returns {status: count} of the nodes."""
        try:
            self._loop()
        except BaseException:
            self.engine.interrupt([job for job, _ in self.jobs.values()])
            for node_id in list(self.jobs):
                self._release(node_id)
            raise
        finally:
            getattr(self.engine, "close", lambda: None)()  # its idle workers
            self.report.close()
        final = self.final_statuses()
        if self.tidy:
            state.tidy_root(self.plan, final)
        return state.count(final)

    def final_statuses(self):
        """The nodes' statuses on disk (`state.final_statuses`)."""
        return state.final_statuses(self.plan, self.given_up)

    def _loop(self):
        last_check = time.monotonic()
        while True:
            started = self._start_ready()
            waiting = [i for i, s in self.found.items()
                       if s == state.RUNNING and i not in self.jobs]
            if not self.jobs and not started and not waiting:
                return
            for job in self.engine.wait([job for job, _ in self.jobs.values()], self.poll):
                self._ended(job)
            if waiting and time.monotonic() - last_check > RECHECK_SECONDS:
                last_check = time.monotonic()
                for node_id in waiting:
                    self.found[node_id] = self._status(node_id)
                    if self.found[node_id] == state.FINISHED:
                        self._finished(node_id, None)

    def _start_ready(self):
        started = False
        for node_id in self.ready():
            device = self.device()
            if device is None:
                break
            claim = claims.take(self.plan.study.root, node_id)
            status = self._status(node_id, claimed=True) if claim else state.RUNNING
            if claim is None or status not in READY + (state.FAILED,):
                if claim is not None:
                    claim.release()
                self.found[node_id] = status
                if status == state.FINISHED:  # by another driver meanwhile
                    self._finished(node_id, None)
                continue
            node = self.plan.by_id[node_id]
            state.tidy_before_start(self.plan, node)
            job = self.engine.start(node, device, state.log_path(self.plan, node))
            self.jobs[node_id] = (job, claim)
            self.found[node_id] = state.RUNNING
            self.order.append(node_id)
            started = True
        return started

    def _finished(self, node_id, seconds):
        """`seconds`: how long this driver's process took (None: another
        process ran it)."""
        self.report.run_finished(node_id, seconds, self.left.pop(node_id, 0))
        for child in self.plan.children[node_id]:  # no longer blocked
            if child not in self.jobs:
                self.found[child] = self._status(child)

    def _status(self, node_id, claimed=False):
        return state.node_status(self.plan, self.plan.by_id[node_id], claimed)

    def _release(self, node_id):
        _, claim = self.jobs.pop(node_id)
        claim.release()

    def _ended(self, job):
        node = job.node
        self._release(node.id)
        status = self._status(node.id)
        self.found[node.id] = status
        if status == state.FINISHED:
            self._finished(node.id, time.monotonic() - job.started)
            return
        if status == state.RUNNING:  # another process holds the run
            return
        self.given_up.add(node.id)
        log = state.log_path(self.plan, node)
        if status == state.FAILED:
            self.report.run_failed(node.id, f"{state.failure(self.plan, node)} (log: {log})")
        else:
            self.report.run_failed(node.id, f"exit status {job.returncode}; see {log}")
