"""The Ray engine (issue 13) on a real local Ray cluster of this machine,
`ray.init(num_cpus=2, num_gpus=2)` (two logical GPUs).

Packing, dependencies, retries and the reuse of warm workers are checked
with a stand-in warm worker that records when each run starts and ends and
writes a finished run.json (a real run takes 15 s here); the tiny digits
study then runs for real, the warm worker training one run killed with
SIGKILL mid-training, and must equal the single-machine engine's study.
tests/study/test_raycluster.py runs it on a cluster of two Ray nodes."""

import json
import logging
import os
import signal
import socket
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from keras_lottery.spec import record

from keras_lottery.runs.run import Run
from keras_lottery.cli import main
from keras_lottery.errors import LotteryError
from keras_lottery.study import claims
from keras_lottery.study.engines import local
from keras_lottery.study.engines import noderun
from keras_lottery.study import planner
from keras_lottery.study.engines import ray as rayengine
from keras_lottery.study import state
from keras_lottery.study import studyfile
from error_messages import one_error_line
from tiny_study import STUDY
from tiny_study import assert_same_study
from tiny_study import make_folder

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")

# A stand-in for the interpreter of the warm worker a run's task keeps:
# `-m keras_lottery.cli worker`, reading `{"argv": ["run-request", REQUEST],
# "log": path}` lines. For each it appends "start"/"end" events (with its
# pid), may kill itself or its Ray worker on a first attempt, and leaves a
# finished run.json in the request's out.
FAKE = """#!{python}
import json, os, signal, sys, time
events = {events!r}
def event(kind, out):
    with open(events, "a") as f:
        f.write(json.dumps([kind, time.time(), out, os.environ.get("CUDA_VISIBLE_DEVICES"),
                            os.getpid()]) + "\\n")
def serve(argv):
    out = json.loads(argv[1])["out"]
    os.makedirs(out, exist_ok=True)
    event("start", out)
    first = not os.path.exists(os.path.join(out, "attempted"))
    open(os.path.join(out, "attempted"), "a").close()
    if first and {kill!r} == "run":
        os.kill(os.getpid(), signal.SIGKILL)
    if first and {kill!r} == "worker":
        os.kill(os.getppid(), signal.SIGKILL)
        sys.exit(3)
    time.sleep({seconds!r})
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({{"status": "finished"}}, f)
    event("end", out)
for line in sys.stdin:
    serve(json.loads(line)["argv"])
    print(json.dumps({{"returncode": 0}}), flush=True)
"""

PACKED = """
[study]
root = "runs/packed"
[base]
arch = "lenet300"
dataset = "digits"
steps = 40
seeds = [0, 1, 2, 3, 4, 5]
[oneshot]
methods = ["rewind"]
iters = [7]
densities = [50]
[resources]
runs_per_device = 2
"""


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # CI has no network to report to
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    yield ray
    ray.shutdown()


def _plan(folder, text):
    (folder / "study.toml").write_text(text)
    return planner.expand(studyfile.load(folder / "study.toml"))


def _fake(tmp_path, kill=None, seconds=1.5):
    events = tmp_path / "events.jsonl"
    path = tmp_path / "fake-python"
    path.write_text(FAKE.format(python=sys.executable, events=str(events), kill=kill,
                                seconds=seconds))
    path.chmod(0o755)
    return str(path), events


def _events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _peak(events):
    """The most runs between their start and end at once, overall and per
    device."""
    changes = sorted((t, 1 if kind == "start" else -1, device)
                     for kind, t, _, device, _ in events)
    now, peak, per, per_peak = 0, 0, {}, {}
    for _, step, device in changes:
        now += step
        per[device] = per.get(device, 0) + step
        peak = max(peak, now)
        per_peak[device] = max(per_peak.get(device, 0), per[device])
    return peak, per_peak


