"""`lottery demo --quick`: the study on real data, end to end, in CI."""

import csv
import inspect
import io
import pathlib

from click.testing import CliRunner

from keras_lottery.procedures import demo
from keras_lottery.runs import layout
from keras_lottery.cli import main
from snapshots import snapshot


def test_quick_demo_shows_rewinding_retaining_accuracy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", "--quick"])
    assert result.exit_code == 0, result.output
    # Its own root, not ./runs, where the user's next `lottery rewind` looks
    # for the single finished train run.
    out = tmp_path / demo.DEFAULT_OUT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lottery-demo"]
    assert "top1_median" in result.output
    png = out / "accuracy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    made = layout.find_runs(out)
    plan = demo.QUICK
    assert len(made) == len(plan.seeds) * (1 + len(demo.METHODS) * len(plan.densities))

    table = CliRunner().invoke(main, ["results", "--group", "--format", "csv", str(out)])
    assert table.exit_code == 0, table.output
    rows = {(r["method"], float(r["density"])): float(r["top1_median"])
            for r in csv.DictReader(io.StringIO(table.output))}
    dense = rows[("train", 1.0)]
    moderate, sparse = plan.densities
    assert dense > 0.9  # a real dataset, really learnt
    # Weight rewinding keeps the dense accuracy at moderate density...
    assert rows[("rewind", moderate)] >= dense - 0.03
    # ...and beats the random-pruning control where pruning bites.
    assert rows[("rewind", sparse)] > rows[("random", sparse)] + 0.1

    # Re-running trains nothing: every run is already finished.
    before = {p: s for p, s in snapshot(out).items() if not p.endswith(".png")}
    again = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out)])
    assert again.exit_code == 0
    assert {p: s for p, s in snapshot(out).items() if not p.endswith(".png")} == before


def test_the_demos_default_root_is_its_own():
    (option,) = [p for p in main.commands["demo"].params if p.name == "out"]
    assert str(option.default) == demo.DEFAULT_OUT == "lottery-demo"
    assert inspect.signature(demo.run).parameters["out"].default == demo.DEFAULT_OUT
    assert layout.DEFAULT_ROOT not in pathlib.Path(demo.DEFAULT_OUT).parts
