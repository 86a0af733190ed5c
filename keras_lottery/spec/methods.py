"""The registry of methods: what each run mode restores, in one table.

| method | masks from | weights, BN stats, momentum from | starts at | LR |
|---|---|---|---|---|
| train | all ones | fresh init | 0 | schedule |
| rewind | a pruner on the parent's final state | parent's iteration k | k | schedule |
| rewind_lr | same | parent's final | k | schedule replayed from k |
| finetune | same | parent's final | parent's end | constant |
| lowlr_rewind | same | parent's iteration k | k | constant |
| random | the `random` pruner (among the parent's survivors) | parent's iteration k | k | schedule |
| reinit | a pruner on the parent's final state | fresh init (derived seed) | 0 | schedule |
| branch | parent's at k, unchanged | parent's iteration k | k | schedule |

A derived run trains T − k steps (reinit: T). `branch` prunes nothing (it
takes no density): it continues a copy of the parent from k, the copies of
instability analysis (`keras_lottery.stability`).

Each column is a value with behaviour (`Masks`, `Weights`, `Start`,
`Iteration`), so what a method does is asked of it, never read from its
name; adding a method is one `Method` in `METHODS`: the CLI's commands and
help, the procedures, run.json's modes, study files and the demo read this
table. It imports nothing but the error type, so the command line can list
it without loading TensorFlow.
"""

import dataclasses
import difflib
import enum

from keras_lottery.errors import LotteryError


class Masks(enum.Enum):
    """Where a run's masks come from."""

    ONES = "all ones"
    PRUNED = "a pruner on the parent's final state"
    PARENT = "the parent's at k, unchanged"


class Weights(enum.Enum):
    """Where weights, batch-norm statistics and momentum come from."""

    INIT = "a fresh initialization"
    AT_K = "the parent's checkpoint at k"
    FINAL = "the parent's final state"


class Start(enum.Enum):
    """The run's first optimizer iteration."""

    ZERO = "0"
    K = "k"
    PARENT_END = "the parent's last iteration"

    def step(self, iteration, parent_end):
        return {Start.ZERO: 0, Start.K: iteration, Start.PARENT_END: parent_end}[self]


class Iteration(enum.Enum):
    """What `iteration` (k) means to a method."""

    NONE = "takes none"
    CHECKPOINT = "a checkpoint the parent saved"
    LENGTH = "any step in [0, T): only the length T - k"

    @property
    def taken(self):
        return self is not Iteration.NONE

    def length(self, steps, iteration):
        """Training steps of a run of T = `steps`."""
        return steps if self is Iteration.NONE else steps - iteration


DEFAULT_PRUNER = "magnitude"


@dataclasses.dataclass(frozen=True)
class Method:
    """One run mode.

    Attributes:
        name: the Python name and run.json `mode` ("rewind_lr").
        masks: where the masks come from (`Masks`).
        weights: where weights, BN statistics and momentum come from.
        start: the first iteration (`Start`).
        constant_lr: trains at a constant LR instead of the schedule.
        iteration: what k means (`Iteration`).
        control: one of the paper's controls rather than a method.
        summary: one line for lists.
        help: the command's help text.
        doc: the Python procedure's description (its arguments are
            documented from the table, `keras_lottery.procedures.calls`).
        pruner: the pruner a pruning method uses by default ("magnitude";
            the random control's is "random").
    """

    name: str
    masks: Masks
    weights: Weights
    start: Start
    constant_lr: bool
    iteration: Iteration
    control: bool
    summary: str
    help: str
    pruner: str = DEFAULT_PRUNER
    doc: str = ""

    @property
    def command(self):
        """The CLI command, "rewind-lr"."""
        return self.name.replace("_", "-")

    @property
    def derived(self):
        """Whether the method derives from a parent run."""
        return self.masks is not Masks.ONES

    @property
    def prunes(self):
        """Whether the method prunes (and so takes a target density)."""
        return self.masks is Masks.PRUNED

    @property
    def chooses_pruner(self):
        """Whether a run may choose its pruner (`pruner=`): the methods that
        prune with magnitude by default; the random control prunes with its
        own."""
        return self.prunes and self.pruner == DEFAULT_PRUNER

    def bounds(self, *, steps, iteration=None, parent_end=None):
        """(first, last) iteration of a run of this method, T = `steps`."""
        start = self.start.step(iteration, parent_end)
        return start, start + self.iteration.length(steps, iteration)

    def init_seed(self, seed, parent_seed=None):
        """The seed a run's model is built under: its own, except for a
        fresh initialization of a derived run (reinit), never the parent's
        own initialization (that would be rewinding to 0)."""
        if self.derived and self.weights is Weights.INIT:
            return (seed * 1_000_003 + parent_seed + 1) % 2**31
        return seed


TRAIN = Method(
    "train", Masks.ONES, Weights.INIT, Start.ZERO, False, Iteration.NONE, False,
    "train a network from scratch with the recipe",
    "Train a network from scratch with the paper's recipe (or --recipe).",
    pruner=None)
REWIND = Method(
    "rewind", Masks.PRUNED, Weights.AT_K, Start.K, False, Iteration.CHECKPOINT,
    False, "weight rewinding: prune, then retrain from iteration k",
    """Weight rewinding: prune the parent's final weights, then retrain from
    its iteration k (weights, BN statistics, momentum and LR from k) for
    T - k steps.""",
    doc="""Weight rewinding: prune, then retrain from the parent's iteration k.

    Masks come from global magnitude pruning of the parent's final state (or
    the `pruner` given); weights, batch-norm statistics, momentum and the
    iteration counter come from the parent's checkpoint at `iteration`; the
    LR schedule continues from k; the run trains T − k steps, ending at T.

    Example:

    >>> run = keras_lottery.rewind("runs/resnet20/train-s0",
    ...                            iteration=4701, density=0.8)""")
