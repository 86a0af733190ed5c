import os
import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import IterationCheckpoint

BATCH = 2
STEPS_PER_EPOCH = 5
ITERS = [0, 3, 5, 7, 10]


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * STEPS_PER_EPOCH, 4)).astype("float32")
    y = rng.integers(0, 3, size=(BATCH * STEPS_PER_EPOCH,)).astype("int32")
    return x, y


def _model(initial=None, steps_per_execution=1):
    model = keras.Sequential([
        keras.Input((4,)),
        kl.MaskedDense(8, activation="relu"),
        kl.MaskedDense(3),
    ])
    model.compile(
        optimizer=kl.MomentumSGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )
    model.optimizer.build(model.trainable_variables)
    if initial is not None:
        model.set_weights(initial)
    return model


def _initial():
    keras.utils.set_random_seed(1)
    return [w.copy() for w in _model().get_weights()]


def _state(model):
    weights = [np.array(w) for w in model.get_weights()]
    slots = [
        keras.ops.convert_to_numpy(model.optimizer.slot(v)).copy()
        for v in model.trainable_variables
    ]
    return weights, slots, int(model.optimizer.iterations)


def _load(path, initial):
    # A fresh model with different weights, its optimizer built first.
    model = _model([np.full_like(w, 7.0) for w in initial])
    model.load_weights(path)
    return model


