"""Every file and folder name of runs, iterative chains, analyses and
studies, in one module.

    <run>/run.json         what the run is (its `RunSpec`) and what happened
                           (its `RunRecord`: bounds, density, status, ...)
    <run>/model.json       the model's Keras config, when the run was given a
                           model of the user's own rather than an arch name
    <run>/checkpoints/     checkpoint_iter_<N>.weights.h5 and
                           checkpoint_iter_final.weights.h5: full training
                           state (weights, masks, BN statistics, momentum,
                           iteration)
    <run>/metrics.csv      one row per evaluation
    <run>/logs/            TensorBoard event files
    <run>/run.lock         held by the process training the run (see
                           `keras_lottery.runs.locks`), absent otherwise
    <run>/resume/          state_iter_<N>.weights.h5: the latest full state
                           saved every `save_every` steps while the run is
                           unfinished, so a killed run resumes; removed when
                           the run finishes
    <chain>/iterate.json   what an `iterate` call asked (method, parent,
                           iteration, rate, seed); its rounds are
                           <chain>/round-<i>/, each a run directory
    <analysis>/stability.json, <analysis>/copy-<i>/   an instability
                           analysis and its copies (run directories)
    <study>/study.json     a study's plan and state (`keras_lottery.study`);
    <study>/study-logs/<node id>.log   each of its runs' output;
    <study>/study.csv      its tidy table; <study>/recipe.toml its recipe
                           when the study file gives recipe fields

Default directories, under a root (`runs/` by default):

    <root>/<arch>/train-s<seed>
    <root>/<arch>/<method>-k<k>-d<percent>-s<seed>     (reinit: no -k)
    <root>/<arch>/branch-k<k>-s<seed>
    <root>/<arch>/iterate-<method>-k<k>-r<rate%>-s<seed>/round-<i>
    <parent's folder>/stability-<parent>-k<k>[-d<percent>]-s<seed>/copy-<i>

A study's nodes are these same paths relative to the study's root.
Every file is written atomically (`keras_lottery.files`).
"""

import hashlib
import json
import pathlib
import re

from keras_lottery.spec import methods

RUN_JSON = "run.json"
MODEL_JSON = "model.json"
CHECKPOINT_DIR = "checkpoints"
METRICS_CSV = "metrics.csv"
LOGS_DIR = "logs"
RESUME_DIR = "resume"
LOCK = "run.lock"
CHAIN_JSON = "iterate.json"
STABILITY_JSON = "stability.json"
STUDY_JSON = "study.json"
STUDY_LOGS_DIR = "study-logs"
STUDY_CSV = "study.csv"
STUDY_RECIPE = "recipe.toml"
DEFAULT_ROOT = "runs"

STATE_SUFFIX = ".weights.h5"
CHECKPOINT_PATTERN = "checkpoint_iter_{iteration}" + STATE_SUFFIX
RESUME_PATTERN = "state_iter_{iteration}" + STATE_SUFFIX
COPY_PATTERN = "copy-{index}"
ROUND_PATTERN = "round-{index}"


def checkpoint_name(iteration):
    """File name of the checkpoint at `iteration` (an int or "final")."""
    return CHECKPOINT_PATTERN.format(iteration=iteration)


def checkpoint_path(run_dir, iteration):
    """Path of a run's checkpoint at `iteration` (an int or "final")."""
    return pathlib.Path(run_dir) / CHECKPOINT_DIR / checkpoint_name(iteration)


def resume_name(step):
    """File name of the resume state after `step` updates."""
    return RESUME_PATTERN.format(iteration=step)


def states(directory, pattern):
    """{key: path} of the state files named by `pattern` in `directory`."""
    prefix, suffix = pattern.split("{iteration}")
    return {
        path.name[len(prefix): -len(suffix)]: path
        for path in pathlib.Path(directory).glob(f"{prefix}*{suffix}")
    }


def percent(density):
    """A density as folder names write it: 0.2 -> "20"."""
    return f"{density * 100:.4g}"


