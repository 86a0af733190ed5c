"""Results of runs as rows, tables, CSV and JSON — instead of event files."""

import csv
import io
import json

SUMMARY_COLUMNS = (
    "run", "mode", "arch", "density", "iter", "steps", "final_top1", "best_top1",
)
CURVE_COLUMNS = ("run", "step", "top1")


def summary(run):
    """One row per run: what it was and how accurate it ended and peaked."""
    metrics = run.metrics
    top1 = [m["top1"] for m in metrics]
    config = run.config
    return {
        "run": str(run.path),
        "mode": config["mode"],
        "arch": config["arch"],
        "density": config.get("density"),
        "iter": config.get("iteration"),
        "steps": config["end_step"] - config["start_step"],
        "final_top1": top1[-1] if top1 else None,
        "best_top1": max(top1) if top1 else None,
    }


def curve(run):
    """The (step, top-1) rows of a run, as the original's one-liner printed."""
    return [
        {"run": str(run.path), "step": m["step"], "top1": m["top1"]}
        for m in run.metrics
    ]


def render(rows, columns, fmt="table"):
    """Renders rows as an aligned text table, CSV or JSON."""
    if fmt == "json":
        return json.dumps([{c: r[c] for c in columns} for r in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row[c], plain=True) for c in columns})
        return buffer.getvalue().rstrip("\n")
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(columns, *cells)]
    lines = ["  ".join(f"{h:<{w}}" for h, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for line in cells:
        lines.append("  ".join(
            f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
            for i, (c, w) in enumerate(zip(line, widths))
        ))
    return "\n".join(lines)


def _cell(value, plain=False):
    if value is None:
        return "" if plain else "-"
    if isinstance(value, float):
        return repr(value) if plain else f"{value:.4f}"
    return str(value)
