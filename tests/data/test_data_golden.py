"""Pinned values: the data a run sees must not change between versions.

The dataset hashes, batch labels and image summaries were recorded with
`keras_lottery/data.py` as it was before it became a package (commit
da2bbfd), so they guard the promise that a resumed or repeated run sees the
same data. Images are compared through weighted sums with a tolerance
(float32 sums may round differently on other CPUs); integer arrays exactly.
"""

import hashlib

import numpy as np
import pytest

from keras_lottery import data


def _sha256(*arrays):
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str} {a.shape}\n".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _summary(images):
    """Four weighted sums: any moved, flipped or rescaled pixel changes them."""
    x = images.astype(np.float64).reshape(len(images), -1)
    return (x @ np.cos(np.arange(x.shape[1]) * 0.7))[:4]


@pytest.fixture(scope="module")
def synthetic():
    return data.load("synthetic", seed=0)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def test_datasets_are_unchanged(synthetic, digits):
    splits = ("x_train", "y_train", "x_test", "y_test")
    assert _sha256(*(getattr(synthetic, s) for s in splits)) == (
        "211b4ffc4ad0c870a4bc433c3cdee54dca2514d6a7fea682f720e868055ba0df"
    )
    assert _sha256(*(getattr(digits, s) for s in splits)) == (
        "af15b6568d6698faed21d09804dd629ea459638da4a3233d8456d9074c9842d7"
    )


# (augment, item) -> (sha256 of the labels, image summary); seed 5, batch 64,
# start_step 3.
SYNTHETIC_BATCHES = {
    (True, 0): ("ee2f93e34f4d289bb2649be6a3bf7232a07de2e06ec757528fc9b966a4ec9afd",
                [-29.672829, 68.356167, 5.197739, 18.4997]),
    (True, 5): ("76ec1e097c26e08a1db334a51015e0f68be06e61b9bc1eb8fa21fc3e7ae8c9d1",
                [39.837457, 48.386764, 38.515114, -17.290102]),
    (False, 0): ("ee2f93e34f4d289bb2649be6a3bf7232a07de2e06ec757528fc9b966a4ec9afd",
                 [0.077471, 85.830526, -8.314192, -11.154146]),
    (False, 5): ("76ec1e097c26e08a1db334a51015e0f68be06e61b9bc1eb8fa21fc3e7ae8c9d1",
                 [-38.513036, 13.960071, 55.584381, 15.51341]),
}


@pytest.mark.parametrize("augment, item", sorted(SYNTHETIC_BATCHES))
def test_training_batches_are_unchanged(synthetic, augment, item):
    batches = data.TrainBatches(
        synthetic.x_train, synthetic.y_train, 64, seed=5, start_step=3,
        num_steps=20, augment=augment, normalize=synthetic.normalize,
    )
    images, labels = batches[item]
    label_hash, summary = SYNTHETIC_BATCHES[(augment, item)]
    assert _sha256(labels) == label_hash
    np.testing.assert_allclose(_summary(images), summary, rtol=1e-5, atol=1e-4)


def test_digits_batches_are_unchanged(digits):
    train = data.TrainBatches(
        digits.x_train, digits.y_train, 128, seed=2, num_steps=30,
        augment=digits.augment, normalize=digits.normalize,
    )
    images, labels = train[11]
    assert _sha256(labels) == (
        "303b772e3140f716053c05a785bd4459efe590943b2e6378c14ec1eea9a863d7"
    )
    np.testing.assert_allclose(
        _summary(images), [7.561187, 4.107937, -2.78866, 0.66059], rtol=1e-5, atol=1e-4
    )
    images, labels = data.EvalBatches(
        digits.x_test, digits.y_test, 100, normalize=digits.normalize
    )[3]
    assert _sha256(labels) == (
        "895b3da0597c13b84ed1fcdf2aaee9de3a7d02d626b62dbef7d622ac5b2facac"
    )
    np.testing.assert_allclose(
        _summary(images), [1.803229, 10.811679, 5.931244, 10.189192],
        rtol=1e-5, atol=1e-4,
    )


def test_fingerprints_are_unchanged(synthetic, digits):
    # Recorded when fingerprints were introduced; a run stores its data's
    # fingerprint, so the scheme must not change.
    assert digits.fingerprint == (
        "3b7f32ca3959df821ab34d1e9fd9c236dc025d71b4290c46518249dc59b17e14"
    )
    assert synthetic.fingerprint == (
        "2e95c311fcd0aa9b2090ffdd04ead2901cb1c47e5527dcb2b6b2b5474aaf51dd"
    )
