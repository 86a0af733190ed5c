"""`lottery study` without training (issue 12): the planner on the paper's
grid, the scheduler on a fake engine (order, devices, failures, a second
driver's claim), bad study files, refused edits, and the selection
protocol on metrics files written by hand."""

import json
import os
import pathlib
import socket
import statistics
import threading
import time

import pytest
from click.testing import CliRunner

from keras_lottery.runs import layout

from keras_lottery.runs.run import Run

from keras_lottery import files
from keras_lottery.cli import main
from keras_lottery.spec.recipe import CHECKPOINT_ITERS
from keras_lottery.spec.requests import DeriveRequest
from keras_lottery.spec.requests import IterateRequest
from keras_lottery.spec.requests import Request
from keras_lottery.spec.requests import TrainRequest
from keras_lottery.spec.runspec import RunSpec
from keras_lottery.study import claims
from keras_lottery.study import devices
from keras_lottery.study.engines import local as engines
from keras_lottery.study import planner
from keras_lottery.study import selection
from keras_lottery.study import state
from keras_lottery.study import studyfile
from keras_lottery.study.progress import Progress
from keras_lottery.study.scheduler import Scheduler
from snapshots import snapshot

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
PAPER = EXAMPLES / "renda2020-resnet20.toml"
DEMO = EXAMPLES / "demo-digits.toml"
TINY = """
[study]
root = "runs/tiny"
[base]
arch = "lenet300"
dataset = "digits"
steps = 40
batch_size = 32
seeds = [1, 2, 3]
val_split = 100
[oneshot]
methods = ["rewind", "finetune"]
iters = [7, 16]
densities = [50]
[controls]
reinit = { densities = [50] }
"""


@pytest.fixture(scope="module")
def paper():
    return planner.expand(studyfile.load(PAPER))


def _write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_the_papers_grid_has_its_runs_edges_and_directories(paper):
    counts = paper.counts()
    assert counts == {"base": 3, "oneshot": 900, "iterative": 900, "control": 60,
                      "chains": 90}
    nodes = paper.by_id
    ks = sorted({n.iteration for n in paper.nodes if n.kind == "oneshot"})
    assert ks == list(CHECKPOINT_ITERS[:-1])  # every checkpoint below T
    percents = sorted({round(n.density * 100, 2) for n in paper.nodes if n.kind == "oneshot"})
    assert percents == [10.74, 13.42, 16.78, 20.97, 26.21, 32.77, 40.96, 51.2, 64.0, 80.0]
    for node in paper.nodes:
        if node.kind in ("oneshot", "control") or node.round == 1:
            assert node.parent == f"resnet20/train-s{node.seed}"
        elif node.kind == "iterative":
            assert node.parent == f"{node.chain}/round-{node.round - 1}"
            assert nodes[node.parent].chain == node.chain
    chain = "resnet20/iterate-finetune-k12514-r80-s3"
    assert [nodes[f"{chain}/round-{i}"].density for i in (1, 5, 10)] == [
        0.8, 0.32768, 0.1073741824]
    assert nodes["resnet20/rewind-lr-k4701-d32.77-s2"].density == 32.77 / 100  # as the CLI
    assert nodes["resnet20/reinit-d10.74-s1"].steps == 71108
    assert nodes["resnet20/lowlr-rewind-k0-d80-s1"].steps == 71108
    assert nodes["resnet20/finetune-k67201-d80-s1"].steps == 71108 - 67201
    # Deterministic: the same file plans the same nodes.
    again = planner.expand(studyfile.load(PAPER))
    assert [n.to_dict() for n in again.nodes] == [n.to_dict() for n in paper.nodes]


def _request(node):
    return Request.from_dict(node.request)


