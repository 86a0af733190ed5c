import ast
import json
import os
import pathlib
import struct

import pytest

from keras_lottery.results import figures as plot
from keras_lottery.spec import recipe
from keras_lottery.errors import LotteryError
from keras_lottery.runs.run import Run
from keras_lottery.spec.runspec import RunSpec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_run(root, name, mode="rewind", arch="resnet8", seed=0, iteration=3,
               density=0.8, top1=(0.5,), status="finished", steps=None, length=100):
    """A run directory written by hand: run.json and metrics.csv."""
    path = root / name
    path.mkdir(parents=True)
    train = mode == "train"
    spec = RunSpec(mode, arch, "synthetic", recipe.make(steps=length), seed=seed,
                   parent=None if train else "/runs/base",
                   iteration=None if train or mode == "reinit" else iteration,
                   target_density=None if train else density,
                   lr=0.001 if mode in ("finetune", "lowlr_rewind") else None)
    config = dict(spec.to_config(path), start_step=0, end_step=length, status=status,
                  density=1.0 if train else density)
    (path / "run.json").write_text(json.dumps(config))
    steps = steps or [10 * (i + 1) for i in range(len(top1))]
    lines = ["step,top1,top5,loss,lr,density,elapsed"]
    lines += [f"{s},{a},0.9,1.5,0.1,{density},1.0" for s, a in zip(steps, top1)]
    if top1:
        (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    return Run(path, config)


def _density_runs(root):
    return [
        # resnet8 rewind: 80 % -> finals 0.70, 0.60, 0.62 (median 0.62);
        # 51.2 % -> 0.50, 0.40 (median 0.45).
        _write_run(root, "w80-s0", seed=0, top1=(0.1, 0.70)),
        _write_run(root, "w80-s1", seed=1, top1=(0.60,)),
        _write_run(root, "w80-s2", seed=2, top1=(0.62,)),
        _write_run(root, "w51-s0", seed=0, density=0.512, top1=(0.50,)),
        _write_run(root, "w51-s1", seed=1, density=0.512, top1=(0.40,)),
        # An unfinished run does not move the median.
        _write_run(root, "w51-s2", seed=2, density=0.512, top1=(0.99,),
                   status="running"),
        # A control mode, one seed, listed sparse-first on purpose.
        _write_run(root, "c33", mode="reinit", density=0.32768, top1=(0.30,)),
        _write_run(root, "c80", mode="reinit", density=0.8, top1=(0.55,)),
        # The unpruned reference: median 0.90.
        _write_run(root, "t0", mode="train", iteration=None, density=1.0,
                   top1=(0.90,)),
        _write_run(root, "t1", mode="train", iteration=None, density=1.0, seed=1,
                   top1=(0.80,)),
        _write_run(root, "t2", mode="train", iteration=None, density=1.0, seed=2,
                   top1=(0.95,)),
    ]


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100


def test_accuracy_vs_density_series(tmp_path):
    fig = plot.accuracy_vs_density(_density_runs(tmp_path / "runs"))
    (ax,) = fig.axes
    lines = _lines(ax)
    assert set(lines) == {
        "resnet8 rewind", "resnet8 reinit", "resnet8 train (unpruned)",
    }
    rewind = lines["resnet8 rewind"]
    assert list(rewind.get_xdata()) == pytest.approx([80.0, 51.2])
    assert list(rewind.get_ydata()) == pytest.approx([62.0, 45.0])
    reinit = lines["resnet8 reinit"]
    assert list(reinit.get_xdata()) == pytest.approx([80.0, 32.768])
    assert list(reinit.get_ydata()) == pytest.approx([55.0, 30.0])
    reference = lines["resnet8 train (unpruned)"]
    assert list(reference.get_ydata()) == pytest.approx([90.0, 90.0])
    assert reference.get_linestyle() == "--"
    # The paper's axis: percent remaining, log scale, decreasing rightwards.
    assert ax.get_xscale() == "log"
    left, right = ax.get_xlim()
    assert left > 80.0 > 32.768 > right
    assert list(ax.get_xticks()) == pytest.approx([32.768, 51.2, 80.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32.77", "51.2", "80"]
    assert ax.get_xlabel() == "Percent of weights remaining"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted(lines)


def test_runs_of_other_lengths_never_share_a_line(tmp_path):
    root = tmp_path / "runs"
    runs = [_write_run(root, "long80", top1=(0.70,)), _write_run(root, "long51", density=0.512,
                                                                  top1=(0.50,)),
            _write_run(root, "short80", top1=(0.30,), length=40),
            _write_run(root, "t-short", mode="train", density=1.0, top1=(0.6,), length=40)]
    lines = _lines(plot.accuracy_vs_density(runs).axes[0])
    assert set(lines) == {"resnet8 rewind (synthetic, T=100)", "resnet8 rewind (synthetic, T=40)",
                          "resnet8 train (synthetic, T=40) (unpruned)"}
    assert list(lines["resnet8 rewind (synthetic, T=100)"].get_ydata()) == pytest.approx(
        [70.0, 50.0])
    assert list(lines["resnet8 rewind (synthetic, T=40)"].get_ydata()) == pytest.approx([30.0])


def test_accuracy_vs_density_min_max_band(tmp_path):
    fig = plot.accuracy_vs_density(_density_runs(tmp_path / "runs"))
    (ax,) = fig.axes
    bands = [c.get_paths()[0].get_extents() for c in ax.collections]
    # One band per series: rewind spans min 40 .. max 70 over 51.2..80 %,
    # reinit (one seed each) collapses to its points.
    spans = sorted((b.x0, b.x1, b.y0, b.y1) for b in bands)
    assert spans == [
        pytest.approx((32.768, 80.0, 30.0, 55.0)),
        pytest.approx((51.2, 80.0, 40.0, 70.0)),
    ]


def test_accuracy_vs_density_splits_by_k(tmp_path):
    runs = [
        _write_run(tmp_path, "a", iteration=0, top1=(0.5,)),
        _write_run(tmp_path, "b", iteration=3, top1=(0.6,)),
        _write_run(tmp_path, "c", iteration=3, density=0.64, top1=(0.4,)),
        _write_run(tmp_path, "d", mode="finetune", top1=(0.3,)),
    ]
    lines = _lines(plot.accuracy_vs_density(runs).axes[0])
    assert set(lines) == {
        "resnet8 rewind k=0", "resnet8 rewind k=3", "resnet8 finetune",
    }
    assert list(lines["resnet8 rewind k=3"].get_ydata()) == pytest.approx([60, 40])


def test_accuracy_vs_density_saves_png(tmp_path):
    out = tmp_path / "figures" / "density.png"  # the folder is created
    fig = plot.accuracy_vs_density(_density_runs(tmp_path / "runs"), out,
                                   title="resnet8")
    _assert_png(out)
    assert fig.axes[0].get_title() == "resnet8"


def test_save_other_formats_and_bad_extension(tmp_path):
    fig = plot.accuracy_vs_density(_density_runs(tmp_path / "runs"))
    plot.save(fig, tmp_path / "density.svg")
    assert b"<svg" in (tmp_path / "density.svg").read_bytes()[:1000]
    with pytest.raises(LotteryError, match=r"\.png") as info:
        plot.save(fig, tmp_path / "density.txt")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "density.txt").exists()


def _one_line_error(fn, *args):
    with pytest.raises(LotteryError) as info:
        fn(*args)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_accuracy_vs_density_errors(tmp_path):
    assert "accuracy_vs_step" in _one_line_error(plot.accuracy_vs_density, [])
    unfinished = [
        _write_run(tmp_path, "r", top1=(0.5,), status="running"),
        _write_run(tmp_path, "e", top1=()),
    ]
    assert "finished" in _one_line_error(plot.accuracy_vs_density, unfinished)
    unpruned = [_write_run(tmp_path, "t", mode="train", density=1.0)]
    assert "pruned" in _one_line_error(plot.accuracy_vs_density, unpruned)


def test_accuracy_vs_step_lines(tmp_path):
    root = tmp_path / "runs"
    runs = [
        _write_run(root / "resnet8", "train-s0", mode="train", density=1.0,
                   top1=(0.3, 0.6, 0.8), steps=[10, 20, 30]),
        _write_run(root / "resnet8", "rewind-k3", top1=(0.5, 0.7),
                   steps=[13, 30], status="running"),
        _write_run(root / "resnet20", "train-s0", mode="train", density=1.0,
                   top1=(0.4,), steps=[30]),
        _write_run(root / "resnet20", "empty", top1=()),  # nothing to draw
    ]
    out = tmp_path / "curves.png"
    fig = plot.accuracy_vs_step(runs, out)
    _assert_png(out)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [
        os.path.join("resnet8", "train-s0"),
        os.path.join("resnet8", "rewind-k3") + " (running)",
        os.path.join("resnet20", "train-s0"),
    ]
    assert list(lines[0].get_xdata()) == [10, 20, 30]
    assert list(lines[0].get_ydata()) == pytest.approx([30, 60, 80])
    assert list(lines[1].get_xdata()) == [13, 30]
    assert list(lines[1].get_ydata()) == pytest.approx([50, 70])
    assert ax.get_xscale() == "linear"


def test_accuracy_vs_step_accepts_paths(tmp_path):
    run = _write_run(tmp_path, "rewind", mode="rewind", top1=(0.5, 0.7))
    (line,) = plot.accuracy_vs_step([str(run.path)]).axes[0].get_lines()
    assert line.get_label() == "rewind"
    assert list(line.get_ydata()) == pytest.approx([50, 70])


def test_accuracy_vs_step_errors(tmp_path):
    _one_line_error(plot.accuracy_vs_step, [])
    empty = [_write_run(tmp_path, "e", top1=())]
    assert "evaluation" in _one_line_error(plot.accuracy_vs_step, empty)


def test_figures_bypass_pyplot(tmp_path):
    # Figures are not registered with pyplot: nothing pops up, nothing leaks
    # when many are made in a loop, and a notebook's backend is untouched.
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot.accuracy_vs_density(_density_runs(tmp_path))
    plot.accuracy_vs_step(_density_runs(tmp_path / "again"))
    assert plt.get_fignums() == before


def test_package_import_does_not_load_matplotlib():
    # `import keras_lottery` must not pay for matplotlib: no module but
    # results/figures.py (keras_lottery.plot) imports it, and none imports
    # that, at module level (the CLI imports it inside its command). Checked
    # on the source, since this test process has imported both already.
    figures = pathlib.Path(plot.__file__)
    for path in figures.parents[1].rglob("*.py"):
        if path == figures:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [
                    f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("matplotlib"), (path, name)
                assert name != "keras_lottery.results.figures", (path, name)


def test_ax_draws_into_a_figure_of_your_own(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    runs = _density_runs(tmp_path)
    assert plot.accuracy_vs_density(runs, ax=left, title="density") is fig
    assert plot.accuracy_vs_step(runs[:2], ax=right) is fig
    assert fig.axes == [left, right]  # nothing added, nothing replaced
    assert set(_lines(left)) >= {"resnet8 rewind", "resnet8 reinit"}
    assert left.get_xscale() == "log" and left.get_title() == "density"
    assert [line.get_label() for line in right.get_lines()] == ["w80-s0", "w80-s1"]
    assert right.get_xlabel() == "Training step"
    out = tmp_path / "both.png"
    plot.save(fig, out)
    _assert_png(out)
