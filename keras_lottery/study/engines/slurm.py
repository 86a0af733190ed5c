"""Slurm, through submitit: a study submitted as one job array per
dependency wave, and left to the queue.

Wave 0 holds the runs whose parent is finished on disk (or that have
none); wave i + 1 the runs whose parent is in wave i. Each wave's runs are
bundled `runs_per_job` to a job (default `runs_per_device x gpus_per_job`,
one per slot; `bundle.Bundle`, run on the job's GPUs by the single-machine
pool, in its warm workers), and submitted as one array
throttled by `array_parallelism` (split in arrays of `MAX_ARRAY_JOBS`),
`afterok` on the previous wave's arrays:
only on jobs of this invocation, since a finished parent needs none (and
Slurm refuses `afterok` on a job that has ended). A job that reaches its
time limit or is preempted is requeued by submitit (the bundle is
checkpointable: each run resumes from its saved state). The arrays' ids
go to study.json as each is submitted, so `lottery study status` shows them and `lottery study
cancel` cancels them. Running the command again while they are queued is
refused; once they end, it submits what is left.
"""

import dataclasses
import datetime
import getpass
import subprocess

from keras_lottery.errors import LotteryError
from keras_lottery.study import state

EXTRA = "pip install 'keras-lottery[slurm]'"
JOBS_DIR = "slurm-jobs"
ENGINE = "slurm"
# Jobs per array: Slurm's default MaxArraySize (1001) allows indices 0-1000.
MAX_ARRAY_JOBS = 1000
# Folders that are local to each node of a cluster.
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm")
ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING",
          "COMPLETING", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT")


def import_submitit():
    """The `submitit` module, or a one-line error naming the extra."""
    try:
        import submitit
    except ImportError:
        raise LotteryError("the slurm engine needs submitit, which is not "
                           f"installed: {EXTRA}") from None
    return submitit


@dataclasses.dataclass
class Submitted:
    """What one submission did.

    Attributes:
        records: one dict per wave's array, as study.json keeps them.
        jobs: the submitit jobs, wave by wave.
        found: the statuses the waves were planned from.
        left_out: runs not submitted because another process holds them
            (or an ancestor of theirs).
        folder: where submitit keeps the jobs' scripts and logs.
    """

    records: list
    jobs: list
    found: dict
    left_out: int
    folder: object


def waves(plan, found, retry_failed, size):
    """[[bundle of node ids, ...] per wave], and how many runs were left
    out; see the module docstring. Longest chains first in each wave."""
    wave, left_out = {}, 0
    for node in plan.nodes:
        status = found[node.id]
        if status == state.FINISHED or (
                status in state.DEAD_ENDS and not (retry_failed and status != state.DAMAGED)):
            continue
        if status == state.RUNNING:
            left_out += 1
        elif node.parent is None or found[node.parent] == state.FINISHED:
            wave[node.id] = 0
        elif node.parent in wave:
            wave[node.id] = wave[node.parent] + 1
        elif found[node.parent] not in state.DEAD_ENDS:
            left_out += 1
    found_waves = []
    for index in range(max(wave.values(), default=-1) + 1):
        ids = sorted((i for i, w in wave.items() if w == index),
                     key=lambda i: (-plan.priority[i], i))
        found_waves.append([ids[j:j + size] for j in range(0, len(ids), size)])
    return found_waves, left_out