def test_nodes_are_the_single_requests(paper):
    root = str(paper.study.root)
    assert _request(paper.by_id["resnet20/train-s1"]) == TrainRequest(
        arch="resnet20", dataset="cifar10", recipe="renda2020", seed=1, val_split=2000,
        out=f"{root}/resnet20/train-s1")
    assert _request(paper.by_id["resnet20/rewind-lr-k4701-d32.77-s2"]) == DeriveRequest(
        method="rewind_lr", parent=f"{root}/resnet20/train-s2", iteration=4701,
        density=32.77 / 100, seed=2, out=f"{root}/resnet20/rewind-lr-k4701-d32.77-s2")
    reinit = _request(paper.by_id["resnet20/reinit-d80-s3"])
    assert (reinit.method, reinit.parent, reinit.density, reinit.iteration) == (
        "reinit", f"{root}/resnet20/train-s3", 0.8, None)
    chain = "resnet20/iterate-rewind-k0-r80-s1"
    assert _request(paper.by_id[f"{chain}/round-4"]) == IterateRequest(
        method="rewind", parent=f"{root}/resnet20/train-s1", iteration=0, rounds=4,
        rate=0.8, seed=1, out=f"{root}/{chain}")
    # A node runs as the hidden command that carries out its request.
    argv = paper.by_id["resnet20/train-s1"].argv
    assert argv[0] == "run-request" and json.loads(argv[1]) == paper.by_id[
        "resnet20/train-s1"].request


def test_longest_remaining_chain_comes_first(paper):
    T = 71108
    assert paper.priority["resnet20/train-s1"] == T + 10 * T
    firsts = sorted(paper.children["resnet20/train-s1"], key=lambda i: -paper.priority[i])
    assert {paper.by_id[i].chain for i in firsts[:3]} == {
        f"resnet20/iterate-{m}-k0-r80-s1" for m in ("rewind", "rewind-lr", "finetune")}
    assert paper.priority[firsts[0]] == 10 * T
    chain = "resnet20/iterate-rewind-k4701-r80-s1"
    assert paper.priority[f"{chain}/round-7"] == 4 * (T - 4701)


def test_the_examples_plan_from_the_command_line():
    result = _invoke("study", "plan", PAPER)
    assert result.exit_code == 0, result.output
    assert "one-shot runs         900" in result.output
    assert "iterative rounds      900  (90 chains of up to 10 rounds)" in result.output
    assert "in all              1,863" in result.output
    assert "resnet20 468 images/s per run (measured on a 2-core CPU; see the docs' benchmarks page)" in result.output
    assert "RESULTS.md" not in result.output and "run D" not in result.output
    assert "--images-per-second" in result.output
    given = _invoke("study", "plan", PAPER, "--images-per-second", "46800")
    hours = planner.expand(studyfile.load(PAPER)).images() / 46800 / 3600
    assert f"device-hours: {hours:,.1f} at one run per device" in given.output
    demo = _invoke("study", "plan", DEMO)
    assert demo.exit_code == 0, demo.output
    assert "in all                 34" in demo.output


# --- the scheduler, on an engine that runs nothing -------------------------

class FakeEngine:
    """Starts nothing: `wait` ends the oldest job, writing its run.json
    (status finished, or failed for the ids in `fail`; none for `broken`)."""

    def __init__(self, plan, fail=(), broken=()):
        self.plan, self.fail, self.broken = plan, set(fail), set(broken)
        self.started, self.peak, self.per_device_peak = [], 0, {}

    def start(self, node, device, log_path):
        self.started.append((node.id, device))
        return engines.Job(node, device, time.monotonic())

    def wait(self, jobs, timeout):
        self.peak = max(self.peak, len(jobs))
        for device in {j.device for j in jobs}:
            count = sum(j.device == device for j in jobs)
            self.per_device_peak[device] = max(self.per_device_peak.get(device, 0), count)
        if not jobs:
            time.sleep(timeout)
            return []
        job = jobs[0]
        if job.node.id not in self.broken:
            failed = job.node.id in self.fail
            _fake_run(self.plan, job.node, "failed" if failed else "finished",
                      error="LotteryError: the training loss became nan" if failed else None)
        job.returncode = 1 if job.node.id in self.fail | self.broken else 0
        return [job]

    def interrupt(self, jobs):
        pass


def _fake_run(plan, node, status, error=None, metrics=None):
    path = plan.path(node)
    path.mkdir(parents=True, exist_ok=True)
    files.write_json(path / layout.RUN_JSON, {"mode": node.method, "status": status,
                                           "error": error})
    if metrics:
        run = Run.open(path)
        for row in metrics:
            run.append_metrics(row)


def _demo_plan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return planner.expand(studyfile.load(_write(tmp_path, DEMO.read_text())))


