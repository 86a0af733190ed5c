"""Probe submitit: debug executor, job arrays, sbatch rendering with a fake sbatch,
and (where tests/slurm_cluster.py can start one) a real single-node Slurm.

    /work/venv-engines/bin/python docs-drafts/engines-probes/submitit_probe.py [fake|debug|local|real]

(not a test; venv-engines has submitit and pytest; prints one JSON line per fact,
and the rendered sbatch scripts.)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import submitit

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2] / "tests"))


def say(**kw):
    print(json.dumps(kw, default=str), flush=True)


def run_cmd(argv):
    """What a 'lottery ...' run looks like to the engine: one subprocess, its exit code."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {proc.stderr.strip()[-200:]}")
    return dict(out=proc.stdout.strip(), job=os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_DEBUG_JOB_ID"),
                array_task=os.environ.get("SLURM_ARRAY_TASK_ID"), restarts=os.environ.get("SLURM_RESTART_COUNT"))


class Resumable(submitit.helpers.Checkpointable):
    """Counts to `n`, one per second; a checkpoint keeps the count, so a requeue resumes."""

    def __init__(self, marker: str):
        self.done_steps = 0
        self.marker = marker

    def __call__(self, n: int):
        while self.done_steps < n:
            Path(self.marker).write_text(str(self.done_steps))
            time.sleep(1)
            self.done_steps += 1
        return dict(steps=self.done_steps, restarts=os.environ.get("SLURM_RESTART_COUNT"))

    def checkpoint(self, *args, **kwargs):
        # The default would resubmit self as it is (which already keeps done_steps); shown explicitly.
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def debug():
    folder = tempfile.mkdtemp(prefix="submitit-debug-")
    ex = submitit.AutoExecutor(folder, cluster="debug")
    ex.update_parameters(timeout_min=5, slurm_array_parallelism=2)  # slurm_* ignored by debug
    t0 = time.monotonic()
    with ex.batch():
        jobs = [ex.submit(run_cmd, ["echo", f"run{i}"]) for i in range(3)]
    ids = [j.job_id for j in jobs]
    results = [j.result() for j in jobs]  # the debug executor runs each job here, in-process, in order
    say(fact="debug_batch", job_ids=ids, results=[r["out"] for r in results],
        seconds=round(time.monotonic() - t0, 2), executor=type(ex._executor).__name__)
    bad = ex.submit(run_cmd, ["sh", "-c", "echo oops >&2; exit 3"])
    exc = bad.exception()  # .result() would open pdb.post_mortem() on the error; exception() does not
    say(fact="debug_failure", exception=type(exc).__name__, message=str(exc)[:120])


def local():
    folder = tempfile.mkdtemp(prefix="submitit-local-")
    ex = submitit.AutoExecutor(folder, cluster="local")
    ex.update_parameters(timeout_min=2)
    t0 = time.monotonic()
    jobs = ex.map_array(run_cmd, [["echo", f"run{i}"] for i in range(2)])
    say(fact="local_map_array", results=[j.result()["out"] for j in jobs], seconds=round(time.monotonic() - t0, 2),
        job_ids=[j.job_id for j in jobs])


FAKE_SBATCH = r"""#!/bin/sh
# Fake sbatch: keep argv and the script, answer like Slurm.
d="$FAKE_SLURM_DIR"; n=$(( $(cat "$d/next" 2>/dev/null || echo 100) + 1 )); echo $n > "$d/next"
printf '%s\n' "$@" > "$d/$n.argv"
for a in "$@"; do [ -f "$a" ] && cp "$a" "$d/$n.sbatch"; done
echo "Submitted batch job $n"
"""


def fake():
    """Render sbatch scripts without Slurm: fake sbatch/srun/sacct on PATH."""
    d = Path(tempfile.mkdtemp(prefix="fake-slurm-"))
    bin_ = d / "bin"
    bin_.mkdir()
    (bin_ / "sbatch").write_text(FAKE_SBATCH)
    (bin_ / "srun").write_text("#!/bin/sh\nexit 0\n")   # only looked up: submitit needs srun on PATH
    (bin_ / "sacct").write_text("#!/bin/sh\necho 'JobID|State|NodeList'\n")
    (bin_ / "scancel").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    os.environ["PATH"] = f"{bin_}:{os.environ['PATH']}"
    os.environ["FAKE_SLURM_DIR"] = str(d)

    ex = submitit.AutoExecutor(d / "jobs")  # no cluster=: picks slurm because srun is on PATH
    ex.update_parameters(timeout_min=30, slurm_partition="gpu", gpus_per_node=1, cpus_per_task=4,
                         mem_gb=16, name="lottery", slurm_array_parallelism=2)
    first = ex.submit(run_cmd, ["lottery", "train"])
    with ex.batch():
        array = [ex.submit(run_cmd, ["lottery", "prune", f"--round={i}"]) for i in range(4)]
    array_id = array[0].job_id.split("_")[0]
    # Dependencies: first-class parameter (slurm_dependency) or the escape hatch. Parameters stick
    # to an executor and update_parameters(slurm_dependency=None) does NOT clear them (None means
    # "not given"), so use one executor per dependency set.
    ex_dep = submitit.AutoExecutor(d / "jobs")
    ex_dep.update_parameters(timeout_min=30, slurm_dependency=f"afterok:{first.job_id}:{array_id}")
    after = ex_dep.submit(run_cmd, ["lottery", "report"])
    ex_dep.update_parameters(slurm_dependency=None)
    say(fact="none_does_not_clear", dependency=ex_dep._executor.parameters.get("dependency"))
    ex_dep2 = submitit.AutoExecutor(d / "jobs")
    ex_dep2.update_parameters(timeout_min=30, slurm_additional_parameters={
        "dependency": f"afterany:{after.job_id}", "kill-on-invalid-dep": "yes"})
    after2 = ex_dep2.submit(run_cmd, ["lottery", "plot"])
    say(fact="fake_ids", executor=type(ex._executor).__name__, first=first.job_id,
        array=[j.job_id for j in array], after=after.job_id, after2=after2.job_id)
    for job in (first, array[0], after, after2):
        text = Path(job.paths.submission_file).read_text()
        flags = [line for line in text.splitlines() if line.startswith("#SBATCH")]
        say(fact="rendered", job=job.job_id, submission_file=str(job.paths.submission_file),
            flags=flags, argv=(d / f"{job.job_id.split('_')[0]}.argv").read_text().split())
    print("----- array submission file -----")
    print(Path(array[0].paths.submission_file).read_text())


