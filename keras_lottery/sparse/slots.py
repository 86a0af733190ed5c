"""The optimizer variables that shadow a model variable entry by entry.

Pruning zeroes them where a mask is 0 (momentum, Adam's two moments, an EMA
or gradient accumulator): restored momentum would otherwise push a zeroed
weight off zero. Found through public names only, for any optimizer and any
wrapper around one:

- the optimizers: the one given and, through the public `inner_optimizer`
  (Keras's and keras_lottery's `LossScaleOptimizer`), every one it wraps;
- their variables: the public `optimizer.variables`;
- which belong to a model variable `v`: Keras's optimizers create a slot
  with `add_variable_from_reference(v, name=kind)`, which names it
  `f"{v.path.replace('/', '_')}_{kind}"` (`dense_kernel_momentum`) with
  `v`'s shape. A slot is matched to the model variable whose name prefix is
  the longest one it starts with, so `dense/kernel` does not take the slots
  of a layer named `dense_kernel`.
"""

import keras


def optimizers(optimizer):
    """The optimizer and every optimizer it wraps (via `inner_optimizer`)."""
    found = []
    while optimizer is not None and not any(optimizer is o for o in found):
        found.append(optimizer)
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return found


def slot_variables(optimizer, variable, model_variables):
    """Returns the optimizer variables of `variable`'s shape made for it.

    Example:

    >>> kernel = model.get_layer("dense").raw_kernel
    >>> slot_variables(model.optimizer, kernel, model.variables)
    [<Variable path=sgd/dense_kernel_momentum, ...>]

    Args:
        optimizer: a Keras optimizer, a wrapper of one, or None.
        variable: the model variable.
        model_variables: every variable of the model (`model.variables`):
            a slot goes to the one of them whose path names it most closely.

    Raises:
        ValueError: if another model variable has the same path, so that
            the slots of the two cannot be told apart.
    """
    prefix = _prefix(variable)
    others = [v for v in model_variables if v is not variable]
    twins = [v.path for v in others if _prefix(v) == prefix]
    if twins:
        raise ValueError(
            f"Two model variables share the path {variable.path!r}, so their "
            "optimizer slots cannot be told apart; give their layers (or "
            "the models that contain them) different names."
        )
    longer = [p for p in map(_prefix, others) if p.startswith(prefix)]
    slots, seen = [], set()
    for opt in optimizers(optimizer):
        if not getattr(opt, "built", False):
            continue
        for candidate in opt.variables:
            name = candidate.name
            if (
                id(candidate) in seen
                or candidate is variable
                or not name.startswith(prefix)
                or any(name.startswith(p) for p in longer)
                or tuple(candidate.shape) != tuple(variable.shape)
            ):
                continue
            seen.add(id(candidate))
            slots.append(candidate)
    return slots


def _prefix(variable):
    return variable.path.replace("/", "_") + "_"


def zero_where(variables, mask):
    """Multiplies each variable by a 0/1 `mask` of its shape, in place."""
    for slot in variables:
        value = keras.ops.convert_to_numpy(slot)
        slot.assign((value * mask).astype(value.dtype))
