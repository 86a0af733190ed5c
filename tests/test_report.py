import csv
import io
import json

import pytest

from keras_lottery import report
from keras_lottery.runs import Run

TOP1 = [0.31, 0.6543219, 0.52]  # best is not the last


def _row(step, top1):
    return {"step": step, "top1": top1, "top5": 0.9, "loss": 1.5, "lr": 0.1,
            "density": 0.8, "elapsed": 1.0}


def _rewind_run(tmp_path):
    run = Run.create(tmp_path / "rewind-k3-d80-s0", {
        "mode": "rewind", "arch": "resnet8", "iteration": 3, "density": 0.8,
        "start_step": 3, "end_step": 33, "seed": 0,
    })
    for step, top1 in zip([13, 23, 33], TOP1):
        run.append_metrics(_row(step, top1))
    return Run.open(run.path)


def _train_run(tmp_path):
    # A train run: no iteration/density in its config, no metrics yet.
    return Run.create(tmp_path / "train-s0", {
        "mode": "train", "arch": "resnet8", "start_step": 0, "end_step": 30,
        "seed": 0,
    })


def test_summary_fields(tmp_path):
    run = _rewind_run(tmp_path)
    s = report.summary(run)
    assert s["run"] == str(run.path)
    assert s["mode"] == "rewind"
    assert s["arch"] == "resnet8"
    assert s["density"] == 0.8
    assert s["iter"] == 3
    assert s["steps"] == 30
    assert s["final_top1"] == 0.52
    assert s["best_top1"] == 0.6543219
    assert set(report.SUMMARY_COLUMNS) <= set(s)


def test_summary_without_metrics(tmp_path):
    s = report.summary(_train_run(tmp_path))
    assert s["steps"] == 30
    assert s["final_top1"] is None and s["best_top1"] is None
    assert s["density"] is None and s["iter"] is None


def test_curve_rows(tmp_path):
    run = _rewind_run(tmp_path)
    rows = report.curve(run)
    assert rows == [
        {"run": str(run.path), "step": 13, "top1": 0.31},
        {"run": str(run.path), "step": 23, "top1": 0.6543219},
        {"run": str(run.path), "step": 33, "top1": 0.52},
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


def test_render_table_default_format():
    assert report.render(_rows(), ("run", "top1")) == report.render(
        _rows(), ("run", "top1"), "table"
    )


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
