import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Two test workers share a GPU where there is one: neither takes it all.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

@pytest.fixture(scope="session")
def digits_family(tmp_path_factory):
    """A LeNet-300-100 run on the bundled digits (12 steps, seed 0) and its
    weight-rewinding child from k = 3 at density 0.5 (seed 1), shared by
    the tests that only read runs."""
    import keras_lottery as kl

    root = tmp_path_factory.mktemp("digits_family")
    parent = kl.train("lenet300", dataset="digits", steps=12, batch_size=32,
                      eval_every=4, checkpoint_iters=[0, 3, 12], seed=0, verbose=0,
                      out=root / "train")
    child = kl.rewind(parent, iteration=3, density=0.5, seed=1, verbose=0,
                      out=root / "rewind")
    return parent, child


@pytest.fixture(scope="session")
def reference_study(tmp_path_factory):
    """The tiny study (tests/tiny_study.py) run uninterrupted by the local
    engine with 2 workers: (folder, output); what other runs of it (killed,
    on Ray, on Slurm) must equal."""
    from tiny_study import run_reference

    return run_reference(tmp_path_factory)
