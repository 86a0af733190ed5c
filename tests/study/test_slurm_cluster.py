"""The throwaway Slurm cluster of tests/slurm_cluster.py works end to end.

Skipped, with a one-line reason, where Slurm cannot be installed or started
(``.ci/setup-slurm`` installs it on Debian). About 20 s where it runs.
"""

import subprocess
import time

import pytest

from slurm_cluster import start_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield c
    c.stop()
    assert c.leftover_pids() == []


def test_sbatch_runs_a_job_end_to_end(cluster, tmp_path):
    out = tmp_path / "hi.out"
    job = cluster.sbatch("-o", str(out), "--wrap", "echo hi from $SLURM_JOB_ID")
    assert cluster.wait(job, timeout=30) == "COMPLETED"
    assert out.read_text().strip() == f"hi from {job}"
    assert cluster.show_job(job)["ExitCode"] == "0:0"


def test_failing_job_is_failed(cluster, tmp_path):
    job = cluster.sbatch("-o", str(tmp_path / "x.out"), "--wrap", "exit 3")
    assert cluster.wait(job, timeout=30) == "FAILED"
    assert cluster.show_job(job)["ExitCode"] == "3:0"


def test_array_throttle_and_afterok_dependency(cluster, tmp_path):
    log = tmp_path / "log"
    array = cluster.sbatch(
        "-a", "0-2%1", "-o", str(tmp_path / "a_%A_%a.out"), "--wrap",
        f'echo "start $SLURM_ARRAY_TASK_ID $(date +%s.%N)" >> {log}; sleep 0.5; '
        f'echo "end $SLURM_ARRAY_TASK_ID $(date +%s.%N)" >> {log}')
    after = cluster.sbatch(f"--dependency=afterok:{array}", "-o", str(tmp_path / "b.out"),
                           "--wrap", f'echo "after x $(date +%s.%N)" >> {log}')
    assert cluster.show_job(after)["JobState"] == "PENDING"
    assert cluster.wait(after, timeout=60) == "COMPLETED"
    events = [line.split() for line in log.read_text().splitlines()]
    # %1: never two tasks at once -> the log alternates start/end.
    assert [e[0] for e in events] == ["start", "end"] * 3 + ["after"]
    assert sorted(e[1] for e in events if e[0] == "start") == ["0", "1", "2"]
    assert float(events[-1][2]) >= max(float(e[2]) for e in events[:-1])
    assert set(cluster.states(array).values()) == {"COMPLETED"}


def test_dependency_on_failed_job_never_runs(cluster, tmp_path):
    first = cluster.sbatch("-o", str(tmp_path / "f.out"), "--wrap", "exit 1")
    second = cluster.sbatch(f"--dependency=afterok:{first}", "--kill-on-invalid-dep=yes",
                            "-o", str(tmp_path / "s.out"), "--wrap", "echo ran")
    assert cluster.wait(first, timeout=30) == "FAILED"
    assert cluster.wait(second, timeout=30) == "CANCELLED"
    assert not (tmp_path / "s.out").exists()


def test_requeue_of_running_job_reruns_it(cluster, tmp_path):
    out = tmp_path / "rq.out"
    job = cluster.sbatch(
        "--requeue", "--open-mode=append", "-o", str(out), "--wrap",
        'echo "run ${SLURM_RESTART_COUNT:-0}"; '
        'if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 120; fi; echo done')
    cluster.wait(job, "RUNNING", timeout=30)
    deadline = time.monotonic() + 10
    while "run 0" not in (out.read_text() if out.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    cluster.run("scontrol", "requeue", job)
    assert cluster.wait(job, timeout=60) == "COMPLETED"
    text = out.read_text()
    assert "run 0" in text and "run 1" in text and text.strip().endswith("done")
    assert cluster.show_job(job)["Restarts"] == "1"


def test_scancel_ends_a_running_job(cluster, tmp_path):
    job = cluster.sbatch("-o", str(tmp_path / "c.out"), "--wrap", "sleep 300")
    cluster.wait(job, "RUNNING", timeout=30)
    cluster.run("scancel", job)
    assert cluster.wait(job, timeout=30) == "CANCELLED"


def test_stop_leaves_no_process(tmp_path):
    c = start_cluster(tmp_path)
    try:
        c.sbatch("-o", str(tmp_path / "s.out"), "--wrap", "sleep 300")
        c.wait(c.sbatch("-o", "/dev/null", "--wrap", "true"), timeout=30)
        assert len(c.leftover_pids()) >= 4  # munged, slurmctld (+ scriptd), slurmd, a job
    finally:
        c.stop()
    assert c.leftover_pids() == []
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    assert str(c.root) not in ps
    assert not c.root.exists()


def test_sacct_stand_in_reports_states(cluster, tmp_path):
    done = cluster.sbatch("-o", "/dev/null", "--wrap", "true")
    array = cluster.sbatch("-a", "0-1", "-o", "/dev/null", "--wrap", "exit $SLURM_ARRAY_TASK_ID")
    cluster.wait(done, timeout=30)
    cluster.wait_idle(timeout=30)
    out = cluster.run("sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", done, "-j", array).stdout
    lines = out.splitlines()
    assert lines[0] == "JobID|State|NodeList"
    rows = {line.split("|")[0]: line.split("|")[1:] for line in lines[1:]}
    assert rows[done] == ["COMPLETED", cluster.node]
    assert rows[f"{array}_0"][0] == "COMPLETED" and rows[f"{array}_1"][0] == "FAILED"