def _quiet(*args):
    return Progress(*args, echo=lambda *a, **k: None)


def test_scheduler_runs_longest_chain_first_within_devices(tmp_path, monkeypatch):
    plan = _demo_plan(tmp_path, monkeypatch)
    engine = FakeEngine(plan)
    counts = Scheduler(plan, engine, ["cpu"], 1, progress=_quiet, poll=0).run()
    assert counts["finished"] == len(plan.nodes) == 34
    chain = "lenet300/iterate-rewind-lr-k20-r50-s{}/round-{}"
    assert [i for i, _ in engine.started[:6]] == [
        "lenet300/train-s0", "lenet300/train-s1", chain.format(0, 1), chain.format(1, 1),
        chain.format(0, 2), chain.format(1, 2)]
    assert engine.peak == 1
    (tmp_path / "b").mkdir()
    two = _demo_plan(tmp_path / "b", monkeypatch)
    engine = FakeEngine(two)
    Scheduler(two, engine, ["0", "1"], 2, progress=_quiet, poll=0).run()
    assert engine.peak == 4 and engine.per_device_peak == {"0": 2, "1": 2}


def test_a_failed_run_blocks_its_dependents_and_is_retried_only_when_asked(
        tmp_path, monkeypatch):
    plan = _demo_plan(tmp_path, monkeypatch)
    engine = FakeEngine(plan, fail={"lenet300/train-s0"},
                        broken={"lenet300/rewind-k20-d5-s1"})
    counts = Scheduler(plan, engine, ["cpu"], 2, progress=_quiet, poll=0).run()
    # Base s0 failed: its 16 descendants are blocked; one s1 command broke
    # without a run (a launch error): it counts as failed, nothing depends on it.
    assert counts == {"finished": 16, "running": 0, "resumable": 0, "failed": 2, "damaged": 0,
                      "blocked": 16, "pending": 0}
    found = state.statuses(plan)
    assert found["lenet300/train-s0"] == state.FAILED
    assert found["lenet300/rewind-k20-d20-s0"] == state.BLOCKED
    again = FakeEngine(plan)
    Scheduler(plan, again, ["cpu"], 2, progress=_quiet, poll=0).run()
    assert [i for i, _ in again.started] == ["lenet300/rewind-k20-d5-s1"]
    retry = FakeEngine(plan)
    counts = Scheduler(plan, retry, ["cpu"], 2, retry_failed=True, progress=_quiet,
                       poll=0).run()
    assert retry.started[0][0] == "lenet300/train-s0"
    assert counts["finished"] == 34


def test_a_node_another_driver_claimed_is_waited_for_not_started(tmp_path, monkeypatch):
    plan = _demo_plan(tmp_path, monkeypatch)
    node = plan.by_id["lenet300/train-s0"]
    claim = claims.take(plan.study.root, node.id)
    assert claims.take(plan.study.root, node.id) is None

    def other_driver_finishes():
        time.sleep(1.0)
        _fake_run(plan, node, "finished")
        claim.release()

    assert state.statuses(plan)[node.id] == state.RUNNING
    claim.release()
    engine = FakeEngine(plan)
    # The other driver claims the node after this one read it as pending.
    scheduler = Scheduler(plan, engine, ["cpu"], 1, progress=_quiet, poll=0.05)
    claim = claims.take(plan.study.root, node.id)
    threading.Thread(target=other_driver_finishes).start()
    counts = scheduler.run()
    assert counts["finished"] == 34
    assert node.id not in [i for i, _ in engine.started]
    assert not (plan.study.root / claims.CLAIMS_DIR).exists()


