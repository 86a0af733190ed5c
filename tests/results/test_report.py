import csv
import io
import json

import pytest

from keras_lottery.spec import recipe
from keras_lottery.spec.record import RunRecord
from keras_lottery.results import tables as report
from keras_lottery.errors import LotteryError
from keras_lottery.runs.run import Run
from keras_lottery.spec.runspec import RunSpec

TOP1 = [0.31, 0.6543219, 0.52]  # best is not the last


# The base run every derived run of these tests comes from (made once).
BASE = []


@pytest.fixture(autouse=True, scope="module")
def base_run(tmp_path_factory):
    spec = RunSpec("train", "resnet8", "synthetic", recipe.make(steps=10), seed=0)
    run = Run.create(tmp_path_factory.mktemp("parents") / "train-s0", spec,
                     RunRecord(status="finished", start_step=0, end_step=10, density=1.0))
    BASE[:] = [str(run.path.resolve())]


def _row(step, top1):
    return {"step": step, "top1": top1, "top5": 0.9, "loss": 1.5, "lr": 0.1,
            "density": 0.8, "elapsed": 1.0}


def _spec(mode="rewind", arch="resnet8", seed=0, iteration=3, density=0.8,
          steps=33, dataset="synthetic", batch_size=None, parent=None, **fields):
    made = recipe.make(steps=steps, batch_size=batch_size)
    if mode == "train":
        return RunSpec(mode, arch, dataset, made, seed=seed, **fields)
    lr = 0.001 if mode in ("finetune", "lowlr_rewind") else None
    return RunSpec(mode, arch, dataset, made, seed=seed, parent=parent or BASE[0],
                   iteration=None if mode == "reinit" else iteration,
                   target_density=density, lr=lr, **fields)


def _rewind_run(tmp_path):
    run = Run.create(tmp_path / "rewind-k3-d80-s0", _spec(), RunRecord(status="running", start_step=3,
                     end_step=33, density=0.8))
    for step, top1 in zip([13, 23, 33], TOP1):
        run.append_metrics(_row(step, top1))
    return Run.open(run.path)


def _train_run(tmp_path):
    # A train run: no iteration/target density, no metrics yet.
    return Run.create(tmp_path / "train-s0", _spec("train", steps=30), RunRecord(status="running", start_step=0,
                      end_step=30, density=1.0))


def test_summary_fields(tmp_path):
    run = _rewind_run(tmp_path)
    s = report.summary(run)
    assert s["run"] == str(run.path)
    assert s["mode"] == "rewind"
    assert s["arch"] == "resnet8"
    assert s["density"] == 0.8
    assert s["iter"] == 3
    assert s["steps"] == 30 and s["T"] == 33
    assert s["dataset"] == "synthetic" and s["seed"] == 0
    assert s["final_top1"] == 0.52
    assert s["best_top1"] == 0.6543219
    assert set(report.SUMMARY_COLUMNS) <= set(s)


def test_summary_without_metrics(tmp_path):
    s = report.summary(_train_run(tmp_path))
    assert s["steps"] == 30
    assert s["final_top1"] is None and s["best_top1"] is None
    assert s["density"] == 1.0 and s["iter"] is None


def test_curve_rows(tmp_path):
    run = _rewind_run(tmp_path)
    rows = report.curve(run)
    assert rows == [
        {"run": str(run.path), "seed": 0, "step": 13, "top1": 0.31},
        {"run": str(run.path), "seed": 0, "step": 23, "top1": 0.6543219},
        {"run": str(run.path), "seed": 0, "step": 33, "top1": 0.52},
    ]
    assert report.curve(_train_run(tmp_path)) == []


def _rows():
    return [
        {"run": "runs/a", "step": 10, "top1": 0.123456},
        {"run": "runs/longer-name", "step": 200, "top1": None},
        {"run": "runs/c", "step": 3000, "top1": 1.0 / 3.0, "unused": "x"},
    ]


def test_render_table():
    text = report.render(_rows(), ("run", "step", "top1"), "table")
    lines = text.splitlines()
    assert lines[0].split() == ["run", "step", "top1"]
    data = [line for line in lines[1:] if set(line.strip()) - {"-", " "}]
    assert len(data) == 3
    assert len(lines) <= 2 + 3  # header, optional rule, one line per row
    assert data[0].split() == ["runs/a", "10", "0.1235"]
    assert data[1].split() == ["runs/longer-name", "200", "-"]
    assert data[2].split() == ["runs/c", "3000", "0.3333"]
    assert "unused" not in text