def test_four_runs_at_half_a_gpu_each_and_children_after_their_parents(
        cluster, tmp_path):
    plan = _plan(tmp_path, PACKED)
    python, events = _fake(tmp_path)
    engine = rayengine.RayEngine(python=python)
    assert engine.resources(cluster, 2) == {"num_gpus": 0.5, "num_cpus": 0}
    counts = engine.run(plan, runs_per_device=2)
    assert counts[state.FINISHED] == len(plan.nodes) == 12
    found = _events(events)
    assert sorted(kind for kind, *_ in found) == ["end"] * 12 + ["start"] * 12
    peak, per_device = _peak(found)
    assert peak == 4, found  # six bases ready at once: four run, never more
    assert set(per_device) == {"0", "1"} and max(per_device.values()) == 2
    ended = {out: t for kind, t, out, _, _ in found if kind == "end"}
    started = {out: t for kind, t, out, _, _ in found if kind == "start"}
    for node in plan.nodes:
        if node.parent is not None:
            assert started[str(plan.path(node))] >= ended[str(plan.path(node.parent))]
    # A Ray worker's warm worker ran several runs (Ray's default for a GPU
    # task, max_calls=1, would start one for every run).
    assert len({pid for kind, *_, pid in found if kind == "start"}) < 12
    logs = [state.log_path(plan, n).read_text() for n in plan.nodes]
    assert all(log.count("$ lottery ") == 1 for log in logs)


@pytest.mark.parametrize("kill", ["run", "worker"])
def test_a_task_whose_process_or_worker_is_killed_is_retried(cluster, tmp_path, kill):
    text = PACKED.replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0]")
    plan = _plan(tmp_path, text[:text.index("[oneshot]")])
    python, events = _fake(tmp_path, kill=kill, seconds=0.2)
    counts = rayengine.RayEngine(python=python).run(plan)
    assert counts[state.FINISHED] == 1
    assert [kind for kind, *_ in _events(events)] == ["start", "start", "end"]


def test_a_run_another_driver_holds_is_waited_for_not_started_twice(
        cluster, tmp_path):
    # As after a dead driver: the same command again, while a run of the
    # old one still holds its claim.
    text = PACKED.replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0]")
    plan = _plan(tmp_path, text[:text.index("[oneshot]")])
    python, events = _fake(tmp_path, seconds=0.2)
    node = plan.nodes[0]
    claim = claims.take(plan.study.root, node.id)
    result = {}
    driver = threading.Thread(target=lambda: result.setdefault(
        "counts", rayengine.RayEngine(python=python).run(plan)))
    driver.start()
    time.sleep(noderun.WAIT_SECONDS + 5)  # the task is waiting for the claim
    assert not events.exists()
    plan.path(node).mkdir(parents=True)
    (plan.path(node) / "run.json").write_text(json.dumps({"status": "finished"}))
    claim.release()
    driver.join(120)
    assert result["counts"][state.FINISHED] == 1
    assert not events.exists()  # finished by the other one: never started here


def test_a_failed_run_blocks_its_children_and_is_reported(cluster, tmp_path):
    text = PACKED.replace("seeds = [0, 1, 2, 3, 4, 5]", "seeds = [0, 1]")
    plan = _plan(tmp_path, text)
    python, events = _fake(tmp_path, seconds=0.2)
    (tmp_path / "fake-python").write_text((tmp_path / "fake-python").read_text().replace(
        "time.sleep(", "sys.exit(5) if out.endswith('train-s1') else time.sleep("))
    failures = []

    class Report:
        def __init__(self, *args):
            pass

        def run_finished(self, *args):
            pass

        def run_failed(self, node_id, message):
            failures.append((node_id, message))

        def close(self):
            pass

    counts = rayengine.RayEngine(python=python).run(plan, progress=Report)
    assert counts[state.FINISHED] == 2 and counts[state.FAILED] == 1
    assert counts[state.BLOCKED] == 1
    assert len(failures) == 1 and failures[0][0] == "lenet300/train-s1"
    assert "after exit status 5" in failures[0][1], failures