def _assert_state_equal(a, b):
    wa, sa, ia = a
    wb, sb, ib = b
    assert ia == ib
    assert len(wa) == len(wb) and len(sa) == len(sb)
    for x, y in zip(wa + sa, wb + sb):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def _reference(initial, steps):
    """A separate run from the same start, stopped after `steps` updates."""
    x, y = _data()
    model = _model(initial)
    full, rest = divmod(steps, STEPS_PER_EPOCH)
    if full:
        model.fit(x, y, batch_size=BATCH, epochs=full, shuffle=False, verbose=0)
    if rest:
        n = rest * BATCH
        model.fit(x[:n], y[:n], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == steps
    return _state(model)


def _files(directory):
    return sorted(os.listdir(directory))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "checkpoints"
    initial = _initial()
    model = _model(initial)
    x, y = _data()
    model.fit(
        x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
        callbacks=[IterationCheckpoint(directory, ITERS)],
    )
    return directory, initial, model


def test_files_exactly_for_requested_iterations(trained):
    directory, _, _ = trained
    want = sorted(
        [f"checkpoint_iter_{i}.weights.h5" for i in ITERS]
        + ["checkpoint_iter_final.weights.h5"]
    )
    assert _files(directory) == want


def test_iteration_zero_is_initial_state(trained):
    directory, initial, _ = trained
    model = _load(directory / "checkpoint_iter_0.weights.h5", initial)
    weights, slots, iterations = _state(model)
    assert iterations == 0
    for w, w0 in zip(weights, initial):
        np.testing.assert_array_equal(w, w0)
    for s in slots:
        np.testing.assert_array_equal(s, np.zeros_like(s))


@pytest.mark.parametrize("n", [3, 7])
def test_checkpoint_n_equals_run_stopped_at_n(trained, n):
    directory, initial, _ = trained
    loaded = _state(_load(directory / f"checkpoint_iter_{n}.weights.h5", initial))
    assert loaded[2] == n
    _assert_state_equal(loaded, _reference(initial, n))
    # And it differs from the previous checkpoint (the comparison can fail).
    previous = ITERS[ITERS.index(n) - 1]
    other = _state(_load(directory / f"checkpoint_iter_{previous}.weights.h5", initial))
    assert max(np.abs(a - b).max() for a, b in zip(loaded[0], other[0])) > 1e-4


def test_iteration_counts_in_all_checkpoints(trained):
    directory, initial, _ = trained
    for n in ITERS:
        model = _load(directory / f"checkpoint_iter_{n}.weights.h5", initial)
        assert int(model.optimizer.iterations) == n


def test_final_is_end_state(trained):
    directory, initial, model = trained
    loaded = _state(_load(directory / "checkpoint_iter_final.weights.h5", initial))
    assert loaded[2] == 10
    _assert_state_equal(loaded, _state(model))
    ten = _state(_load(directory / "checkpoint_iter_10.weights.h5", initial))
    _assert_state_equal(loaded, ten)


def test_save_final_false(tmp_path):
    initial = _initial()
    model = _model(initial)
    x, y = _data()
    model.fit(
        x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
        callbacks=[IterationCheckpoint(tmp_path / "c", [2], save_final=False)],
    )
    assert _files(tmp_path / "c") == ["checkpoint_iter_2.weights.h5"]


def test_steps_per_execution_skipping_a_checkpoint_fails_early(tmp_path):
    initial = _initial()
    model = _model(initial, steps_per_execution=2)
    x, y = _data()
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.fit(
            x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
            callbacks=[IterationCheckpoint(tmp_path / "c", [0, 3])],
        )
    assert not (tmp_path / "c" / "checkpoint_iter_3.weights.h5").exists()
    assert int(model.optimizer.iterations) == 0  # failed before the first step
    assert not [f for f in _files(tmp_path / "c") if f.startswith(".tmp")]


def test_steps_per_execution_dividing_checkpoints_works(tmp_path):
    initial = _initial()
    model = _model(initial, steps_per_execution=2)
    x, y = _data()
    model.fit(
        x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
        callbacks=[IterationCheckpoint(tmp_path / "c", [0, 2, 4])],
    )
    assert _files(tmp_path / "c") == [
        "checkpoint_iter_0.weights.h5", "checkpoint_iter_2.weights.h5",
        "checkpoint_iter_4.weights.h5", "checkpoint_iter_final.weights.h5",
    ]
    for n in (2, 4):
        loaded = _load(tmp_path / "c" / f"checkpoint_iter_{n}.weights.h5", initial)
        assert int(loaded.optimizer.iterations) == n
    final = _load(tmp_path / "c" / "checkpoint_iter_final.weights.h5", initial)
    assert int(final.optimizer.iterations) == 5
    _assert_state_equal(_state(final), _state(model))


def _failing_after(model, monkeypatch, good_calls):
    real = model.save_weights
    calls = []

    def save_weights(path, *args, **kwargs):
        calls.append(str(path))
        if len(calls) <= good_calls:
            return real(path, *args, **kwargs)
        with open(path, "wb") as f:
            f.write(b"\x89HDF partial")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_weights", save_weights)
    return calls


def test_failing_save_leaves_no_partial_file(tmp_path, monkeypatch):
    initial = _initial()
    model = _model(initial)
    x, y = _data()
    calls = _failing_after(model, monkeypatch, good_calls=1)
    with pytest.raises(OSError, match="disk full"):
        model.fit(
            x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
            callbacks=[IterationCheckpoint(tmp_path / "c", [0, 3])],
        )
    assert len(calls) == 2
    # The partial bytes went to a temporary name, never to the final one.
    assert not calls[1].endswith(os.sep + "checkpoint_iter_3.weights.h5")
    assert _files(tmp_path / "c") == ["checkpoint_iter_0.weights.h5"]
    loaded = _load(tmp_path / "c" / "checkpoint_iter_0.weights.h5", initial)
    assert int(loaded.optimizer.iterations) == 0
    for w, w0 in zip(loaded.get_weights(), initial):
        np.testing.assert_array_equal(w, w0)


def test_failing_save_keeps_existing_file(tmp_path, monkeypatch):
    initial = _initial()
    model = _model(initial)
    callback = IterationCheckpoint(tmp_path / "c", [0])
    callback.set_model(model)
    callback.save("final")
    path = tmp_path / "c" / "checkpoint_iter_final.weights.h5"
    before = path.read_bytes()
    _failing_after(model, monkeypatch, good_calls=0)
    with pytest.raises(OSError):
        callback.save("final")
    assert path.read_bytes() == before
    assert _files(tmp_path / "c") == ["checkpoint_iter_final.weights.h5"]
    assert "final" in callback.written and callback.written.count("final") == 1


def test_negative_iteration_rejected(tmp_path):
    with pytest.raises(ValueError):
        IterationCheckpoint(tmp_path, [-1, 3])


@pytest.mark.parametrize("iterations, fragment", [
    (5, "`iterations` must be a list of integers >= 0, e.g. [0, 100, 500], got 5"),
    ("0,10", "`iterations` must be a list of integers >= 0, e.g. [0, 100, 500], got '0,10'"),
    ([0, 2.5], "`iterations` must be integers >= 0, got [0, 2.5]"),
    ([0, True], "`iterations` must be integers >= 0, got [0, True]"),
])
def test_iterations_that_are_not_a_list_of_integers_are_clear_errors(tmp_path, iterations,
                                                                     fragment):
    # "0,10" would otherwise be iterated as the characters "0", ",", "1", "0".
    with pytest.raises(ValueError) as info:
        IterationCheckpoint(tmp_path / "ck", iterations)
    assert str(info.value) == fragment
    assert not (tmp_path / "ck").exists()



def test_steps_per_execution_with_partial_last_execution(tmp_path):
    # 5 steps per epoch, steps_per_execution=2: callbacks run after 2, 4, 5
    # and then 7, 9, 10 updates, so all of these are reachable.
    initial = _initial()
    model = _model(initial, steps_per_execution=2)
    x, y = _data()
    iters = [0, 2, 4, 5, 7, 9, 10]
    model.fit(
        x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
        callbacks=[IterationCheckpoint(tmp_path / "c", iters)],
    )
    assert _files(tmp_path / "c") == sorted(
        [f"checkpoint_iter_{i}.weights.h5" for i in iters]
        + ["checkpoint_iter_final.weights.h5"]
    )
    for n in iters:
        loaded = _load(tmp_path / "c" / f"checkpoint_iter_{n}.weights.h5", initial)
        assert int(loaded.optimizer.iterations) == n, n


def test_steps_per_execution_check_covers_later_epochs(tmp_path):
    # Epoch 2 covers iterations 6..10 and is called back at 7, 9, 10 only:
    # iteration 8 cannot be saved, so fit must refuse (and never write a
    # checkpoint_iter_8 holding another iteration).
    initial = _initial()
    model = _model(initial, steps_per_execution=2)
    x, y = _data()
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.fit(
            x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
            callbacks=[IterationCheckpoint(tmp_path / "c", [0, 4, 8])],
        )
    assert not (tmp_path / "c" / "checkpoint_iter_8.weights.h5").exists()
    assert int(model.optimizer.iterations) < 8


def _fp16_model(wrapper):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), kl.MaskedDense(8, dtype="mixed_float16"),
                              kl.MaskedDense(3, dtype="mixed_float16")])
    # A first loss scale so large that the first steps overflow.
    model.compile(optimizer=wrapper(kl.MomentumSGD(0.1), initial_scale=2.0**40),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_skipped_updates_that_do_not_count_are_refused(tmp_path):
    model = _fp16_model(keras.optimizers.LossScaleOptimizer)
    x, y = _data()
    with pytest.raises(ValueError, match="keras_lottery.LossScaleOptimizer"):
        model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                  callbacks=[IterationCheckpoint(tmp_path / "k", [3])])
    assert not (tmp_path / "k" / "checkpoint_iter_3.weights.h5").exists()

    model = _fp16_model(kl.LossScaleOptimizer)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[IterationCheckpoint(tmp_path / "ours", [3, 7])])
    assert float(model.optimizer.dynamic_scale.numpy()) < 2.0**40  # steps were skipped
    for step in [3, 7]:
        again = _fp16_model(kl.LossScaleOptimizer)
        assert kl.load_state(again, tmp_path / "ours" / f"checkpoint_iter_{step}.weights.h5") == step


