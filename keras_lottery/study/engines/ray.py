"""Ray: a study's dependency graph handed to a Ray cluster whole.

Each run is one Ray task that runs the run's own `lottery` command
(`noderun`), asking for `1 / runs_per_device` of a GPU (one CPU on a
cluster without GPUs), with its parent's task as its dependency, so Ray,
not this package, decides what runs when and where. A Ray worker process
runs task after task (one at a time), each through the warm `lottery
worker` it keeps, so the backend starts once per worker, not per run; the
Ray worker itself never imports the backend, and its warm worker ends when
left idle, so GPU memory is handed back. A Ray worker that dies, or a warm
worker killed by a signal, is retried up to `RETRIES` times; the run
resumes from its own saved state. A run that fails stops
its descendants (Ray does not start a task whose dependency failed).

If the driver dies, Ray ends its tasks; the same command then re-plans
from disk, and the claims and run locks keep a run that is still running
from being started twice.
"""

import logging
import os
import secrets
import socket

from keras_lottery import backends
from keras_lottery.errors import LotteryError
from keras_lottery.study.engines import noderun
from keras_lottery.study import state
from keras_lottery.study.progress import Progress

EXTRA = "pip install 'keras-lottery[ray]'"
RETRIES = 3
# Addresses Ray resolves itself (no HOST:PORT to check first).
LOCAL_ADDRESSES = (None, "", "local", "auto")


def import_ray():
    """The `ray` module, or a one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise LotteryError(f"the ray engine needs Ray, which is not installed: {EXTRA}") from None
    return ray


def check_address(address, timeout=3.0):
    """Refuses, in a few seconds, a HOST:PORT no Ray head answers at
    (`ray.init` would retry such an address for minutes)."""
    if address in LOCAL_ADDRESSES or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise LotteryError(f"Ray address {address!r}: expected HOST:PORT (the head "
                           "node's, port 6379 by default) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise LotteryError(f"no Ray cluster answers at {address} "
                           f"({e.strerror or type(e).__name__}); start the head node "
                           "there first, or give the address it printed") from None


def _task(root, node, python, backend, *parents):
    """A Ray task: one node's run on the driver's Keras `backend` (its
    parents' tasks are its arguments, so Ray starts it only after they
    succeed)."""
    import ray

    gpus = ",".join(str(i) for i in ray.get_gpu_ids()) or None
    where = (f"host {socket.gethostname()}, "
             f"Ray node {ray.get_runtime_context().get_node_id()[:8]}")
    status, seconds = noderun.run(root, node, python, gpus, backend, where)
    return node.id, status, seconds


def probe(files, folders):
    """What one node sees: the text of `files`, and which `folders` exist."""
    found = noderun.visible(files)
    found["folders"] = {f: os.path.isdir(f) for f in folders}
    return found


class RayEngine:
    """Runs a plan as Ray tasks on the cluster at `address`.

    Args:
        address: a running cluster ("auto", "HOST:PORT", "ray://...");
            None starts a Ray instance on this machine. When Ray is
            initialized already (a notebook, a test), that instance is used.
        python: the interpreter of each run (default: the worker's own).
    """

    name = "ray"

    def __init__(self, address=None, python=None):
        self.address = address
        self.python = python

    def connect(self):
        """Ray, initialized; whether this engine started it."""
        ray = import_ray()
        check_address(self.address)
        if ray.is_initialized():
            return ray, False
        try:
            ray.init(address=self.address or None,
                     include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False)
        except ConnectionError as e:
            where = self.address or "this machine"
            raise LotteryError(f"cannot connect to a Ray cluster at {where}: "
                               f"{str(e).splitlines()[0]}") from None
        return ray, True

    def resources(self, ray, runs_per_device):
        """The resources each run's task asks for."""
        if ray.cluster_resources().get("GPU", 0) > 0:
            return {"num_gpus": 1 / runs_per_device, "num_cpus": 0}
        return {"num_cpus": 1}

    def check_visible(self, ray, plan):
        """Refuses a study root or data folder that some live Ray node does
        not see (the same file, written here, read there)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        root = plan.study.root
        root.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(8)
        marker = root / f".visible-{token}"
        marker.write_text(token)
        folders = [plan.study.data_dir] if plan.study.data_dir else []
        remote = ray.remote(num_cpus=0, max_retries=0)(probe)
        try:
            refs = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                        node["NodeID"], soft=False)).remote([str(marker)], folders)
                    for node in ray.nodes() if node.get("Alive")]
            seen = ray.get(refs, timeout=120)
        finally:
            marker.unlink(missing_ok=True)
        problem = visibility_problem(seen, str(marker), token, folders)
        if problem:
            raise LotteryError(problem)

    def run(self, plan, runs_per_device=1, retry_failed=False, progress=Progress):
        """Runs the plan to its end; returns {status: count} of the nodes.
        `progress`: as the local `Scheduler`'s."""
        ray, started = self.connect()
        try:
            state.write(plan)
            self.check_visible(ray, plan)
            return self._run(ray, plan, runs_per_device, retry_failed, progress)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, plan, runs_per_device, retry_failed, progress):
        found = state.statuses(plan)
        # max_calls=0: a worker runs any number of tasks (Ray's default for
        # a GPU task is one).
        remote = ray.remote(max_calls=0, max_retries=RETRIES,
                            retry_exceptions=[noderun.RunKilled])(_task)
        options = self.resources(ray, runs_per_device)
        refs = submit(plan, found, retry_failed, lambda node, parents: remote.options(
            name=node.id, **options).remote(str(plan.study.root), node, self.python,
                                            backends.configured(), *parents))
        left = {n.id: state.remaining_steps(plan, n, found[n.id]) for n in plan.nodes}
        report = progress(len(plan.nodes), list(found.values()).count(state.FINISHED),
                          plan.total_steps, sum(left.values()))
        given_up = set()
        parents = {n.id: n.parent for n in plan.nodes}
        try:
            _wait(ray, refs, parents, left, report, given_up)
        except BaseException:
            _cancel(ray, refs)
            raise
        finally:
            report.close()
        final = state.final_statuses(plan, given_up)
        state.tidy_root(plan, final)
        return state.count(final)


