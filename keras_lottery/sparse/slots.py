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
  of a layer named `dense_kernel`. Variables can share a path (layers of
  one name in two sub-models, "tower_a" and "tower_b", both make
  `dense/kernel`), so their slots share a name too: Keras builds an
  optimizer's slots in the order of the model's variables, so the i-th
  slot of a name (and shape) is the i-th variable's.
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
        model_variables: every variable of the model (`model.variables`,
            in order): a slot goes to the one of them whose path names it
            most closely, and by order among those that share a path.

    Raises:
        ValueError: if variables share `variable`'s path and the slots of
            that name are not one per variable, so they cannot be told apart.
    """
    prefix = _prefix(variable)
    # A slot has its variable's shape: among variables of one path, those of
    # another shape have slots of that shape.
    twins = [v for v in model_variables if _prefix(v) == prefix
             and tuple(v.shape) == tuple(variable.shape)]
    if not any(v is variable for v in twins):
        twins.append(variable)
    longer = [p for p in map(_prefix, model_variables) if p.startswith(prefix) and p != prefix]
    by_name, seen = {}, set()  # (optimizer, slot name) -> slots
    for opt in optimizers(optimizer):
        if not getattr(opt, "built", False):
            continue
        for candidate in opt.variables:
            name = candidate.name
            if (
                id(candidate) in seen
                or any(candidate is v for v in twins)
                or not name.startswith(prefix)
                or any(name.startswith(p) for p in longer)
                or tuple(candidate.shape) != tuple(variable.shape)
            ):
                continue
            seen.add(id(candidate))
            by_name.setdefault((id(opt), name), []).append(candidate)
    if len(twins) == 1:
        return [slot for found in by_name.values() for slot in found]
    index = next(i for i, v in enumerate(twins) if v is variable)
    if any(len(found) != len(twins) for found in by_name.values()):
        raise ValueError(
            f"{len(twins)} model variables share the path {variable.path!r}, "
            "and their optimizer slots cannot be told apart; give their "
            "layers (or the models that contain them) different names."
        )
    return [found[index] for found in by_name.values()]


def _prefix(variable):
    return variable.path.replace("/", "_") + "_"


def zero_where(variables, mask):
    """Multiplies each variable by a 0/1 `mask` of its shape, in place."""
    for slot in variables:
        value = keras.ops.convert_to_numpy(slot)
        slot.assign((value * mask).astype(value.dtype))
