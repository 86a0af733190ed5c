import json
import os
import pathlib

import pytest

from keras_lottery.spec import recipe
from keras_lottery.spec.record import RunRecord
from keras_lottery.runs import layout
from keras_lottery.runs import run as run_lib
from keras_lottery.errors import LotteryError
from keras_lottery.runs.run import Run
from keras_lottery.spec.runspec import RunSpec

COLUMNS = ("step", "top1", "top5", "loss", "lr", "density", "val_top1", "elapsed")
STATE = dict(start_step=0, end_step=10, density=1.0, seed_drawn=False)


def _spec(mode="train", seed=0, **fields):
    return RunSpec(mode, "resnet8", "synthetic", recipe.make(steps=10), seed=seed,
                   **fields)


def _one_line_error(fn, *args):
    with pytest.raises(LotteryError) as info:
        fn(*args)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_checkpoint_names():
    assert layout.checkpoint_name(4701) == "checkpoint_iter_4701.weights.h5"
    assert layout.checkpoint_name("final") == "checkpoint_iter_final.weights.h5"
    assert layout.checkpoint_path("runs/x", 0) == pathlib.Path(
        "runs/x/checkpoints/checkpoint_iter_0.weights.h5"
    )
    assert layout.checkpoint_path(pathlib.Path("a"), "final") == pathlib.Path(
        "a/checkpoints/checkpoint_iter_final.weights.h5"
    )


def test_create_writes_run_json_and_folders(tmp_path):
    out = tmp_path / "runs" / "resnet8" / "train-s0"
    run = Run.create(out, _spec(seed=7), RunRecord(status="running", **STATE))
    assert (out / "checkpoints").is_dir()
    assert (out / "logs").is_dir()
    on_disk = json.loads((out / "run.json").read_text())
    assert on_disk["status"] == "running"
    assert on_disk["mode"] == "train" and on_disk["seed"] == 7
    assert run.status == "running" and run.mode == "train"
    opened = Run.open(out)
    assert opened.config == on_disk
    assert opened.path == out
    assert opened.spec == _spec(seed=7)
    assert Run.open(out / "run.json").path == out  # run.json names its folder
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]


def test_set_status_persists(tmp_path):
    run = Run.create(tmp_path / "r", _spec(), RunRecord(status="running", **STATE))
    run.set_status("finished", wall=1.5)
    opened = Run.open(tmp_path / "r")
    assert opened.status == "finished"
    assert opened.config["wall"] == 1.5


def test_open_missing_directory(tmp_path):
    message = _one_line_error(Run.open, tmp_path / "nope")
    assert "nope" in message


def test_open_directory_without_run_json(tmp_path):
    (tmp_path / "empty").mkdir()
    message = _one_line_error(Run.open, tmp_path / "empty")
    assert "run.json" in message


