"""Timing helpers shared by throughput.py and tfmot_throughput.py.

Pure Python, so it imports under Keras 3 and under tf_keras (Keras 2) alike:
the callback base class is passed in.
"""

import json
import statistics
import time

RESULT_PREFIX = "RESULT "


def timer_callback(base):
    """A Keras callback class (subclass of `base`) that timestamps batches.

    Each `on_*_batch_end` waits for the step to finish (reading a log value
    forces the result), then records `(steps done, time)`. With
    `steps_per_execution` > 1, Keras calls it once per execution with the
    index of the execution's last step, so the step count stays exact.
    """

    class Timer(base):
        def __init__(self):
            super().__init__()
            self.marks = []

        def _mark(self, batch, logs):
            for value in (logs or {}).values():
                try:
                    float(value)  # blocks until the step's result exists
                except (TypeError, ValueError):
                    pass
                break
            self.marks.append((int(batch) + 1, time.perf_counter()))

        def on_train_batch_end(self, batch, logs=None):
            self._mark(batch, logs)

        def on_test_batch_end(self, batch, logs=None):
            self._mark(batch, logs)

        def steady_rate(self, warmup_steps, batch_size):
            return steady_rates(self.marks, warmup_steps, batch_size)

    return Timer


def steady_rates(marks, warmup_steps, batch_size):
    """`(robust, window)` images/s from `(steps done, time)` marks, over the
    steps after the first `warmup_steps`.

    `window` is timed steps × batch / elapsed time. `robust` is batch / the
    median time of one step (per execution, divided by its steps), which a
    burst of load from another process on a shared machine barely moves.
    """
    timed = [m for m in marks if m[0] >= warmup_steps]
    if len(timed) < 2 or timed[-1][0] <= timed[0][0]:
        raise RuntimeError(
            f"too few timed steps (marks: {[m[0] for m in marks]}, warm-up "
            f"{warmup_steps}); raise --steps"
        )
    window = (timed[-1][0] - timed[0][0]) * batch_size / (timed[-1][1] - timed[0][1])
    per_step = [
        (b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(timed, timed[1:])
    ]
    return batch_size / median(per_step), window


def round_up(n, multiple):
    return -(-int(n) // multiple) * multiple


def median(values):
    return statistics.median(values) if values else float("nan")


def print_result(payload):
    """One machine-readable line for a driving process."""
    print(RESULT_PREFIX + json.dumps(payload), flush=True)


def parse_result(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError("no RESULT line in the child's output")