def test_a_process_keeps_one_warm_worker_replaced_after_its_runs_or_when_idle(
        tmp_path, monkeypatch):
    python, _ = _fake(tmp_path, seconds=0)
    monkeypatch.setattr(local, "RUNS_PER_WORKER", 2)
    monkeypatch.setattr(noderun, "IDLE_SECONDS", 1.0)
    warm = noderun.WarmWorkers()

    def run_on(device):
        worker = warm.take(python, device, None)
        worker.send(["run-request", json.dumps({"out": str(tmp_path / "out")})],
                    tmp_path / "log")
        assert worker.wait(30) == 0
        warm.give_back(worker)
        return worker

    first, second, third = (run_on("cpu") for _ in range(3))
    assert first is second and third is not second  # replaced after 2 runs
    assert second.process.wait(30) == 0
    other = run_on("0")  # another device: another worker
    assert other is not third and third.process.wait(30) == 0
    time.sleep(3)  # idle: it ends
    assert other.process.poll() == 0 and warm.kept is None


def test_visibility_problems_name_the_node_and_the_path(cluster, tmp_path):
    marker = tmp_path / ".visible-x"
    marker.write_text("token")
    seen = [rayengine.probe([str(marker)], [str(tmp_path)])]
    assert rayengine.visibility_problem(seen, str(marker), "token", [str(tmp_path)]) is None
    problem = rayengine.visibility_problem(seen, str(marker), "other", [])
    assert problem.startswith(f"Ray node {socket.gethostname()} does not see the study root")
    seen = [rayengine.probe([str(marker)], [str(tmp_path / "data")])]
    problem = rayengine.visibility_problem(seen, str(marker), "token", [str(tmp_path / "data")])
    assert "does not see the data folder" in problem and "lottery data download" in problem


def _kill_when_training(root, name, killed, stop):
    """SIGKILLs the process of run `name` once it is training (its lock
    names the process; its run.json says running)."""
    path = root / name
    while not stop.is_set():
        try:
            if Run.open(path).status == record.RUNNING and (path / "run.lock").exists():
                holder = json.loads((path / "run.lock").read_text())
                if Run.open(path).checkpoints:
                    os.kill(holder["pid"], signal.SIGKILL)
                    killed.append(holder["pid"])
                    return
        except (LotteryError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)


def test_the_tiny_study_through_ray_equals_the_local_engine_one_run_killed(
        cluster, tmp_path_factory, reference_study):
    folder = make_folder(tmp_path_factory, "ray")
    plan = planner.expand(studyfile.load(folder / "study.toml"))
    victim = "lenet300/rewind-k7-d50-s0"
    killed, stop = [], threading.Event()
    watcher = threading.Thread(target=_kill_when_training,
                               args=(plan.study.root, victim, killed, stop))
    watcher.start()
    try:
        counts = rayengine.RayEngine().run(plan)
    finally:
        stop.set()
        watcher.join()
    assert counts[state.FINISHED] == 5, counts
    assert killed, "the run was never seen training"
    assert_same_study(folder, reference_study[0])
    log = state.log_path(plan, plan.by_id[victim]).read_text()
    assert log.count("$ lottery ") == 2  # killed once, retried, resumed


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case, args, fragment", [
    ("unknown engine", ["--engine", "pbs"], "'pbs' is not one of 'local', 'ray', 'slurm'"),
    ("address without ray", ["--address", "auto"], "--address is for --engine ray"),
    ("unreachable address", ["--engine", "ray", "--address", "127.0.0.1:{port}"],
     "no Ray cluster answers at 127.0.0.1:{port} (Connection refused)"),
    ("not an address", ["--engine", "ray", "--address", "headnode"],
     "Ray address 'headnode': expected HOST:PORT"),
])
def test_bad_engine_input_is_one_line_and_submits_nothing(tmp_path, monkeypatch, case,
                                                         args, fragment):
    (tmp_path / "study.toml").write_text(STUDY)
    monkeypatch.chdir(tmp_path)
    port = str(_free_port())
    started = time.monotonic()
    result = CliRunner().invoke(main, ["study", "run", "study.toml",
                                       *[a.replace("{port}", port) for a in args]])
    assert result.exit_code in (1, 2), result.output
    assert fragment.replace("{port}", port) in one_error_line(result)
    assert time.monotonic() - started < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


def test_without_ray_installed_the_error_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "study.toml").write_text(STUDY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(main, ["study", "run", "study.toml", "--engine", "ray"])
    assert result.exit_code == 1
    assert one_error_line(result) == (
        "Error: the ray engine needs Ray, which is not installed: "
        "pip install 'keras-lottery[ray]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]
