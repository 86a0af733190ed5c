import json
import os
import pathlib
import re

import pytest

from keras_lottery import runs
from keras_lottery.errors import LotteryError
from keras_lottery.runs import Run

COLUMNS = ("step", "top1", "top5", "loss", "lr", "density", "val_top1", "elapsed")


def _config(mode="train", **extra):
    return dict(
        {"mode": mode, "arch": "resnet8", "seed": 0, "start_step": 0, "end_step": 10},
        **extra,
    )


def _one_line_error(fn, *args):
    with pytest.raises(LotteryError) as info:
        fn(*args)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_checkpoint_names():
    assert runs.checkpoint_name(4701) == "checkpoint_iter_4701.weights.h5"
    assert runs.checkpoint_name("final") == "checkpoint_iter_final.weights.h5"
    assert runs.checkpoint_path("runs/x", 0) == pathlib.Path(
        "runs/x/checkpoints/checkpoint_iter_0.weights.h5"
    )
    assert runs.checkpoint_path(pathlib.Path("a"), "final") == pathlib.Path(
        "a/checkpoints/checkpoint_iter_final.weights.h5"
    )


def test_temporary_path_is_sibling_with_keras_ending(tmp_path):
    target = tmp_path / "checkpoint_iter_3.weights.h5"
    tmp = runs.temporary_path(target)
    assert tmp.parent == tmp_path
    assert tmp.name.endswith(".weights.h5")
    assert tmp != target


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "run.json"
    runs.write_atomic(path, "first\n")
    assert path.read_text() == "first\n"
    runs.write_atomic(path, "second")
    assert path.read_text() == "second"
    assert sorted(os.listdir(tmp_path)) == ["run.json"]


def test_create_writes_run_json_and_folders(tmp_path):
    out = tmp_path / "runs" / "resnet8" / "train-s0"
    run = Run.create(out, _config(seed=7))
    assert (out / "checkpoints").is_dir()
    assert (out / "logs").is_dir()
    on_disk = json.loads((out / "run.json").read_text())
    assert on_disk["status"] == "running"
    assert on_disk["mode"] == "train" and on_disk["seed"] == 7
    assert run.status == "running" and run.mode == "train"
    opened = Run.open(out)
    assert opened.config == on_disk
    assert opened.path == out
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]


def test_set_status_persists(tmp_path):
    run = Run.create(tmp_path / "r", _config())
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
    run = Run.create(tmp_path / "r", _config())
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
    assert tuple(runs.METRIC_COLUMNS) == COLUMNS
    assert len(lines) == 4
    assert not [p for p in os.listdir(tmp_path / "r") if p.startswith(".tmp")]
    # Without a validation split the column is empty and reads back as None.
    run.append_metrics({k: v for k, v in rows[0].items() if k != "val_top1"} | {"step": 30})
    assert Run.open(tmp_path / "r").metrics[-1]["val_top1"] is None


def test_checkpoints_mapping(tmp_path):
    run = Run.create(tmp_path / "r", _config())
    ckpt = tmp_path / "r" / "checkpoints"
    for name in [100, "final", 2, 0, 10]:
        (ckpt / f"checkpoint_iter_{name}.weights.h5").write_bytes(b"")
    # Not checkpoints: a temporary file and unrelated files.
    (ckpt / f".tmp-123-checkpoint_iter_5.weights.h5").write_bytes(b"")
    (ckpt / "notes.txt").write_text("x")
    found = Run.open(tmp_path / "r").checkpoints
    assert list(found) == [0, 2, 10, 100, "final"]
    assert all(type(k) is int for k in list(found)[:-1])
    assert found[10] == ckpt / "checkpoint_iter_10.weights.h5"
    assert found["final"] == ckpt / "checkpoint_iter_final.weights.h5"
    assert found[2] == runs.checkpoint_path(tmp_path / "r", 2)


def test_checkpoints_empty(tmp_path):
    run = Run.create(tmp_path / "r", _config())
    assert run.checkpoints == {}


@pytest.mark.parametrize(
    "args, want",
    [
        (("resnet20", "train", 3), "runs/resnet20/train-s3"),
        (("resnet20", "rewind", 3, 4701, 0.8), "runs/resnet20/rewind-k4701-d80-s3"),
        (("resnet20", "rewind_lr", 1, 4701, 0.8), "runs/resnet20/rewind-lr-k4701-d80-s1"),
        (("resnet20", "finetune", 0, 71108, 0.512), "runs/resnet20/finetune-k71108-d51.2-s0"),
        (("vgg16", "rewind", 2, 0, 0.512), "runs/vgg16/rewind-k0-d51.2-s2"),
    ],
)
def test_default_out(args, want):
    assert runs.default_out(*args) == pathlib.Path(want)


def test_default_out_root_and_distinct_names():
    assert runs.default_out("resnet8", "train", 0, root="elsewhere") == pathlib.Path(
        "elsewhere/resnet8/train-s0"
    )
    names = {
        runs.default_out("resnet20", "rewind", 0, 4701, d)
        for d in (0.8, 0.64, 0.512)
    }
    assert len(names) == 3


def _make_run(root, name, mode="train", status="finished"):
    path = root / name
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"mode": mode, "status": status}))
    return path


def test_find_base_run_single(tmp_path):
    root = tmp_path / "runs"
    base = _make_run(root, "resnet8/train-s0")
    _make_run(root, "resnet8/train-s1", status="running")
    _make_run(root, "resnet8/train-s2", status="failed")
    _make_run(root, "resnet8/rewind-k2-d80-s0", mode="rewind")
    _make_run(root, "resnet8/finetune-k2-d80-s0", mode="finetune")
    (root / "broken").mkdir()
    (root / "broken" / "run.json").write_text("{not json")
    assert pathlib.Path(runs.find_base_run(root)) == base


def test_find_base_run_none(tmp_path):
    root = tmp_path / "runs"
    _make_run(root, "resnet8/train-s1", status="running")
    _make_run(root, "resnet8/rewind-k2-d80-s0", mode="rewind")
    message = _one_line_error(runs.find_base_run, root)
    assert "--from" in message
    rest = message.replace(str(root), "ROOT")
    assert re.search(r"\b(0|none|no)\b", rest)
    assert "train-s1" not in message and "rewind" not in message


def test_find_base_run_missing_root(tmp_path):
    message = _one_line_error(runs.find_base_run, tmp_path / "nothing")
    assert "--from" in message


def test_find_base_run_two(tmp_path):
    root = tmp_path / "runs"
    a = _make_run(root, "resnet8/train-s0")
    b = _make_run(root, "resnet20/train-s4")
    message = _one_line_error(runs.find_base_run, root)
    assert str(a) in message and str(b) in message
    assert "--from" in message
    rest = message.replace(str(a), "A").replace(str(b), "B").replace(str(root), "ROOT")
    assert re.search(r"\b(2|two)\b", rest)
