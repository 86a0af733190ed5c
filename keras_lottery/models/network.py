"""The network a run trains: a registered architecture or the user's own.

A run names a registered architecture (`keras_lottery.models`) or stores
the Keras config of a model of the user's own in its model.json; either way
it is rebuilt from that under the run's seed, so seeds choose the
initialization. A user model is filed under a name derived from its config
(`sequential-3f2a9c1d`), not its Python name, so re-running a notebook cell
(which renames `sequential` to `sequential_1`) resumes the same run.
"""

import collections
import difflib
import hashlib
import inspect
import json
import pathlib
import re

import keras

from keras_lottery import models
from keras_lottery.models import heads
from keras_lottery.sparse import held
from keras_lottery.sparse import pruning
from keras_lottery.sparse.conversion import TO_MASKED
from keras_lottery.sparse.conversion import masked
from keras_lottery import plugins
from keras_lottery import saving
from keras_lottery.errors import LotteryError

Arch = collections.namedtuple("Arch", ["name", "model_json", "fingerprint"])


def resolve(arch, data=None, name=None):
    """The `Arch` of an architecture: a registered name, a Keras model, a
    saved `.keras` file (loaded in safe mode) or `package.module:function`
    (a builder returning a model; given `input_shape` and `num_classes` of
    `data` if it takes them).

    Unknown names fail here. A model with plain Conv2D/Dense (and the other
    kernel layers) is converted with `keras_lottery.masked` first.
    """
    if isinstance(arch, str) and arch.endswith(".keras"):
        return resolve(_load_file(arch), data, pathlib.Path(arch).stem)
    if isinstance(arch, str) and ":" in arch:
        return resolve(_call_builder(arch, data), data, arch.rpartition(":")[2])
    if isinstance(arch, str):
        check_name(arch)
        return Arch(arch, None, None)
    if isinstance(arch, keras.Model):
        if not _is_masked(arch):
            arch = masked(arch)
        model_json = arch.to_json()
        fingerprint = config_fingerprint(model_json)
        base = re.sub(r"_\d+$", "", name or arch.name) or "model"
        return Arch(f"{base}-{fingerprint[:8]}", model_json, fingerprint)
    raise LotteryError(
        f"expected an architecture name or a keras.Model, got {type(arch).__name__}",
        param="arch", value=arch,
    )


def _is_masked(model):
    """Whether `model` has masked layers and no plain layer `masked()` would
    convert (a model of your own written with masked layers is kept)."""
    try:
        pruning.masked_layers(model)
    except ValueError:
        return False
    return not any(type(layer) in TO_MASKED for layer in pruning.iter_layers(model))


def check_name(arch):
    """Refuses a string that is neither a registered architecture, a
    `.keras` file nor a `module:function`, suggesting the closest name."""
    if not isinstance(arch, str) or arch.endswith(".keras") or ":" in arch:
        return
    if arch not in models.available():
        close = difflib.get_close_matches(arch, models.available(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise LotteryError(
            f"unknown architecture{hint}; available: {', '.join(models.available())}"
            ", or a FILE.keras, or package.module:function", param="arch", value=arch,
        )


def _load_file(path):
    if not pathlib.Path(path).is_file():
        raise LotteryError("no such model file", param="arch", value=path)
    try:
        return saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise LotteryError(
            f"cannot be loaded safely ({type(e).__name__}: {_first_line(e)}); "
            "save the model with model.save('net.keras') (no Lambda layers)",
            param="arch", value=path,
        ) from None


def _call_builder(spec, data):
    builder = plugins.load(spec, param="arch", what="returns a Keras model")
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # a builtin without a signature
        signature = None
    given = {} if data is None else {"input_shape": data.image_shape,
                                     "num_classes": data.num_classes}
    if signature is not None:
        given = {k: v for k, v in given.items() if k in signature.parameters}
        try:
            signature.bind(**given)
        except TypeError as e:
            raise LotteryError(
                f"cannot be called with input_shape and num_classes alone ({e}); "
                "a builder takes those, or no arguments", param="arch", value=spec,
            ) from None
    model = builder(**given)
    if not isinstance(model, keras.Model):
        raise LotteryError(f"returned a {type(model).__name__}, not a keras.Model",
                           param="arch", value=spec)
    return model


def _first_line(error):
    return str(error).splitlines()[0] if str(error) else ""


def config_fingerprint(model_json):
    """sha256 of a model config with its generated names made positional.

    Keras numbers unnamed layers per session (`dense`, `dense_1`, ...), so
    the same network built twice has different names; the fingerprint
    replaces every layer's and the model's name by its position first.
    """
    config = json.loads(model_json)
    names = [config.get("config", {}).get("name")]
    names += [layer.get("config", {}).get("name")
              for layer in config.get("config", {}).get("layers", [])]
    positional = {name: f"#{i}" for i, name in enumerate(names) if isinstance(name, str)}

    def rename(value):
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return positional.get(value, value) if isinstance(value, str) else value

    canonical = json.dumps(rename(config), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build(name, model_json, data, weight_decay=None):
    """A freshly initialized model: from `model_json` when given (read
    with Keras's safe mode; it keeps its own regularizers), else the
    registered architecture sized to the data, with `weight_decay` (None:
    the architecture's default)."""
    if model_json is not None:
        return from_json(model_json, "the model config")
    try:
        return models.build(name, num_classes=data.num_classes,
                            input_shape=data.image_shape, weight_decay=weight_decay)
    except ValueError as e:
        raise LotteryError(str(e)) from None


def from_json(model_json, where):
    """A model rebuilt from its JSON config in Keras's safe mode: a config
    that would run code (a Lambda layer's pickled function) is refused.

    The config is a masked model's (`resolve` converts first), so layers of
    your own get their kernel layers masked again (`held.converting_held`).
    """
    try:
        with held.converting_held(TO_MASKED) as custom_objects:
            return keras.models.model_from_json(model_json, custom_objects=custom_objects)
    except Exception as e:
        raise LotteryError(
            f"{where} cannot be loaded safely ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); models that "
            "need code from the run directory are refused"
        ) from None


def check_fits(model, data):
    """Refuses, before anything is written, a model whose input shape or
    number of outputs does not match the data, or that ends in a sigmoid."""
    heads.from_logits(model, param="arch")
    expected = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    if expected is not None and None not in expected and expected != data.image_shape:
        raise LotteryError(
            f"the model takes inputs of shape {expected} but the data's are "
            f"{data.image_shape}; build the model for the data",
            param="dataset", value=data.name,
        )
    outputs = model.output_shape[-1] if hasattr(model, "output_shape") else None
    if isinstance(outputs, int) and outputs != data.num_classes:
        raise LotteryError(
            f"the model has {outputs} outputs but the data has "
            f"{data.num_classes} classes; give the model one logit per class",
            param="dataset", value=data.name,
        )

