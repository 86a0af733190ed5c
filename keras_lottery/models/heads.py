"""What a classifier outputs: logits, or probabilities from a softmax head.

Runs train single-label classifiers with sparse categorical cross-entropy
(`keras_lottery.training.compile`). Its `from_logits` follows the model:
True when the output layer has no activation (logits, the convention of
the paper's networks), False when it ends in a softmax (every
`keras.applications` classifier by default: a `Dense(..., "softmax")`, an
`Activation("softmax")` or a `Softmax` layer, in a nested model too). A
sigmoid head scores each output on its own (multi-label, or one binary
output), not a distribution over the classes: it is refused, naming the fix.
"""

import keras

from keras_lottery.errors import LotteryError

SOFTMAX = "softmax"
SIGMOID = "sigmoid"
_ACTIVATIONS = {SOFTMAX: keras.activations.softmax, SIGMOID: keras.activations.sigmoid}


def output_layer(model):
    """The layer that makes a single-output model's output (looked for
    inside a nested model that ends it), or None."""
    while isinstance(model, keras.Model):
        outputs = getattr(model, "outputs", None)
        if not model.layers or (outputs is not None and len(outputs) != 1):
            return None
        # A single-output graph lists its layers in topological order, so
        # the layer that makes the output comes last.
        model = model.layers[-1]
    return model


def output_activation(model):
    """"softmax", "sigmoid", or None (logits, or anything else) for the
    activation `model`'s output ends in."""
    layer = output_layer(model)
    if isinstance(layer, keras.layers.Softmax):
        return SOFTMAX
    activation = getattr(layer, "activation", None)
    return next((name for name, function in _ACTIVATIONS.items()
                 if activation is function), None)


def from_logits(model, param="model"):
    """Whether `model` outputs logits (False: softmax probabilities).

    Raises:
        LotteryError: the model ends in a sigmoid.
    """
    head = output_activation(model)
    if head == SIGMOID:
        raise LotteryError(
            f"its output layer '{output_layer(model).name}' ends in a sigmoid, which "
            "scores each output on its own; runs train single-label classifiers "
            "with cross-entropy over the classes: end the model in logits "
            "(activation=None) or a softmax, one output per class",
            param=param, value=model.name)
    return head != SOFTMAX


def check_loss(model, loss, param="loss"):
    """Refuses a cross-entropy `loss` whose `from_logits` contradicts what
    `model` outputs (a loss without that option is taken as given)."""
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    given = config.get("from_logits") if isinstance(config, dict) else None
    if not isinstance(given, bool):
        return
    logits = from_logits(model)
    if given != logits:
        outputs = "logits" if logits else "softmax probabilities"
        raise LotteryError(
            f"has from_logits={given}, but the model outputs {outputs}: pass "
            f"from_logits={logits}, or leave loss out to follow the model",
            param=param, value=type(loss).__name__)
