"""Tests for `download`, offline: the URL table points at file:// fixtures."""

import dataclasses
import hashlib
import io
import os
import pathlib
import sys
import tarfile

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cifar_fixtures as cf  # noqa: E402
import idx_fixtures as ix  # noqa: E402
from error_messages import one_error_line, single_line  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from keras_lottery import data  # noqa: E402
from keras_lottery.cli import main  # noqa: E402
from keras_lottery.errors import LotteryError  # noqa: E402


def _tarball(path, folder, arcname, extra=()):
    """A .tar.gz of `folder` as `arcname/`, plus `(name, bytes)` members."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
        for name, content in extra:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def _digest(path, algorithm):
    return hashlib.new(algorithm, open(path, "rb").read()).hexdigest()


def _serve(monkeypatch, name, sources, *, keep_digest=False, urls=None):
    """Points `DOWNLOADS[name]` at the fixture files `sources` (same order)."""
    remotes = []
    for remote, source in zip(data.DOWNLOADS[name], sources):
        digest = remote.digest if keep_digest else _digest(source, remote.algorithm)
        mirror = (urls(source) if urls else (source.as_uri(),))
        remotes.append(dataclasses.replace(remote, urls=mirror, digest=digest))
    monkeypatch.setitem(data.DOWNLOADS, name, tuple(remotes))


@pytest.fixture(scope="module")
def cifar10_tarball(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    batches = cf.make_batches(6, seed=5)
    folder = cf.write_python(root / "src", batches)
    (folder / "batches.meta").write_bytes(b"not read")
    return _tarball(root / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py"), batches


@pytest.fixture(scope="module")
def mnist_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    arrays = ix.make_mnist(train=12, test=5, seed=4)
    paths = ix.write_mnist(root, arrays, gz=True)
    return [root / os.path.basename(p) for p in paths], arrays


def _leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".") or n.endswith(".part")]


def test_cifar10(monkeypatch, tmp_path, cifar10_tarball):
    tarball, batches = cifar10_tarball
    _serve(monkeypatch, "cifar10", [tarball])
    target = tmp_path / "new" / "cifar"
    assert data.download("cifar10", target) == target
    assert sorted(os.listdir(target)) == ["cifar-10-batches-py"]  # tarball gone
    ds = data.load("cifar10", target)
    np.testing.assert_array_equal(ds.x_test, batches[cf.TEST_FILE][0])
    # Already there: nothing is fetched (the URL now leads nowhere).
    _serve(monkeypatch, "cifar10", [tarball],
           urls=lambda p: ((p.parent / "gone.tar.gz").as_uri(),))
    assert data.download("cifar10", target) == target


def test_cifar100(monkeypatch, tmp_path):
    parts = cf.make_cifar100(train_records=8, test_records=3, seed=6)
    folder = cf.write_cifar100_python(tmp_path / "src", parts)
    (folder / "meta").write_bytes(b"not read")
    tarball = _tarball(tmp_path / "cifar-100-python.tar.gz", folder, "cifar-100-python")
    _serve(monkeypatch, "cifar100", [tarball])
    target = data.download("cifar100", tmp_path / "data")
    assert sorted(os.listdir(target)) == ["cifar-100-python"]
    ds = data.load("cifar100", target)
    assert ds.y_train.tolist() == parts["train"][1]


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets(monkeypatch, tmp_path, mnist_files, name):
    sources, arrays = mnist_files
    _serve(monkeypatch, name, sources)
    target = data.download(name, tmp_path / name)
    assert sorted(os.listdir(target)) == sorted(n + ".gz" for n in ix.NAMES)
    ds = data.load(name, target)
    assert ds.name == name
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays[2])
    _serve(monkeypatch, name, sources, urls=lambda p: ("file:///nowhere/x.gz",))
    data.download(name, target)  # checked files are kept, not fetched again


def test_checks_what_it_fetched_not_a_binary_version_beside_it(
        monkeypatch, tmp_path, cifar10_tarball):
    tarball, _ = cifar10_tarball
    cf.write_binary(tmp_path / "cifar-10-batches-bin", cf.make_batches(2, seed=1))
    folder = cf.write_python(tmp_path / "src", cf.make_batches(6, seed=5))
    os.remove(folder / "test_batch")  # a checksum-correct but unreadable tarball
    broken = _tarball(tmp_path / "b.tar.gz", folder, "cifar-10-batches-py")
    _serve(monkeypatch, "cifar10", [broken])
    with pytest.raises(LotteryError, match="missing test_batch"):
        data.download("cifar10", tmp_path)


def test_checksum_mismatch_keeps_nothing(monkeypatch, tmp_path, cifar10_tarball):
    tarball, _ = cifar10_tarball
    _serve(monkeypatch, "cifar10", [tarball], keep_digest=True)  # official hash
    target = tmp_path / "data"
    with pytest.raises(LotteryError) as error:
        data.download("cifar10", target)
    message = single_line(error)
    official = data.DOWNLOADS["cifar10"][0].digest
    assert f"sha256 {_digest(tarball, 'sha256')}, expected {official}" in message
    assert "nothing was kept" in message
    assert not target.exists()  # created by download, so removed again
    target.mkdir()
    with pytest.raises(LotteryError):
        data.download("cifar10", target)
    assert os.listdir(target) == []


def test_idx_mismatch_leaves_no_partial_file(monkeypatch, tmp_path, mnist_files):
    sources, _ = mnist_files
    _serve(monkeypatch, "mnist", sources)
    broken = dataclasses.replace(data.DOWNLOADS["mnist"][2], digest="0" * 32)
    remotes = list(data.DOWNLOADS["mnist"])
    remotes[2] = broken
    monkeypatch.setitem(data.DOWNLOADS, "mnist", tuple(remotes))
    with pytest.raises(LotteryError, match=f"could not fetch {broken.filename}"):
        data.download("mnist", tmp_path)
    # The files before it were complete and checked; nothing else is there.
    assert sorted(os.listdir(tmp_path)) == sorted(r.filename for r in remotes[:2])


def test_mirrors_are_tried_in_order(monkeypatch, tmp_path, mnist_files):
    sources, _ = mnist_files
    _serve(monkeypatch, "mnist", sources,
           urls=lambda p: ((p.parent / "missing").as_uri(), p.as_uri()))
    data.download("mnist", tmp_path)
    assert _leftovers(tmp_path) == []
    _serve(monkeypatch, "mnist", sources,
           urls=lambda p: ((p.parent / "a").as_uri(), (p.parent / "b").as_uri()))
    with pytest.raises(LotteryError) as error:
        data.download("mnist", tmp_path / "other")
    message = single_line(error)
    assert "/a:" in message and "/b:" in message


def test_refuses_to_overwrite_another_datasets_file(monkeypatch, tmp_path, mnist_files):
    sources, _ = mnist_files
    _serve(monkeypatch, "mnist", sources)
    data.download("mnist", tmp_path)
    first = (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()
    other = ix.write_mnist(tmp_path / "fashion", ix.make_mnist(12, 5, seed=8), gz=True)
    _serve(monkeypatch, "fashion_mnist", [pathlib.Path(p) for p in other])
    with pytest.raises(LotteryError, match="use a folder of its own") as error:
        data.download("fashion_mnist", tmp_path)
    single_line(error)
    assert (tmp_path / "train-images-idx3-ubyte.gz").read_bytes() == first


def test_damaged_extracted_folder(monkeypatch, tmp_path, cifar10_tarball):
    tarball, batches = cifar10_tarball
    _serve(monkeypatch, "cifar10", [tarball])
    cf.write_python(tmp_path / "cifar-10-batches-py", batches)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_2")
    with pytest.raises(LotteryError) as error:
        data.download("cifar10", tmp_path)
    message = single_line(error)
    assert "already holds damaged files" in message and "data_batch_2" in message


def test_unsafe_tarball_is_refused(monkeypatch, tmp_path, cifar10_tarball):
    _, batches = cifar10_tarball
    folder = cf.write_python(tmp_path / "src", batches)
    evil = _tarball(tmp_path / "evil.tar.gz", folder, "cifar-10-batches-py",
                    extra=[("../escaped", b"x")])
    _serve(monkeypatch, "cifar10", [evil])  # the checksum matches
    target = tmp_path / "deep" / "data"
    with pytest.raises(LotteryError, match="does not extract") as error:
        data.download("cifar10", target)
    single_line(error)
    # "../escaped" from the staging folder inside target would land in target.
    assert not (tmp_path / "deep" / "escaped").exists()
    assert not target.exists()


def test_tarball_without_the_folder(monkeypatch, tmp_path, cifar10_tarball):
    _, batches = cifar10_tarball
    folder = cf.write_python(tmp_path / "src", batches)
    wrong = _tarball(tmp_path / "w.tar.gz", folder, "something-else")
    _serve(monkeypatch, "cifar10", [wrong])
    with pytest.raises(LotteryError, match="holds no cifar-10-batches-py/ folder"):
        data.download("cifar10", tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_old_python_without_tar_filters(monkeypatch, tmp_path, cifar10_tarball):
    tarball, _ = cifar10_tarball
    _serve(monkeypatch, "cifar10", [tarball])
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(LotteryError, match="cannot extract .* safely"):
        data.download("cifar10", tmp_path / "d")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("name, match", [
    ("digits", "needs no download: it ships with the package"),
    ("synthetic", "needs no download: it is generated"),
    ("svhn", "nothing to download"),
])
def test_names_without_download(tmp_path, name, match):
    with pytest.raises(LotteryError, match=match) as error:
        data.download(name, tmp_path)
    assert error.value.param == "name"
    single_line(error)


def test_official_table():
    assert set(data.DOWNLOADS) == {"cifar10", "cifar100", "mnist", "fashion_mnist"}
    for name, remotes in data.DOWNLOADS.items():
        for remote in remotes:
            length = {"sha256": 64, "md5": 32}[remote.algorithm]
            assert len(remote.digest) == length and int(remote.digest, 16) >= 0
            assert all(u.startswith(("https://", "http://")) for u in remote.urls)
            assert all(u.endswith("/" + remote.filename) for u in remote.urls)
        if name.endswith("mnist"):
            assert sorted(r.filename for r in remotes) == sorted(n + ".gz" for n in ix.NAMES)
            assert len({r.digest for r in remotes}) == 4


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_hashes_are_kerases(name):
    # Keras's own loader fetches the same tarball and records its sha256.
    import keras

    source = os.path.join(os.path.dirname(keras.__file__), "src", "datasets",
                          name + ".py")
    if not os.path.exists(source):
        pytest.skip("this Keras keeps its loaders elsewhere")
    text = open(source, encoding="utf-8").read()
    (remote,) = data.DOWNLOADS[name]
    assert remote.digest in text and remote.urls[0] in text


def test_the_command_stages_a_dataset_and_says_how_runs_read_it(monkeypatch, tmp_path,
                                                                 mnist_files):
    sources, arrays = mnist_files
    _serve(monkeypatch, "mnist", sources)
    target = tmp_path / "staged"
    result = CliRunner().invoke(main, ["data", "download", "--dataset", "mnist",
                                       "--data-dir", str(target)])
    assert result.exit_code == 0, result.output
    assert result.output == (f"mnist: verified in {target}; train with --dataset mnist "
                             f"--data-dir {target}\n")
    np.testing.assert_array_equal(data.load("mnist", target).x_test[..., 0], arrays[2])


@pytest.mark.parametrize("dataset, fragment", [
    ("mnist", "could not fetch"),  # every mirror leads nowhere
    ("digits", "digits"),          # ships with the package
    ("imagenet", "imagenet"),
])
def test_the_command_on_bad_input_is_one_line_and_keeps_nothing(monkeypatch, tmp_path,
                                                                mnist_files, dataset, fragment):
    sources, _ = mnist_files
    _serve(monkeypatch, "mnist", sources, urls=lambda p: ("file:///nowhere/x.gz",))
    target = tmp_path / "staged"
    result = CliRunner().invoke(main, ["data", "download", "--dataset", dataset,
                                       "--data-dir", str(target)])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert fragment in one_error_line(result)
    assert not target.exists() or os.listdir(target) == []
