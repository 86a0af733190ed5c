import json
import pathlib
import re

import pytest

from keras_lottery import recipe
from keras_lottery import resolver
from keras_lottery import runs
from keras_lottery.errors import LotteryError
from keras_lottery.spec import IterateSpec
from keras_lottery.spec import RunSpec

STATE = dict(start_step=0, end_step=10, density=1.0)


def _request(seed=None, steps=10):
    return RunSpec("train", "resnet8", "synthetic", recipe.make(steps=steps), seed=seed)


def _one_line_error(fn, *args, **kwargs):
    with pytest.raises(LotteryError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_draw_seed_is_a_non_negative_integer_and_varies():
    seeds = {resolver.draw_seed() for _ in range(20)}
    assert all(isinstance(s, int) and 0 <= s < 10**6 for s in seeds)
    assert len(seeds) > 1


def test_new_request_gets_a_drawn_seed_and_default_directory(tmp_path):
    found = resolver.resolve(_request(), root=tmp_path)
    assert found.run is None and found.seed_drawn
    assert found.path == tmp_path / "resnet8" / f"train-s{found.spec.seed}"
    assert found.spec == _request(seed=found.spec.seed)


def test_a_drawn_seed_run_is_found_again_by_the_same_request(tmp_path):
    first = resolver.resolve(_request(), root=tmp_path)
    runs.Run.create(first.path, first.spec, seed_drawn=True, **STATE)
    again = resolver.resolve(_request(), root=tmp_path)
    assert again.run.path == first.path and again.spec == first.spec
    # A different request (another recipe) is another run.
    other = resolver.resolve(_request(steps=12), root=tmp_path)
    assert other.run is None and other.path != first.path


def test_given_seed_names_its_directory_and_a_different_run_there_is_refused(tmp_path):
    out = tmp_path / "r"
    runs.Run.create(out, _request(seed=0), seed_drawn=False, **STATE)
    assert resolver.resolve(_request(seed=0), out=out).run.path == out
    message = _one_line_error(resolver.resolve, _request(seed=99), out=out)
    assert "holds a different running run (seed 0 != 99)" in message
    message = _one_line_error(resolver.resolve, _request(seed=0, steps=12), out=out)
    assert "recipe {" in message and "'steps': 10" in message and "'steps': 12" in message


def test_out_holding_other_files_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    message = _one_line_error(resolver.resolve, _request(seed=1), out=tmp_path / "notes")
    assert "exists and is not a run directory or an empty one" in message


def test_several_unfinished_matches_ask_for_out(tmp_path):
    for seed in (1, 2):
        spec = _request(seed=seed)
        runs.Run.create(runs.default_out(spec, tmp_path), spec, seed_drawn=True, **STATE)
    message = _one_line_error(resolver.resolve, _request(), root=tmp_path)
    assert message.startswith("out=None: 2 unfinished runs match") and "name the one" in message


def _make_run(root, name, mode="train", status="finished"):
    path = root / name
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"mode": mode, "status": status}))
    return path


def test_base_run_single(tmp_path):
    root = tmp_path / "runs"
    base = _make_run(root, "resnet8/train-s0")
    _make_run(root, "resnet8/train-s1", status="running")
    _make_run(root, "resnet8/train-s2", status="failed")
    _make_run(root, "resnet8/rewind-k2-d80-s0", mode="rewind")
    (root / "broken").mkdir()
    (root / "broken" / "run.json").write_text("{not json")
    assert pathlib.Path(resolver.base_run(root)) == base


def test_base_run_none_or_two(tmp_path):
    root = tmp_path / "runs"
    _make_run(root, "resnet8/train-s1", status="running")
    message = _one_line_error(resolver.base_run, root)
    assert message.startswith("parent=None: ") and "name the parent run" in message
    assert re.search(r"found 0 \(none\)", message) and "train-s1" not in message
    a = _make_run(root, "resnet8/train-s0")
    b = _make_run(root, "resnet20/train-s4")
    message = _one_line_error(resolver.base_run, root)
    assert str(a) in message and str(b) in message and "found 2" in message
    message = _one_line_error(resolver.base_run, tmp_path / "nothing")
    assert "found 0" in message


def test_study_is_found_again_and_a_different_one_refused(tmp_path):
    request = IterateSpec("rewind", str(tmp_path / "base"), 4, 0.8, None)
    study = resolver.resolve_study(request, arch="resnet8", root=tmp_path)
    assert study.seed_drawn and study.path.name == f"iterate-rewind-k4-r80-s{study.spec.seed}"
    study.path.mkdir(parents=True)
    runs.write_json(study.path / runs.STUDY_JSON,
                    dict(study.spec.to_config(study.path), seed_drawn=True))
    again = resolver.resolve_study(request, arch="resnet8", root=tmp_path)
    assert again.path == study.path and again.spec == study.spec
    other = request.replace(method="finetune", seed=study.spec.seed)
    message = _one_line_error(resolver.resolve_study, other, arch="resnet8",
                              out=study.path)
    assert "holds a different iterative study" in message