def test_devices_and_each_runs_environment():
    assert devices.resolve("auto", {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert devices.resolve("auto", {"CUDA_VISIBLE_DEVICES": ""}) == ["cpu"]
    assert devices.resolve((0, 1)) == ["0", "1"]
    env = devices.environment("1", {"PATH": "/bin"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert devices.environment("cpu", {})["CUDA_VISIBLE_DEVICES"] == ""
    # A Ray worker's run trains on the driver's backend, whatever its own is.
    assert "KERAS_BACKEND" not in devices.environment("cpu", {})
    assert devices.environment("cpu", {"KERAS_BACKEND": "tensorflow"},
                               backend="jax")["KERAS_BACKEND"] == "jax"


def test_progress_prints_a_line_per_run_with_an_eta():
    lines, now = [], [0.0]
    progress = Progress(4, 1, 400, 300, echo=lambda t, nl=True: lines.append(t),
                        clock=lambda: now[0])
    now[0] = 60.0
    progress.run_finished("a/rewind", 60, 100)
    assert lines == ["[2/4] finished a/rewind in 1m00s (50% of steps, ETA 2m00s)"]


# --- bad study files and edits -----------------------------------------------

BAD = [
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\n[oneshot]\nmethod = []\n",
     "[oneshot] unknown key 'method' (did you mean methods?)"),
    ("[bsae]\nseeds = [1]\n", "unknown section [bsae] (did you mean base?)"),
    ("[base]\narch = 'lenet300'\ndataset = 'digits'\n", "[base] seeds is required"),
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\nsteps = 40\n"
     "[oneshot]\nmethods = ['rewind']\niters = [7]\ndensities = [0]\n",
     "[oneshot] densities: 0 is not a percent in (0, 100]"),
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\nsteps = 40\n"
     "[controls]\nreinit = { densities = [101] }\n",
     "[controls] reinit: densities: 101 is not a percent in (0, 100]"),
    # One convention: densities are percent where they are typed (issue 24).
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\nsteps = 40\n"
     "[oneshot]\nmethods = ['rewind']\niters = [7]\ndensities = [0.8]\n",
     "[oneshot] densities: 0.8 is a percent here: for 0.8 % write 0.8%, for 80 % of the "
     "weights write 80"),
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\nsteps = 40\n"
     "[iterative]\nmethods = ['rewnd']\niters = [7]\nrounds = 2\n",
     "[iterative] methods: unknown method 'rewnd' (did you mean rewind?)"),
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'mnist'\ndata_dir = 'nowhere'\n",
     "[base] data_dir: 'nowhere' is not a folder ("),
    ("[base]\nseeds = [1]\narch = 'resnet21'\n",
     "[base] arch: unknown architecture 'resnet21' (did you mean resnet20?)"),
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\nsteps = 40\n"
     "[oneshot]\nmethods = ['rewind']\niters = [8]\ndensities = [50]\n",
     "[oneshot] iters: 8 is not a checkpoint of the base recipe below its 40 steps; "
     "checkpoints: 0, 3, 7, 11, 16, 20, 25, 29, 33, 38"),
    ("[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\nsteps = -4\n",
     "[base] steps -4: expected a positive integer"),
    ("[base]\nseeds = [1]\n[slurm]\npartiton = 'gpu'\n",
     "[slurm] unknown key 'partiton' (did you mean partition?)"),
    ("[base]\nseeds = [1]\n[slurm]\ntime = '4h'\n",
     "[slurm] time: expected minutes or \"HH:MM:SS\", got '4h'"),
    ("[base]\nseeds = [1]\n[slurm]\nruns_per_job = 0\n",
     "[slurm] runs_per_job: expected an integer >= 1, got 0"),
    ("[base]\nseeds = [1]\n[slurm]\nsbatch = ['--dependency=afterok:1']\n",
     "[slurm] sbatch: '--dependency=afterok:1': the engine sets dependency itself"),
    ("[base]\nseeds = [1]\n[ray]\naddress = 'auto'\n", "unknown section [ray]"),
    ("[base\nseeds = [1]\n", "is not valid TOML"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m[:30] for _, m in BAD])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_bad_study_file_is_one_error_line_and_writes_nothing(
        tmp_path, monkeypatch, text, message, command):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, text)
    result = _invoke("study", command, path)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {path}: {message}"), result.output
    assert result.output.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


def test_a_sub_percent_density_in_a_study_is_written_with_its_sign(tmp_path):
    text = TINY.replace("densities = [50]\n[controls]", 'densities = [50, "0.5%"]\n[controls]')
    plan = planner.expand(studyfile.load(_write(tmp_path, text)))
    assert {n.density for n in plan.nodes if n.kind == "oneshot"} == {0.5, 0.005}
    assert "lenet300/rewind-k7-d0.5-s1" in plan.by_id


