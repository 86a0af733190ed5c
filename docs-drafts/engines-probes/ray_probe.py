"""Probe what Ray does on a CPU-only machine with logical GPUs (not a test; run by hand).

    /work/venv-engines/bin/python docs-drafts/engines-probes/ray_probe.py

Prints one JSON line per fact: GPU ids / CUDA_VISIBLE_DEVICES under fractional
GPUs, the most tasks seen running at once, ObjectRef dependencies, what is
retried (worker death vs. an exception vs. a killed subprocess).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray

WORK = Path(tempfile.mkdtemp(prefix="rayprobe-"))


def say(**kw):
    print(json.dumps(kw), flush=True)


@ray.remote(num_gpus=0.5, num_cpus=0, max_calls=1, max_retries=2)
def run(name, argv, *deps):
    """One 'lottery' run: a subprocess. deps are upstream results (ObjectRefs resolved by Ray)."""
    start = time.time()
    (WORK / f"{name}.start").write_text(str(start))
    proc = subprocess.run(argv, capture_output=True, text=True)
    end = time.time()
    (WORK / f"{name}.end").write_text(str(end))
    return dict(name=name, rc=proc.returncode, out=proc.stdout.strip(), start=start, end=end,
                gpu_ids=ray.get_gpu_ids(), cuda=os.environ.get("CUDA_VISIBLE_DEVICES"),
                pid=os.getpid(), deps=[d["name"] for d in deps])


@ray.remote(num_gpus=0.5, num_cpus=0, max_calls=1, max_retries=2)
def dies_once(name):
    """First attempt: the worker process is SIGKILLed (a crash, an OOM kill) -> a system failure."""
    marker = WORK / f"{name}.attempts"
    n = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(n))
    if n == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return dict(name=name, attempts=n)


@ray.remote(num_gpus=0.5, num_cpus=0, max_calls=1, max_retries=2)
def long_run(name):
    """Writes '<worker pid> <subprocess pid>' then waits on a long subprocess (first attempt only)."""
    n = len(list(WORK.glob(f"{name}.pid.*"))) + 1
    proc = subprocess.Popen(["sleep", "45"] if n == 1 else ["true"])
    (WORK / f"{name}.pid.{n}").write_text(f"{os.getpid()} {proc.pid}")
    return dict(attempt=n, rc=proc.wait())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def subprocess_killed_once(name):
    """First attempt: the run's subprocess is SIGKILLed; the task raises on a negative rc."""
    marker = WORK / f"{name}.attempts"
    n = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(n))
    proc = subprocess.Popen(["sleep", "30"])
    if n == 1:
        proc.send_signal(signal.SIGKILL)
    else:
        proc.kill()
    rc = proc.wait()
    if n == 1:
        raise RuntimeError(f"subprocess killed by signal {-rc}")
    return dict(name=name, attempts=n)


