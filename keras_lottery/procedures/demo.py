"""The whole study in miniature, offline: `lottery demo`.

Trains LeNet-300-100 on the bundled 8×8 handwritten digits (a real dataset,
see `keras_lottery/datasets/README.md`) with checkpoints, then prunes it with
weight rewinding, LR rewinding, fine-tuning and the random-pruning control at
several densities, and ends with the grouped results table and a plot. Every
number is trained on the spot; nothing is precomputed.
"""

import dataclasses
import pathlib

from keras_lottery.spec import methods
from keras_lottery import checks
from keras_lottery import procedures
from keras_lottery.spec import recipe
from keras_lottery.results import tables as report
from keras_lottery.runs import layout
from keras_lottery.errors import LotteryError

ARCH = "lenet300"
DATASET = "digits"
# The paper's three methods and the lottery-ticket control.
METHODS = (methods.REWIND, methods.REWIND_LR, methods.FINETUNE, methods.RANDOM)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a demo trains: T steps at a batch size, rewinding to iteration
    `k` (the paper's 4701 scaled to T), at each density, for each seed."""

    steps: int
    batch_size: int
    densities: tuple
    seeds: tuple

    @property
    def iteration(self):
        # The paper's k = 4701 (early in training), scaled like every step.
        return recipe.make(steps=self.steps).checkpoint_iters[1]


FULL = Plan(steps=600, batch_size=64, densities=(0.5, 0.2, 0.1, 0.05, 0.02),
            seeds=(0, 1))
# The demo's runs share dataset and T, so its table leaves those out.
TABLE_COLUMNS = ("arch", "method", "k", "density", "n", "top1_median", "top1_min",
                 "top1_max")
QUICK = Plan(steps=300, batch_size=64, densities=(0.2, 0.03), seeds=(0,))


DEFAULT_OUT = "lottery-demo"  # its own root, apart from the user's ./runs


def run(out=DEFAULT_OUT, quick=False, verbose=1, echo=print):
    """Runs the demo study under `out` and returns (runs, table text).

    Re-running skips every finished run (each is an ordinary run directory),
    so an interrupted demo resumes.

    Example:

    >>> finished, table = keras_lottery.procedures.demo.run("lottery-demo", quick=True)

    Args:
        out: the study's root folder (runs go to `<out>/lenet300/...`).
        quick: the CI-sized version (fewer steps, densities and seeds).
        verbose: 0 silent, 1 one line per run, 2 also per evaluation.
        echo: where progress lines go.
    """
    plan = QUICK if quick else FULL
    out = pathlib.Path(out)
    inside = [p for p in (out, *out.resolve().parents) if (p / layout.RUN_JSON).exists()]
    if inside:
        raise LotteryError(
            f"lies in the run directory {inside[0]}; the demo writes a folder of "
            "runs, so give it a folder of its own", param="out", value=str(out),
        )
    k = plan.iteration
    total = len(plan.seeds) * (1 + len(METHODS) * len(plan.densities))
    made = []

    def note(text):
        if verbose:
            echo(f"[{len(made) + 1}/{total}] {text}")

    inner = 2 if verbose > 1 else 0
    for seed in plan.seeds:
        note(f"train {ARCH} on {DATASET}, {plan.steps} steps, seed {seed}")
        base = procedures.train(
            ARCH, dataset=DATASET, steps=plan.steps, batch_size=plan.batch_size,
            seed=seed, root=out, verbose=inner,
        )
        made.append(base)
        for density in plan.densities:
            for method in METHODS:
                note(f"{method.name} k={k} density {checks.percent_shown(density)} seed {seed}")
                made.append(procedures.PROCEDURES[method.name](
                    base, iteration=k, density=density, seed=seed, root=out,
                    verbose=inner,
                ))
    rows = report.group(made)
    table = report.render(rows, TABLE_COLUMNS)
    return made, table


def plot(finished, path):
    """Writes the accuracy-vs-density figure of a demo to `path`."""
    from keras_lottery.results import figures as plot_lib

    return plot_lib.accuracy_vs_density(
        finished, path=path, title=f"{ARCH} on the 8x8 digits (keras_lottery demo)"
    )