def submit(plan, found, retry_failed, start):
    """{node id: ref} of `start(node, parent refs)` for every node to run,
    parents first: not finished, not blocked, failed only with
    `retry_failed`, and with a finished parent or one started here."""
    refs = {}
    for node in plan.nodes:
        status = found[node.id]
        if status == state.FINISHED or (
                status in state.DEAD_ENDS and not (retry_failed and status != state.DAMAGED)):
            continue
        if node.parent is None or found[node.parent] == state.FINISHED:
            parents = []
        elif node.parent in refs:
            parents = [refs[node.parent]]
        else:
            continue
        refs[node.id] = start(node, parents)
    return refs


def visibility_problem(seen, marker, token, folders):
    """The one-line problem in what each node's probe saw, or None."""
    for found in seen:
        if found["files"].get(marker) != token:
            return (f"Ray node {found['host']} does not see the study root "
                    f"{os.path.dirname(marker)}; put the study on a file system "
                    "every node mounts at the same path")
        for folder in folders:
            if not found["folders"].get(folder):
                return (f"Ray node {found['host']} does not see the data folder "
                        f"{folder}; download the data there (lottery data download) "
                        "on a file system every node mounts")
    return None


def _wait(ray, refs, parents, left, report, given_up):
    pending = {ref: node_id for node_id, ref in refs.items()}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in done:
            node_id = pending.pop(ref)
            try:
                _, _, seconds = ray.get(ref)
            except ray.exceptions.RayError as e:
                parent = refs.get(parents[node_id])
                message = None if parent is not None and _failed(ray, parent) else (
                    _failure(e, node_id))
                if message is not None:  # else a parent failed: blocked
                    given_up.add(node_id)
                    report.run_failed(node_id, message)
                continue
            report.run_finished(node_id, seconds or None, left.pop(node_id, 0))


def _failed(ray, ref):
    try:
        ray.get(ref, timeout=0)
    except ray.exceptions.RayError:
        return True
    return False


def _failure(error, node_id):
    """The message of a task's own failure, None when it only inherited a
    failed dependency's."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, (noderun.RunFailed, noderun.RunKilled)):
        text = str(cause)
        return text[len(node_id) + 2:] if text.startswith(f"{node_id}: ") else None
    first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return f"its Ray task failed: {first}"


def _cancel(ray, refs):
    """Cancels every task as Ctrl-C: a running run marks itself resumable
    (noderun) before its worker ends."""
    for ref in refs.values():
        ray.cancel(ref)
    ray.wait(list(refs.values()), num_returns=len(refs),
             timeout=noderun.GRACE_SECONDS + 5)

