"""`download`: fetch a named dataset's official files into a folder, checked.

Every file is checked against its published checksum before it is kept:
the sha256 of the CIFAR python-version tarballs (as Keras's own loaders
record them) and the md5 the MNIST and Fashion-MNIST distributions publish
for their IDX files. A file is written under a temporary name in the target
folder and renamed only once checked, so a failed download leaves nothing
behind. The folder is then read back with `load`.
"""

import dataclasses
import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.request

from keras_lottery.data import catalog
from keras_lottery.data import checks
from keras_lottery.errors import LotteryError

_CHUNK = 1 << 20
_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class Remote:
    """One official file.

    Attributes:
        filename: Its name in the data folder (while fetched).
        urls: Mirrors, tried in order until one gives the right bytes.
        algorithm: `hashlib` name of the published checksum.
        digest: The published checksum, hex.
        extract: For a tarball, the folder it holds, which is kept instead of
            the tarball; `None` keeps the file itself.
    """

    filename: str
    urls: tuple
    algorithm: str
    digest: str
    extract: str | None = None


def _idx_remotes(mirrors, digests):
    return tuple(
        Remote(name, tuple(m + name for m in mirrors), "md5", digest)
        for name, digest in digests.items()
    )


_KRIZ = "https://www.cs.toronto.edu/~kriz/"
# The digests are the published ones: CIFAR's sha256 as in Keras's
# `keras/src/datasets/cifar10.py` and `cifar100.py`; the IDX md5s as the
# Fashion-MNIST README and torchvision's MNIST list them.
DOWNLOADS = {
    "cifar10": (Remote(
        "cifar-10-python.tar.gz", (_KRIZ + "cifar-10-python.tar.gz",), "sha256",
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        extract="cifar-10-batches-py",
    ),),
    "cifar100": (Remote(
        "cifar-100-python.tar.gz", (_KRIZ + "cifar-100-python.tar.gz",), "sha256",
        "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        extract="cifar-100-python",
    ),),
    "mnist": _idx_remotes(
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion_mnist": _idx_remotes(
        (
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}
_NO_DOWNLOAD = {
    "digits": "ships with the package",
    "synthetic": "is generated from the seed",
}


def download(name, data_dir):
    """Fetches a named dataset into `data_dir`, in the official layout.

    Files already there with the right checksum (or an already extracted
    folder) are kept, so a second call fetches nothing. Afterwards
    `load(name, data_dir)` reads the folder offline; `download` reads what
    it fetched once, to check it.

    Args:
        name: `"cifar10"`, `"cifar100"`, `"mnist"` or `"fashion_mnist"`.
        data_dir: The folder (created if missing). Use one per dataset:
            MNIST and Fashion-MNIST files have the same names.

    Returns:
        The folder, as a `pathlib.Path`.
    """
    if name in _NO_DOWNLOAD:
        raise LotteryError(
            f"needs no download: it {_NO_DOWNLOAD[name]}; use it without a "
            "data folder", param="name", value=name,
        )
    if name not in DOWNLOADS:
        raise LotteryError(
            f"nothing to download; choose one of: {', '.join(DOWNLOADS)}",
            param="name", value=name,
        )
    folder = pathlib.Path(data_dir)
    created = _make_folder(folder)
    try:
        kept = [_fetch(remote, folder) for remote in DOWNLOADS[name]]
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    # Read back what was fetched (for CIFAR its extracted folder: a binary
    # version already in data_dir would otherwise be read instead).
    extracted = [r.extract for r in DOWNLOADS[name] if r.extract is not None]
    try:
        catalog.load(name, folder / extracted[0] if extracted else folder)
    except LotteryError as e:
        if any(kept):  # the damage was there before this call
            raise LotteryError(
                f"{folder} already holds damaged files ({e}); remove them and "
                "run download again"
            ) from None
        raise
    return folder


def _make_folder(folder):
    """Creates `folder` if needed; returns whether it did."""
    if folder.is_dir():
        return False
    try:
        folder.mkdir(parents=True)
    except OSError as e:
        raise LotteryError(
            f"cannot create it ({checks.one_line(e)}); pass a folder you can write",
            param="data_dir", value=os.fspath(folder),
        ) from None
    return True


def _fetch(remote, folder):
    """Puts one checked file (or its extracted folder) into `folder`.

    Returns:
        Whether it was already there (so nothing was fetched).
    """
    if remote.extract is not None and (folder / remote.extract).is_dir():
        return True
    target = folder / remote.filename
    if remote.extract is None and target.exists():
        if _digest(target, remote.algorithm) == remote.digest:
            return True
        raise LotteryError(
            f"{target}: exists but its {remote.algorithm} is not the official "
            f"{remote.filename}'s (another dataset's, or damaged); remove it, or "
            "use a folder of its own for each dataset"
        )
    part = _download_checked(remote, folder)
    try:
        if remote.extract is None:
            os.replace(part, target)
        else:
            _extract(part, remote, folder)
    finally:
        if os.path.exists(part):
            os.remove(part)
    return False


def _download_checked(remote, folder):
    """The path of a temporary file in `folder` holding the checked bytes."""
    failures = []
    for url in remote.urls:
        fd, part = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part",
                                    dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _copy_hashing(url, out, remote.algorithm)
        except Exception as e:  # Network errors vary by platform and scheme.
            os.remove(part)
            failures.append(f"{url}: {checks.one_line(e)}")
            continue
        except BaseException:
            os.remove(part)
            raise
        if digest == remote.digest:
            return part
        os.remove(part)
        failures.append(
            f"{url}: {remote.algorithm} {digest}, expected {remote.digest}"
        )
    raise LotteryError(
        f"could not fetch {remote.filename} ({'; '.join(failures)}); nothing was "
        f"kept in {folder}; try again later, or fetch it by hand from "
        f"{remote.urls[0]}"
    )


def _copy_hashing(url, out, algorithm):
    digest = hashlib.new(algorithm)
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extract(archive, remote, folder):
    """Extracts the tarball's `remote.extract` folder into `folder`."""
    if not hasattr(tarfile, "data_filter"):  # added in 3.10.12 and 3.11.4
        raise LotteryError(
            f"this Python's tarfile cannot extract {remote.filename} safely; use "
            "Python >= 3.10.12 or 3.11.4, or extract it by hand into data_dir"
        )
    staging = tempfile.mkdtemp(prefix=".extract-", dir=folder)
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                # "data" refuses absolute paths, links out, devices.
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise LotteryError(
                f"{remote.filename}: checksum matched but the archive does not "
                f"extract ({checks.one_line(e)}); try again later"
            ) from None
        inner = os.path.join(staging, remote.extract)
        if not os.path.isdir(inner):
            raise LotteryError(
                f"{remote.filename}: holds no {remote.extract}/ folder; the mirror "
                f"serves another file, fetch it by hand from {remote.urls[0]}"
            )
        os.replace(inner, folder / remote.extract)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