def test_a_missing_study_file(tmp_path):
    result = _invoke("study", "status", tmp_path / "nowhere.toml")
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nowhere.toml'}: no such study file\n"


def _base_on_disk(plan, node_id):
    """A finished base run.json as `lottery train` would write it."""
    node = plan.by_id[node_id]
    spec = RunSpec("train", node.arch, plan.study.dataset, plan.study.recipe,
                   seed=node.seed, val_split=plan.study.val_split)
    path = plan.path(node)
    path.mkdir(parents=True)
    files.write_json(path / layout.RUN_JSON, dict(spec.to_config(path), status="finished",
                                               density=1.0, start_step=0, end_step=40))


def test_an_edit_that_changes_runs_on_disk_is_refused_one_that_adds_runs_is_not(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, TINY)
    plan = planner.expand(studyfile.load(path))
    _base_on_disk(plan, "lenet300/train-s1")
    before = snapshot(tmp_path / "runs")

    path.write_text(TINY.replace("batch_size = 32", "batch_size = 32\nlr = 0.05"))
    for command in ("plan", "run"):
        result = _invoke("study", command, path)
        assert result.exit_code == 1
        assert result.output == (
            f"Error: the study file would change runs already on disk under "
            f"{plan.study.root}: lenet300/train-s1: recipe lr 0.025 on disk, 0.05 in "
            "the file; restore the file, delete those runs, or choose another root\n")
    path.write_text(TINY.replace("val_split = 100", "val_split = 50"))
    assert "val_split 100 on disk, 50 in the file;" in _invoke(
        "study", "plan", path).output
    assert snapshot(tmp_path / "runs") == before

    path.write_text(TINY.replace("densities = [50]\n[controls]", "densities = [50, 20]\n[controls]"))
    result = _invoke("study", "plan", path)
    assert result.exit_code == 0, result.output
    assert "one-shot runs          24" in result.output
    status = _invoke("study", "status", path)
    assert "  finished        1" in status.output and "  pending        29" in status.output
    assert snapshot(tmp_path / "runs") == before


# --- the selection protocol ----------------------------------------------------

# (seed, k) -> (final val_top1, final test top1) of the rewind runs at 50 %.
REWIND = {(1, 7): (0.80, 0.70), (2, 7): (0.90, 0.72), (3, 7): (0.70, 0.74),
          (1, 16): (0.85, 0.60), (2, 16): (0.84, 0.62), (3, 16): (0.83, 0.70)}
# finetune at 50 %: k = 7 and 16 tie on the median val (0.5): the smaller k wins.
# train and reinit: one test top1 per seed.
BASE = {1: 0.91, 2: 0.92, 3: 0.93}
FINETUNE = {(1, 7): (0.5, 0.51), (2, 7): (0.4, 0.52), (3, 7): (0.6, 0.53),
            (1, 16): (0.5, 0.61), (2, 16): (0.5, 0.62), (3, 16): (0.4, 0.63)}


def test_the_selection_protocol_against_values_worked_out_by_hand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = planner.expand(studyfile.load(_write(tmp_path, TINY)))
    for node in plan.nodes:
        table = {"rewind": REWIND, "finetune": FINETUNE}.get(node.method)
        val, top1 = table[(node.seed, node.iteration)] if table else (0.9, BASE[node.seed])
        if node.id == "lenet300/reinit-d50-s3":
            continue  # unfinished: not counted
        _fake_run(plan, node, "finished", metrics=[
            {"step": 10, "top1": 0.1, "val_top1": 0.99}, {"step": 40, "top1": top1, "val_top1": val}])
    rows = {(r["method"], r["iterative"], r["density"]): r
            for r in selection.select(selection.outcomes(plan))}
    # rewind: median val at k=7 is 0.80, at k=16 0.84 -> k=16; its test top1 0.60..0.70.
    assert rows[("rewind", False, 0.5)] == {
        "arch": "lenet300", "method": "rewind", "iterative": False, "density": 0.5,
        "k": 16, "n": 3, "top1_median": 0.62, "top1_min": 0.60, "top1_max": 0.70,
        "val_top1_median": 0.84}
    assert rows[("finetune", False, 0.5)]["k"] == 7
    assert rows[("finetune", False, 0.5)]["top1_median"] == 0.52
    reinit = rows[("reinit", False, 0.5)]
    assert (reinit["k"], reinit["n"], reinit["top1_median"]) == (None, 2, statistics.median([0.91, 0.92]))
    assert rows[("train", False, 1.0)]["top1_max"] == 0.93

    result = _invoke("study", "results", tmp_path / "study.toml", "--format", "json",
                     "-o", tmp_path / "fig.png")
    assert result.exit_code == 0, result.output
    assert {r["method"]: r["k"] for r in json.loads(result.output)} == {
        "finetune": 7, "reinit": None, "rewind": 16, "train": None}
    assert (tmp_path / "fig.png").stat().st_size > 0
    lines = (plan.study.root / "study.csv").read_text().splitlines()
    assert lines[0] == "network,is_iterative,retrain_method,retrain_time,density,test_acc,val_acc,trial,path"
    epochs = round((40 - 16) * 32 / 1437, 4)
    path = plan.path("lenet300/rewind-k16-d50-s2")
    assert f"lenet300,False,lottery,{epochs},0.5,0.62,0.84,2,{path}" in lines
    assert len(lines) == 1 + len(plan.nodes) - 1


