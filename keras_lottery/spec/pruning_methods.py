"""The original code's pruning-method names, read into this package's
arguments (`--pruning-method`, `pruning_method=`, a study file's
`pruning_method`); the pruners they name are in
`keras_lottery.sparse.original` and `keras_lottery.sparse.structured`.
Imports no backend, so a name is checked before TensorFlow loads.
"""

import re

from keras_lottery.errors import LotteryError
from keras_lottery.sparse import filter_configs

_NUMBER = r"(\d+(?:\.\d+)?)"
_STRUCTURED = re.compile(r"prune_(vgg16|resnet56|resnet110|resnet34)_([AB])(?:_(\d+))?$")


def parse(name):
    """What the original's pruning-method `name` asks for, as this
    package's arguments: {"pruner", "density", "filters", "level",
    "pruner_options"} (None where it says nothing).

    Raises:
        LotteryError: a name the original did not have (its dead
            `prune_resnet20_structured_discovered` included).
    """
    found = dict(pruner=None, density=None, filters=None, level=None, pruner_options=None)
    text = name if isinstance(name, str) else ""
    rules = [
        (rf"prune_all_to_global_{_NUMBER}$", lambda p: dict(density=float(p) / 100)),
        (rf"zprune_all_to_global_{_NUMBER}$",
         lambda p: dict(pruner="zscore", density=float(p) / 100)),
        (rf"(z?)prune_global_{_NUMBER}(_fc)?(?:_nofc)?$", _conv_global),
    ]
    for pattern, read in rules:
        match = re.match(pattern, text)
        if match:
            return dict(found, **read(*match.groups()))
    match = _STRUCTURED.match(text)
    if match:
        net, config, level = match.groups()
        filters = f"{net}-{config}"
        if filters in filter_configs.CONFIGS:
            return dict(found, filters=filters, level=int(level or 1))
    raise LotteryError(
        "is not a pruning method of the original code; it had prune_all_to_global_P, "
        "zprune_all_to_global_P, prune_global_P[_fc], zprune_global_P[_fc] and "
        "prune_NET_A|B[_I] (NET: resnet56, resnet110, resnet34, vgg16)",
        param="pruning_method", value=name)


def _conv_global(z, percent, fc):
    options = {"remove": float(percent) / 100}
    if fc:
        options["fc"] = True
    if z:
        options["zscore"] = True
    return dict(pruner="conv-global", pruner_options=options)
