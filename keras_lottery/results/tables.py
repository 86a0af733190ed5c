"""Results of runs as rows, tables, CSV and JSON — instead of event files.

Three kinds of rows: `summary` (one per run), `curve` (one per evaluation)
and `group` (one per group of comparable runs, with the median, min and max
over seeds, as the paper reports). `render` prints any of them. Densities
are fractions in rows, CSV and JSON, and percent in tables.
"""

import csv
import io
import json
import statistics

from keras_lottery.errors import LotteryError
from keras_lottery.spec.record import FINISHED
from keras_lottery.spec.record import TIMING_PHASES
from keras_lottery.runs import layout
from keras_lottery.runs.run import Run

SUMMARY_COLUMNS = (
    "run", "mode", "arch", "dataset", "T", "density", "iter", "steps", "seed",
    "final_top1", "best_top1",
)
CURVE_COLUMNS = ("run", "seed", "step", "top1")
# Where each run's wall time went (run.json's `timing`, in seconds).
TIMING_COLUMNS = ("run", "status", *TIMING_PHASES, "wall", "attempts")
GROUP_COLUMNS = (
    "arch", "dataset", "T", "method", "parent", "k", "density", "n",
    "top1_median", "top1_min", "top1_max",
    "best_median", "best_min", "best_max", "unfinished", "seeds",
)
# How `group` picks each run's reported test top-1: at the last evaluation,
# or at the evaluation with the highest validation top-1 (`val_top1`, written
# by runs that hold out a validation split).
SELECTS = ("final", "best_val")
FORMATS = ("table", "csv", "json")
# Columns shown as percent in tables (fractions in files and Python,
# percent for people).
PERCENT_COLUMNS = ("density",)
# Columns of seconds, shown to the hundredth in tables.
SECONDS_COLUMNS = (*TIMING_PHASES, "wall")


def summary(run):
    """One row per run: what it was and how accurate it ended and peaked.

    `T` is the recipe's length and `steps` the run's own (T − k for a
    rewind from k); `density` the realized fraction of weights kept.
    """
    top1 = [m["top1"] for m in run.metrics]
    spec = run.spec
    return {
        "run": str(run.path),
        "mode": spec.mode,
        "arch": spec.arch,
        "dataset": spec.dataset,
        "T": spec.recipe.steps,
        "density": run.density,
        "iter": spec.iteration,
        "steps": run.end_step - run.start_step,
        "seed": spec.seed,
        "final_top1": top1[-1] if top1 else None,
        "best_top1": max(top1) if top1 else None,
    }


def timing(runs):
    """One row per run with its time by phase (`TIMING_COLUMNS`; None for
    runs made before timings were kept), then a row of their sums (named
    "all N runs").

    Example:

    >>> print(report.render(report.timing(runs), report.TIMING_COLUMNS))
    """
    rows = []
    for run in runs:
        found = run.config.get("timing") or {}
        rows.append(dict({k: found.get(k) for k in TIMING_COLUMNS},
                         run=str(run.path), status=run.status))
    total = {k: round(sum(r[k] or 0 for r in rows), 3) for k in TIMING_COLUMNS[2:]}
    return rows + [dict(total, run=f"all {len(rows)} runs", status=None)]


def curve(run):
    """The (step, top-1) rows of a run, as the original's one-liner printed."""
    seed = run.spec.seed
    return [
        {"run": str(run.path), "seed": seed, "step": m["step"], "top1": m["top1"]}
        for m in run.metrics
    ]


def load(runs):
    """Opens what it is given: `Run` objects pass through, paths are opened.

    Example:

    >>> report.load(["runs/resnet20/train-s0", run])
    [Run('runs/resnet20/train-s0', ...), Run(...)]
    """
    return [r if isinstance(r, Run) else Run.open(r) for r in runs]


