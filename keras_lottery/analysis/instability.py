"""Instability analysis (linear mode connectivity; Frankle, Dziugaite, Roy
& Carbin, ICML 2020): `stability(parent, iteration=k, ...)`.

From the parent's state at iteration k, `copies` networks are trained to the
end of the schedule with different seeds (data order and augmentation), and
the test error is measured along the straight line between each pair's
final weights. The error barrier of a pair is the largest error on the path
minus the mean of its two endpoints' errors: about 0 when the copies end in
one linearly connected basin (the network is *stable* at k).

Without a density the copies are `branch` runs (the parent's whole state at
k, masks unchanged); with one they are `rewind` runs (the magnitude mask of
the parent's final weights at that density, weights from k), exactly as
`keras_lottery.rewind` makes them. Each copy is a run directory inside the
analysis's folder, resumed and reused as any run:

    <analysis>/stability.json   what the analysis is (parent, k, density,
                                seeds, its copies) and every evaluation of
                                it (alphas, errors and losses per pair,
                                barriers, how batch norm was treated)
    <analysis>/copy-<i>/        the copies, run directories
    <analysis>/stability-<evaluation>.png   error against alpha, a line per pair

The default folder lies beside the parent:
`<parent's folder>/stability-<parent's name>-k<k>[-d<percent>]-s<seed>`.
"""

import dataclasses
import itertools
import os
import pathlib

from keras_lottery import checks
from keras_lottery import data as data_lib
from keras_lottery import files
from keras_lottery.analysis import connectivity
from keras_lottery.runs import sources
from keras_lottery.errors import LotteryError
from keras_lottery.procedures import derive as derive_lib
from keras_lottery.procedures import lifecycle
from keras_lottery.procedures import parents
from keras_lottery.runs import layout
from keras_lottery.runs import resolver
from keras_lottery.spec import methods
from keras_lottery.spec import record
from keras_lottery.spec.execution import Execution
from keras_lottery.spec.requests import DEFAULT_SAVE_EVERY
from keras_lottery.spec.requests import DeriveRequest

SCHEMA = 1
# `reset_bn`: the batch-norm statistics of each point are re-estimated on
# this many training batches (of the recipe's batch size) of the training
# stream of this seed, with the training augmentation: steps 0, 1, ... of a
# run with seed BN_SEED.
BN_BATCHES = 16
BN_SEED = 0
COLUMNS = ("run", "k", "density", "copies", "error_0", "error_1",
           "max_error", "barrier", "bn")


@dataclasses.dataclass
class StabilityResult:
    """One instability analysis: a run, an iteration k, a density.

    Attributes:
        path: the analysis's folder.
        parent: the analysed `Run`.
        iteration: k.
        density: the copies' target density, or None (unpruned copies).
        alphas: the points of the path, a list from 0.0 to 1.0.
        errors: {(i, j): [test error at each alpha]} for each pair of
            copies, alpha 0 being copy i and alpha 1 copy j.
        losses: {(i, j): [test loss at each alpha]}.
        barriers: {(i, j): max error on the path − mean of the endpoints'}.
        copies: the copies' `Run`s.
        bn: how batch-norm statistics were set along the path.
        reset_bn: whether they were re-estimated at each point.
    """

    path: pathlib.Path
    parent: object
    iteration: int
    density: float
    alphas: list
    errors: dict
    losses: dict
    barriers: dict
    copies: list
    bn: str
    reset_bn: bool = False

    @property
    def figure(self):
        """The analysis's figure of error against alpha."""
        return self.path / layout.stability_figure(len(self.alphas), self.reset_bn)

    def rows(self):
        """One table row per pair (`COLUMNS`, for `report.render`)."""
        density = self.parent.density if self.density is None else self.density
        return [{"run": str(self.parent.path), "k": self.iteration,
                 "density": density, "copies": f"{i}-{j}",
                 "error_0": errors[0], "error_1": errors[-1],
                 "max_error": max(errors), "barrier": self.barriers[(i, j)],
                 "bn": self.bn} for (i, j), errors in self.errors.items()]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A validated analysis, nothing written yet."""

    parent: object
    iteration: int
    density: float
    seeds: tuple
    seed: object
    seed_drawn: bool
    path: pathlib.Path
    points: int
    reset_bn: bool
    data: object
    options: dict


def stability(parent=None, *, iteration, density=None, copies=2, points=11,
              reset_bn=False, seed=None, out=None, dataset=None, data_dir=None,
              save_every=DEFAULT_SAVE_EVERY, verbose=1,
              root=layout.DEFAULT_ROOT):
    """Instability analysis of a run at iteration k (Frankle et al., 2020).

    Trains `copies` copies of the run from its state at `iteration` to the
    end of its schedule, each with its own seed, and evaluates the test
    error at `points` evenly spaced points of the straight line between the
    final weights of each pair. Calling again resumes unfinished copies and
    returns a finished analysis without recomputing anything; a larger
    `copies`, other `points` or `reset_bn` add what is missing.

    Example:

    >>> result = keras_lottery.stability("runs/lenet300/train-s0",
    ...                                  iteration=20, density=0.2, seed=0)
    >>> result.barriers
    {(0, 1): 0.0083}

    Args:
        parent: a finished run (path or `Run`), or a study (a folder of
            runs or a `.toml` study file): then every finished run of it
            that saved `iteration` (and is at least as dense as `density`)
            is analysed; default: the single finished train run under
            `root`.
        iteration: k, a checkpoint iteration of the run; or a list of them,
            one analysis each.
        density: prune each copy to this fraction of the prunable weights
            with the magnitude mask of the run's final weights, exactly as
            `rewind` (each copy is then a rewind run); None: the copies are
            `branch` runs, unpruned, masks as the run's at k.
        copies: how many copies (>= 2); every pair is evaluated.
        points: points on the path, alpha = 0, 1/(points-1), ..., 1.
        reset_bn: re-estimate batch-norm moving statistics at each point on
            `BN_BATCHES` fixed training batches instead of interpolating
            them with the weights.
        seed: copy i trains with seed `seed + i`; a list gives each copy's
            seed (its length must be `copies`; equal seeds make equal
            copies); None draws one (recorded in stability.json, and found
            again by the same call).
        out: the analysis's folder (with several analyses, the folder
            holding them); default beside the run.
        dataset: the run's data, when it trained on arrays of your own
            (`keras_lottery.data.arrays(...)`) or an npz file that moved.
        data_dir: where the run's dataset files are now.
        save_every, verbose: as `rewind`, for the copies.
        root: where to look for the default parent.

    Returns:
        A `StabilityResult`; a list of them for a study or a list of
        iterations.

    Raises:
        LotteryError: for bad input, before anything is written.
    """
    study = sources.is_study(parent) if parent is not None else False
    targets = _targets(parent, root, study)
    iterations = list(iteration) if isinstance(iteration, (list, tuple)) else [iteration]
    many = study or len(iterations) > 1
    options = dict(dataset=dataset, data_dir=data_dir, save_every=save_every,
                   verbose=verbose)
    plans, loaded = [], {}
    for run in targets:
        for k in iterations:
            if study and not _applies(run, k, density, verbose):
                continue
            data = _data(run, dataset, data_dir, loaded)
            plans.append(_plan(run, k, density, copies, points, reset_bn, seed,
                               out, many, data, options))
    if not plans:
        raise LotteryError(
            f"no run of {parent} saved iteration {iterations[0]} at a density "
            "at or above the one asked; name a run, or another iteration",
            param="parent", value=str(parent),
        )
    results = [_execute(plan) for plan in plans]
    return results if many else results[0]


def _targets(parent, root, many):
    if many:
        found = sources.expand(parent, param="parent")
        return [run for run in found if run.status == record.FINISHED]
    return [parents.open_parent(parent, root)]


def _applies(run, k, density, verbose):
    """Whether a run of a study can be analysed at k (else says why)."""
    why = None
    if k not in run.checkpoints:
        why = f"no checkpoint at iteration {k}"
    elif (density is not None and checks.is_number(density) and 0 < density <= 1
          and not parents.can_prune_to(run, density)):
        # The rule `rewind` applies, so no run left in refuses the analysis.
        why = (f"its density {checks.percent_shown(parents.density_limit(run))} is not above "
               f"{checks.percent_shown(density)}")
    if why and verbose:
        print(f"skipping {run.path}: {why}")
    return why is None


def _data(run, dataset, data_dir, loaded):
    """The run's data (read once per dataset for a study)."""
    key = (run.spec.dataset, run.config.get("data_sha256"), str(data_dir))
    if key not in loaded:
        where = data_dir or run.config.get("data_dir")
        loaded[key] = parents.load_data(run, dataset, where, lifecycle.DATA_SEED)
    return loaded[key]


def _plan(run, k, density, copies, points, reset_bn, seed, out, many, data, options):
    """Validates one analysis and finds its folder; writes nothing."""
    checks.count(copies, "copies", 2, "expected an integer >= 2 (two copies make one pair)")
    checks.count(points, "points", 2, "expected an integer >= 2 (the path needs both ends)")
    if not isinstance(reset_bn, bool):
        raise LotteryError("expected True or False", param="reset_bn", value=reset_bn)
    if density is not None:
        checks.fraction(density, "density", "expected a fraction in (0, 1] of the "
                        "prunable weights kept (0.2 keeps 20 %)")
        if density > run.density + 1e-9:
            raise LotteryError(
                f"is above the density of {run.path} ({run.density * 100:.4g} "
                "%); choose one below it, or none for unpruned copies",
                param="density", value=density)
        density = float(density)
    # The copies' request, validated as the procedure will (k saved, ...).
    parents.child_spec(run, _copy_request(run, k, density, 0, None, {}))
    seeds, given = _seeds(seed, copies)
    path, seed, drawn = resolver.resolve_stability(run.path, k, density, given,
                                                   out=out, many=many)
    if seeds is None:
        seeds = tuple(seed + i for i in range(copies))
    return _Plan(run, k, density, seeds, seed, drawn, path, points, reset_bn,
                 data, options)


def _seeds(seed, copies):
    """(the copies' seeds or None when drawn or offset, the seed as given)."""
    if isinstance(seed, (list, tuple)):
        if not all(checks.is_count(s) for s in seed):
            raise LotteryError("expected seeds that are integers >= 0",
                               param="seed", value=seed)
        if len(seed) != copies:
            raise LotteryError(f"gives {len(seed)} seeds for {copies} copies; "
                               "give one per copy", param="seed", value=list(seed))
        return tuple(seed), list(seed)
    if seed is not None and not checks.is_count(seed):
        raise LotteryError("expected an integer >= 0", param="seed", value=seed)
    return None, seed


def _execute(plan):
    """Writes the analysis's folder, trains (or resumes) the copies, and
    evaluates the paths not evaluated yet."""
    config = _config(plan)
    plan.path.mkdir(parents=True, exist_ok=True)
    files.write_json(plan.path / layout.STABILITY_JSON, config)
    copies = _train_copies(plan)
    key = layout.evaluation_key(plan.points, plan.reset_bn)
    stored = config["evaluations"].get(key, {"pairs": {}})
    pairs = [p for p in itertools.combinations(range(len(copies)), 2)
             if _pair_key(p) not in stored["pairs"]]
    if pairs:
        if plan.options["verbose"]:
            print(f"evaluating {plan.points} points between copies "
                  f"{', '.join(map(_pair_key, pairs))}")
        batches, text = _bn_batches(plan) if plan.reset_bn else (None, None)
        evaluated = connectivity.evaluate_pairs(
            copies, pairs, plan.points, plan.data, plan.parent.spec.val_split,
            batches, text)
        stored = dict(evaluated, pairs=dict(stored["pairs"], **evaluated["pairs"]))
        config["evaluations"][key] = stored
        files.write_json(plan.path / layout.STABILITY_JSON, config)
    result = _result(plan, copies, stored)
    if pairs or not result.figure.exists():
        from keras_lottery.analysis import figures

        figures.stability_curves([result], path=result.figure)
    return result


def _config(plan):
    """stability.json: what the analysis is, and what it evaluated so far."""
    path = plan.path / layout.STABILITY_JSON
    old = resolver.read_stability(path) if path.exists() else {}
    parent = os.path.realpath(plan.parent.path)
    copies = [{"run": layout.copy_dir("", i).name, "seed": s} for i, s in enumerate(plan.seeds)]
    # Copies made by an earlier call with more of them stay listed.
    copies += old.get("copies", [])[len(copies):]
    return {
        "schema": SCHEMA,
        "parent": pathlib.Path(os.path.relpath(parent, os.path.realpath(plan.path))).as_posix(),
        "parent_absolute": parent,
        "iteration": plan.iteration,
        "density": plan.density,
        "method": (methods.REWIND if plan.density is not None else methods.BRANCH).name,
        "seed": plan.seed,
        "seed_drawn": plan.seed_drawn,
        "copies": copies,
        "evaluations": old.get("evaluations", {}),
    }


def _train_copies(plan):
    done = []
    for index, seed in enumerate(plan.seeds):
        if plan.options["verbose"]:
            what = ("branch" if plan.density is None
                    else f"rewind to density {checks.percent_shown(plan.density)}")
            print(f"copy {index + 1}/{len(plan.seeds)}: {what} from k={plan.iteration}, seed {seed}")
        request = _copy_request(plan.parent, plan.iteration, plan.density, seed,
                                layout.copy_dir(plan.path, index),
                                dict(plan.options, data=plan.data))
        done.append(derive_lib.derive(request, verbose=plan.options["verbose"]))
    return done


def _copy_request(parent, k, density, seed, out, options):
    """A copy's `DeriveRequest`: a branch, or a rewind to `density`."""
    method = methods.REWIND if density is not None else methods.BRANCH
    return DeriveRequest(
        method=method.name, parent=parent, iteration=k, density=density, seed=seed,
        out=out, dataset=options.get("data"), data_dir=options.get("data_dir"),
        save_every=options.get("save_every", DEFAULT_SAVE_EVERY),
        execution=Execution(precision=parent.spec.precision))


def _bn_batches(plan):
    """(the fixed training batches of `reset_bn`, how to describe them)."""
    batch = plan.parent.spec.recipe.batch_size
    stream = data_lib.TrainBatches(
        plan.data.x_train, plan.data.y_train, batch, seed=BN_SEED,
        num_steps=BN_BATCHES, augment=plan.data.augment,
        normalize=plan.data.normalize)
    text = (f"re-estimated at each alpha on {BN_BATCHES} training batches of "
            f"{batch} (seed {BN_SEED})")
    return [stream[i] for i in range(len(stream))], text


def _result(plan, copies, stored):
    pairs = {_pair_from_key(key): value for key, value in stored["pairs"].items()}
    wanted = list(itertools.combinations(range(len(copies)), 2))
    return StabilityResult(
        path=plan.path, parent=plan.parent, iteration=plan.iteration,
        density=plan.density, alphas=list(stored["alphas"]),
        errors={p: pairs[p]["errors"] for p in wanted},
        losses={p: pairs[p]["losses"] for p in wanted},
        barriers={p: pairs[p]["barrier"] for p in wanted},
        copies=copies, bn=stored["bn"], reset_bn=plan.reset_bn)


def _pair_key(pair):
    return f"{pair[0]}-{pair[1]}"


def _pair_from_key(key):
    i, j = key.split("-")
    return int(i), int(j)
