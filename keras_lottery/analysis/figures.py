"""Figures of the analyses: error along the path between copies, mask
overlap heatmaps, per-layer density bars.

As `keras_lottery.results.figures`: each function returns a `matplotlib.figure.Figure`
drawn on the Agg canvas (no pyplot) and, given a path, saves it (the
extension picks the format). matplotlib (and `keras_lottery.results.figures`) are
imported when a figure is drawn, not with this module.
"""

import os
import pathlib

from keras_lottery.analysis import connectivity
from keras_lottery.analysis import masks as masks_lib
from keras_lottery.runs import sources
from keras_lottery.errors import LotteryError

ALPHA_LABEL = "Interpolation α (0: one copy, 1: the other)"
ERROR_LABEL = "Test error (%)"


def stability_curves(results, path=None, title=None):
    """Test error against α.

    One analysis: a line per pair of copies. Several (e.g. one per k): a
    line per analysis, the mean over its pairs, labelled with its k (and
    run and density where they differ) and mean barrier.

    Args:
        results: `StabilityResult`s (`keras_lottery.stability`).
        path: where to save the figure, or None.
        title: an optional title.
    """
    fig, ax = _figure(7, 4.5)
    if len(results) == 1:
        result = results[0]
        for (i, j), errors in result.errors.items():
            ax.plot(result.alphas, [100 * e for e in errors], marker="o", markersize=3,
                    label=f"copies {i} and {j}: barrier "
                    f"{100 * result.barriers[(i, j)]:.2f} points")
        title = title or _describe(result)
    else:
        title = title or _describe_many(results)
        labels = _labels(results)
        for result, label in zip(results, labels):
            pairs = list(result.errors.values())
            mean = [sum(p[a] for p in pairs) / len(pairs) for a in range(len(result.alphas))]
            barrier = sum(result.barriers.values()) / len(result.barriers)
            ax.plot(result.alphas, [100 * e for e in mean], marker="o", markersize=3,
                    label=f"{label}: barrier {100 * barrier:.2f} points")
    ax.set_xlabel(ALPHA_LABEL)
    ax.set_ylabel(ERROR_LABEL)
    ax.set_xlim(0, 1)
    return _finish(fig, ax, path, title)


def _describe(result):
    density = "unpruned copies" if result.density is None else \
        f"density {100 * result.density:.4g}%"
    text = f"{os.path.basename(str(result.parent.path))}, k={result.iteration}, {density}"
    if result.bn != connectivity.NO_BN:
        text += f"; batch-norm statistics {result.bn}"
    return text


def _describe_many(results):
    runs = {os.path.basename(str(r.parent.path)) for r in results}
    densities = {r.density for r in results}
    bns = {r.bn for r in results}
    parts = [", ".join(sorted(runs))]
    if len(densities) == 1:
        density = densities.pop()
        parts.append("unpruned copies" if density is None else f"density {100 * density:.4g}%")
    if len(bns) == 1 and connectivity.NO_BN not in bns:
        parts.append(f"batch-norm statistics {bns.pop()}")
    return "; ".join(parts)


def _labels(results):
    runs = {str(r.parent.path) for r in results}
    densities = {r.density for r in results}
    names = dict(zip(sorted(runs), short_names(sorted(runs))))
    labels = []
    for r in results:
        label = f"k={r.iteration}"
        if len(densities) > 1:
            label += " unpruned" if r.density is None else f" d={100 * r.density:.4g}%"
        if len(runs) > 1:
            label = f"{names[str(r.parent.path)]} {label}"
        labels.append(label)
    return labels


def overlap_heatmap(overlap, path=None, layer="total", title=None):
    """Two heatmaps of a `MaskOverlap`: the Jaccard index of each pair of
    runs, and the fraction of the column run's survivors that the row run
    keeps, for `layer` (a mask key, or "total")."""
    names = short_names([str(run.path) for run in overlap.runs])
    n = len(names)
    size = 3.2 + 0.55 * n
    fig, axes = _figure(2 * size + 1, size, panels=2)
    for ax, measure, name in zip(axes, ("jaccard", "kept"),
                                 ("Jaccard index", "Fraction of column's survivors kept by row")):
        matrix = overlap.matrix(measure, layer)
        shown = [[float("nan") if v is None else v for v in row] for row in matrix]
        image = ax.imshow(shown, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize="small")
        ax.set_yticks(range(n), names, fontsize="small")
        ax.set_title(name, fontsize="medium")
        if n <= 12:
            for i, row in enumerate(matrix):
                for j, v in enumerate(row):
                    text = "-" if v is None else f"{v:.2f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize="small",
                            color="black" if v is not None and v > 0.6 else "white")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(title or f"Mask overlap ({layer}, masks at {overlap.iteration})")
    if path is not None:
        _save(fig, path)
    return fig


def layer_densities(runs, path=None, iteration="final", title=None):
    """Per-layer density as bars: a group of bars per layer (and the
    total), one bar per run, so runs compare layer by layer."""
    opened = sources.expand(runs)
    reports = masks_lib.layer_densities(opened, iteration)
    names = short_names([str(run.path) for run in opened])
    layers = [row.name for row in reports[0]]
    width = 0.8 / len(opened)
    fig, ax = _figure(max(7, 0.45 * len(layers) * max(1, len(opened) / 2)), 4.5)
    for index, (report, name) in enumerate(zip(reports, names)):
        x = [p - 0.4 + width * (index + 0.5) for p in range(len(layers))]
        ax.bar(x, [100 * row.density for row in report], width, label=name)
    ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize="small")
    ax.set_ylabel("Weights remaining (%)")
    ax.set_xlabel("Layer")
    # Beside the plot, where no bar is: inside, it covered the last (total) ones.
    return _finish(fig, ax, path, title or f"Density per layer (masks at {iteration})",
                   legend={"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)})


def check_path(path):
    """Raises unless a figure can be saved at `path` (its extension names
    a format), so a command fails before its work rather than after."""
    supported = _figure(1, 1)[0].canvas.get_supported_filetypes()
    if pathlib.Path(path).suffix[1:].lower() not in supported:
        raise LotteryError(
            f"cannot save a figure as {pathlib.Path(path).name!r}; end the file "
            f"name in one of: .{', .'.join(sorted(supported))}",
            param="output", value=str(path))


def short_names(paths):
    """Paths relative to the folder holding all of them (their names when
    that leaves nothing)."""
    absolute = [os.path.abspath(p) for p in paths]
    if len(absolute) == 1:
        return [os.path.basename(absolute[0])]
    common = os.path.commonpath([os.path.dirname(p) for p in absolute])
    return [os.path.relpath(p, common) for p in absolute]


def _figure(width, height, panels=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    return fig, axes


def _finish(fig, ax, path, title, legend=None):
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", **(legend or {}))
    if title:
        ax.set_title(title, fontsize="medium")
    if path is not None:
        _save(fig, path)
    return fig


def _save(fig, path):
    from keras_lottery.results import figures as plot

    plot.save(fig, path)