def real():
    import pytest  # noqa: F401  (slurm_cluster skips via pytest)
    from slurm_cluster import start_cluster

    tmp = Path(tempfile.mkdtemp(prefix="submitit-real-"))
    try:
        cluster = start_cluster(tmp)
    except BaseException as exc:  # pytest's Skipped derives from BaseException
        say(fact="real_slurm", available=False, reason=str(exc))
        return
    os.environ.update({k: cluster.env[k] for k in ("SLURM_CONF", "PATH", "KL_SLURM_CLUSTER")})  # = cluster.activate()
    try:
        ex = submitit.AutoExecutor(tmp / "jobs")
        ex.update_parameters(timeout_min=10, slurm_array_parallelism=1, cpus_per_task=1, name="probe")
        t0 = time.monotonic()
        job = ex.submit(run_cmd, ["echo", "hello"])
        r = job.result()
        say(fact="real_single", job=job.job_id, result=r, seconds=round(time.monotonic() - t0, 2))

        t0 = time.monotonic()
        with ex.batch():
            arr = [ex.submit(run_cmd, ["sh", "-c", f"date +%s.%N; sleep 1; date +%s.%N; echo {i}"]) for i in range(3)]
        array_id = arr[0].job_id.split("_")[0]
        ex_dep = submitit.AutoExecutor(tmp / "jobs")
        ex_dep.update_parameters(timeout_min=10, slurm_dependency=f"afterok:{array_id}")
        dep = ex_dep.submit(run_cmd, ["date", "+%s.%N"])
        pending_reason = cluster.show_job(dep.job_id).get("Reason")
        res = [j.result() for j in arr]
        spans = sorted((float(r["out"].split()[0]), float(r["out"].split()[1])) for r in res)
        overlap = any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
        dep_start = float(dep.result()["out"])
        say(fact="real_array_dependency", array=[j.job_id for j in arr], throttle_overlap=overlap,
            dependent_reason_while_pending=pending_reason, dependent_after_array=dep_start >= spans[-1][1],
            seconds=round(time.monotonic() - t0, 2))

        # Preemption/timeout -> Checkpointable -> submitit calls `scontrol requeue` and the job resumes.
        marker = tmp / "steps"
        t0 = time.monotonic()
        ck = ex.submit(Resumable(str(marker)), 8)
        while not (marker.exists() and int(marker.read_text() or 0) >= 2):
            time.sleep(0.2)
        ck._interrupt()  # scancel --signal SIGTERM, then --signal USR2 (what Slurm sends at --signal=USR2@90)
        r = ck.result()
        say(fact="real_checkpoint_requeue", result=r, restarts=cluster.show_job(ck.job_id).get("Restarts"),
            seconds=round(time.monotonic() - t0, 2),
            log_tail=[l for l in Path(ck.paths.stderr).read_text().splitlines() if "requeue" in l.lower()
                      or "checkpoint" in l.lower() or "signal" in l.lower()][:6])

        # A job that dies without a result: submitit's state comes from sacct, which needs
        # slurmdbd; the real sacct says "accounting storage is disabled" and the watcher says
        # UNKNOWN (not done) forever. slurm_cluster puts a sacct stand-in (from squeue) on PATH.
        dead = ex.submit(run_cmd, ["sleep", "300"])
        cluster.wait(dead.job_id, "RUNNING", timeout=30)
        cluster.run("scancel", dead.job_id)
        cluster.wait(dead.job_id, timeout=30)
        say(fact="real_cancelled_state", slurm=cluster.state(dead.job_id),
            submitit_state=dead.watcher.get_state(dead.job_id, mode="force"), submitit_done=dead.done(force_check=True))
    finally:
        cluster.stop()
        say(fact="real_stopped", leftovers=cluster.leftover_pids())


if __name__ == "__main__":
    which = sys.argv[1:] or ["debug", "local", "fake", "real"]
    for name in which:
        globals()[name]()
