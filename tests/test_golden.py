"""The paper's recipe is bit-identical to what keras_lottery computed
before recipes had presets: the checkpoints (every tensor) and metrics of a
train run and its rewind, rewind-lr and finetune children, compared with
sha256 digests recorded by the code at da2bbfd (tests/data/README.md says
how they were made)."""

import hashlib
import json
import pathlib

import h5py
import pytest

import keras_lottery as kl

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden-renda2020.json"
SMALL = dict(dataset="digits", steps=24, batch_size=32, eval_every=8, verbose=0)


def _digests(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(
            name, hashlib.sha256(item[()].tobytes()).hexdigest())
            if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    base = kl.train("lenet300", seed=3, out=root / "base", recipe="renda2020", **SMALL)
    runs = {"train": base}
    for name, procedure in [("rewind", kl.rewind), ("rewind_lr", kl.rewind_lr),
                            ("finetune", kl.finetune)]:
        runs[name] = procedure(base.path, iteration=7, density=0.5, seed=4,
                               out=root / name, verbose=0)
    return runs


@pytest.mark.parametrize("name", ["train", "rewind", "rewind_lr", "finetune"])
def test_renda2020_checkpoints_and_metrics_are_todays(made, name):
    golden = json.loads(GOLDEN.read_text())
    run = made[name]
    keys = sorted(k.split("/", 1)[1] for k in golden if k.startswith(f"{name}/"))
    assert sorted([str(k) for k in run.checkpoints] + ["metrics"]) == keys
    for key, path in run.checkpoints.items():
        assert _digests(path) == golden[f"{name}/{key}"], f"{name} checkpoint {key}"
    rows = [{k: v for k, v in r.items() if k != "elapsed"} for r in run.metrics]
    assert rows == golden[f"{name}/metrics"]
