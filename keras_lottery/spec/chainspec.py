"""What an `iterate` chain is: `IterateSpec`, its iterate.json's schema.

Two requests make the same chain exactly when their specs are equal, so
finding an `iterate` chain again is `==` on specs; its rounds are runs of
their own (`RunSpec`).
"""

import dataclasses
import os

from keras_lottery import checks
from keras_lottery.spec import methods
from keras_lottery.spec import runspec


@dataclasses.dataclass(frozen=True)
class IterateSpec:
    """What an `iterate` study is; its rounds are runs of their own.

    Attributes:
        method: the method of every round (a derived one that prunes).
        parent: the base run's directory, absolute.
        iteration: k of every round (None for reinit).
        rate: the fraction of the remaining weights each round keeps.
        seed: the seed of every round (None in a request: draw one).
        scope, exclude: how every round ranks weights, what it leaves.
        layer_rates: with layerwise scope, ((layer, rate), ...).
        pruner: every round's pruner (default: the method's).
    """

    method: str
    parent: str
    iteration: int | None = None
    rate: float = 0.8
    seed: int | None = None
    scope: str = "global"
    exclude: tuple = ()
    layer_rates: tuple = ()
    pruner: str | None = None

    def __post_init__(self):
        checks.choice(self.scope, "scope", runspec.SCOPES)
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "layer_rates", runspec.layer_pairs(
            self.layer_rates, self.scope, "layer_rates", "rate"))
        if any(rate >= 1 for _, rate in self.layer_rates):
            runspec.bad("layer_rates", dict(self.layer_rates), "expected rates in (0, 1)")
        method = methods.get(self.method, pruning=True)
        object.__setattr__(self, "method", method.name)
        object.__setattr__(self, "pruner", self.pruner or method.pruner)
        checks.number(self.rate, "rate", above=0, below=1, message="expected a "
                      "fraction in (0, 1) (0.8 keeps 80 % per round)")
        checks.optional_count(self.seed, "seed")
        if not isinstance(self.parent, str) or not os.path.isabs(self.parent):
            runspec.bad("parent", self.parent, "expected the base run's absolute path")

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def density(self, base_density, index):
        """The absolute target density of round `index` (1, 2, ...)."""
        return float(f"{base_density * self.rate ** index:.12g}")

    def layer_densities(self, base_densities, index):
        """{layer: density} of round `index` for the layers with a rate of
        their own, from their densities in the base run."""
        return {name: float(f"{base_densities[name] * rate ** index:.12g}")
                for name, rate in self.layer_rates}

    def to_config(self, directory):
        config = dataclasses.asdict(self)
        config.update(runspec.parent_config(self.parent, directory))
        config["exclude"] = list(self.exclude)
        config["layer_rates"] = dict(self.layer_rates)
        return config

    @classmethod
    def from_config(cls, config, directory):
        names = {f.name for f in dataclasses.fields(cls)} - {"parent"}
        fields = {k: config[k] for k in names if k in config}
        fields["exclude"] = tuple(fields.get("exclude") or ())
        fields["layer_rates"] = fields.get("layer_rates") or ()
        return cls(parent=runspec.stored_parent(config, directory), **fields)
