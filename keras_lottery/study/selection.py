"""The paper's selection protocol, and the study's tidy table (study.csv).

For each (arch, method, one-shot or iterative, density), the rewind point k
with the best median final `val_top1` over the seeds is chosen (ties: the
smallest k, the longest retraining), and that k's median, min and max final
test `top1` are reported, as the authors' plotting code does with their
released data. A group with a single k (the bases, reinit) needs no
validation split; choosing among several does.

study.csv has one row per finished run, with the columns of the authors'
released dataframe (`network, is_iterative, retrain_method, retrain_time,
density, test_acc, val_acc, trial`) and the run's `path`: `retrain_time` is
the retraining length in epochs of the training set, (T − k) · batch /
training images (T for reinit and the bases), `trial` the seed, and the
methods carry the dataframe's labels (`LABELS`).
"""

import csv
import io
import statistics

from keras_lottery import files
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs.run import Run
from keras_lottery.errors import LotteryError
from keras_lottery.study import state

COLUMNS = ("arch", "method", "iterative", "density", "k", "n", "top1_median",
           "top1_min", "top1_max", "val_top1_median")
CSV_COLUMNS = ("network", "is_iterative", "retrain_method", "retrain_time",
               "density", "test_acc", "val_acc", "trial", "path")
# Run modes as the authors' dataframe names them; `random` is not in it.
LABELS = {"rewind": "lottery", "rewind_lr": "lr_finetune", "finetune": "finetune",
          "reinit": "reinit", "lowlr_rewind": "lr_lottery", "random": "random",
          "train": "base"}


def outcomes(plan, damaged=None):
    """One dict per finished run with an evaluation: its node, its final
    test top-1 and validation top-1. A damaged run is left out and, when
    `damaged` is given, told to it: `damaged(path, reason)`."""
    found = []
    for node in plan.nodes:
        path = plan.path(node)
        config = state.read_config(path / layout.RUN_JSON)
        if config is None and not (path / layout.RUN_JSON).exists():
            continue
        reason = state.damage(path)
        if reason is not None:
            if damaged is not None:
                damaged(path, reason)
            continue
        if config.get("status") != record.FINISHED:
            continue
        metrics = Run(path, config).metrics
        if metrics:
            # Filter pruning's density is the run's own (as the paper plots it).
            density = node.density if node.filters is None else config["density"]
            found.append({"node": node, "top1": metrics[-1]["top1"],
                          "val_top1": metrics[-1].get("val_top1"),
                          "density": round(density, 10)})
    return found


def _method(node):
    """The method as the table names it: with filter pruning's
    configuration (its levels are points of one line), or a pruner other than
    the method's own."""
    if node.filters is not None:
        return f"{node.method} {layout.filters_name(node.filters)}"
    return node.method if node.pruner is None else f"{node.method} {node.pruner}"


def select(found):
    """The result rows (`COLUMNS`) of `outcomes`, by the paper's protocol."""
    groups = {}
    for outcome in found:
        node = outcome["node"]
        # 32.77 % on the command line is 0.32770000000000005 in the run.
        key = (node.arch, _method(node), node.round is not None, outcome["density"])
        groups.setdefault(key, {}).setdefault(node.iteration, []).append(outcome)
    rows = [_row(key, by_k) for key, by_k in groups.items()]
    return sorted(rows, key=lambda r: (r["arch"], r["method"], r["iterative"], -r["density"]))


def _row(key, by_k):
    arch, method, iterative, density = key
    best = None
    for k in sorted(by_k, key=lambda k: -1 if k is None else k):
        val = [o["val_top1"] for o in by_k[k]]
        if any(v is None for v in val):
            if len(by_k) > 1:
                raise LotteryError(
                    f"{arch} {method} at density {density:g} has runs without "
                    "val_top1, so no rewind point can be chosen; give the base a "
                    "validation split (val_split)")
            median = None
        else:
            median = statistics.median(val)
        if best is None or (median is not None and median > best[0]):
            best = (median, k)
    median, k = best
    top1 = [o["top1"] for o in by_k[k]]
    return {"arch": arch, "method": method, "iterative": iterative,
            "density": density, "k": k, "n": len(top1),
            "top1_median": statistics.median(top1), "top1_min": min(top1),
            "top1_max": max(top1), "val_top1_median": median}


def tidy_rows(plan, found):
    """study.csv's rows (`CSV_COLUMNS`) of `outcomes`."""
    study = plan.study
    epochs_per_step = study.recipe.batch_size / study.train_images
    return [{
        "network": o["node"].arch,
        "is_iterative": o["node"].round is not None,
        "retrain_method": LABELS[o["node"].method],
        "retrain_time": round(o["node"].steps * epochs_per_step, 4),
        "density": o["density"],
        "test_acc": o["top1"],
        "val_acc": o["val_top1"],
        "trial": o["node"].seed,
        "path": str(plan.path(o["node"])),
    } for o in found]


def write_csv(plan, rows):
    """Writes study.csv in the study root (atomically); returns its path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row[c] is None else row[c] for c in CSV_COLUMNS})
    path = plan.study.root / layout.STUDY_CSV
    files.write_atomic(path, buffer.getvalue())
    return path
