"""Figures of results: accuracy against density (the paper's figures) and
accuracy against training step.

Each function returns a `matplotlib.figure.Figure` drawn with the Agg
canvas and, given a path, saves it. Nothing goes through `pyplot`: no
display is needed, no global backend is switched (a notebook's stays as
it is) and figures are not kept alive by pyplot's registry. In a notebook,
show one by leaving it as a cell's value or with `IPython.display`.

This module imports matplotlib; `import keras_lottery` does not import it.
"""

import os
import pathlib

from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from keras_lottery.results import tables as report
from keras_lottery.errors import LotteryError
from keras_lottery.spec.record import FINISHED

DENSITY_LABEL = "Percent of weights remaining"
TOP1_LABEL = "Top-1 test accuracy (%)"
# Unpruned references: dashed and dotted black lines, so they read as
# baselines rather than as one more series.
_REFERENCE_STYLES = ("--", ":", "-.", (0, (5, 2, 1, 2)))


def accuracy_vs_density(runs, path=None, select="final", title=None, ax=None):
    """Final top-1 against the percent of weights remaining, as the paper.

    One line per (arch, method) through the median over seeds of each
    density (and per dataset and number of steps: runs that are not
    comparable never share a line, and the legend then names both), with
    a shaded band from min to max (`report.group` computes them; only
    finished runs count). An (arch, method) with several rewinding points
    k gets one line per k. The x axis is the percent of
    weights remaining on a log scale, decreasing to the right, ticked at
    the densities present. Unpruned groups (density 1, e.g. the train
    runs) are not points but dashed horizontal lines at their median.

    Example:

    >>> fig = keras_lottery.results.figures.accuracy_vs_density(
    ...     keras_lottery.runs.find_runs("runs"), "density.png")

    Args:
        runs: `Run` objects or run directory paths.
        path: where to save the figure; its extension picks the format
            (.png, .pdf, .svg, ...). Missing folders are created. None: not
            saved.
        select: which test top-1 each run reports, as in `report.group`:
            "final" (at its last evaluation) or "best_val".
        title: an optional title.
        ax: a matplotlib `Axes` to draw on (e.g. a subplot of your own
            figure); default: a new figure.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    runs = report.load(runs)
    rows = [r for r in report.group(runs, select) if r["n"]]
    if not rows:
        raise LotteryError(
            f"none of the {len(runs)} runs given has finished with an "
            "evaluation; wait for them to finish, or plot their progress against "
            "steps (accuracy_vs_step)"
        )
    pruned = [r for r in rows if r["density"] is not None and r["density"] < 1]
    unpruned = [r for r in rows if r["density"] is not None and r["density"] >= 1]
    if not pruned:
        raise LotteryError(
            "no finished pruned run (density below 100%) among the runs given; "
            "add rewind, rewind-lr or finetune runs, or plot their progress against "
            "steps (accuracy_vs_step)"
        )

    fig, ax = _figure(ax)
    for label, points in _series(pruned):
        x = [100 * r["density"] for r in points]
        (line,) = ax.plot(
            x, [100 * r["top1_median"] for r in points],
            marker="o", markersize=4, label=label,
        )
        ax.fill_between(
            x, [100 * r["top1_min"] for r in points],
            [100 * r["top1_max"] for r in points],
            color=line.get_color(), alpha=0.2, linewidth=0,
        )
    settings = _settings_differ(rows)
    for i, r in enumerate(unpruned):
        ax.axhline(
            100 * r["top1_median"], color="black", linewidth=1,
            linestyle=_REFERENCE_STYLES[i % len(_REFERENCE_STYLES)],
            label=f"{_label(_line_key(r), settings)} (unpruned)",
        )

    density_axis(ax, [100 * r["density"] for r in pruned])
    ax.set_ylabel(TOP1_LABEL)
    return _finish(fig, ax, path, title)


def density_axis(ax, percents):
    """The paper's x axis: percent of weights remaining on a log scale,
    dense on the left, ticked at the densities present."""
    percents = sorted(set(percents))
    ax.set_xscale("log")
    # Setting the limits high-to-low inverts the axis; the margin keeps end
    # points off the edge.
    ax.set_xlim(percents[-1] * 1.08, percents[0] / 1.08)
    ax.xaxis.set_major_locator(ticker.FixedLocator(percents))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.4g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    if len(percents) > 8:
        # Geometric densities are evenly spaced on a log axis; many of them
        # only fit slanted.
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel(DENSITY_LABEL)


def accuracy_vs_step(runs, path=None, title=None, ax=None):
    """Top-1 against training step, one line per run (the `--curves` plot).

    Every run with at least one evaluation is drawn, finished or not, so a
    running run shows its progress; the label of an unfinished one says its
    status. Derived runs start at their own first step (k for a rewind, T
    for a fine-tuning), so children line up after their parent.

    Example:

    >>> fig = keras_lottery.results.figures.accuracy_vs_step(
    ...     ["runs/resnet20/train-s0", "runs/resnet20/rewind-k4701-d80-s0"],
    ...     "curves.png")

    Args:
        runs: `Run` objects or run directory paths.
        path: where to save the figure, as in `accuracy_vs_density`.
        title: an optional title.
        ax: a matplotlib `Axes` to draw on; default: a new figure.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    runs = report.load(runs)
    drawn = [(run, run.metrics) for run in runs]
    drawn = [(run, metrics) for run, metrics in drawn if metrics]
    if not drawn:
        raise LotteryError(
            f"none of the {len(runs)} runs given has an evaluation yet "
            "(empty metrics.csv); wait for the first evaluation or name other runs"
        )
    names = _short_names([run.path for run, _ in drawn])
    fig, ax = _figure(ax)
    for (run, metrics), name in zip(drawn, names):
        if run.status != FINISHED:
            name = f"{name} ({run.status})"
        ax.plot(
            [m["step"] for m in metrics], [100 * m["top1"] for m in metrics],
            marker="o", markersize=3, label=name,
        )
    ax.set_xlabel("Training step")
    ax.set_ylabel(TOP1_LABEL)
    return _finish(fig, ax, path, title)