def test_render_table_is_aligned():
    text = report.render(_rows(), ("run", "step", "top1"), "table")
    lines = text.splitlines()
    assert len({len(line.rstrip()) for line in lines[1:]}) == 1


def test_render_refuses_an_unknown_format():
    with pytest.raises(LotteryError, match="fmt='xml': expected table, csv or json"):
        report.render(_rows(), ("run", "top1"), "xml")


def test_render_csv_round_trip():
    rows = _rows()
    text = report.render(rows, ("run", "step", "top1"), "csv")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 3
    for want, got in zip(rows, parsed):
        assert list(got) == ["run", "step", "top1"]
        assert got["run"] == want["run"]
        assert int(got["step"]) == want["step"]
        if want["top1"] is None:
            assert got["top1"] == ""
        else:
            assert float(got["top1"]) == want["top1"]  # full precision


def test_render_json_round_trip():
    rows = _rows()
    text = report.render(rows, ("run", "step", "top1"), "json")
    want = [{k: r[k] for k in ("run", "step", "top1")} for r in rows]
    assert json.loads(text) == want


def test_render_summary_rows(tmp_path):
    rows = [report.summary(_rewind_run(tmp_path)), report.summary(_train_run(tmp_path))]
    back = json.loads(report.render(rows, report.SUMMARY_COLUMNS, "json"))
    assert [r["final_top1"] for r in back] == [0.52, None]
    assert [r["steps"] for r in back] == [30, 30]
    table = report.render(rows, report.SUMMARY_COLUMNS, "table").splitlines()
    assert table[0].split() == list(report.SUMMARY_COLUMNS)
    assert table[-1].split()[-2:] == ["-", "-"]
    assert "0.6543" in table[-2].split()


# --- grouped results ------------------------------------------------------

def _write_run(root, name, mode="rewind", arch="resnet8", seed=0, iteration=3,
               density=0.8, top1=(0.5,), status="finished", val_top1=None,
               steps=10, **fields):
    """A run directory written by hand: run.json and metrics.csv."""
    spec = _spec(mode, arch, seed, iteration, density, steps=steps, **fields)
    run = Run.create(root / name, spec, RunRecord(status="running", start_step=0, end_step=steps,
                     density=1.0 if mode == "train" else density))
    run.set_status(status)
    for i, acc in enumerate(top1):
        run.append_metrics({"step": i + 1, "top1": acc, "top5": 0.9, "loss": 1.5,
                            "lr": 0.1, "density": run.density, "elapsed": 1.0,
                            "val_top1": None if val_top1 is None else val_top1[i]})
    return Run.open(run.path)


def _by_key(rows):
    return {(r["arch"], r["method"], r["k"], r["density"]): r for r in rows}


def test_group_statistics_over_seeds(tmp_path):
    made = [
        # Odd count: finals 0.70, 0.60, 0.62 -> median 0.62 (mean 0.64);
        # bests 0.75, 0.60, 0.66 -> median 0.66.
        _write_run(tmp_path, "a0", seed=0, top1=(0.75, 0.70)),
        _write_run(tmp_path, "a1", seed=1, top1=(0.50, 0.60)),
        _write_run(tmp_path, "a2", seed=2, top1=(0.66, 0.62)),
        # Even count at a lower density: finals 0.40, 0.50, 0.20, 0.36 ->
        # median 0.38, the mean of the middle two (not 0.36 or 0.40, nor
        # the mean 0.365).
        _write_run(tmp_path, "b0", density=0.512, seed=0, top1=(0.40,)),
        _write_run(tmp_path, "b1", density=0.512, seed=1, top1=(0.50,)),
        _write_run(tmp_path, "b2", density=0.512, seed=2, top1=(0.20,)),
        _write_run(tmp_path, "b3", density=0.512, seed=3, top1=(0.36,)),
    ]
    rows = _by_key(report.group(made))
    assert len(rows) == 2
    a = rows[("resnet8", "rewind", 3, 0.8)]
    assert a["n"] == 3 and a["unfinished"] == 0
    assert a["top1_median"] == 0.62
    assert (a["top1_min"], a["top1_max"]) == (0.60, 0.70)
    assert a["best_median"] == 0.66
    assert (a["best_min"], a["best_max"]) == (0.60, 0.75)
    assert sorted(a["seeds"]) == [0, 1, 2]
    assert sorted(a["runs"]) == sorted(str(r.path) for r in made[:3])
    b = rows[("resnet8", "rewind", 3, 0.512)]
    assert b["n"] == 4
    assert b["top1_median"] == pytest.approx(0.38)
    assert (b["top1_min"], b["top1_max"]) == (0.20, 0.50)
    assert b["best_median"] == pytest.approx(0.38)


