"""A study file's `[slurm]` section: what each Slurm job of the study asks for.

    [slurm]
    partition = "gpu"            # default: the cluster's default partition
    time = "4:00:00"             # per job; a job that reaches it is requeued
    gpus_per_job = 1             # 0 for CPU jobs
    cpus_per_job = 8             # default: the cluster's default
    mem_gb = 32                  # default: the cluster's default
    array_parallelism = 64       # jobs of one array running at once
    runs_per_job = 8             # default and least: one run per slot (see below)
    max_requeues = 3             # requeues after reaching the time limit
    sbatch = ["--account=lab", "--qos=normal"]   # extra sbatch options
    setup = ["module load cuda"] # shell lines run before each job
    python = "/shared/venv/bin/python"           # default: this interpreter

Each job runs `runs_per_device` runs on each of its GPUs at once (its
slots). By default a job holds one run per slot; with `runs_per_job` larger,
its slots' warm workers run the job's runs in turn, so many short runs pay
one job's queueing and one start-up per slot, not one per run (the time
limit must then fit several runs: a job that reaches it is requeued, and its
runs resume).
"""

import dataclasses
import re
import sys

from keras_lottery import checks

SECTION = "slurm"
KEYS = ("partition", "time", "gpus_per_job", "cpus_per_job", "mem_gb",
        "array_parallelism", "runs_per_job", "max_requeues", "sbatch", "setup", "python")
DEFAULT_TIME = "4:00:00"
# Options the engine sets itself, which `sbatch` lines may not.
ENGINE_OPTIONS = ("array", "dependency", "job-name", "output", "error", "signal",
                  "open-mode", "kill-on-invalid-dep")
_TIME = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+)(?::(\d+))?$")
_OPTION = re.compile(r"^--([a-z][a-z0-9-]*)(?:=(.+))?$")


@dataclasses.dataclass(frozen=True)
class SlurmSettings:
    """The `[slurm]` section, checked (see the module docstring).

    Attributes:
        time_min: the time limit in minutes.
        sbatch: extra options as {name: value} (value True for a bare flag).
    """

    partition: str = None
    time_min: int = 240
    gpus_per_job: int = 1
    cpus_per_job: int = None
    mem_gb: float = None
    array_parallelism: int = 256
    runs_per_job: int = None
    max_requeues: int = 3
    sbatch: tuple = ()
    setup: tuple = ()
    python: str = None

    @property
    def interpreter(self):
        return self.python or sys.executable

    def options(self):
        return dict(self.sbatch)

    def slots(self, runs_per_device):
        """Runs a job trains at once."""
        return runs_per_device * max(1, self.gpus_per_job)

    def job_size(self, runs_per_device):
        """Runs a job holds: `runs_per_job`, and at least one per slot (a
        job's GPUs are asked for whatever it holds)."""
        return max(self.runs_per_job or 0, self.slots(runs_per_device))


def minutes(text):
    """Minutes of a Slurm time ("MM", "HH:MM:SS", "D-HH:MM:SS", ...), or
    None when `text` is not one."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if text > 0 else None
    found = _TIME.match(str(text).strip())
    if not found:
        return None
    days, first, second, third = found.groups()
    if first is None:  # "MM" or "MM:SS" read as Slurm does
        hours, mins, secs = 0, int(second), int(third or 0)
    elif third is None:  # "HH:MM" only with days; alone Slurm reads MM:SS
        hours, mins, secs = (int(first), int(second), 0) if days else (0, int(first), int(second))
    else:
        hours, mins, secs = int(first), int(second), int(third)
    total = int(days or 0) * 1440 + hours * 60 + mins + (1 if secs else 0)
    return total if total > 0 else None


def read(table, fail):
    """The `SlurmSettings` of a `[slurm]` table; `fail(key, message)`
    raises the file's one-line error."""
    found = {}
    for key in ("partition", "python"):
        if key in table:
            if not isinstance(table[key], str) or not table[key].strip():
                fail(key, f"expected a non-empty string, got {table[key]!r}")
            found[key] = table[key]
    if "time" in table:
        found["time_min"] = minutes(table["time"])
        if found["time_min"] is None:
            fail("time", f"expected minutes or \"HH:MM:SS\", got {table['time']!r}")
    else:
        found["time_min"] = minutes(DEFAULT_TIME)
    for key, low in (("gpus_per_job", 0), ("cpus_per_job", 1), ("array_parallelism", 1),
                     ("runs_per_job", 1), ("max_requeues", 0)):
        if key in table:
            value = table[key]
            if not checks.is_count(value, low):
                fail(key, f"expected an integer >= {low}, got {value!r}")
            found[key] = value
    if "mem_gb" in table:
        value = table["mem_gb"]
        if not checks.is_number(value) or value <= 0:
            fail("mem_gb", f"expected a positive number, got {value!r}")
        found["mem_gb"] = value
    found["sbatch"] = _sbatch(table.get("sbatch", []), fail)
    setup = table.get("setup", [])
    if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
        fail("setup", f"expected a list of shell lines, got {setup!r}")
    found["setup"] = tuple(setup)
    return SlurmSettings(**found)


def _sbatch(lines, fail):
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        fail("sbatch", f"expected a list of options like \"--account=lab\", got {lines!r}")
    options = []
    for line in lines:
        text = line.strip()
        if text.startswith("#SBATCH"):
            text = text[len("#SBATCH"):].strip()
        found = _OPTION.match(text.replace(" ", "=", 1) if "=" not in text else text)
        if not found:
            fail("sbatch", f"{line!r} is not a long sbatch option like \"--account=lab\"")
        name, value = found.group(1), found.group(2)
        if name in ENGINE_OPTIONS:
            fail("sbatch", f"{line!r}: the engine sets {name} itself; remove the line")
        options.append((name, True if value is None else value))
    return tuple(options)
