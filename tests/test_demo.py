"""`lottery demo --quick`: the study on real data, end to end, in CI."""

import csv
import io

from click.testing import CliRunner

from keras_lottery import demo
from keras_lottery import runs
from keras_lottery.cli import main
from snapshots import snapshot


def test_quick_demo_shows_rewinding_retaining_accuracy(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "top1_median" in result.output
    png = out / "accuracy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    made = runs.find_runs(out)
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
