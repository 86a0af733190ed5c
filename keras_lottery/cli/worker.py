"""`lottery worker`: a warm process that runs a study's runs one after
another (how the local engine runs them, `keras_lottery.study.engines.local`).

The worker imports the Keras backend once, then reads requests from stdin,
one JSON line each: `{"argv": [...], "log": path}`. It runs each `argv` as
the `lottery` command it stands for, in this process, its output (file
descriptors 1 and 2) appended to `log`, and answers one JSON line on its
own stdout: `{"returncode": n}`. Between two runs it clears what the run
left (`keras_lottery.training.session`: Keras's state, TensorFlow's traced
gradients), so its memory stays flat; every run sets its own seeds and draws its
data order from its seed and step, so a run here is the run a fresh
`lottery` process makes, bit for bit. It ends at the end of its input, or
at a Ctrl-C while it waits.

A worker that dies mid-run leaves the run as a killed process does: its
run.json says running, its lock is free, and it resumes from its latest
saved state.
"""

import contextlib
import json
import os
import sys

import click


@click.command("worker", hidden=True)
def worker():
    """Run requests from stdin one after another (used by `lottery study run`)."""
    from keras_lottery.training.session import Session  # the backend, once for all runs

    session = Session()
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            asked = json.loads(line)
            code = serve(asked["argv"], asked["log"])
            replies.write(json.dumps({"returncode": code}) + "\n")
            # After the reply: the driver picks the next run meanwhile.
            session.clear()
    except KeyboardInterrupt:  # stopped while it waited
        pass


def serve(argv, log):
    """Runs `lottery argv` here, its output appended to `log`; its exit
    status."""
    from keras_lottery import cli
    from keras_lottery.training import timing

    timing.set_origin()  # the run's start-up: from its request on
    with _output(log):
        try:
            cli.main.main(args=list(argv), prog_name="lottery", standalone_mode=True)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # what a fresh process would print, then exit 1
            import traceback

            traceback.print_exc()
            return 1
        return 0


@contextlib.contextmanager
def _output(log):
    """File descriptors 1 and 2 (and sys.stdout, sys.stderr) appended to
    `log` while the block runs."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab", buffering=0) as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
