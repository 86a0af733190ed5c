"""Fingerprints of a checkpoint's tensors that survive a change of CPU.

Float results differ in their last bits between CPUs (AVX-512 or AVX2 code
paths of oneDNN and Eigen), so tensors are compared by three sums each --
the sum, the L1 norm and a projection on fixed random weights -- within a
small fraction of the L1 norm: far below what any change of semantics (a
learning rate, a mask, a rewind point) moves them."""

import h5py
import numpy as np

# |difference| allowed, as a fraction of the tensor's L1 norm.
TOLERANCE = 1e-5


def fingerprints(path):
    """{h5 dataset name: [sum, L1 norm, projection, size]} of a checkpoint."""
    found = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            flat = np.asarray(item[()], dtype=np.float64).ravel()
            weights = np.random.default_rng(0).standard_normal(flat.size)
            found[name] = [float(flat.sum()), float(np.abs(flat).sum()),
                           float(flat @ weights), int(flat.size)]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def differences(found, golden):
    """The tensors whose fingerprints differ beyond `TOLERANCE`."""
    if found.keys() != golden.keys():
        return [f"tensors {sorted(found)} != {sorted(golden)}"]
    wrong = []
    for name, (total, norm, projection, size) in golden.items():
        mine = found[name]
        allowed = TOLERANCE * norm + 1e-9
        if mine[3] != size or any(abs(a - b) > allowed for a, b in
                                  zip(mine[:3], (total, norm, projection))):
            wrong.append(f"{name}: {mine} != {[total, norm, projection, size]}")
    return wrong
