"""Where a run's wall time goes: a stopwatch that charges every moment to
one phase (`keras_lottery.spec.record.TIMING_PHASES`), kept in run.json's
`timing`:

- startup: from the start of the process (or, in a study's warm worker,
  from the arrival of the run's request) to the start of the run: Python,
  TensorFlow and the package loading. Only what the command line or a
  worker marks (`set_origin`) counts; a call from your own Python counts 0;
- data: reading the dataset and the parent run, making the input pipelines
  (every segment's);
- build: building the model and setting its start state (seed, pruning,
  the parent's weights);
- compile: compiling, and the first training step and the first evaluation
  step of the run, which trace their functions;
- train: the training steps (and the callbacks run with them);
- evaluate: the evaluations and their metrics rows;
- checkpoint: writing and reading checkpoints, resume states and run.json.

Every moment between a run's start and its end belongs to exactly one
phase, so the phases sum to its wall time (`wall`).
"""

import contextlib
import os
import time

from keras_lottery.spec.record import TIMING_PHASES

# time.time() at which the work for the next run began (None: unknown).
_origin = None


def set_origin(seconds=None):
    """Marks when the work for the next run began (default: now): the start
    of a `lottery` process, or a warm worker's receipt of a request. The
    next `Stopwatch` counts the time since as its start-up."""
    global _origin
    _origin = time.time() if seconds is None else seconds


def take_startup():
    """Seconds since the mark of `set_origin` (0 without one); clears it, so
    only the first run of a request counts the start-up."""
    global _origin
    origin, _origin = _origin, None
    return 0.0 if origin is None else max(0.0, time.time() - origin)


def process_started():
    """time.time() at which this process started (Linux), else now."""
    try:
        with open("/proc/self/stat") as f:
            # Field 22, counted after the command's closing parenthesis.
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return time.time()
    return time.time() - max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))


class Stopwatch:
    """Charges wall time to one phase at a time.

    `switch(phase)` charges what follows to `phase`; `with phase(p):`
    charges its block to `p` and then goes back to the phase before, so
    nested phases never count twice.

    Args:
        phase: the phase charged from now on.
        startup: the start-up before now (default: `take_startup()`).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, phase="data", *, startup=None, clock=time.monotonic):
        self.seconds = dict.fromkeys(TIMING_PHASES, 0.0)
        self.seconds["startup"] = take_startup() if startup is None else startup
        self._clock = clock
        self._phases = [phase]
        self._since = clock()

    def _charge(self):
        now = self._clock()
        self.seconds[self._phases[-1]] += now - self._since
        self._since = now

    def switch(self, phase):
        """Charges what follows to `phase`."""
        self._charge()
        self._phases[-1] = phase

    @contextlib.contextmanager
    def phase(self, phase):
        """Charges the block to `phase`, then goes back to the phase before."""
        self._charge()
        self._phases.append(phase)
        try:
            yield
        finally:
            self._charge()
            self._phases.pop()

    def timing(self):
        """{phase: seconds, "wall": their sum, "attempts": 1} so far."""
        self._charge()
        found = {k: round(v, 3) for k, v in self.seconds.items()}
        found["wall"] = round(sum(self.seconds.values()), 3)
        found["attempts"] = 1
        return found


def stopwatch(clock):
    """`clock`, or a new `Stopwatch` when it is None (a run started without
    one: no data phase before it)."""
    return Stopwatch("build") if clock is None else clock