def test_gradient_accumulation_is_not_mistaken_for_skipped_updates(tmp_path):
    # With accumulation, optimizer.iterations counts updates, not steps.
    model = keras.Sequential([keras.Input((4,)), kl.MaskedDense(3)])
    model.compile(optimizer=kl.MomentumSGD(0.1, gradient_accumulation_steps=2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[IterationCheckpoint(tmp_path / "c", [4], save_final=False)])
    assert _files(tmp_path / "c") == ["checkpoint_iter_4.weights.h5"]


def test_a_resumed_fit_finds_its_own_files_and_keeps_them(tmp_path):
    # Resuming at a checkpoint iteration (3) must not write that file again;
    # a file of another pattern in the folder is not one of its own.
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "checkpoint_iter_7.weights.h5").write_bytes(b"not ours")
    x, y = _data()
    model = _model(_initial())
    with pytest.warns(UserWarning, match=r"iterations \[7\] lie past the end of this fit"):
        model.fit(x[:3 * BATCH], y[:3 * BATCH], batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0, callbacks=[IterationCheckpoint(
                      directory, [0, 3, 7], filename="state-{iteration}.weights.h5")])
    first = {name: os.stat(directory / name).st_ino
             for name in ("state-0.weights.h5", "state-3.weights.h5")}

    again = IterationCheckpoint(directory, [0, 3, 7], filename="state-{iteration}.weights.h5")
    assert again.on_disk() == [0, 3]
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[again])
    assert int(model.optimizer.iterations) == 8
    # save_state replaces a file atomically, so a rewritten one is a new inode.
    assert {name: os.stat(directory / name).st_ino for name in first} == first
    assert again.written == [0, 3, 7, "final"]
    assert _files(directory) == ["checkpoint_iter_7.weights.h5", "state-0.weights.h5",
                                 "state-3.weights.h5", "state-7.weights.h5",
                                 "state-final.weights.h5"]
    assert (directory / "checkpoint_iter_7.weights.h5").read_bytes() == b"not ours"