def group(runs, select="final"):
    """One row per group of comparable runs: statistics over their seeds.

    Runs are comparable when everything that shapes their result but the
    seed agrees: architecture (and a user model's config), dataset, the
    whole recipe (T, batch size, schedule, ...), method, k, target density,
    constant LR, pruning scope and exclusions, validation split, precision,
    and one-shot versus iterative (`method` gets " (iterative)" for rounds
    of `iterate`), and what their parents are (`parent`: "train" for runs
    derived from a base run, else the parent's method, k and density, so a
    rewind from the base and one from a pruned run never share a row; runs
    whose parent is gone say so in `notes`). The paper's figures show, for each density, the median
    over trials with min and max; this gives those numbers for the top-1
    test accuracy each run reports (`top1_*`) and for the best top-1 it
    reached at any evaluation (`best_*`, chosen on the test set, so
    optimistic).

    Only finished runs with at least one evaluation count (`n`); the others
    of a group are counted in `unfinished` and nothing else. A group with
    no finished run is still listed, with `n` 0 and no statistics, so a
    missing result is visible rather than silently absent. A group in which
    a seed repeats, or whose runs were made by different keras_lottery
    versions or on different Keras backends, says so in its `notes`. Rows are sorted by arch, dataset, T,
    method, k and density from dense to sparse.

    Example:

    >>> rows = report.group(runs.find_runs("runs"))
    >>> print(report.render(rows, report.GROUP_COLUMNS))

    Args:
        runs: `Run` objects or run directory paths.
        select: which test top-1 a run reports. "final" (default): the
            one at its last evaluation, i.e. a fixed training budget.
            "best_val": the one at the evaluation with the highest
            validation top-1 (earliest on ties), which needs a `val_top1`
            column (runs made with a validation split).

    Returns:
        A list of dicts with the `GROUP_COLUMNS`, plus `runs` (the counted
        run paths) and `notes` (a list of warnings, empty when none).
    """
    if select not in SELECTS:
        raise LotteryError(f"unknown select; use one of {', '.join(SELECTS)}",
                           param="select", value=select)
    groups, parents = {}, {}
    for run in load(runs):
        outcome = _outcome(run, select, parents)
        groups.setdefault(outcome["key"], []).append(outcome)
    return [_group_row(groups[key]) for key in sorted(groups, key=_order)]


def method_label(spec):
    """The method as tables and figures name it: its mode, the filter
    pruning configuration ("rewind resnet56-A"), " (iterative)" for rounds
    of `iterate`; a pruner other than the method's own ("rewind zscore")."""
    label = spec.mode
    if spec.filters is not None:
        label += f" {layout.filters_name(spec.filters)}"
    elif spec.pruner not in (None, spec.method.pruner):
        label += f" {spec.pruner}"
    return label + (" (iterative)" if spec.round is not None else "")


def parent_label(spec, cache=None):
    """What a run's parent is, the same for every seed: "-" for a run from
    scratch, "train" for one derived from a base run, else the parent's
    method, k and density ("rewind k=13 20%"); "?" when it is gone."""
    if spec.parent is None:
        return "-"
    cache = {} if cache is None else cache
    if spec.parent not in cache:
        try:
            theirs = Run.open(spec.parent).spec
        except LotteryError:
            cache[spec.parent] = "?"
        else:
            k = "" if theirs.iteration is None else f" k={theirs.iteration}"
            density = ("" if theirs.target_density is None
                       else f" {theirs.target_density * 100:.4g}%")
            cache[spec.parent] = (theirs.mode if not theirs.method.derived
                                  else f"{theirs.mode}{k}{density}")
    return cache[spec.parent]


def _outcome(run, select, parents):
    """What one run contributes to its group."""
    spec = run.spec
    # The density asked for (0.64), not the realized kept/N (0.639997);
    # equal fractions computed along different paths must not split a group.
    # Runs that prune nothing (train, branch) keep their parent's.
    asked = spec.target_density if spec.target_density is not None else run.density
    density = round(asked, 6)
    method = method_label(spec)
    shown = {"arch": spec.arch, "dataset": spec.dataset, "T": spec.recipe.steps,
             "method": method, "parent": parent_label(spec, parents),
             "k": spec.iteration, "density": density}
    outcome = {"key": (tuple(shown.values()), spec.comparable()), "shown": shown,
               "run": str(run.path), "seed": spec.seed,
               "version": (run.config.get("versions") or {}).get("keras_lottery"),
               "backend": run.backend}
    metrics = run.metrics
    if run.status != FINISHED or not metrics:
        return dict(outcome, counted=False)
    top1 = [m["top1"] for m in metrics]
    if select == "final":
        chosen = top1[-1]
    else:
        val = [m.get("val_top1") for m in metrics]
        if any(v is None for v in val):
            raise LotteryError(
                f"{run.path} has no val_top1 column to select by; use "
                "select 'final' or runs trained with a validation split"
            )
        chosen = top1[val.index(max(val))]
    return dict(outcome, counted=True, top1=chosen, best=max(top1))


