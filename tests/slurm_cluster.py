"""A throwaway single-node Slurm cluster on this host, for tests.

``start_cluster(tmp_dir)`` starts ``munged``, ``slurmctld`` and ``slurmd`` in
the foreground (no systemd, no system config touched: every file lives in a
private folder, the ports are free ones picked at start) and returns a
:class:`Cluster`. Run Slurm commands with ``cluster.env`` (it carries
``SLURM_CONF``), or through the helpers ``cluster.run``/``sbatch``/``state``/
``wait``. ``cluster.stop()`` cancels every job, ends the daemons and every
process they left (job steps included), and removes the private folder.

Where a cluster cannot be had -- not root, binaries missing (run
``.ci/setup-slurm``), a daemon that does not come up -- ``start_cluster``
calls ``pytest.skip`` with a one-line reason. Set ``KL_REQUIRE_SLURM=1`` to
turn those skips into failures (for a CI that has just installed Slurm).

Written for Debian's slurm-wlm 22.05 (bookworm) and munge 0.5.15; uses
``proctrack/linuxproc`` and ``task/none`` because containers have no usable
cgroups. ``cred_expire`` is set low because Slurm holds a requeued job back
until that many seconds have passed (120 by default). There is no slurmdbd, so
the real ``sacct`` cannot answer; ``cluster.env``'s PATH puts a stand-in first
that answers ``sacct -j ID -o JobID,State,...`` from ``squeue`` (enough for
submitit's watcher). ``cluster.activate(monkeypatch)`` sets this process's
environment for libraries that call Slurm commands themselves.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
MARKER = "KL_SLURM_CLUSTER"  # set in every daemon's environment: how stop() finds leftovers
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
            "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


# sacct needs slurmdbd (a database); without it sacct only says "Slurm accounting storage
# is disabled". Tools that poll sacct (submitit's job watcher) get this stand-in instead:
# it answers from squeue, which knows every job for MinJobAge seconds after it ends.
SACCT_SHIM = """#!{python}
import subprocess, sys
args, ids, fields = sys.argv[1:], [], ["JobID", "State"]
for i, a in enumerate(args):
    nxt = args[i + 1] if i + 1 < len(args) else ""
    if a in ("-j", "--jobs"):
        ids += nxt.split(",")
    elif a.startswith("--jobs="):
        ids += a.split("=", 1)[1].split(",")
    elif a in ("-o", "--format"):
        fields = nxt.split(",")
    elif a.startswith("--format="):
        fields = a.split("=", 1)[1].split(",")
codes = {{"jobid": "%i", "state": "%T", "nodelist": "%N", "jobname": "%j", "partition": "%P"}}
fmt = "|".join(codes.get(f.lower(), "") for f in fields)
print("|".join(fields))
if ids:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", fmt],
                         capture_output=True, text=True).stdout
    sys.stdout.write(out)