@pytest.mark.parametrize("filename", ["state.weights.h5", "state-{iteration}.h5"])
def test_a_file_name_pattern_without_iteration_or_weights_suffix_is_refused(tmp_path, filename):
    with pytest.raises(ValueError, match=r"`filename` must contain \{iteration\} and end in "
                                         r"\.weights\.h5 .*got '" + filename.replace(".", r"\.")
                                         .replace("{", r"\{").replace("}", r"\}") + "'"):
        IterationCheckpoint(tmp_path / "ck", [0], filename=filename)
    assert not (tmp_path / "ck").exists()


def test_an_iteration_past_the_end_of_training_is_named_not_silently_missing(tmp_path):
    x, y = _data()
    model = _model(_initial())
    with pytest.warns(UserWarning) as caught:
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[IterationCheckpoint(tmp_path / "c", [2, 50, 9])])
    messages = [str(w.message) for w in caught if "IterationCheckpoint" in str(w.message)]
    assert messages == [
        "IterationCheckpoint: iterations [9, 50] lie past the end of this fit (iteration 5) "
        "and were not written; a later fit that continues the training writes them, or ask "
        "only for iterations up to the end of training"]
    assert _files(tmp_path / "c") == ["checkpoint_iter_2.weights.h5",
                                      "checkpoint_iter_final.weights.h5"]


def test_a_fit_that_reaches_every_iteration_or_does_not_end_training_warns_nothing(tmp_path):
    x, y = _data()
    model = _model(_initial())
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="IterationCheckpoint")
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[IterationCheckpoint(tmp_path / "a", [0, 5])])
        # save_final=False: the caller fits in segments, as the procedures do.
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[IterationCheckpoint(tmp_path / "b", [12], save_final=False)])
    assert _files(tmp_path / "a") == ["checkpoint_iter_0.weights.h5",
                                      "checkpoint_iter_5.weights.h5",
                                      "checkpoint_iter_final.weights.h5"]
