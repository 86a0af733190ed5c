"""The Slurm engine (issue 13): waves and bundles; the sbatch scripts
submitit writes (arrays, throttle, afterok only on this invocation's
arrays, the [slurm] section), against stand-in Slurm commands; the tiny
digits study through submitit's debug executor (every bundle in this
process) and on a real single-node Slurm (tests/slurm_cluster.py; skipped
with a one-line reason where it cannot start), one job requeued as a
preemption does, both equal to the single-machine engine's study."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from keras_lottery.runs import locks
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs.run import Run
from keras_lottery.cli import main
from keras_lottery.errors import LotteryError
from keras_lottery.study import planner
from keras_lottery.study.engines import slurm as slurmengine
from keras_lottery.study.engines.slurmconfig import SlurmSettings
from keras_lottery.study import state
from keras_lottery.study import studyfile
from error_messages import one_error_line
from slurm_cluster import start_cluster
from tiny_study import RUNS
from tiny_study import STUDY
from tiny_study import assert_same_study
from tiny_study import command
from tiny_study import env as study_env
from tiny_study import make_folder

submitit = pytest.importorskip("submitit", reason="submitit is not installed: "
                               "pip install '.[slurm]'")

SECTION = """
[slurm]
partition = "gpu"
time = "1:30:00"
gpus_per_job = 1
cpus_per_job = 4
mem_gb = 16
array_parallelism = 2
sbatch = ["--account=lab", "--exclusive"]
setup = ["module load cuda/12.4"]
"""
CPU_SECTION = '\n[slurm]\ngpus_per_job = 0\ntime = 10\n'
BASE, ROUND2 = RUNS[0], RUNS[-1]
DERIVED = sorted(RUNS[1:4])

# Stand-ins for the Slurm commands submitit and the engine call: sbatch
# keeps the script and answers the next id, squeue answers from queue.txt,
# scancel and sinfo log or answer.
FAKES = {
    "sbatch": """#!/bin/sh