def test_choosing_k_needs_a_validation_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = planner.expand(studyfile.load(_write(tmp_path, TINY.replace("val_split = 100", ""))))
    for node in plan.nodes:
        _fake_run(plan, node, "finished", metrics=[{"step": 40, "top1": 0.5}])
    result = _invoke("study", "results", tmp_path / "study.toml")
    assert result.exit_code == 1
    assert "has runs without val_top1, so no rewind point can be chosen" in result.output


def test_a_killed_run_is_started_again_but_not_one_a_live_process_holds(
        tmp_path, monkeypatch):
    plan = _demo_plan(tmp_path, monkeypatch)
    for node_id in ("lenet300/train-s0", "lenet300/train-s1"):
        _fake_run(plan, plan.by_id[node_id], "running")  # killed: nobody holds it
    lock = plan.path("lenet300/train-s1") / state.RUN_LOCK
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                "started": time.time()}))  # a live run's own lock
    assert state.statuses(plan)["lenet300/train-s0"] == state.RESUMABLE
    assert state.statuses(plan)["lenet300/train-s1"] == state.RUNNING
    threading.Timer(1.0, lambda: (_fake_run(plan, plan.by_id["lenet300/train-s1"],
                                            "finished"), lock.unlink())).start()
    engine = FakeEngine(plan)
    Scheduler(plan, engine, ["cpu"], 1, progress=_quiet, poll=0.05).run()
    started = [i for i, _ in engine.started]
    assert started[0] == "lenet300/train-s0" and "lenet300/train-s1" not in started


def test_what_killed_processes_left_is_tidied_but_not_what_live_ones_hold(
        tmp_path, monkeypatch):
    plan = _demo_plan(tmp_path, monkeypatch)
    node = plan.by_id["lenet300/iterate-rewind-lr-k20-r50-s0/round-1"]
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    run_dir, chain = plan.path(node), plan.study.root / node.chain
    run_dir.mkdir(parents=True)
    (chain / f".tmp-{dead}-iterate.json").write_text("{")
    (run_dir / f".tmp-{dead}-run.json").write_text("{")
    (run_dir / f".tmp-{os.getpid()}-run.json").write_text("{")  # a live writer's
    (run_dir / state.RUN_LOCK).write_text(json.dumps({"host": socket.gethostname(),
                                                      "pid": dead, "started": 0}))
    state.tidy_before_start(plan, node)
    assert sorted(p.name for p in chain.iterdir()) == ["round-1"]
    assert [p.name for p in run_dir.iterdir()] == [f".tmp-{os.getpid()}-run.json"]