def _order(key):
    # None (a train run's k) sorts first, then the values; density
    # descends, as the sparsity of iterative rounds grows.
    arch, dataset, steps, method, parent, k, density = key[0]
    return (str(arch), str(dataset), steps, str(method), parent,
            (k is not None, k if k is not None else 0), -density, repr(key[1]))


def _group_row(outcomes):
    counted = [o for o in outcomes if o["counted"]]
    seeds = [o["seed"] for o in counted]
    row = dict(outcomes[0]["shown"], n=len(counted),
               unfinished=len(outcomes) - len(counted),
               runs=[o["run"] for o in counted], seeds=seeds, notes=[])
    if len(set(seeds)) < len(seeds):
        row["notes"].append(f"seeds repeat ({', '.join(map(str, seeds))})")
    if row["parent"] == "?":
        row["notes"].append("the parent of its runs is gone, so runs of different "
                            "parents may share the row")
    versions = sorted({str(o["version"]) for o in counted})
    if len(versions) > 1:
        row["notes"].append(f"made by keras_lottery {', '.join(versions)}")
    backends = sorted({str(o["backend"]) for o in counted})
    if len(backends) > 1:  # same seeds, other numbers: say why
        row["notes"].append(f"trained on the backends {', '.join(backends)}")
    for name in ("top1", "best"):
        values = [o[name] for o in counted]
        row[f"{name}_median"] = statistics.median(values) if values else None
        row[f"{name}_min"] = min(values) if values else None
        row[f"{name}_max"] = max(values) if values else None
    return row


def to_dataframe(runs, rows="summary", select="final"):
    """The rows of `runs` as a pandas DataFrame (pandas is optional).

    Example:

    >>> df = report.to_dataframe(runs.find_runs("runs"))
    >>> df.groupby(["method", "density"]).final_top1.median()

    Args:
        runs: `Run` objects or run directory paths.
        rows: "summary" (one per run, `SUMMARY_COLUMNS`), "curve" (one per
            evaluation) or "group" (one per group, `GROUP_COLUMNS`).
        select: for "group", as in `group`.
    """
    try:
        import pandas
    except ImportError:
        raise LotteryError("needs pandas; pip install pandas") from None
    runs = load(runs)
    if rows == "summary":
        found, columns = [summary(r) for r in runs], SUMMARY_COLUMNS
    elif rows == "curve":
        found, columns = [row for r in runs for row in curve(r)], CURVE_COLUMNS
    elif rows == "group":
        found, columns = group(runs, select), GROUP_COLUMNS
    else:
        raise LotteryError("expected summary, curve or group", param="rows", value=rows)
    return pandas.DataFrame([{c: r[c] for c in columns} for r in found], columns=columns)


def render(rows, columns, fmt="table"):
    """Renders rows as an aligned text table, CSV or JSON.

    Numbers keep full precision in CSV and JSON; the table rounds
    accuracies to 4 decimals and shows `PERCENT_COLUMNS` (density) as a
    percent with 4 significant digits (80%, 51.2%, 32.77%). Lists (the
    seeds of a group) are comma-separated in tables and CSV.
    """
    if fmt not in FORMATS:
        raise LotteryError(f"expected {', '.join(FORMATS[:-1])} or {FORMATS[-1]}",
                           param="fmt", value=fmt)
    if fmt == "json":
        return json.dumps([{c: r[c] for c in columns} for r in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row[c], plain=True) for c in columns})
        return buffer.getvalue().rstrip("\n")
    cells = [[_cell(r[c], percent=c in PERCENT_COLUMNS, seconds=c in SECONDS_COLUMNS)
              for c in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(columns, *cells)]
    # Numbers right-aligned under a right-aligned heading, text left-aligned.
    numeric = [all(isinstance(r[c], (int, float)) or r[c] is None for r in rows)
               and any(r[c] is not None for r in rows) for c in columns]

    def line(values):
        return "  ".join(f"{v:>{w}}" if right else f"{v:<{w}}"
                         for v, w, right in zip(values, widths, numeric)).rstrip()

    lines = [line(columns), "  ".join("-" * w for w in widths)]
    lines += [line(values) for values in cells]
    return "\n".join(lines)


def _cell(value, plain=False, percent=False, seconds=False):
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return "" if plain else "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if percent and isinstance(value, (int, float)) and not plain:
        return f"{value * 100:.4g}%"
    if seconds and isinstance(value, (int, float)) and not plain:
        return f"{value:.2f}"
    if isinstance(value, float):
        return repr(value) if plain else f"{value:.4f}"
    return str(value)
