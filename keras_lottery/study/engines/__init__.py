"""Engines: what starts a node's process. An engine only dispatches.

- `local`: one process per run on this machine (also what runs a Slurm
  job's bundle);
- `ray`: the plan as Ray tasks, parents' tasks as dependencies;
- `slurm`: the plan as Slurm job arrays, one per dependency wave, through
  submitit; `bundle`: what one such job runs; `slurmconfig`: the study
  file's [slurm] section;
- `noderun`: one node's run where a cluster engine placed it.
"""
