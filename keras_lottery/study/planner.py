"""A study's plan: every run as a `Node` of a dependency graph.

A node is one run directory under the study's root (named by
`keras_lottery.runs.layout`, as every run is), made by one typed request
(`keras_lottery.spec.requests`) with an explicit parent, seed and output
directory, so it is exactly the run the same procedure call (or `lottery`
command) makes by hand:

- base: `<arch>/train-s<seed>`, a `TrainRequest` (arch, dataset, recipe,
  seed, validation split);
- one-shot and control runs: `<arch>/<method>-k<k>-d<percent>-s<seed>`
  (reinit: no k), a `DeriveRequest` from the base (k, density, seed);
- iterative round i: `<arch>/iterate-<method>-k<k>-r<rate%>-s<seed>/round-<i>`,
  an `IterateRequest` of i rounds from the base (which skips the finished
  rounds and trains round i only).

A node runs as `lottery run-request REQUEST` (its `argv`) in a process of
its own: the command line is still how a node runs.

Every derived run takes its base's seed (one seed is one family of runs:
it seeds the base's initialization and data order, each derived run's data
order, the random control's mask and, through a derived seed, reinit's
fresh weights). Round i's parent is round i − 1 (round 1's is the base);
`iterate` skips the finished rounds and trains round i only. Nodes are
listed parents first; `priority` is the training steps of the longest
chain of runs that starts at a node, which the scheduler runs first.
"""

import dataclasses
import json

from keras_lottery.runs import layout
from keras_lottery.spec import methods
from keras_lottery.spec.requests import DeriveRequest
from keras_lottery.spec.requests import IterateRequest
from keras_lottery.spec.requests import TrainRequest

KINDS = ("base", "oneshot", "iterative", "control")


@dataclasses.dataclass(frozen=True)
class Node:
    """One run of a study.

    Attributes:
        id: its run directory relative to the study root
            ("resnet20/rewind-k4701-d80-s1"); unique.
        kind: "base", "oneshot", "iterative" or "control".
        method: the run mode ("rewind_lr").
        arch: the architecture.
        seed: the run's seed (its base's).
        iteration: k (None for base and reinit runs).
        density: the target density, a fraction (1.0 for a base).
        parent: the id of the parent node (None for a base).
        round: the iterative round (None for one-shot runs).
        rate: the iterative rate (None for one-shot runs).
        chain: the id of an iterative round's study directory.
        steps: training steps the run makes (T − k, or T).
        request: the request that makes it, as JSON (`Request.to_dict()`).
        filters, level: filter pruning's configuration and level (its
            density is the run's own, known once it is pruned), or None.
        pruner: its pruner when not the method's own, else None.
    """

    id: str
    kind: str
    method: str
    arch: str
    seed: int
    iteration: int
    density: float
    parent: str
    round: int
    rate: float
    chain: str
    steps: int
    request: dict
    filters: object = None
    level: int = None
    pruner: str = None

    @property
    def argv(self):
        """The `lottery` command line that runs it (without `lottery`)."""
        return ("run-request", json.dumps(self.request, sort_keys=True))

    def to_dict(self):
        return dataclasses.asdict(self)


class Plan:
    """The expanded study: its nodes, edges and priorities.

    Attributes:
        study: the `StudyFile`.
        nodes: the `Node`s, every parent before its children.
        children: {node id: ids of the nodes derived from it}.
        priority: {node id: training steps of the longest chain from it}.
    """

    def __init__(self, study, nodes):
        self.study = study
        self.nodes = tuple(nodes)
        self.by_id = {n.id: n for n in self.nodes}
        self.children = {n.id: [] for n in self.nodes}
        for node in self.nodes:
            if node.parent is not None:
                self.children[node.parent].append(node.id)
        self.priority = {}
        for node in reversed(self.nodes):
            below = [self.priority[c] for c in self.children[node.id]]
            self.priority[node.id] = node.steps + max(below, default=0)

    def path(self, node):
        """The run directory of `node` (a `Node` or an id)."""
        return self.study.root / (node if isinstance(node, str) else node.id)

    def counts(self):
        """{kind: number of runs} for every kind, and "chains"."""
        found = {kind: 0 for kind in KINDS}
        for node in self.nodes:
            found[node.kind] += 1
        found["chains"] = len({n.chain for n in self.nodes if n.chain})
        return found

    @property
    def total_steps(self):
        return sum(n.steps for n in self.nodes)

    def images(self, nodes=None):
        """Training images of `nodes` (default all): steps times batch."""
        nodes = self.nodes if nodes is None else nodes
        return sum(n.steps for n in nodes) * self.study.recipe.batch_size