n=$(cat "$FAKE/next" 2>/dev/null || echo 101); echo $((n + 1)) > "$FAKE/next"
cp "$1" "$FAKE/sbatch-$n.sh"; echo "Submitted batch job $n"
""",
    "srun": "#!/bin/sh\nexit 0\n",
    "sacct": "#!/bin/sh\necho 'JobID|State|NodeList'\n",
    "squeue": "#!/bin/sh\ncat \"$FAKE/queue.txt\" 2>/dev/null\n",
    "scancel": "#!/bin/sh\necho \"$@\" >> \"$FAKE/scancel.log\"\n",
    "sinfo": "#!/bin/sh\necho node1\n",
}


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    folder = tmp_path / "fake-slurm"
    folder.mkdir()
    for name, text in FAKES.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    monkeypatch.setenv("FAKE", str(folder))
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def _plan(folder, text):
    (folder / "study.toml").write_text(text)
    return planner.expand(studyfile.load(folder / "study.toml"))


def test_waves_bundle_runs_after_their_parents_wave(tmp_path):
    plan = _plan(tmp_path, STUDY.replace("seeds = [0]", "seeds = [0, 1]"))
    found = {n.id: state.PENDING for n in plan.nodes}
    waves, left_out = slurmengine.waves(plan, found, False, 2)
    assert [sum(map(len, w)) for w in waves] == [2, 6, 2] and left_out == 0
    assert all(len(bundle) <= 2 for wave in waves for bundle in wave)
    # Longest chains first: each seed's first round leads its wave.
    assert waves[1][0] == ["lenet300/iterate-rewind-lr-k7-r80-s0/round-1",
                           "lenet300/iterate-rewind-lr-k7-r80-s1/round-1"]
    found.update({"lenet300/train-s0": state.FINISHED, "lenet300/train-s1": state.FAILED})
    found.update({n.id: state.BLOCKED for n in plan.nodes if "-s1" in n.id
                  and "train" not in n.id})
    waves, _ = slurmengine.waves(plan, found, False, 8)
    assert waves == [[[RUNS[3], *sorted(RUNS[1:3])]], [[ROUND2]]]
    retried, _ = slurmengine.waves(plan, found, True, 8)  # s1 and all it blocked
    assert [sorted(map(len, w)) for w in retried] == [[4], [4], [1]]
    assert "lenet300/train-s1" in retried[0][0]
    found["lenet300/iterate-rewind-lr-k7-r80-s0/round-1"] = state.RUNNING
    waves, left_out = slurmengine.waves(plan, found, False, 8)
    assert left_out == 2 and ROUND2 not in str(waves)  # held elsewhere, and its child


def _script(fake, job_id):
    return (fake / f"sbatch-{job_id}.sh").read_text()


def _sbatch(text):
    return dict(re.findall(r"^#SBATCH --([a-z-]+)(?:=(.*))?$", text, flags=re.M))


def test_a_job_holds_runs_per_job_runs_and_at_least_one_per_slot():
    assert SlurmSettings(gpus_per_job=4).job_size(runs_per_device=2) == 8  # the slots
    assert SlurmSettings(gpus_per_job=4, runs_per_job=20).job_size(2) == 20
    assert SlurmSettings(gpus_per_job=4, runs_per_job=2).job_size(1) == 4  # no GPU idle
    assert SlurmSettings(gpus_per_job=0, runs_per_job=3).job_size(1) == 3


def test_the_sbatch_scripts_of_a_fresh_study(tmp_path, fake_slurm):
    plan = _plan(tmp_path, STUDY + SECTION)
    submitted = slurmengine.SlurmEngine().submit(plan)
    assert [(r["id"], r["wave"], r["after"], len(r["jobs"])) for r in submitted.records] == [
        ("101", 0, None, 1), ("102", 1, "101", 3), ("103", 2, "102", 1)]
    first, second, third = (_sbatch(_script(fake_slurm, i)) for i in ("101", "102", "103"))
    assert "dependency" not in first
    assert second["dependency"] == "afterok:101" and third["dependency"] == "afterok:102"
    assert second["kill-on-invalid-dep"] == "yes"
    assert second["array"] == "0-2%2" and "array" not in first  # one job: no array
    for options in (first, second, third):
        assert (options["partition"], options["time"], options["gpus-per-node"],
                options["cpus-per-task"], options["mem"], options["account"],
                options["exclusive"]) == ("gpu", "90", "1", "4", "16GB", "lab", "")
        assert options["job-name"] == "lottery-study"
    script = _script(fake_slurm, "102")
    assert "module load cuda/12.4" in script
    assert f"{sys.executable} -u -m submitit.core._submit" in script
    saved = state.jobs(plan.study.root)
    assert saved == submitted.records and saved[1]["nodes"] == sorted(
        saved[1]["nodes"], key=lambda i: (-plan.priority[i], i))
    assert sorted(n for r in saved for n in r["nodes"]) == sorted(RUNS)


def test_a_parent_finished_on_disk_gets_no_dependency(tmp_path, fake_slurm, reference_study):
    plan = _plan(tmp_path, STUDY + SECTION)
    shutil.copytree(reference_study[0] / "runs/tiny" / BASE, plan.path(BASE))
    submitted = slurmengine.SlurmEngine().submit(plan)
    assert [(r["wave"], r["after"], sorted(r["nodes"])) for r in submitted.records] == [
        (0, None, sorted(RUNS[1:4])), (1, "101", [ROUND2])]
    assert "dependency" not in _sbatch(_script(fake_slurm, "101"))
    assert _sbatch(_script(fake_slurm, "102"))["dependency"] == "afterok:101"


def test_a_refused_submission_keeps_what_was_queued_on_record(tmp_path, fake_slurm,
                                                              monkeypatch):
    (fake_slurm / "sbatch").write_text(FAKES["sbatch"].replace(
        "cp ", '[ "$n" = 102 ] && { echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; '
        'echo 103 > "$FAKE/next"; exit 1; }\ncp '))
    plan = _plan(tmp_path, STUDY + SECTION)
    with pytest.raises(LotteryError) as error:
        slurmengine.SlurmEngine().submit(plan)
    assert str(error.value) == (
        "Slurm refused wave 1: sbatch: error: QOSMaxSubmitJobPerUserLimit; the 1 arrays "
        f"submitted before it are in study.json (lottery study cancel {plan.study.path} "
        "cancels them)")
    assert [r["id"] for r in state.jobs(plan.study.root)] == ["101"]


def test_a_wave_of_more_jobs_than_an_array_takes_is_split(tmp_path, fake_slurm,
                                                          monkeypatch):
    monkeypatch.setattr(slurmengine, "MAX_ARRAY_JOBS", 2)
    plan = _plan(tmp_path, STUDY + SECTION)
    submitted = slurmengine.SlurmEngine().submit(plan)
    assert [(r["id"], r["wave"], r["after"], len(r["jobs"])) for r in submitted.records] == [
        ("101", 0, None, 1), ("102", 1, "101", 2), ("103", 1, "101", 1),
        ("104", 2, "102:103", 1)]
    assert _sbatch(_script(fake_slurm, "104"))["dependency"] == "afterok:102:103"


def test_status_shows_the_jobs_and_cancel_cancels_them(tmp_path, fake_slurm, monkeypatch):
    plan = _plan(tmp_path, STUDY + SECTION)
    slurmengine.SlurmEngine().submit(plan)
    (fake_slurm / "queue.txt").write_text("101|101|RUNNING\n102|102_0|PENDING\n"
                                          "102|102_1|PENDING\n102|102_2|PENDING\n")
    monkeypatch.chdir(tmp_path)
    status = CliRunner().invoke(main, ["study", "status", "study.toml"])
    assert "  wave 0: array 101, 1 jobs: 1 running" in status.output, status.output
    assert "  wave 1: array 102, 3 jobs: 3 pending" in status.output
    assert "  wave 2: array 103, 1 jobs: 1 ended" in status.output
    again = CliRunner().invoke(main, ["study", "run", "study.toml", "--engine", "slurm"])
    assert again.exit_code == 1
    assert again.output.startswith("Error: jobs of this study are still in the queue "
                                   "(101, 102); wait for them, or cancel them: "
                                   "lottery study cancel study.toml"), again.output
    assert not (fake_slurm / "sbatch-104.sh").exists()
    cancel = CliRunner().invoke(main, ["study", "cancel", "study.toml"])
    assert cancel.exit_code == 0 and "cancelled 101, 102" in cancel.output
    assert (fake_slurm / "scancel.log").read_text().split() == ["101", "102"]


def test_the_tiny_study_through_the_debug_executor(tmp_path_factory, reference_study):
    folder = make_folder(tmp_path_factory, "debug", STUDY + CPU_SECTION)
    plan = planner.expand(studyfile.load(folder / "study.toml"))
    submitted = slurmengine.SlurmEngine(cluster="debug").submit(plan)
    assert [len(wave) for wave in submitted.jobs] == [1, 3, 1]
    for wave in submitted.jobs:  # the debug executor runs a job when asked
        for job in wave:
            assert job.exception() is None
            assert job.result()["devices"] == ["cpu"]
    assert_same_study(folder, reference_study[0])


def test_a_job_of_several_runs_runs_them_in_turn_in_one_warm_worker(tmp_path_factory,
                                                                   reference_study):
    folder = make_folder(tmp_path_factory, "per-job", STUDY + CPU_SECTION + "runs_per_job = 3\n")
    plan = planner.expand(studyfile.load(folder / "study.toml"))
    submitted = slurmengine.SlurmEngine(cluster="debug").submit(plan)
    # Wave 1's three runs (rewind, finetune, round 1) are one job.
    assert [[sorted(b) for b in r["bundles"]] for r in submitted.records] == [
        [[BASE]], [DERIVED], [[ROUND2]]]
    for wave in submitted.jobs:
        for job in wave:
            assert job.exception() is None
    assert_same_study(folder, reference_study[0])
    # Each log's first line: "$ lottery ...  # device cpu, worker PID".
    heads = {n.id: state.log_path(plan, n).read_text().splitlines()[0] for n in plan.nodes}
    workers = {i: re.search(r"# device cpu, worker (\d+)$", head).group(1)
               for i, head in heads.items()}
    assert len({workers[i] for i in DERIVED}) == 1, heads  # one slot: one worker, in turn
    assert workers[BASE] != workers[DERIVED[0]]  # each job starts its own


def test_a_bundle_that_does_not_finish_fails_its_job(tmp_path_factory):
    text = (STUDY + CPU_SECTION).replace("batch_size = 32", "batch_size = 32\nlr = 1e30")
    folder = make_folder(tmp_path_factory, "nan", text[:text.index("[oneshot]")] + CPU_SECTION)
    plan = planner.expand(studyfile.load(folder / "study.toml"))
    submitted = slurmengine.SlurmEngine(cluster="debug").submit(plan)
    error = submitted.jobs[0][0].exception()
    assert type(error).__name__ == "BundleFailed"
    assert str(error) == "1 of 1 runs did not finish: lenet300/train-s0 (failed)"


def test_without_submitit_the_error_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "study.toml").write_text(STUDY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "submitit", None)
    result = CliRunner().invoke(main, ["study", "run", "study.toml", "--engine", "slurm"])
    assert result.exit_code == 1
    assert one_error_line(result) == ("Error: the slurm engine needs submitit, which is "
                                       "not installed: pip install 'keras-lottery[slurm]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


def test_cancel_without_jobs_and_a_node_local_root_are_one_line(tmp_path, monkeypatch,
                                                                fake_slurm):
    (tmp_path / "study.toml").write_text(STUDY)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["study", "cancel", "study.toml"])
    assert result.exit_code == 1
    assert one_error_line(result).startswith("Error: no Slurm jobs recorded for study.toml")
    (fake_slurm / "sinfo").write_text("#!/bin/sh\nprintf 'node1\\nnode2\\n'\n")
    plan = _plan(tmp_path, STUDY.replace('root = "runs/tiny"', 'root = "/tmp/kl-local"'))
    with pytest.raises(LotteryError, match="^/tmp/kl-local is local to each node of this "
                       "2-node cluster; put the study"):
        slurmengine.SlurmEngine().submit(plan)
    assert not (fake_slurm / "sbatch-101.sh").exists()


# --- a real single-node Slurm ----------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    found = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield found
    found.stop()
    assert found.leftover_pids() == []


def _env(cluster):
    return dict(study_env(), SLURM_CONF=cluster.env["SLURM_CONF"], PATH=cluster.env["PATH"],
                KL_SLURM_CLUSTER=cluster.env["KL_SLURM_CLUSTER"])


def _lottery(cluster, folder, *args):
    return subprocess.run(command(*args), cwd=folder, env=_env(cluster),
                          capture_output=True, text=True, timeout=300)


def _frozen_mid_training(path, timeout=300):
    """The pid of the process training the run at `path`, stopped (SIGSTOP)
    while the run is mid-training; None when the run finished first (40
    steps take well under a second, and a loaded machine may not poll in
    time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run = Run.open(path)
            if run.status == record.FINISHED:
                return None
            if run.status == record.RUNNING and run.checkpoints:
                pid = locks.holder(path / layout.LOCK)["pid"]
                os.kill(pid, signal.SIGSTOP)
                if Run.open(path).status == record.RUNNING:
                    return pid
                os.kill(pid, signal.SIGCONT)
                return None
        except (LotteryError, OSError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} never trained")


def _wait_pending(pid, signum, timeout=120):
    """Waits until `signum` is pending at the (stopped) process `pid`."""
    bit = 1 << (signum - 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        if (int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)) & bit:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never got signal {signum}")


def test_the_tiny_study_on_a_real_slurm_one_job_preempted(cluster, tmp_path_factory,
                                                          reference_study):
    folder = make_folder(tmp_path_factory, "real", STUDY + CPU_SECTION)
    done = _lottery(cluster, folder, "run", "study.toml", "--engine", "slurm")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "submitted 5 runs in 5 Slurm jobs, 3 waves:" in done.stdout
    root = folder / "runs/tiny"
    records = state.jobs(root)
    # The run is frozen while the preemption lands, so that it cannot end
    # first: USR2, the signal submitit waits for, then the bundle's SIGINT
    # to the run, then the requeue. A run that finished before it could be
    # frozen leaves the next (wave 1's three jobs run at once, then wave 2's).
    candidates = [(b[0], j) for r in records[1:] for b, j in zip(r["bundles"], r["jobs"])]
    frozen = next(((victim, job, pid) for victim, job in candidates
                   if (pid := _frozen_mid_training(root / victim)) is not None), None)
    assert frozen is not None, "every run finished before it could be frozen"
    victim, job, pid = frozen
    try:
        cluster.run("scancel", "--signal=USR2", job)
        _wait_pending(pid, signal.SIGINT)
    finally:
        os.kill(pid, signal.SIGCONT)
    for submitted in records:
        for each in submitted["jobs"]:
            assert cluster.wait(each, timeout=600) == "COMPLETED", cluster.show_job(each)
    assert cluster.show_job(job)["Restarts"] == "1"
    assert_same_study(folder, reference_study[0])
    log = (root / "study-logs" / f"{victim}.log").read_text()
    assert log.count("$ lottery ") == 2  # stopped, requeued, resumed
    status = _lottery(cluster, folder, "status", "study.toml")
    assert "  finished        5" in status.stdout
    assert f"  wave 1: array {records[1]['id']}, 3 jobs: 3 ended" in status.stdout
    cancel = _lottery(cluster, folder, "cancel", "study.toml")
    assert "none of its Slurm jobs is still in the queue" in cancel.stdout, cancel.stderr


def test_a_real_job_of_three_runs_trains_them_in_one_warm_worker(cluster, tmp_path_factory,
                                                                reference_study):
    folder = make_folder(tmp_path_factory, "real-per-job",
                         STUDY + CPU_SECTION + "runs_per_job = 3\n")
    done = _lottery(cluster, folder, "run", "study.toml", "--engine", "slurm")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "submitted 5 runs in 3 Slurm jobs, 3 waves:" in done.stdout
    root = folder / "runs/tiny"
    for submitted in state.jobs(root):
        for each in submitted["jobs"]:
            assert cluster.wait(each, timeout=600) == "COMPLETED", cluster.show_job(each)
    assert_same_study(folder, reference_study[0])
    heads = [(root / "study-logs" / f"{i}.log").read_text().splitlines()[0] for i in DERIVED]
    assert len({re.search(r"worker (\d+)$", head).group(1) for head in heads}) == 1, heads


def test_a_real_submission_is_refused_while_queued_then_cancelled(
        cluster, tmp_path_factory, monkeypatch):
    folder = make_folder(tmp_path_factory, "cancelled", STUDY + CPU_SECTION)
    first = _lottery(cluster, folder, "run", "study.toml", "--engine", "slurm")
    assert first.returncode == 0, first.stderr[-3000:]
    cluster.activate(monkeypatch)  # the rest in this process: no start-up to wait for
    monkeypatch.chdir(folder)
    again = CliRunner().invoke(main, ["study", "run", "study.toml", "--engine", "slurm"])
    assert again.exit_code == 1
    assert one_error_line(again).startswith("Error: jobs of this study are still in the "
                                             "queue")
    cancel = CliRunner().invoke(main, ["study", "cancel", "study.toml"])
    assert cancel.exit_code == 0 and "cancelled" in cancel.output, cancel.output
    records = state.jobs(folder / "runs/tiny")
    # The last wave waits for two others (30 s of training): it never ran.
    assert cluster.wait(records[-1]["jobs"][0], timeout=60) == "CANCELLED"
    assert cluster.wait(records[0]["jobs"][0], timeout=60) in ("CANCELLED", "COMPLETED")
    assert slurmengine.queue_states({r["id"] for r in records}) == {}
    after = CliRunner().invoke(main, ["study", "cancel", "study.toml"])
    assert "none of its Slurm jobs is still in the queue" in after.output