def test_group_accepts_paths(tmp_path):
    _write_run(tmp_path, "a0", top1=(0.5,))
    rows = report.group([tmp_path / "a0", str(tmp_path / "a0")])
    assert len(rows) == 1 and rows[0]["n"] == 2


def test_group_counts_only_finished_runs_with_metrics(tmp_path):
    made = [
        _write_run(tmp_path, "done", seed=0, top1=(0.70,)),
        _write_run(tmp_path, "running", seed=1, top1=(0.10,), status="running"),
        _write_run(tmp_path, "failed", seed=2, top1=(0.05,), status="failed"),
        _write_run(tmp_path, "empty", seed=3, top1=()),  # finished, no metrics
        # A group with nothing finished is listed, without statistics.
        _write_run(tmp_path, "other", density=0.64, top1=(0.3,), status="running"),
    ]
    rows = _by_key(report.group(made))
    done = rows[("resnet8", "rewind", 3, 0.8)]
    assert done["n"] == 1 and done["unfinished"] == 3
    assert done["top1_median"] == done["top1_min"] == done["top1_max"] == 0.70
    assert done["seeds"] == [0]
    other = rows[("resnet8", "rewind", 3, 0.64)]
    assert other["n"] == 0 and other["unfinished"] == 1
    assert all(other[c] is None for c in report.GROUP_COLUMNS
               if c.startswith(("top1_", "best_")))
    table = report.render(list(rows.values()), report.GROUP_COLUMNS)
    assert table.splitlines()[-1].split()[7:] == ["0"] + ["-"] * 6 + ["1", "-"]


def test_group_keys_and_order(tmp_path):
    made = [
        _write_run(tmp_path, "r1", mode="rewind_lr", density=0.32768),
        _write_run(tmp_path, "r2", mode="rewind", density=0.4096),
        _write_run(tmp_path, "r3", mode="rewind", density=0.8),
        _write_run(tmp_path, "r4", mode="rewind", iteration=0, density=0.8),
        _write_run(tmp_path, "r5", mode="reinit", density=0.8),  # any mode
        _write_run(tmp_path, "r6", mode="rewind", arch="resnet20", density=0.8),
        _write_run(tmp_path, "t", mode="train", top1=(0.9,)),
        # Float noise in an equal density does not split its group.
        _write_run(tmp_path, "r7", mode="rewind", seed=1, density=0.4096 + 1e-12),
    ]
    rows = report.group(made)
    keys = [(r["arch"], r["method"], r["k"], r["density"]) for r in rows]
    assert keys == [
        ("resnet20", "rewind", 3, 0.8),
        ("resnet8", "reinit", None, 0.8),  # reinit takes no k
        ("resnet8", "rewind", 0, 0.8),
        ("resnet8", "rewind", 3, 0.8),
        ("resnet8", "rewind", 3, 0.4096),
        ("resnet8", "rewind_lr", 3, 0.32768),
        # A train run has no k; its density comes from metrics.csv.
        ("resnet8", "train", None, 1.0),
    ]
    assert rows[4]["n"] == 2


def test_group_select_best_val(tmp_path):
    made = [
        # Validation peaks at the 2nd evaluation (first of the tied maxima).
        _write_run(tmp_path, "v0", seed=0, top1=(0.5, 0.6, 0.7, 0.8),
                   val_top1=(0.1, 0.9, 0.9, 0.2)),
        _write_run(tmp_path, "v1", seed=1, top1=(0.3, 0.4),
                   val_top1=(0.8, 0.7)),
    ]
    row = report.group(made, select="best_val")[0]
    assert (row["top1_min"], row["top1_max"]) == (0.3, 0.6)
    assert row["best_max"] == 0.8  # best test top-1 is unaffected
    final = report.group(made)[0]
    assert (final["top1_min"], final["top1_max"]) == (0.4, 0.8)