def test_calibrate_suggests_the_fewest_runs_near_the_best_total(monkeypatch):
    from keras_lottery.study import calibrate

    def measured(*totals):
        return [calibrate.Measurement(k, (t / k,) * k, t, 10.0)
                for k, t in zip((1, 2, 4), totals)]

    assert calibrate.suggest(measured(100, 180, 190)) == 2
    assert calibrate.suggest(measured(100, 105, 108)) == 1
    assert calibrate.suggest(measured(100, 150, 400)) == 4
    calls = []

    def fake(counts, **kwargs):
        calls.append((counts, kwargs))
        return measured(500, 900, 950)

    monkeypatch.setattr(calibrate, "measure", fake)
    result = _invoke("study", "calibrate", DEMO, "--runs", "1,2,4", "--steps", "50")
    assert result.exit_code == 0, result.output
    assert calls[0][0] == (1, 2, 4)
    assert calls[0][1]["arch"] == "lenet300" and calls[0][1]["batch_size"] == 64
    assert calls[0][1]["device"] == "cpu"
    assert "suggested: runs_per_device = 2" in result.output
    assert "--images-per-second 500" in result.output
    assert _invoke("study", "calibrate", "--runs", "1,x").exit_code == 2


def test_results_before_the_study_ran_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, TINY)
    result = _invoke("study", "results", path)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: no runs of the study under {tmp_path}/runs/tiny yet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


def test_paths_in_a_study_file_are_relative_to_the_file_not_the_working_folder(
        tmp_path, monkeypatch):
    (tmp_path / "project" / "data").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    _write(tmp_path / "project", "steps = 40\nbatch_size = 32\n", "short.toml")
    path = _write(tmp_path / "project", TINY.replace('root = "runs/tiny"', 'root = "out"')
                  .replace("steps = 40\nbatch_size = 32\n", 'recipe = "short.toml"\n'))
    monkeypatch.chdir(tmp_path / "elsewhere")
    study = studyfile.load(path)
    assert study.root == tmp_path / "project" / "out"
    assert study.recipe_source == str(tmp_path / "project" / "short.toml")
    assert study.recipe.steps == 40
    assert _request(planner.expand(study).by_id["lenet300/train-s1"]).recipe == str(
        tmp_path / "project" / "short.toml")
    # data_dir too, and every run of the study reads that folder.
    staged = studyfile.load(_write(tmp_path / "project", path.read_text().replace(
        'dataset = "digits"', 'dataset = "digits"\ndata_dir = "data"'), "staged.toml"))
    assert staged.data_dir == str(tmp_path / "project" / "data")
    nodes = planner.expand(staged).nodes
    assert {n.kind for n in nodes} == {"base", "oneshot", "control"}
    for node in nodes:
        assert _request(node).data_dir == staged.data_dir, node.request
    default = _write(tmp_path / "project", "[base]\nseeds = [0]\narch = 'lenet300'\n", "b.toml")
    assert studyfile.load(default).root == tmp_path / "project" / "runs" / "b"


def test_the_plan_counts_in_words_that_agree_with_their_number(tmp_path):
    path = _write(tmp_path, "[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\n"
                  "steps = 40\n[iterative]\nmethods = ['rewind']\niters = [7]\nrounds = 1\n")
    result = _invoke("study", "plan", path)
    assert result.exit_code == 0, result.output
    assert "(1 chain of up to 1 round)" in result.output


def test_the_default_validation_split_is_lottery_trains(tmp_path):
    cifar = _write(tmp_path, "[base]\nseeds = [1]\narch = 'resnet20'\n", "c.toml")
    digits = _write(tmp_path, "[base]\nseeds = [1]\narch = 'lenet300'\ndataset = 'digits'\n")
    assert (studyfile.load(cifar).val_split, studyfile.load(digits).val_split) == (2000, 0)


def test_a_keras_optimizer_in_a_study_file_reaches_its_recipe_file(tmp_path):
    from keras_lottery.spec import recipe as recipe_lib

    optimizer = ('optimizer = {class_name = "AdamW", config = {weight_decay = 0.05, '
                 'learning_rate = {class_name = "CosineDecay", config = '
                 '{initial_learning_rate = 1e-3, decay_steps = 40}}}}\n')
    study = studyfile.load(_write(tmp_path, TINY.replace("[oneshot]", optimizer + "[oneshot]")))
    assert study.recipe.optimizer_name == "AdamW"
    written = _write(tmp_path, state.recipe_text(study), "recipe.toml")
    assert recipe_lib.make(written) == study.recipe
    assert _request(planner.expand(study).by_id["lenet300/train-s1"]).recipe == str(
        study.root / layout.STUDY_RECIPE)
