"""What a running study prints: one line per finished run, and an overall
progress bar with an ETA (redrawn in a terminal; elsewhere each line
carries the progress and the ETA instead).

The ETA is the training steps left divided by the rate at which this
driver's runs have finished steps so far (all its workers together), so it
settles after the first few runs.
"""

import time


def _print(text, nl=True):
    print(text, end="\n" if nl else "", flush=True)


def duration(seconds):
    """'1h02m', '3m05s', '12s'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Progress of one driver over a study.

    Args:
        total: runs in the study.
        finished: runs finished before this driver started.
        total_steps: training steps of the whole study.
        remaining_steps: of them, those still to train.
        echo: prints text, `echo(text, nl=True)` (click.echo's signature).
        tty: redraw a bar on the terminal's last line.
        clock: seconds, monotonic (tests pass their own).
    """

    WIDTH = 28

    def __init__(self, total, finished, total_steps, remaining_steps, *, echo=_print,
                 tty=False, clock=time.monotonic):
        self.total, self.finished = total, finished
        self.total_steps, self.remaining = max(total_steps, 1), remaining_steps
        self.echo, self.tty, self.clock = echo, tty, clock
        self.began = clock()
        self.trained = 0  # steps finished by this driver
        self.bar_shown = False

    def eta(self):
        elapsed = self.clock() - self.began
        if not self.trained or not self.remaining:
            return "-" if self.remaining else "0s"
        return duration(self.remaining * elapsed / self.trained)

    def status(self):
        done = 1 - self.remaining / self.total_steps
        return f"{done:.0%} of steps, ETA {self.eta()}"

    def line(self, text):
        width = len(str(self.total))
        shown = f"[{self.finished:>{width}}/{self.total}] {text}"
        if not self.tty:
            shown += f" ({self.status()})"
        self._print(shown)

    def run_finished(self, node_id, seconds, steps):
        """A run finished: by this driver in `seconds`, or by another
        process (None), whose steps do not count towards this one's rate."""
        self.finished += 1
        self.remaining = max(0, self.remaining - steps)
        if seconds is None:
            self.line(f"{node_id} was finished by another process")
            return
        self.trained += steps
        self.line(f"finished {node_id} in {duration(seconds)}")

    def run_failed(self, node_id, message):
        self.line(f"failed {node_id}: {message}")

    def note(self, text):
        self._print(text)

    def _print(self, text):
        if self.tty and self.bar_shown:
            self.echo("\r\033[K" + text)
        else:
            self.echo(text)
        self.bar_shown = False
        self.draw()

    def draw(self):
        """Redraws the bar (terminals only)."""
        if not self.tty:
            return
        done = 1 - self.remaining / self.total_steps
        filled = int(round(done * self.WIDTH))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.echo(f"\r\033[K[{bar}] {self.finished}/{self.total} runs, {self.status()}",
                  nl=False)
        self.bar_shown = True

    def close(self):
        if self.tty and self.bar_shown:
            self.echo("")
            self.bar_shown = False