def test_group_select_errors(tmp_path):
    made = [_write_run(tmp_path, "a", top1=(0.5,))]
    with pytest.raises(LotteryError, match="val_top1") as info:
        report.group(made, select="best_val")
    assert "\n" not in str(info.value)
    with pytest.raises(LotteryError, match="final"):
        report.group(made, select="best")


def test_render_group_rows(tmp_path):
    made = [
        _write_run(tmp_path, "a", density=0.512, top1=(0.5,)),
        _write_run(tmp_path, "b", density=0.4096, top1=(0.5,)),
        _write_run(tmp_path, "c", density=0.32768, top1=(0.123456789,)),
        _write_run(tmp_path, "t", mode="train", top1=(0.9,)),
    ]
    rows = report.group(made)
    table = report.render(rows, report.GROUP_COLUMNS).splitlines()
    assert table[0].split() == list(report.GROUP_COLUMNS)
    body = [line.split() for line in table[2:]]
    assert [cells[6] for cells in body] == ["51.2%", "40.96%", "32.77%", "100%"]
    assert [cells[:3] for cells in body] == [["resnet8", "synthetic", "10"]] * 4
    assert [cells[4] for cells in body] == ["train", "train", "train", "-"]  # parents
    assert body[3][5] == "-"  # the train run's k
    assert body[2][8] == "0.1235"
    assert body[0][-1] == "0"  # the seeds
    back = json.loads(report.render(rows, report.GROUP_COLUMNS, "json"))
    assert [r["density"] for r in back] == [0.512, 0.4096, 0.32768, 1.0]
    assert back[2]["top1_median"] == 0.123456789
    assert list(back[0]) == list(report.GROUP_COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(
        report.render(rows, report.GROUP_COLUMNS, "csv"))))
    assert [float(r["density"]) for r in parsed] == [0.512, 0.4096, 0.32768, 1.0]
    assert parsed[3]["k"] == "" and parsed[0]["n"] == "1"


def test_group_splits_runs_that_are_not_comparable(tmp_path):
    # Issue 17: a 4-step digits run and a 40-step synthetic run were one row.
    made = [
        _write_run(tmp_path, "digits-T4", dataset="digits", steps=4, seed=0),
        _write_run(tmp_path, "synthetic-T40", steps=40, seed=1),
    ]
    rows = report.group(made)
    assert sorted((r["dataset"], r["T"], r["n"]) for r in rows) == [
        ("digits", 4, 1), ("synthetic", 40, 1)]
    # Everything else that shapes a result splits too: batch size (the
    # recipe), validation split, precision, scope, exclusions.
    reference = _write_run(tmp_path, "reference", seed=0)
    again = _write_run(tmp_path, "another-seed", seed=1)
    others = [
        _write_run(tmp_path, "batch-64", seed=2, batch_size=64),
        _write_run(tmp_path, "val-split", seed=3, val_split=64),
        _write_run(tmp_path, "bf16", seed=4, precision="bf16"),
        _write_run(tmp_path, "layerwise", seed=5, scope="layerwise"),
        _write_run(tmp_path, "exclude", seed=6, exclude=("dense",)),
    ]
    rows = report.group([reference, again, *others])
    assert sorted(r["n"] for r in rows) == [1, 1, 1, 1, 1, 2]
    (pair,) = [r for r in rows if r["n"] == 2]
    assert sorted(pair["runs"]) == sorted([str(reference.path), str(again.path)])
    assert all(r["notes"] == [] for r in rows)


def test_group_says_when_a_seed_repeats(tmp_path):
    made = [_write_run(tmp_path, "a", seed=7, top1=(0.5,)),
            _write_run(tmp_path, "copy-of-a", seed=7, top1=(0.6,))]
    (row,) = report.group(made)
    assert row["n"] == 2
    assert row["notes"] == ["seeds repeat (7, 7)"]


