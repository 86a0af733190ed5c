"""Run directories: what runs wrote, read back, and where runs go.

- `layout`: every file and folder name of runs, chains, analyses;
- `run`: `Run`, a run directory read back and written;
- `resolver`: which run (or `iterate` chain) a request means; draws seeds;
- `locks`: the lock a training process holds on its run directory;
- `restore`: a run's model back from its files (`Run.load_model`).
"""
