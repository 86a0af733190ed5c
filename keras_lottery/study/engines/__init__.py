"""Engines: what starts a node's process. An engine only dispatches.

- `local`: warm workers on this machine, each running run after run (also
  what runs a Slurm job's bundle);
- `ray`: the plan as Ray tasks, parents' tasks as dependencies, each Ray
  worker running its tasks through the warm worker it keeps;
- `slurm`: the plan as Slurm job arrays, one per dependency wave, through
  submitit; `bundle`: what one such job runs; `slurmconfig`: the study
  file's [slurm] section;
- `noderun`: one node's run where a cluster engine placed it.
"""
