"""The study's figure: test accuracy against density, as the paper draws it.

One line per (arch, method, one-shot or iterative) through the selected
k's median test top-1 at each density, with a band from min to max; the
unpruned bases as dashed lines; the x axis the percent of weights
remaining, on a log scale, dense on the left. Drawn with matplotlib's Agg
canvas, without pyplot (as `keras_lottery.results.figures`), imported on first draw.
"""

import pathlib

from keras_lottery.errors import LotteryError


def accuracy_vs_density(rows, path=None, title=None):
    """Draws `selection.select` rows; saves to `path` if given; returns the
    `Figure`."""
    pruned = [r for r in rows if r["density"] < 1]
    if not pruned:
        raise LotteryError("no finished pruned run in the study yet; run it first")
    # matplotlib loads here, not with the study package (`lottery study` stays fast).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keras_lottery.results import figures as plot

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    series = {}
    for row in pruned:
        kind = "iterative" if row["iterative"] else "one-shot"
        series.setdefault(f"{row['arch']} {row['method']} ({kind})", []).append(row)
    for label, points in sorted(series.items()):
        points = sorted(points, key=lambda r: -r["density"])
        x = [100 * r["density"] for r in points]
        (line,) = ax.plot(x, [100 * r["top1_median"] for r in points], marker="o",
                          markersize=4, label=label)
        ax.fill_between(x, [100 * r["top1_min"] for r in points],
                        [100 * r["top1_max"] for r in points],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    for row in (r for r in rows if r["density"] >= 1):
        ax.axhline(100 * row["top1_median"], color="black", linewidth=1, linestyle="--",
                   label=f"{row['arch']} unpruned")
    plot.density_axis(ax, [100 * r["density"] for r in pruned])
    ax.set_ylabel("Top-1 test accuracy (%), k chosen on validation")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig
