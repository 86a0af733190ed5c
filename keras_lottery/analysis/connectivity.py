"""Test error along the straight line between trained copies of a run.

`evaluate_pairs` loads the copies' final states, checks that their masks
are identical, and evaluates the test set (the runs' own: the images outside
a validation split) at each point of each pair's path
(`keras_lottery.analysis.interpolation`). The error barrier of a path is
its largest error minus the mean of its two endpoints' errors.
"""


from keras_lottery.training import evaluation
from keras_lottery.analysis import interpolation
from keras_lottery.training.state import load_state

INTERPOLATED = "interpolated"
NO_BN = "none (no batch normalization)"


def alphas(points):
    """`points` evenly spaced points of [0, 1], both ends exact."""
    return [i / (points - 1) for i in range(points)]


def barrier(errors):
    """The error barrier of a path: max error − mean of the endpoints'."""
    return max(errors) - (errors[0] + errors[-1]) / 2


def load_states(copies):
    """(a model of the copies' architecture, each copy's final `State`),
    after checking that the masks are identical."""
    model = copies[0].load_model("final")
    states = []
    for copy in copies:
        load_state(model, copy.checkpoints["final"], copy.end_step)
        states.append(interpolation.state_of(model))
    interpolation.check_same_masks(states, [str(c.path) for c in copies])
    return model, states


def path_errors(model, a, b, points, test, bn_batches=None):
    """(test errors, test losses) at each of `alphas(points)` between the
    `State`s a and b; with `bn_batches`, batch-norm statistics are
    re-estimated on them at each point."""
    errors, losses = [], []
    for alpha in alphas(points):
        interpolation.assign_interpolated(model, a, b, alpha)
        if bn_batches is not None:
            interpolation.reestimate_bn(model, bn_batches)
        result = model.evaluate(test, verbose=0, return_dict=True)
        errors.append(1.0 - float(result["top1"]))
        losses.append(float(result["loss"]))
    return errors, losses


def evaluate_pairs(copies, pairs, points, data, val_split, bn_batches=None,
                   bn_text=None):
    """Evaluates the paths between the given pairs of copies.

    Args:
        copies: the copies' `Run`s.
        pairs: (i, j) index pairs into `copies`.
        points: points on each path.
        data: the runs' `Dataset`.
        val_split: the runs' validation split (excluded from the test set).
        bn_batches: training batches to re-estimate batch-norm statistics
            on at each point; None interpolates them with the weights.
        bn_text: how to describe the re-estimation in the results.

    Returns:
        {"alphas", "bn" (how batch norm was treated), "pairs": {"i-j":
        {"errors", "losses", "barrier"}}}, as stability.json stores it.
    """
    model, states = load_states(copies)
    test, _ = evaluation.evaluation_sets(data, val_split, copies[0].spec.recipe.batch_size)
    if not interpolation.batch_norm_layers(model):
        bn, bn_batches = NO_BN, None
    else:
        bn = INTERPOLATED if bn_batches is None else bn_text
    found = {}
    for i, j in pairs:
        errors, losses = path_errors(model, states[i], states[j], points, test, bn_batches)
        found[f"{i}-{j}"] = {"errors": errors, "losses": losses,
                             "barrier": barrier(errors)}
    return {"alphas": alphas(points), "bn": bn, "pairs": found}