def _figure(ax=None):
    # A bare Figure on an Agg canvas: pyplot (and its backend choice and
    # figure registry) stays untouched.
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _series(rows):
    """(label, rows sorted dense to sparse) per (arch, method, dataset,
    steps), split by parent and by k only where such a line holds several:
    runs that are not comparable never share a line."""
    lines = {}
    for r in rows:
        lines.setdefault(_line_key(r), {}).setdefault((r["parent"], r["k"]), []).append(r)
    settings = _settings_differ(rows)
    for key, parts in lines.items():
        for (parent, k), points in parts.items():
            label = _label(key, settings)
            if len({p for p, _ in parts}) > 1:
                label += f" from {parent}"
            if len({k for _, k in parts}) > 1:
                label += f" k={k}"
            yield label, sorted(points, key=lambda r: -r["density"])


def _line_key(row):
    return row["arch"], row["method"], row["dataset"], row["T"]


def _settings_differ(rows):
    return len({_line_key(r)[2:] for r in rows}) > 1


def _label(key, settings_differ):
    """`arch method`, and the dataset and steps where the figure holds several."""
    arch, method, dataset, steps = key
    return f"{arch} {method}" + (f" ({dataset}, T={steps})" if settings_differ else "")


def _short_names(paths):
    """Run paths relative to the folder holding all of them."""
    absolute = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(p) for p in absolute])
    return [os.path.relpath(p, common) for p in absolute]


def _finish(fig, ax, path, title):
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    if path is not None:
        save(fig, path)
    return fig


def save(fig, path):
    """Saves a figure; the extension picks the format (.png, .pdf, .svg...).

    Example:

    >>> keras_lottery.results.figures.save(fig, "figures/density.pdf")

    Args:
        fig: a `matplotlib.figure.Figure`.
        path: the file to write; missing folders are created.
    """
    path = pathlib.Path(path)
    supported = fig.canvas.get_supported_filetypes()
    ext = path.suffix[1:].lower()
    if ext not in supported:
        raise LotteryError(
            f"cannot save a figure as {path.name!r}; end the file name in one "
            f"of: .{', .'.join(sorted(supported))}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