REWIND_LR = Method(
    "rewind_lr", Masks.PRUNED, Weights.FINAL, Start.K, False, Iteration.CHECKPOINT,
    False, "LR rewinding: prune the final weights, replay the LR schedule from k",
    """LR rewinding: prune the parent's final weights and retrain them with
    the LR schedule replayed from iteration k, for T - k steps.""",
    doc="""Learning-rate rewinding: prune the final state, replay the LR from k.

    Weights, batch-norm statistics and momentum come from the parent's final
    state; the iteration counter is set to k, so the LR schedule replays
    from k; the run trains T − k steps.""")
FINETUNE = Method(
    "finetune", Masks.PRUNED, Weights.FINAL, Start.PARENT_END, True,
    Iteration.LENGTH, False, "fine-tuning: prune the final weights, train on "
    "at a constant LR for T - k steps",
    """Fine-tuning: prune the parent's final weights and train on at a
    constant LR for T - k steps (ending at 2T - k).""",
    doc="""Fine-tuning: prune the final state, train on at a constant LR.

    Starts from the parent's final state at the parent's last iteration and
    trains T − k steps at `lr`, ending at 2T − k for a trained parent.
    `iteration` k sets only the length, to match a rewinding run from k.""")
LOWLR_REWIND = Method(
    "lowlr_rewind", Masks.PRUNED, Weights.AT_K, Start.K, True, Iteration.CHECKPOINT,
    True, "control: weights from k, constant LR",
    """Control: low-LR weight rewinding. Weights, BN statistics and momentum
    from iteration k with the new mask (as rewind), trained T - k steps at a
    constant LR.""",
    doc="""Low-LR weight rewinding (control): rewind to k, train at a constant LR.

    As `rewind` (masks from the parent's final magnitudes; weights,
    batch-norm statistics, momentum and iteration from k; T − k steps), but
    at the constant `lr` instead of the schedule: it separates what the
    rewound weights contribute from what the rewound learning rate does.""")
RANDOM = Method(
    "random", Masks.PRUNED, Weights.AT_K, Start.K, False, Iteration.CHECKPOINT,
    True, "control: a random mask, then weight rewinding from k",
    """Control: random pruning. A uniformly random mask with exactly the
    requested density (among the parent's survivors), then weight rewinding
    from iteration k.""", pruner="random",
    doc="""Random pruning (control): a random mask, then weight rewinding from k.

    The mask keeps exactly round(density × N) weights chosen uniformly at
    random (seeded by the run's seed) among the parent's unpruned ones, so
    iterative rounds nest; training is then exactly `rewind`'s.""")
REINIT = Method(
    "reinit", Masks.PRUNED, Weights.INIT, Start.ZERO, False, Iteration.NONE, True,
    "control: the magnitude mask with fresh weights, T steps",
    """Control: random reinitialization. The parent's magnitude mask with
    freshly initialized weights, trained the full T steps from step 0.""",
    doc="""Random reinitialization (control): the pruned mask, fresh weights.

    Masks come from the parent's final magnitudes, as in `rewind`; the
    weights are freshly initialized (from a seed derived from the run's and
    the parent's seeds, so never the parent's own initialization) and
    trained with the full schedule, T steps from step 0.""")
BRANCH = Method(
    "branch", Masks.PARENT, Weights.AT_K, Start.K, False, Iteration.CHECKPOINT,
    False, "a copy of the parent's whole state at k, trained unpruned to T "
    "with its own seed",
    """Branching: continue a copy of the parent from iteration k. Its whole
    state there (masks, weights, BN statistics, momentum, iteration) is
    trained on, pruning nothing, for T - k steps with this run's --seed for
    the data order. Branches with different seeds are the copies that
    lottery stability compares.""", pruner=None,
    doc="""Branching: a copy of the parent's state at iteration k, trained on.

    Masks, weights, batch-norm statistics, momentum and the iteration
    counter all come from the parent's checkpoint at `iteration`; nothing
    is pruned (it takes no density); the LR schedule continues from k and
    the run trains T − k steps, ending at T, with its own `seed` for the
    data order and augmentation. With the parent's seed it retraces the
    parent exactly; with another it is a copy trained with other SGD noise,
    as instability analysis needs (`keras_lottery.stability`).""")

METHODS = {m.name: m for m in (TRAIN, REWIND, REWIND_LR, FINETUNE,
                               LOWLR_REWIND, RANDOM, REINIT, BRANCH)}
DERIVED = tuple(name for name, m in METHODS.items() if m.derived)
# The derived methods that prune: what `iterate` can repeat.
PRUNING = tuple(name for name in DERIVED if METHODS[name].prunes)


def get(name, *, param="method", derived=False, pruning=False):
    """The `Method` called `name` ("rewind-lr" and "rewind_lr" alike).

    Raises:
        LotteryError: for an unknown name (suggesting the closest), a
            train mode where `derived` asks for a derived one, or one that
            prunes nothing where `pruning` asks for one that prunes.
    """
    key = name.replace("-", "_") if isinstance(name, str) else name
    choices = PRUNING if pruning else DERIVED if derived else tuple(METHODS)
    if key not in choices:
        close = difflib.get_close_matches(str(key), choices, n=1)
        hint = f" (did you mean {METHODS[close[0]].command}?)" if close else ""
        raise LotteryError(
            f"unknown method{hint}; choose one of: "
            f"{', '.join(METHODS[c].command for c in choices)}",
            param=param, value=name,
        )
    return METHODS[key]
