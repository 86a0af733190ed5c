"""A study's plan: every run as a `Node` of a dependency graph.

A node is one run directory under the study's root, made by one `lottery`
command (its `argv`) with an explicit parent, seed and output directory, so
it is exactly the run that command makes when typed by hand:

- base: `<arch>/train-s<seed>`, made by
  `train --arch A --dataset D --recipe R --seed S --val-split V --out DIR`;
- one-shot and control runs: `<arch>/<method>-k<k>-d<percent>-s<seed>`
  (reinit: no k), made by
  `<method> --from BASE --iter K --density P --seed S --out DIR`;
- iterative round i: `<arch>/iterate-<method>-k<k>-r<rate%>-s<seed>/round-<i>`,
  made by `iterate --from BASE --method M --iter K --rounds I --rate R
  --seed S --out CHAIN`.

Every derived run takes its base's seed (one seed is one family of runs:
it seeds the base's initialization and data order, each derived run's data
order, the random control's mask and, through a derived seed, reinit's
fresh weights). Round i's parent is round i − 1 (round 1's is the base);
`iterate` skips the finished rounds and trains round i only. Nodes are
listed parents first; `priority` is the training steps of the longest
chain of runs that starts at a node, which the scheduler runs first.
"""

import dataclasses

from keras_lottery import methods

KINDS = ("base", "oneshot", "iterative", "control")
# The recipe of fields given inline in the study file, in the study root.
RECIPE_FILE = "recipe.toml"


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
        argv: the `lottery` command line that makes it (without `lottery`).
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
    argv: tuple

    def to_dict(self):
        return dict(dataclasses.asdict(self), argv=list(self.argv))

    @classmethod
    def from_dict(cls, config):
        """A node as study.json holds it (KeyError if a field is missing)."""
        fields = {f.name: config[f.name] for f in dataclasses.fields(cls)}
        return cls(**dict(fields, argv=tuple(fields["argv"])))


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
                base = f"{arch}/train-s{seed}"
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
    node_id = f"{arch}/train-s{seed}"
    recipe = (str(study.root / RECIPE_FILE) if study.recipe_fields
              else study.recipe_source)
    argv = ["train", "--arch", arch, "--dataset", study.dataset, "--recipe", recipe,
            "--seed", str(seed), "--val-split", str(study.val_split),
            "--out", str(study.root / node_id), "-q"]
    return Node(node_id, "base", methods.TRAIN.name, arch, seed, None, 1.0, None,
                None, None, None, study.recipe.steps, _with_data(study, argv))


def _sweep_nodes(study, sweep, base, arch, seed):
    steps = study.recipe.steps
    for mode in sweep.methods:
        method = methods.METHODS[mode]
        for k in sweep.iters:
            length = steps if k is None else steps - k
            if sweep.kind == "iterative":
                yield from _chain(study, sweep, method, k, base, arch, seed, length)
                continue
            for percent in sweep.percents:
                yield _one_shot(study, sweep.kind, method, k, percent, base,
                                arch, seed, length)


def _one_shot(study, kind, method, k, percent, base, arch, seed, length):
    text = f"{percent:g}"
    density = float(text) / 100  # as the command line converts it
    at = "" if k is None else f"-k{k}"
    node_id = f"{arch}/{method.command}{at}-d{density * 100:.4g}-s{seed}"
    argv = [method.command, "--from", str(study.root / base)]
    argv += [] if k is None else ["--iter", str(k)]
    argv += ["--density", text, "--seed", str(seed), "--out",
             str(study.root / node_id), "-q"]
    return Node(node_id, kind, method.name, arch, seed, k, density, base, None,
                None, None, length, _with_data(study, argv))


def _chain(study, sweep, method, k, base, arch, seed, length):
    chain = f"{arch}/iterate-{method.command}-k{k}-r{sweep.rate * 100:.4g}-s{seed}"
    parent = base
    for index in range(1, sweep.rounds + 1):
        argv = ["iterate", "--from", str(study.root / base), "--method",
                method.command, "--iter", str(k), "--rounds", str(index),
                "--rate", repr(sweep.rate), "--seed", str(seed),
                "--out", str(study.root / chain), "-q"]
        node_id = f"{chain}/round-{index}"
        # As `iterate` computes it from a dense base (density 1.0).
        density = float(f"{sweep.rate ** index:.12g}")
        yield Node(node_id, "iterative", method.name, arch, seed, k, density,
                   parent, index, sweep.rate, chain, length, _with_data(study, argv))
        parent = node_id


def _with_data(study, argv):
    if study.data_dir is not None:
        argv = argv[:-1] + ["--data-dir", study.data_dir, argv[-1]]
    return tuple(argv)