def expand(study):
    """The `Plan` of a `StudyFile`."""
    nodes = {}
    for arch in study.archs:
        for seed in study.seeds:
            _add(nodes, _base(study, arch, seed))
    for sweep in study.sweeps:
        for arch in study.archs:
            for seed in study.seeds:
                base = _base(study, arch, seed).id
                for node in _sweep_nodes(study, sweep, base, arch, seed):
                    _add(nodes, node)
    return Plan(study, nodes.values())


def _add(nodes, node):
    # The same run named twice (e.g. random both as a one-shot method and a
    # control) is one node.
    if node.id in nodes and nodes[node.id] != node:
        raise AssertionError(f"two different runs at {node.id}")
    nodes.setdefault(node.id, node)


def _base(study, arch, seed):
    node_id = f"{arch}/{layout.run_name(methods.TRAIN, seed=seed)}"
    recipe = (str(study.root / layout.STUDY_RECIPE) if study.recipe_fields
              else study.recipe_source)
    request = TrainRequest(arch=arch, dataset=study.dataset, recipe=recipe, seed=seed,
                           val_split=study.val_split, out=str(study.root / node_id),
                           data_dir=study.data_dir)
    return Node(node_id, "base", methods.TRAIN.name, arch, seed, None, 1.0, None,
                None, None, None, study.recipe.steps, request.to_dict())


def _sweep_nodes(study, sweep, base, arch, seed):
    steps = study.recipe.steps
    for mode in sweep.methods:
        method = methods.METHODS[mode]
        for k in sweep.iters:
            length = method.iteration.length(steps, k)
            if sweep.kind == "iterative":
                yield from _chain(study, sweep, method, k, base, arch, seed, length)
                continue
            for amount in _amounts(sweep):
                yield _one_shot(study, sweep, method, k, amount, base, arch, seed, length)


def _amounts(sweep):
    """How much each one-shot run of `sweep` prunes: {"density"} or
    {"filters", "level"}."""
    if sweep.filters is not None:
        return [{"filters": config, "level": level}
                for config in sweep.filters for level in sweep.levels]
    return [{"density": density_of(percent)} for percent in sweep.percents]


def density_of(percent):
    """A study file's density in percent as a fraction, as the command
    line reads it (written to 6 significant digits)."""
    return float(f"{percent:g}") / 100


def _one_shot(study, sweep, method, k, amount, base, arch, seed, length):
    pruner = sweep.pruner if sweep.pruner != method.pruner else None
    name = layout.run_name(method, seed=seed, iteration=k, pruner=pruner, **amount)
    node_id = f"{arch}/{name}"
    filters = amount.get("filters")
    request = DeriveRequest(method=method.name, parent=str(study.root / base),
                            iteration=k, seed=seed, pruner=pruner,
                            out=str(study.root / node_id), data_dir=study.data_dir,
                            **dict(amount, filters=dict(filters) if isinstance(filters, tuple)
                                   else filters))
    return Node(node_id, sweep.kind, method.name, arch, seed, k, amount.get("density"), base,
                None, None, None, length, request.to_dict(), filters, amount.get("level"),
                pruner)


def _chain(study, sweep, method, k, base, arch, seed, length):
    pruner = sweep.pruner if sweep.pruner != method.pruner else None
    chain = f"{arch}/{layout.chain_name(method, seed=seed, iteration=k, rate=sweep.rate, pruner=pruner)}"
    parent = base
    for index in range(1, sweep.rounds + 1):
        request = IterateRequest(method=method.name, parent=str(study.root / base),
                                 iteration=k, rounds=index, rate=sweep.rate, seed=seed,
                                 pruner=pruner, out=str(study.root / chain),
                                 data_dir=study.data_dir)
        node_id = str(layout.round_dir(chain, index))
        # As `iterate` computes it from a dense base (density 1.0).
        density = float(f"{sweep.rate ** index:.12g}")
        yield Node(node_id, "iterative", method.name, arch, seed, k, density,
                   parent, index, sweep.rate, chain, length, request.to_dict(),
                   pruner=pruner)
        parent = node_id