def test_open_invalid_json(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text('{"mode": "train",\n  oops')
    message = _one_line_error(Run.open, tmp_path / "bad")
    assert "JSON" in message or "json" in message


@pytest.mark.parametrize(
    "content", ['{"arch": "resnet8"}', '{"mode": "bogus"}', "[1, 2]", '"train"', "null"]
)
def test_open_json_without_valid_mode(tmp_path, content):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(content)
    message = _one_line_error(Run.open, tmp_path / "r")
    assert "mode" in message


def test_metrics_round_trip(tmp_path):
    run = Run.create(tmp_path / "r", _spec(), RunRecord(status="running", **STATE))
    assert run.metrics == []
    rows = [
        {"step": 10, "top1": 0.1234567890123, "top5": 0.5, "loss": 2.25,
         "lr": 0.1, "density": 1.0, "val_top1": 0.125, "elapsed": 3.75},
        {"step": 20, "top1": 0.25, "top5": 0.75, "loss": 1.0 / 3.0,
         "lr": 0.01, "density": 0.8, "val_top1": 0.5, "elapsed": 7.0},
        {"step": 25, "top1": 0.5, "top5": 1.0, "loss": 0.0,
         "lr": 0.001, "density": 0.8, "val_top1": 0.75, "elapsed": 9.125,
         "extra": "ignored"},
    ]
    for row in rows:
        run.append_metrics(row)
    got = Run.open(tmp_path / "r").metrics
    assert [r["step"] for r in got] == [10, 20, 25]
    for want, have in zip(rows, got):
        assert tuple(have) == COLUMNS
        assert type(have["step"]) is int
        for k in COLUMNS[1:]:
            assert type(have[k]) is float
            assert have[k] == want[k]
    lines = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    assert tuple(run_lib.METRIC_COLUMNS) == COLUMNS
    assert len(lines) == 4
    assert not [p for p in os.listdir(tmp_path / "r") if p.startswith(".tmp")]
    # Without a validation split the column is empty and reads back as None.
    run.append_metrics({k: v for k, v in rows[0].items() if k != "val_top1"} | {"step": 30})
    assert Run.open(tmp_path / "r").metrics[-1]["val_top1"] is None


def test_checkpoints_mapping(tmp_path):
    Run.create(tmp_path / "r", _spec(), RunRecord(status="running", **STATE))
    ckpt = tmp_path / "r" / "checkpoints"
    for name in [100, "final", 2, 0, 10]:
        (ckpt / f"checkpoint_iter_{name}.weights.h5").write_bytes(b"")
    # Not checkpoints: a temporary file and unrelated files.
    (ckpt / ".tmp-123-checkpoint_iter_5.weights.h5").write_bytes(b"")
    (ckpt / "notes.txt").write_text("x")
    found = Run.open(tmp_path / "r").checkpoints
    assert list(found) == [0, 2, 10, 100, "final"]
    assert all(type(k) is int for k in list(found)[:-1])
    assert found[10] == ckpt / "checkpoint_iter_10.weights.h5"
    assert found["final"] == ckpt / "checkpoint_iter_final.weights.h5"
    assert found[2] == layout.checkpoint_path(tmp_path / "r", 2)


def test_checkpoints_empty(tmp_path):
    run = Run.create(tmp_path / "r", _spec(), RunRecord(status="running", **STATE))
    assert run.checkpoints == {}


def _derived(mode, seed, iteration, density, **fields):
    return _spec(mode, seed, parent="/runs/base", iteration=iteration,
                 target_density=density, **fields)


@pytest.mark.parametrize(
    "spec, want",
    [
        (_spec("train", 3), "runs/resnet8/train-s3"),
        (_derived("rewind", 3, 4, 0.8), "runs/resnet8/rewind-k4-d80-s3"),
        (_derived("rewind_lr", 1, 4, 0.8), "runs/resnet8/rewind-lr-k4-d80-s1"),
        (_derived("finetune", 0, 9, 0.512, lr=0.001), "runs/resnet8/finetune-k9-d51.2-s0"),
        (_derived("reinit", 2, None, 0.512), "runs/resnet8/reinit-d51.2-s2"),
    ],
)
def test_default_out(spec, want):
    assert layout.default_out(spec) == pathlib.Path(want)


def test_default_out_root_and_distinct_names():
    assert layout.default_out(_spec(), root="elsewhere") == pathlib.Path(
        "elsewhere/resnet8/train-s0"
    )
    names = {layout.default_out(_derived("rewind", 0, 4, d)) for d in (0.8, 0.64, 0.512)}
    assert len(names) == 3


def test_parent_is_stored_relative_and_found_after_a_move(tmp_path):
    base = tmp_path / "tree" / "resnet8" / "train-s0"
    base.mkdir(parents=True)
    child = tmp_path / "tree" / "resnet8" / "rewind-k4-d80-s0"
    spec = _spec("rewind", parent=str(base), iteration=4, target_density=0.8)
    Run.create(child, spec, RunRecord(status="running", **STATE))
    on_disk = json.loads((child / "run.json").read_text())
    assert on_disk["parent"] == "../train-s0"
    assert on_disk["parent_absolute"] == str(base)
    assert Run.open(child).spec == spec
    # The whole tree moved: the relative path still finds the parent.
    os.rename(tmp_path / "tree", tmp_path / "moved")
    moved = Run.open(tmp_path / "moved" / "resnet8" / "rewind-k4-d80-s0")
    assert moved.spec.parent == str(tmp_path / "moved" / "resnet8" / "train-s0")


def test_check_names_the_field_of_a_damaged_run_json(tmp_path):
    run = Run.create(tmp_path / "r", _spec(), RunRecord(status="running", **STATE))
    for field, value, fragment in [
        ("end_step", -5, "end_step must be an integer above start_step"),
        ("seed", "x", "seed must be a non-negative integer"),
        ("recipe", {"steps": "many"}, "recipe is not valid"),
        ("val_split", -1, "val_split=-1: expected an integer >= 0"),
        ("schema", 7, "newer keras_lottery"),
    ]:
        broken = Run(run.path, dict(run.config, **{field: value}))
        message = _one_line_error(broken.check)
        assert fragment in message and "restore the file" in message, field


HEADER = ",".join(COLUMNS) + "\n"
ROW_10 = "10,0.5,0.9,1.5,0.1,1.0,,3.0\n"


@pytest.mark.parametrize("text, fragment", [
    # Killed mid-row: the row with step 20 must not read as a (final) 0.6.
    (HEADER + ROW_10 + "20,0.6,0.9", "cut off in its last row"),
    (HEADER + ROW_10 + "20,0.6,0.9,1.4,0.1,1.0,,6", "cut off in its last row"),
    ("", "empty, not even a header"),
    ("\x00\x07garbage\xff\n", "its header is not step,top1"),
    (HEADER + ROW_10 + "20,0.6,0.9,1.4,0.1,1.0,,\x00\n", "line 3"),
    (HEADER + ROW_10 + "x,y\n", "line 3 has 2 fields, not 8"),
    (HEADER + ROW_10 + "20,lots,0.9,1.4,0.1,1.0,,6\n", "line 3 holds something that is not a number"),
    (HEADER + ROW_10 + ROW_10, "line 3 is out of order"),
])
def test_a_damaged_metrics_file_is_an_error_never_a_partial_result(tmp_path, text, fragment):
    run = Run.create(tmp_path / "r", _spec(), RunRecord(status="running", **STATE))
    (run.path / layout.METRICS_CSV).write_text(text)
    message = _one_line_error(lambda: Run.open(run.path).metrics)
    assert message.startswith(f"{run.path / layout.METRICS_CSV} is damaged (")
    assert fragment in message and "delete the run to train it again" in message


def test_a_metrics_file_from_before_validation_splits_still_reads(tmp_path):
    # keras_lottery wrote no val_top1 column before validation splits existed.
    run = Run.create(tmp_path / "r", _spec(), RunRecord(status="running", **STATE))
    old = [c for c in COLUMNS if c != "val_top1"]
    (run.path / layout.METRICS_CSV).write_text(
        ",".join(old) + "\n10,0.5,0.9,1.5,0.1,1.0,3.0\n")
    (row,) = Run.open(run.path).metrics
    assert tuple(row) == COLUMNS
    assert (row["step"], row["top1"], row["val_top1"], row["elapsed"]) == (10, 0.5, None, 3.0)
