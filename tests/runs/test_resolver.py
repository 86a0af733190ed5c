import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from keras_lottery.spec import recipe
from keras_lottery.spec.record import RunRecord
from keras_lottery.runs import resolver
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs.run import Run
from keras_lottery import files
from keras_lottery.errors import LotteryError
from keras_lottery.spec.chainspec import IterateSpec
from keras_lottery.spec.runspec import RunSpec

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
    Run.create(first.path, first.spec, RunRecord(status="running", seed_drawn=True, **STATE))
    again = resolver.resolve(_request(), root=tmp_path)
    assert again.run.path == first.path and again.spec == first.spec
    # A different request (another recipe) is another run.
    other = resolver.resolve(_request(steps=12), root=tmp_path)
    assert other.run is None and other.path != first.path


def test_given_seed_names_its_directory_and_a_different_run_there_is_refused(tmp_path):
    out = tmp_path / "r"
    Run.create(out, _request(seed=0), RunRecord(status="running", seed_drawn=False, **STATE))
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
        Run.create(layout.default_out(spec, tmp_path), spec, RunRecord(status="running", seed_drawn=True, **STATE))
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
    files.write_json(study.path / layout.CHAIN_JSON,
                    dict(study.spec.to_config(study.path), seed_drawn=True))
    again = resolver.resolve_study(request, arch="resnet8", root=tmp_path)
    assert again.path == study.path and again.spec == study.spec
    other = request.replace(method="finetune", seed=study.spec.seed)
    message = _one_line_error(resolver.resolve_study, other, arch="resnet8",
                              out=study.path)
    assert "holds a different iterative study" in message


# --- Paths that must not stop a resume (issue 17) -------------------------

LENET = ["--arch", "lenet300", "--dataset", "digits", "--steps", "6", "--batch-size", "32",
         "--eval-every", "6", "--checkpoint-iters", "0,1,6", "--seed", "0", "-q"]
CHILD = ["--iter", "1", "--density", "50", "--seed", "0", "-q"]
# Runs `lottery ARGS` for each ARGS in turn in one process, printing each
# exit status.
COMMANDS = textwrap.dedent('''
    import json, sys
    from keras_lottery.cli import main
    for args in json.loads(sys.argv[1]):
        try:
            main(args)
        except SystemExit as e:
            print(f"exit {e.code}", flush=True)
''')


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A base, a rewound child and a one-round study, made from the folder
    `first` with relative paths, as typed."""
    from click.testing import CliRunner

    from keras_lottery.cli import main

    first = tmp_path_factory.mktemp("first")
    old = os.getcwd()
    os.chdir(first)
    try:
        for args in (["train", *LENET, "--out", "runs/base"],
                     ["rewind", "--from", "runs/base", *CHILD, "--out", "runs/child"],
                     ["iterate", "--from", "runs/base", "--iter", "1", "--rounds", "1",
                      "--seed", "0", "-q", "--out", "runs/study"]):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(old)
    return first / "runs"


def test_from_another_folder_with_absolute_paths_a_run_is_the_same_run(family, tmp_path):
    import keras_lottery

    package_root = os.path.dirname(os.path.dirname(keras_lottery.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    base = str(family / "base")
    commands = [
        ["rewind", "--from", base, *CHILD, "--out", str(family / "child")],
        # The study extended by a round, from elsewhere.
        ["iterate", "--from", base, "--iter", "1", "--rounds", "2", "--seed", "0", "-q",
         "--out", str(family / "study")],
    ]
    done = subprocess.run([sys.executable, "-c", COMMANDS, json.dumps(commands)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    said = done.stdout.splitlines()
    assert [line for line in said if line.startswith("exit")] == ["exit 0", "exit 0"], (
        done.stdout + done.stderr[-2000:])
    assert f"{family / 'child'} is already finished; nothing to do" in said
    assert f"{family / 'study' / 'round-1'} is already finished; nothing to do" in said
    assert "different" not in done.stdout + done.stderr
    round_2 = Run.open(family / "study" / "round-2")
    assert round_2.status == record.FINISHED
    assert round_2.spec.parent == str((family / "study" / "round-1").resolve())


def test_a_moved_tree_of_runs_resumes_and_finds_its_parents(family, tmp_path, capsys):
    import keras_lottery as kl

    shutil.copytree(family, tmp_path / "before" / "runs")
    # Interrupted as a kill would leave it: no final state, status running.
    child = Run.open(tmp_path / "before" / "runs" / "child")
    for key in ("final", 6):
        child.checkpoints[key].unlink()
    child.set_status(record.RUNNING)
    os.rename(tmp_path / "before", tmp_path / "after")
    moved = tmp_path / "after" / "runs"
    # The same call at the new place resumes it, under its parent there.
    capsys.readouterr()
    resumed = kl.rewind(moved / "base", iteration=1, density=0.5, seed=0, verbose=2,
                        out=moved / "child")
    assert f"resuming {moved / 'child'} from step 1" in capsys.readouterr().out
    assert resumed.status == record.FINISHED
    assert resumed.spec.parent == str((moved / "base").resolve())
    # The study's rounds find theirs too: extending it adds a round.
    made = kl.iterate(moved / "base", iteration=1, rounds=2, seed=0, verbose=0,
                      out=moved / "study")
    assert [r.spec.parent for r in made] == [str((moved / "base").resolve()),
                                              str((moved / "study" / "round-1").resolve())]
