"""What a run is and what is asked of it: typed values, checked once.

Imports no backend, so the command line checks its arguments before
TensorFlow loads.

- `methods`: the method table (what each run mode restores), with behaviour;
- `recipe`: every number of a training run (`Recipe`, `make`, presets);
- `execution`: how a run executes (XLA, precision, steps per execution,
  strategy);
- `requests`: what a procedure call asks (`TrainRequest`, `DeriveRequest`,
  `IterateRequest`);
- `runspec`: what a run is (`RunSpec`, `IterateSpec`), run.json's identity;
- `record`: what happened to a run (`RunRecord`), the rest of run.json.
"""