def queue_states(ids):
    """{array or job id: [state of each of its jobs in the queue]}; jobs
    that have left the queue are absent."""
    if not ids:
        return {}
    try:
        done = subprocess.run(
            ["squeue", "--noheader", "--array", "--user", getpass.getuser(),
             "--format=%F|%i|%T"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise LotteryError("squeue is not on PATH: run this on a machine of the "
                           "Slurm cluster") from None
    if done.returncode != 0:
        raise LotteryError(f"squeue failed: {done.stderr.strip().splitlines()[-1:]}")
    found = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0] in ids:
            found.setdefault(parts[0], []).append(parts[2])
    return found


def records(root):
    """The Slurm arrays study.json records for the study under `root`."""
    return [r for r in state.jobs(root) if r.get("engine") == ENGINE]


def cancel(root):
    """Cancels the study's queued and running jobs; returns their ids."""
    active = queue_states({r["id"] for r in records(root)})
    if not active:
        return []
    ids = sorted(active)
    done = subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise LotteryError(f"scancel failed: {done.stderr.strip()}")
    return ids


def check_visible(plan, environ=None):
    """Refuses a study root or data folder in a node-local folder when the
    cluster has more than one node."""
    paths = [plan.study.root] + ([plan.study.data_dir] if plan.study.data_dir else [])
    local = [p for p in map(str, paths)
             if any(p == d or p.startswith(d + "/") for d in NODE_LOCAL)]
    if not local:
        return
    try:
        done = subprocess.run(["sinfo", "--noheader", "--format=%n"], capture_output=True,
                              text=True, timeout=60, env=environ)
        nodes = set(done.stdout.split()) if done.returncode == 0 else set()
    except FileNotFoundError:
        nodes = set()
    if len(nodes) > 1:
        raise LotteryError(f"{local[0]} is local to each node of this {len(nodes)}-node "
                           "cluster; put the study and its data on a file system "
                           "every node mounts")


class SlurmEngine:
    """Submits a plan to Slurm.

    Args:
        cluster: submitit's cluster: "slurm", or "debug" (every job runs
            in this process when its result is asked for; for tests).
    """

    name = ENGINE

    def __init__(self, cluster="slurm"):
        self.cluster = cluster

    def submit(self, plan, retry_failed=False):
        """Submits every run left to train; returns a `Submitted`."""
        submitit = import_submitit()
        root = plan.study.root
        settings = plan.study.slurm
        if self.cluster == "slurm":
            queued = queue_states({r["id"] for r in records(root)})
            if queued:
                raise LotteryError(
                    f"jobs of this study are still in the queue ({', '.join(sorted(queued))}); "
                    f"wait for them, or cancel them: lottery study cancel {plan.study.path}")
            check_visible(plan)
        found = state.statuses(plan)
        planned, left_out = waves(plan, found, retry_failed,
                                  settings.job_size(plan.study.runs_per_device))
        state.write(plan)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = root / JOBS_DIR / stamp
        submitted, jobs, previous = [], [], []
        for index, bundles in enumerate(planned):
            arrays = []
            for part, start in enumerate(range(0, len(bundles), MAX_ARRAY_JOBS)):
                chunk = bundles[start:start + MAX_ARRAY_JOBS]
                where = folder / (f"wave-{index}" + (f"-{part}" if part else ""))
                array_jobs = self._submit_array(submitit, where, plan, chunk, previous,
                                                retry_failed, index, submitted)
                arrays.append(str(array_jobs[0].job_id).split("_")[0]
                              if self.cluster == ENGINE else str(array_jobs[0].job_id))
                submitted.append({"engine": ENGINE, "id": arrays[-1], "wave": index,
                                "after": ":".join(previous) or None,
                                "jobs": [str(j.job_id) for j in array_jobs],
                                "nodes": [i for bundle in chunk for i in bundle],
                                "bundles": chunk, "folder": str(where),
                                "submitted": datetime.datetime.now().isoformat(
                                    timespec="seconds")})
                # On record at once: a later refusal leaves these cancellable.
                state.write_jobs(root, submitted)
                jobs.append(array_jobs)
            previous = arrays
        return Submitted(submitted, jobs, found, left_out, folder)

    def _submit_array(self, submitit, where, plan, bundles, after, retry_failed, wave,
                      submitted):
        try:
            executor = self.executor(submitit, where, plan, after)
            return self._submit_wave(executor, plan, bundles, retry_failed)
        except (OSError, RuntimeError) as e:  # submitit's errors are RuntimeErrors
            before = (f"; the {len(submitted)} arrays submitted before it are in study.json "
                      f"(lottery study cancel {plan.study.path} cancels them)" if submitted else "")
            text = str(e).strip().splitlines()
            raise LotteryError(f"Slurm refused wave {wave}: "
                               f"{text[-1] if text else type(e).__name__}{before}") from None

    def executor(self, submitit, folder, plan, after=()):
        """A submitit executor for one array, `afterok` on the arrays
        `after` (one executor per array: submitit keeps parameters on it)."""
        settings = plan.study.slurm
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster,
                                         slurm_python=settings.interpreter,
                                         slurm_max_num_timeout=settings.max_requeues)
        extra = settings.options()
        if after:
            extra.update({"dependency": "afterok:" + ":".join(after),
                          "kill-on-invalid-dep": "yes"})
        params = {"name": f"lottery-{plan.study.path.stem}", "nodes": 1,
                  "tasks_per_node": 1, "timeout_min": settings.time_min,
                  "slurm_array_parallelism": settings.array_parallelism,
                  "slurm_setup": list(settings.setup),
                  "slurm_additional_parameters": extra}
        optional = {"gpus_per_node": settings.gpus_per_job or None,
                    "cpus_per_task": settings.cpus_per_job, "mem_gb": settings.mem_gb,
                    "slurm_partition": settings.partition}
        params.update({k: v for k, v in optional.items() if v is not None})
        executor.update_parameters(**params)
        return executor

    def _submit_wave(self, executor, plan, bundles, retry_failed):
        from keras_lottery.study.engines.bundle import Bundle

        settings = plan.study.slurm
        with executor.batch():
            jobs = [executor.submit(Bundle(), plan.study, _with_parents(plan, ids), ids,
                                    settings.gpus_per_job, plan.study.runs_per_device,
                                    retry_failed)
                    for ids in bundles]
        return jobs


def _with_parents(plan, ids):
    """The nodes of a bundle and their (finished) parents, parents first:
    the plan a bundle runs, the parents without parents of their own."""
    own = set(ids)
    parents = {plan.by_id[i].parent for i in ids} - own - {None}
    return [dataclasses.replace(n, parent=None) if n.id in parents else n
            for n in plan.nodes if n.id in own | parents]


def describe(root):
    """Lines for `lottery study status`: each recorded array and its jobs'
    states in the queue."""
    recorded = records(root)
    if not recorded:
        return []
    try:
        queued = queue_states({r["id"] for r in recorded})
    except LotteryError as e:
        queued, note = {}, f" (queue not read: {e})"
    else:
        note = ""
    lines = [f"Slurm jobs (submitted {recorded[0].get('submitted', '?')}){note}:"]
    for record in recorded:
        states = queued.get(record["id"], [])
        text = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        left = len(record["jobs"]) - len(states) if states or not note else 0
        text = ", ".join(filter(None, [text, f"{left} ended" if left else ""]))
        lines.append(f"  wave {record['wave']}: array {record['id']}, "
                     f"{len(record['jobs'])} jobs: {text or 'unknown'}")
    return lines

