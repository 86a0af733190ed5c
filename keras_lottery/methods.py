"""The registry of methods: what each run mode restores, in one table.

| method | masks from | weights, BN stats, momentum from | starts at | LR |
|---|---|---|---|---|
| train | all ones | fresh init | 0 | schedule |
| rewind | magnitude of parent's final | parent's iteration k | k | schedule |
| rewind_lr | same | parent's final | k | schedule replayed from k |
| finetune | same | parent's final | parent's end | constant |
| lowlr_rewind | same | parent's iteration k | k | constant |
| random | random among parent's survivors | parent's iteration k | k | schedule |
| reinit | magnitude of parent's final | fresh init (derived seed) | 0 | schedule |
| branch | parent's at k, unchanged | parent's iteration k | k | schedule |

A derived run trains T − k steps (reinit: T). `branch` prunes nothing (it
takes no density): it continues a copy of the parent from k, the copies of
instability analysis (`keras_lottery.stability`). The CLI's commands and
choices, the procedures, the run modes of run.json and the demo all read
this table. It imports nothing but the error type, so the command line can
list it without loading TensorFlow.
"""

import dataclasses
import difflib

from keras_lottery.errors import LotteryError


@dataclasses.dataclass(frozen=True)
class Method:
    """One run mode.

    Attributes:
        name: the Python name and run.json `mode` ("rewind_lr").
        masks: where the masks come from: None (all ones), "magnitude"
            (global magnitude of the parent's final state), "random"
            (uniform among the parent's survivors) or "parent" (the
            parent's own at k, unchanged: nothing is pruned).
        state: where weights, BN statistics and momentum come from: "init"
            (a fresh initialization), "k" (the parent's checkpoint at
            iteration k) or "final" (the parent's final state).
        start: the first iteration: "zero", "k" or "parent_end".
        constant_lr: trains at a constant LR instead of the schedule.
        iteration: what `iteration` (k) means: "checkpoint" (one the parent
            saved), "length" (any step in [0, T): only the length T − k) or
            None (not taken).
        control: one of the paper's controls rather than a method.
        summary: one line for help texts.
    """

    name: str
    masks: str
    state: str
    start: str
    constant_lr: bool
    iteration: str
    control: bool
    summary: str

    @property
    def command(self):
        """The CLI command, "rewind-lr"."""
        return self.name.replace("_", "-")

    @property
    def derived(self):
        """Whether the method derives from a parent run."""
        return self.name != TRAIN.name

    @property
    def prunes(self):
        """Whether the method prunes (and so takes a target density)."""
        return self.masks in ("magnitude", "random")

    def bounds(self, *, steps, iteration=None, parent_end=None):
        """(first, last) iteration of a run of this method, T = `steps`."""
        start = {"zero": 0, "k": iteration, "parent_end": parent_end}[self.start]
        length = steps if self.iteration is None else steps - iteration
        return start, start + length


TRAIN = Method("train", None, "init", "zero", False, None, False,
               "train a network from scratch with the recipe")
REWIND = Method("rewind", "magnitude", "k", "k", False, "checkpoint", False,
                "weight rewinding: prune, then retrain from iteration k")
REWIND_LR = Method("rewind_lr", "magnitude", "final", "k", False, "checkpoint",
                   False, "LR rewinding: prune the final weights, replay the "
                   "LR schedule from k")
FINETUNE = Method("finetune", "magnitude", "final", "parent_end", True, "length",
                  False, "fine-tuning: prune the final weights, train on at a "
                  "constant LR for T - k steps")
LOWLR_REWIND = Method("lowlr_rewind", "magnitude", "k", "k", True, "checkpoint",
                      True, "control: weights from k, constant LR")
RANDOM = Method("random", "random", "k", "k", False, "checkpoint", True,
                "control: a random mask, then weight rewinding from k")
REINIT = Method("reinit", "magnitude", "init", "zero", False, None, True,
                "control: the magnitude mask with fresh weights, T steps")
BRANCH = Method("branch", "parent", "k", "k", False, "checkpoint", False,
                "a copy of the parent's whole state at k, trained unpruned "
                "to T with its own seed")

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