def run_name(method, *, seed, iteration=None, density=None, pruner=None, filters=None,
             level=None):
    """The folder name of a run of `method` (a `Method`): `train-s<seed>`,
    `<method>-k<k>-d<percent>-s<seed>` (no -k without k; `-<pruner>` after
    the density for a pruner other than the method's own), filter pruning's
    `<method>-k<k>-<config>-l<level>-s<seed>`, `branch-k<k>-s<seed>`."""
    if not method.derived:
        return f"train-s{seed}"
    k = "" if iteration is None else f"-k{iteration}"
    if not method.prunes:
        return f"{method.command}{k}-s{seed}"
    if filters is not None:
        return f"{method.command}{k}-{filters_name(filters)}-l{level}-s{seed}"
    amount = "" if density is None else f"-d{percent(density)}"
    own = "" if pruner in (None, method.pruner) else "-" + re.sub(r"[^\w.-]+", "_", pruner)
    return f"{method.command}{k}{amount}{own}-s{seed}"


def filters_name(filters):
    """A filter pruning configuration as names write it: its own name, or
    `filters-<hash>` for {layer: fraction} of your own."""
    if isinstance(filters, str):
        return filters
    text = json.dumps(sorted(dict(filters).items()))
    return "filters-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def default_out(spec, root=DEFAULT_ROOT):
    """A readable, collision-free run directory for `spec` (seed drawn):
    `<root>/<arch>/<run_name>`."""
    return pathlib.Path(root) / spec.arch / run_name(
        spec.method, seed=spec.seed, iteration=spec.iteration, density=spec.target_density,
        pruner=spec.pruner, filters=spec.filters, level=spec.level)


def chain_name(method, *, seed, iteration, rate, pruner=None):
    """The folder name of an `iterate` chain of `method` (a `Method`); a
    pruner other than the method's own is named after the rate."""
    k = "" if iteration is None else f"-k{iteration}"
    own = "" if pruner in (None, method.pruner) else "-" + re.sub(r"[^\w.-]+", "_", pruner)
    return f"iterate-{method.command}{k}-r{percent(rate)}{own}-s{seed}"


def chain_out(spec, arch, root=DEFAULT_ROOT):
    """The default folder of an `iterate` chain (an `IterateSpec`) of `arch`'s run."""
    return pathlib.Path(root) / arch / chain_name(
        methods.get(spec.method), seed=spec.seed, iteration=spec.iteration, rate=spec.rate,
        pruner=spec.pruner)


def round_dir(chain, index):
    """Round `index` (1, 2, ...) of the chain at `chain`."""
    return pathlib.Path(chain) / ROUND_PATTERN.format(index=index)


def copy_dir(analysis, index):
    """Copy `index` (0, 1, ...) of an instability analysis."""
    return pathlib.Path(analysis) / COPY_PATTERN.format(index=index)


def stability_name(parent_name, iteration, density, seed):
    """The folder name of an instability analysis of the run `parent_name`
    at k; `seed` None gives the prefix every seed's folder starts with."""
    name = f"stability-{parent_name}-k{iteration}"
    if density is not None:
        name += f"-d{percent(density)}"
    if seed is None:
        return name + "-s"
    tag = "_".join(map(str, seed)) if isinstance(seed, (list, tuple)) else str(seed)
    return f"{name}-s{tag}"


def stability_figure(points, reset_bn):
    """The file name of an analysis's figure for one way of evaluating it."""
    return f"stability-{evaluation_key(points, reset_bn)}.png"


def evaluation_key(points, reset_bn):
    """The name of one way of evaluating an analysis (points, BN treatment)."""
    return f"p{points}-bn-{'reset' if reset_bn else 'interpolated'}"


def study_root(name):
    """A study file's root when it names none: `runs/<its name>` beside it."""
    return f"{DEFAULT_ROOT}/{name}"


def node_log(root, node_id):
    """The log of a study's node (its run's output, every attempt)."""
    return pathlib.Path(root) / STUDY_LOGS_DIR / f"{node_id}.log"


def find_runs(root=DEFAULT_ROOT):
    """Every run directory (a folder with a run.json) under `root`, sorted."""
    return sorted(p.parent for p in pathlib.Path(root).glob(f"**/{RUN_JSON}"))