def main():
    t0 = time.monotonic()
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    say(fact="init", seconds=round(time.monotonic() - t0, 2), resources=ray.cluster_resources())

    # 1. Six runs of 1 s, 0.5 logical GPU each on 2 logical GPUs: at most 4 at once.
    t0 = time.monotonic()
    refs = [run.remote(f"r{i}", ["sh", "-c", "sleep 1; echo ok"]) for i in range(6)]
    results = ray.get(refs)
    spans = [(r["start"], r["end"]) for r in results]
    peak = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    say(fact="concurrency", peak=peak, seconds=round(time.monotonic() - t0, 2),
        gpu_ids=sorted({tuple(r["gpu_ids"]) for r in results}),
        cuda_visible_devices=sorted({r["cuda"] for r in results}),
        distinct_worker_pids=len({r["pid"] for r in results}))

    # 2. Dependencies: B gets A's ObjectRef -> B starts after A ends and receives A's value.
    a = run.remote("A", ["sh", "-c", "sleep 1; echo a"])
    b = run.remote("B", ["echo", "b"], a)
    ra, rb = ray.get([a, b])
    say(fact="dependency", b_started_after_a_ended=rb["start"] >= ra["end"], b_deps=rb["deps"])

    # 3. An upstream that fails (exception, no retry) -> downstream never runs, get() raises.
    @ray.remote(num_cpus=0, max_retries=0)
    def boom():
        raise ValueError("upstream failed")
    c = run.remote("C", ["echo", "c"], boom.remote())
    try:
        ray.get(c)
        say(fact="failed_dependency", downstream_ran=True)
    except ray.exceptions.RayTaskError as exc:
        say(fact="failed_dependency", downstream_ran=(WORK / "C.start").exists(),
            error=type(exc).__name__, cause=type(exc.cause).__name__, line=str(exc).splitlines()[0][:120])

    # 4. Worker SIGKILLed on its first attempt -> retried (max_retries counts system failures).
    t0 = time.monotonic()
    r = ray.get(dies_once.remote("W"))
    say(fact="worker_killed", attempts=r["attempts"], seconds=round(time.monotonic() - t0, 2))

    # 4b. The worker is SIGKILLed from outside while its subprocess runs: retried, and Ray
    #     also kills the orphaned subprocess (kill_child_processes_on_worker_exit).
    ref = long_run.remote("L")
    while not (WORK / "L.pid.1").exists():
        time.sleep(0.1)
    wpid, cpid = map(int, (WORK / "L.pid.1").read_text().split())
    os.kill(wpid, signal.SIGKILL)
    r = ray.get(ref)
    time.sleep(1)
    say(fact="worker_killed_from_outside", attempt=r["attempt"], subprocess_left_alive=alive(cpid))

    # 5. Subprocess SIGKILLed and the task raises: retried only with retry_exceptions=True.
    plain = ray.remote(num_gpus=0.5, num_cpus=0, max_calls=1, max_retries=2)(subprocess_killed_once)
    try:
        ray.get(plain.remote("S1"))
        say(fact="subprocess_killed_default", retried=True)
    except ray.exceptions.RayTaskError as exc:
        say(fact="subprocess_killed_default", retried=False,
            attempts=int((WORK / "S1.attempts").read_text()), cause=type(exc.cause).__name__)
    retrying = ray.remote(num_gpus=0.5, num_cpus=0, max_calls=1, max_retries=2,
                          retry_exceptions=True)(subprocess_killed_once)
    r = ray.get(retrying.remote("S2"))
    say(fact="subprocess_killed_retry_exceptions", attempts=r["attempts"])

    # 6. max_retries exhausted by worker deaths -> WorkerCrashedError.
    @ray.remote(num_cpus=0, max_retries=1)
    def always_dies():
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        ray.get(always_dies.remote())
    except Exception as exc:  # noqa: BLE001
        say(fact="retries_exhausted", error=type(exc).__name__, line=str(exc).splitlines()[0][:160])

    # 7. Cancel a running task: force=True kills its worker; is the run's subprocess orphaned?
    for force in (False, True):
        name = f"K{int(force)}"
        slow = run.remote(name, ["sleep", "60"])
        while not (WORK / f"{name}.start").exists():
            time.sleep(0.1)
        time.sleep(0.5)
        t0 = time.monotonic()
        ray.cancel(slow, force=force)
        try:
            r = ray.get(slow, timeout=70)
            outcome = dict(returned=True, rc=r["rc"])
        except Exception as exc:  # noqa: BLE001
            outcome = dict(returned=False, error=type(exc).__name__)
        left = subprocess.run(["pgrep", "-x", "sleep", "-a"], capture_output=True, text=True).stdout
        left = [line.split()[0] for line in left.splitlines() if line.endswith("sleep 60")]
        say(fact="cancel", force=force, seconds=round(time.monotonic() - t0, 2),
            orphaned_subprocesses=len(left), **outcome)
        for pid in left:
            os.kill(int(pid), signal.SIGKILL)

    t0 = time.monotonic()
    ray.shutdown()
    say(fact="shutdown", seconds=round(time.monotonic() - t0, 2))


if __name__ == "__main__":
    sys.exit(main())
