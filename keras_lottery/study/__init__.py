"""Studies: a paper figure's whole grid of runs, planned, run and summarized.

A study file (TOML) names the base networks (arch, dataset, recipe, seeds),
the one-shot and iterative sweeps (methods, rewind points k, densities) and
the controls. The study is a dependency graph of ordinary runs, each made
by one typed request run as a `lottery` command (in a warm worker that
runs run after run, or in a process of its own), in a
deterministic directory under the study's root; every state lives on disk
(each run's run.json and lock), so re-running the driver is how a study
resumes.

Modules, one concern each:

- `studyfile`: reads and checks a study file into a `StudyFile`;
- `sweeps`: its [oneshot], [iterative] and [controls] sections as `Sweep`s;
- `planner`: expands it into a `Plan` of `Node`s (run directory, parent,
  seed, the typed request that makes the run, steps) and their priorities;
- `state`: study.json, each node's status read from disk, the check that an
  edited file alters no run on disk, tidying what killed processes left;
- `claims`: the lock a driver holds on a node it dispatched;
- `devices`: the devices runs go to, and each run's environment;
- `scheduler`: runs a plan in dependency order, longest remaining chain
  first, through an engine that only dispatches;
- `engines`: what starts a node's process: on this machine, as Ray tasks
  or as Slurm job arrays;
- `progress`: the progress bar and the line per finished run;
- `estimates`: throughput estimates and device-hours;
- `selection`: the paper's selection protocol, and study.csv;
- `figure`: accuracy against density, as the paper draws it;
- `calibrate`: images/s of 1, 2, 4 ... runs sharing one device.
"""
