"""Saving and loading a model's full training state, safely.

A state file (`.weights.h5`) holds the weights, the masks, batch-norm
statistics, the optimizer's slots (momentum) and its iteration counter:
everything a rewind restores. It holds data only, never code.
"""

import pathlib
import warnings

import keras

from keras_lottery import files
from keras_lottery.sparse import pruning
from keras_lottery.errors import LotteryError


def save_state(model, path):
    """Saves the model's full state (`save_weights`) to `path` atomically.

    The file is written under a temporary name and renamed; if writing fails
    half-way (a full disk, say), the temporary file is removed and any
    previous file at `path` is left as it was.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.replacing(path) as tmp:
        model.save_weights(tmp)


def load_state(model, path, iteration=None, *, keep_masks=False):
    """Loads a full state into a compiled model, or fails loudly.

    Keras restores the optimizer's momentum and iteration only if the
    optimizer is already built, and otherwise skips them with nothing but a
    warning; this builds it first and turns any skipped optimizer state into
    an error. Masks are part of the state, so loading a checkpoint from
    before pruning brings its masks back (all ones): to rewind with the
    masks you have, pass `keep_masks=True` (`model.load_weights` would
    silently reset them).

    Example (rewinding by hand):

    >>> keras_lottery.prune(model, 0.2)                 # the trained weights
    >>> keras_lottery.load_state(model, "ckpt/checkpoint_iter_100.weights.h5",
    ...                          100, keep_masks=True)  # weights from k, new masks

    Args:
        model: a compiled model of the same architecture.
        path: a `.weights.h5` state file.
        iteration: if given, the optimizer iteration the file must hold.
        keep_masks: keep the model's masks (and zero the loaded kernels and
            momentum where they prune) instead of loading the file's.

    Raises:
        LotteryError: the file is unreadable, from another architecture,
            lacks optimizer state, or holds another iteration.
    """
    if getattr(model, "optimizer", None) is None:
        raise LotteryError("compile the model before loading a training state")
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    masks = pruning.get_masks(model) if keep_masks else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as e:  # h5py/Keras errors for corrupt files vary
            raise LotteryError(
                f"checkpoint {path} cannot be loaded ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); it may be "
                "truncated or from another architecture"
            ) from None
    for w in caught:
        if "optimizer" in str(w.message).lower() or "skipping" in str(w.message).lower():
            raise LotteryError(
                f"checkpoint {path}: optimizer state was not restored "
                f"({str(w.message).splitlines()[0]})"
            )
    found = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if iteration is not None and found != iteration:
        raise LotteryError(
            f"checkpoint {path} holds iteration {found}, expected {iteration}"
        )
    if masks is not None:
        pruning.set_masks(model, masks)
    return found