"""


class SlurmUnavailable(Exception):
    """The cluster could not be started; the message is one line."""


def _fail(reason: str):
    reason = " ".join(str(reason).split())
    if os.environ.get("KL_REQUIRE_SLURM") == "1":
        pytest.fail(f"Slurm test cluster required but unavailable: {reason}", pytrace=False)
    pytest.skip(f"Slurm test cluster unavailable: {reason}")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _last_error(*logs: Path) -> str:
    """The last error-looking line of the first log that has one (else its last line)."""
    fallback = None
    for log in logs:
        try:
            lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
        except OSError:
            continue
        for line in reversed(lines):
            if "error" in line.lower() or "fatal" in line.lower():
                return line
        if lines and fallback is None:
            fallback = lines[-1]
    return fallback or "no log output"


@dataclass
class Cluster:
    root: Path          # private folder: conf, state, spool, munge socket (removed by stop)
    logs: Path          # daemon logs (left in tmp_dir for post-mortems)
    env: dict           # os.environ + SLURM_CONF (+ marker): pass to subprocess for any Slurm command
    node: str
    partition: str = "debug"
    procs: dict = field(default_factory=dict)  # name -> Popen

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def activate(self, monkeypatch) -> None:
        """Point this process's Slurm commands at the cluster (for code that runs
        ``sbatch``/``sacct`` with ``os.environ``, e.g. submitit): SLURM_CONF, PATH (with
        the sacct stand-in) and the marker that lets stop() find the jobs' processes."""
        for key in ("SLURM_CONF", "PATH", MARKER):
            monkeypatch.setenv(key, self.env[key])

    # --- commands -------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                              check=check, timeout=timeout)

    def sbatch(self, *args: str) -> str:
        """Submit; returns the job id (``--parsable``; for arrays the array's id)."""
        out = self.run("sbatch", "--parsable", *args).stdout.strip()
        return out.split(";")[0]

    def show_job(self, job_id: str) -> dict:
        """``scontrol show job`` as a dict (first record; {} when Slurm no longer knows the job)."""
        res = self.run("scontrol", "-o", "show", "job", str(job_id), check=False)
        if res.returncode != 0 or not res.stdout.strip():
            return {}
        fields = {}
        for tok in res.stdout.splitlines()[0].split():
            key, sep, value = tok.partition("=")
            if sep:
                fields[key] = value
        return fields

    def state(self, job_id: str) -> str:
        return self.show_job(job_id).get("JobState", "UNKNOWN")

    def states(self, job_id: str) -> dict[str, str]:
        """Every record of a job (array tasks included): {JobId or ArrayJobId_TaskId: JobState}."""
        res = self.run("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%i %T", check=False)
        out = {}
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = parts[1]
        return out

    def wait(self, job_id: str, states=TERMINAL, timeout: float = 60, poll: float = 0.25) -> str:
        """Poll until the job's state is in ``states``; returns it (AssertionError on timeout)."""
        states = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = self.state(job_id)
            if state in states:
                return state
            time.sleep(poll)
        raise AssertionError(f"job {job_id} still {state} after {timeout}s (wanted {sorted(states)})")

    def wait_idle(self, timeout: float = 60, poll: float = 0.25) -> None:
        """Until no job is pending, running or completing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = self.run("squeue", "-h", "-o", "%i", check=False)
            if res.returncode == 0 and not res.stdout.strip():
                return
            time.sleep(poll)
        raise AssertionError(f"jobs still queued after {timeout}s:\n{self.run('squeue', check=False).stdout}")

    # --- teardown -------------------------------------------------------
    def _marked_pids(self) -> list[int]:
        """PIDs whose environment carries this cluster's marker (daemons, slurmstepd, job steps)."""
        needle = f"{MARKER}={self.root}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if needle in fh.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                pass
        return pids

    def leftover_pids(self) -> list[int]:
        """Live (non-zombie) processes of this cluster; [] after stop()."""
        alive = []
        for pid in set(self._marked_pids()) | {p.pid for p in self.procs.values() if p.poll() is None}:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(pid)
            except OSError:
                pass
        return sorted(alive)

    def stop(self, timeout: float = 15) -> None:
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            try:
                ids = self.run("squeue", "-h", "-o", "%A", check=False, timeout=10).stdout.split()
                if ids:
                    self.run("scancel", *sorted(set(ids)), check=False, timeout=10)
                self.wait_idle(timeout=min(timeout, 10))
            except (AssertionError, subprocess.SubprocessError):
                pass
        # slurmd first (it ends its steps), then the controller, then munge.
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        # Whatever is left with our marker (a slurmstepd, a job's children) is ours: end it.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self._marked_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.leftover_pids():
                time.sleep(0.1)
        for proc in self.procs.values():  # reap
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _conf_text(root: Path, logs: Path, node: str, cpus: int, ctld_port: int, slurmd_port: int,
               munge_socket: Path, cred_expire: int) -> str:
    return f"""\
ClusterName=kltest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire={cred_expire}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={logs}/slurmctld.log
SlurmdLogFile={logs}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
KillWait=5
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def start_cluster(tmp_dir, *, cpus: int | None = None, cred_expire: int = 5,
                  timeout: float = 30) -> Cluster:
    """Start munged + slurmctld + slurmd; ``pytest.skip`` (one line) where that cannot be done.

    ``cpus``: CPUs the node offers (default: this host's count).
    ``cred_expire``: seconds Slurm keeps a requeued job pending before it may start again.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _fail("needs root (slurmd must run jobs as their submitting user)")
    missing = [b for b in DAEMONS + CLIENTS if shutil.which(b) is None]
    if missing:
        _fail(f"missing {', '.join(missing)}; install with .ci/setup-slurm")

    tmp_dir = Path(tmp_dir)
    logs = tmp_dir / "slurm-logs"
    logs.mkdir(parents=True, exist_ok=True)
    # A short private folder with 0755 parents: munged wants every component of its
    # socket's folder executable by all, and unix socket paths are capped at 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="kl-slurm-", dir="/tmp"))
    root.chmod(0o755)
    for sub in ("state", "spool", "run", "munge", "bin"):
        (root / sub).mkdir()
    (root / "munge").chmod(0o700)
    (root / "run").chmod(0o755)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o400)
    munge_socket = root / "run" / "munge.socket"

    node = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    ctld_port, slurmd_port = _free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text(_conf_text(root, logs, node, cpus, ctld_port, slurmd_port, munge_socket, cred_expire))

    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SRUN_", "SALLOC_")):
            del env[k]  # an enclosing Slurm job's settings must not leak into ours
    env["SLURM_CONF"] = str(conf)
    env[MARKER] = str(root)
    sacct = root / "bin" / "sacct"
    sacct.write_text(SACCT_SHIM.format(python=sys.executable))
    sacct.chmod(0o755)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    cluster = Cluster(root=root, logs=logs, env=env, node=node)

    def spawn(name, argv):
        out = open(logs / f"{name}.stdout", "wb")
        cluster.procs[name] = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    try:
        spawn("munged", ["munged", "--foreground", f"--socket={munge_socket}", f"--key-file={key}",
                         f"--pid-file={root}/run/munged.pid", f"--log-file={logs}/munged.log",
                         f"--seed-file={root}/munge/munged.seed"])
        _wait_for(lambda: munge_socket.exists(), cluster, "munged", logs / "munged.log", timeout)
        spawn("slurmctld", ["slurmctld", "-D", "-f", str(conf)])
        _wait_for(lambda: cluster.run("scontrol", "ping", check=False).stdout.count("UP") > 0,
                  cluster, "slurmctld", logs / "slurmctld.log", timeout)
        spawn("slurmd", ["slurmd", "-D", "-f", str(conf), "-N", node])
        _wait_for(lambda: cluster.run("sinfo", "-h", "-n", node, "-o", "%T", check=False)
                  .stdout.strip().rstrip("*") == "idle",
                  cluster, "slurmd", logs / "slurmd.log", timeout)
    except SlurmUnavailable as exc:
        cluster.stop()
        _fail(str(exc))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for(ready, cluster: Cluster, name: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    proc = cluster.procs[name]
    stdout = cluster.logs / f"{name}.stdout"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SlurmUnavailable(f"{name} exited with {proc.returncode}: {_last_error(stdout, log)}")
        try:
            if ready():
                return
        except (OSError, subprocess.SubprocessError):
            pass
        time.sleep(0.1)
    raise SlurmUnavailable(f"{name} not ready after {timeout}s: {_last_error(log, stdout)}")