def test_every_table_has_the_seed_dataset_and_length(tmp_path):
    run = _write_run(tmp_path, "r", seed=5, steps=12, top1=(0.4, 0.5))
    assert report.summary(run)["seed"] == 5
    assert [(r["seed"], r["step"]) for r in report.curve(run)] == [(5, 1), (5, 2)]
    (row,) = report.group([run])
    assert row["seeds"] == [5]
    curve = report.render(report.curve(run), report.CURVE_COLUMNS).splitlines()
    assert curve[0].split()[:3] == ["run", "seed", "step"] and curve[2].split()[1] == "5"
    for columns in (report.SUMMARY_COLUMNS, report.GROUP_COLUMNS):
        assert {"dataset", "T"} <= set(columns)
        table = report.render([report.summary(run)] if columns is report.SUMMARY_COLUMNS
                              else [row], columns).splitlines()
        cells = dict(zip(table[0].split(), table[2].split()))
        assert (cells["dataset"], cells["T"]) == ("synthetic", "12")


def test_to_dataframe_rows_and_columns(tmp_path):
    pandas = pytest.importorskip("pandas")
    made = [_write_run(tmp_path, "a", seed=0, top1=(0.4, 0.5)),
            _write_run(tmp_path, "b", seed=1, top1=(0.7,)),
            _write_run(tmp_path, "t", mode="train", seed=0, top1=(0.9,))]
    summary = report.to_dataframe(made)
    assert isinstance(summary, pandas.DataFrame)
    assert list(summary.columns) == list(report.SUMMARY_COLUMNS)
    assert list(summary.seed) == [0, 1, 0]
    assert list(summary.final_top1) == [0.5, 0.7, 0.9]
    curve = report.to_dataframe([str(p.path) for p in made], rows="curve")
    assert list(curve.columns) == list(report.CURVE_COLUMNS)
    assert list(zip(curve.seed, curve.step)) == [(0, 1), (0, 2), (1, 1), (0, 1)]
    grouped = report.to_dataframe(made, rows="group")
    assert list(grouped.columns) == list(report.GROUP_COLUMNS)
    assert list(grouped.n) == [2, 1]
    assert grouped.top1_median[0] == pytest.approx(0.6)
    assert list(grouped.seeds) == [[0, 1], [0]]
    with pytest.raises(LotteryError, match="rows='runs': expected summary, curve or group"):
        report.to_dataframe(made, rows="runs")


def test_results_and_plot_take_a_study_file_and_skip_a_damaged_run(tmp_path):
    from click.testing import CliRunner

    from keras_lottery.cli import main

    root = tmp_path / "runs" / "mine"
    for seed in (0, 1):
        _write_run(root / "resnet8", f"rewind-k3-d80-s{seed}", seed=seed, top1=(0.5, 0.6))
    (root / "resnet8" / "broken").mkdir()
    (root / "resnet8" / "broken" / "run.json").write_text("{not json")
    study = tmp_path / "mine.toml"  # no [study] root: runs/<its name>
    study.write_text("[base]\nseeds = [0, 1]\narch = 'resnet8'\n")
    result = CliRunner().invoke(main, ["results", str(study), "--group", "--format", "json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1 and "broken" in warnings[0] and "not valid JSON" in warnings[0]
    rows = json.loads(result.output[result.output.index("["):])
    assert [r["n"] for r in rows] == [2]
    result = CliRunner().invoke(main, ["plot", str(study), "-o", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.png").stat().st_size > 0
    # A single run named is opened whole or refused, in one line.
    result = CliRunner().invoke(main, ["results", str(root / "resnet8" / "broken")])
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert result.output.count("\n") == 1


def test_group_never_pools_runs_of_different_parents(tmp_path):
    base = _write_run(tmp_path, "base", mode="train", top1=(0.9,))
    pruned = _write_run(tmp_path, "pruned", parent=str(base.path.resolve()), density=0.2)
    made = [_write_run(tmp_path, f"from-base-{s}", seed=s, density=0.05) for s in (0, 1)]
    made += [_write_run(tmp_path, f"from-pruned-{s}", seed=s, density=0.05,
                        parent=str(pruned.path.resolve())) for s in (0, 1)]
    rows = {r["parent"]: r for r in report.group(made)}
    assert sorted(rows) == ["rewind k=3 20%", "train"]
    assert [rows[p]["n"] for p in sorted(rows)] == [2, 2]
    assert all(r["notes"] == [] for r in rows.values())
    # A parent that is gone cannot be told apart: the row says so.
    gone = _write_run(tmp_path, "orphan", parent=str(tmp_path / "deleted"), density=0.05)
    (row,) = [r for r in report.group([gone]) if r["parent"] == "?"]
    assert row["notes"] == ["the parent of its runs is gone, so runs of different parents "
                            "may share the row"]
