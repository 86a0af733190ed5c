"""The paper's filter-pruning configurations: Li et al. (2017)'s layer lists.

Renda et al. (2020) prune filters as Li et al.'s "Pruning Filters for
Efficient ConvNets" does, with its configurations: only the
first convolution of a residual block (an even `conv_k`; `conv_1` is the
stem) loses filters, skipping the layers Li et al. found sensitive, each
listed layer a fraction f of its filters (per stage). On VGG-16, `conv_1`
and `conv_8` ... `conv_13` lose half.

| config      | layers (first conv of a block, less the skipped) | f per stage   |
|-------------|---------------------------------------------------|---------------|
| resnet56-A  | conv_2 ... conv_52, skipping 16, 20, 38, 54        | 0.1           |
| resnet56-B  | skipping 16, 18, 20, 34, 38, 54                    | 0.6, 0.3, 0.1 |
| resnet110-A | stage 1 only, skipping 36                          | 0.5           |
| resnet110-B | skipping 36, 38, 74                                | 0.5, 0.4, 0.3 |
| resnet34-A  | 4, 6 / 10, 12 / 18, 20, 22, 24 (stage 4 untouched) | 0.3, 0.3, 0.3 |
| resnet34-B  | the same layers                                    | 0.5, 0.6, 0.4 |
| vgg16-A     | conv_1, conv_8 ... conv_13                         | 0.5           |
"""

import difflib

from keras_lottery import checks
from keras_lottery.errors import LotteryError


def _first_convs(blocks_per_stage):
    """The `k` of each block's first 3×3 conv, per stage: a block's two
    convs follow the stem (`conv_1`), so block b's first one is conv_{2b+2}."""
    stages, k = [], 2
    for blocks in blocks_per_stage:
        stages.append(range(k, k + 2 * blocks, 2))
        k += 2 * blocks
    return stages


def _resnet(blocks_per_stage, skip, fractions):
    """{conv_k: f} of the first convs of the stages with a fraction, less
    the skipped ones."""
    return {f"conv_{k}": fraction
            for convs, fraction in zip(_first_convs(blocks_per_stage), fractions)
            if fraction is not None for k in convs if k not in skip}


_RESNET56, _RESNET110, _RESNET34 = (9, 9, 9), (18, 18, 18), (3, 4, 6, 3)
_RESNET34_SKIP = {2, 8, 14, 16, 26, 28, 30, 32}
CONFIGS = {
    "resnet56-A": _resnet(_RESNET56, {16, 20, 38, 54}, (0.1, 0.1, 0.1)),
    "resnet56-B": _resnet(_RESNET56, {16, 18, 20, 34, 38, 54}, (0.6, 0.3, 0.1)),
    "resnet110-A": _resnet(_RESNET110, {36}, (0.5, None, None)),
    "resnet110-B": _resnet(_RESNET110, {36, 38, 74}, (0.5, 0.4, 0.3)),
    "resnet34-A": _resnet(_RESNET34, _RESNET34_SKIP, (0.3, 0.3, 0.3, None)),
    "resnet34-B": _resnet(_RESNET34, _RESNET34_SKIP, (0.5, 0.6, 0.4, None)),
    "vgg16-A": {f"conv_{k}": 0.5 for k in (1, 8, 9, 10, 11, 12, 13)},
}


def available():
    """The names of the configurations."""
    return list(CONFIGS)


def fractions(config):
    """{layer name: fraction of its filters to remove} of `config`: a
    configuration's name (see `CONFIGS`) or such a dict of your own.

    Raises:
        LotteryError: an unknown name (with the closest one), or a dict
            that is not {layer name: fraction in (0, 1)}.
    """
    if isinstance(config, str):
        if config not in CONFIGS:
            lower = {name.lower(): name for name in CONFIGS}
            close = difflib.get_close_matches(config.lower(), list(lower), n=1, cutoff=0.5)
            hint = f" (did you mean {lower[close[0]]}?)" if close else ""
            raise LotteryError(
                f"is no filter-pruning configuration{hint}; choose one of "
                f"{', '.join(CONFIGS)} or give {{layer name: fraction}}",
                param="config", value=config)
        return dict(CONFIGS[config])
    if not isinstance(config, dict) or not config:
        raise LotteryError(
            f"expected a configuration's name ({', '.join(CONFIGS)}) or "
            "{layer name: fraction of its filters to remove}",
            param="config", value=config)
    for name, fraction in config.items():
        if not isinstance(name, str):
            raise LotteryError(f"expected layer names as keys, not {name!r}",
                               param="config", value=config)
        if not (checks.is_number(fraction) and 0 < fraction < 1):
            raise LotteryError(
                f"layer {name!r} has {fraction!r}; a fraction of its filters to "
                "remove is in (0, 1)", param="config", value=config)
    return {name: float(fraction) for name, fraction in config.items()}
