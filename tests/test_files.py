import os

import pytest

from keras_lottery import files


def test_temporary_path_is_sibling_with_keras_ending(tmp_path):
    target = tmp_path / "checkpoint_iter_3.weights.h5"
    tmp = files.temporary_path(target)
    assert tmp.parent == tmp_path
    assert tmp.name.endswith(".weights.h5")
    assert tmp.name.startswith(files.TEMPORARY_PREFIX)
    assert tmp != target


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "run.json"
    files.write_atomic(path, "first\n")
    assert path.read_text() == "first\n"
    files.write_atomic(path, "second")
    assert path.read_text() == "second"
    assert sorted(os.listdir(tmp_path)) == ["run.json"]


def test_replacing_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.weights.h5"
    path.write_text("old")
    with pytest.raises(OSError):
        with files.replacing(path) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.weights.h5"]


def test_remove_temporary_files_spares_the_rest(tmp_path):
    (tmp_path / ".tmp-12-run.json").write_text("x")
    (tmp_path / "run.json").write_text("{}")
    files.remove_temporary_files(tmp_path, tmp_path / "missing")
    assert os.listdir(tmp_path) == ["run.json"]
