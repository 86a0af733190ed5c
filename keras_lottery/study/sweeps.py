"""The sweeps of a study file: [oneshot], [iterative] and [controls].

A `Sweep` is one family of derived runs (methods, rewind points k,
densities or iterative rounds), made for every arch and seed of the base;
`SweepReader` reads and checks the sections into them.
"""

import dataclasses
import difflib

from keras_lottery import checks
from keras_lottery.errors import LotteryError
from keras_lottery.sparse import filter_configs
from keras_lottery.spec import methods

# How much a sweep prunes: densities, or filter pruning's configuration and
# levels (the paper's structured points).
AMOUNT = ("densities", "filters", "levels")
CONTROLS = {"reinit": AMOUNT, "random": ("iters", *AMOUNT), "lowlr-rewind": ("iters", *AMOUNT)}
KEYS = {"oneshot": ("methods", "iters", *AMOUNT, "pruner"),
        "iterative": ("methods", "iters", "rate", "rounds", "pruner")}
# Methods a sweep can name: the derived ones that take a rewind point k
# (reinit takes none: it is a control).
SWEEP_METHODS = tuple(m.command for m in methods.METHODS.values()
                      if m.derived and m.iteration.taken)
CHECKPOINTS = "checkpoints"


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One family of derived runs, for every arch and seed of the base.

    Attributes:
        kind: "oneshot", "iterative" or "control".
        methods: run modes ("rewind_lr").
        iters: the rewind points k; (None,) for reinit.
        percents: one-shot densities in percent (empty for iterative and
            filter pruning).
        rate: the kept fraction per iterative round.
        rounds: the number of iterative rounds.
        filters: filter pruning's configurations (names, or ((layer,
            fraction), ...) of your own), or None.
        levels: filter pruning's levels.
        pruner: the pruner of every run (None: the method's).
    """

    kind: str
    methods: tuple
    iters: tuple
    percents: tuple = ()
    rate: float = None
    rounds: int = None
    filters: object = None
    levels: tuple = ()
    pruner: str = None


def closest(name, choices):
    """' (did you mean X?)' for the choice closest to `name`, or ''."""
    found = difflib.get_close_matches(str(name), choices, n=1)
    return f" (did you mean {found[0]}?)" if found else ""


class SweepReader:
    """Reads the sweep sections; mixed into the study file's reader, whose
    `fail`, `keys` and `count` it uses."""

    def sweep(self, kind, table, recipe):
        where = f"[{kind}] "
        required = ("methods", "iters", "rounds") if kind == "iterative" else ("methods", "iters")
        for key in required:
            if key not in table:
                self.fail(where, f"{key} is required")
        names = self.methods(where, table["methods"])
        iters = self.iters(where, table["iters"], names, recipe)
        pruner = table.get("pruner")
        if pruner is not None and (not isinstance(pruner, str) or not pruner):
            self.fail(f"{where}pruner: ", f"expected a pruner's name, got {pruner!r}")
        if kind == "oneshot":
            return Sweep(kind, names, iters, **self.amount(where, table), pruner=pruner)
        rate = table.get("rate", 0.8)
        if not checks.is_number(rate) or not 0 < rate < 1:
            self.fail(f"{where}rate: ", f"expected a fraction in (0, 1) kept per "
                      f"round (0.8 keeps 80 %), got {rate!r}")
        rounds = self.count(f"{where}rounds", table["rounds"], 1)
        return Sweep(kind, names, iters, rate=float(rate), rounds=rounds, pruner=pruner)

    def amount(self, where, table):
        """{"percents"} or {"filters", "levels"}: how much the sweep prunes."""
        structured = "filters" in table or "levels" in table
        if structured == ("densities" in table):
            self.fail(where, "give densities, or filters and levels (filter pruning)")
        if not structured:
            return {"percents": self.percents(where, table["densities"])}
        for key in ("filters", "levels"):
            if key not in table:
                self.fail(where, f"{key} is required with filter pruning")
        given = table["filters"]
        configs = given if isinstance(given, list) else [given]
        for config in configs:
            try:
                filter_configs.fractions(config)
            except LotteryError as e:
                self.fail(f"{where}filters: ", f"{config!r} {e.message}")
        levels = table["levels"]
        if not isinstance(levels, list) or not levels or not all(
                checks.is_count(level, 1) for level in levels):
            self.fail(f"{where}levels: ", f"expected a list of levels >= 1, e.g. "
                      f"[1, 2, 3, 4, 5], got {levels!r}")
        if len(set(levels)) < len(levels):
            self.fail(f"{where}levels: ", f"{levels} repeats a level")
        return {"filters": tuple(c if isinstance(c, str) else tuple(sorted(c.items()))
                                 for c in configs),
                "levels": tuple(levels)}

    def methods(self, where, value):
        if (not isinstance(value, list) or not value
                or not all(isinstance(m, str) for m in value)):
            self.fail(f"{where}methods: ", f"expected a list of methods, got {value!r}")
        found = []
        for name in value:
            command = name.replace("_", "-")
            if command not in SWEEP_METHODS:
                hint = ("; reinit takes no rewind point: put it in [controls]"
                        if command == methods.REINIT.command else "")
                self.fail(f"{where}methods: ", f"unknown method {name!r}"
                          f"{closest(command, SWEEP_METHODS)}; choose from "
                          f"{', '.join(SWEEP_METHODS)}{hint}")
            found.append(methods.get(command).name)
        if len(set(found)) < len(found):
            self.fail(f"{where}methods: ", f"{value} names a method twice")
        return tuple(found)

    def iters(self, where, value, names, recipe):
        steps = recipe.steps
        valid = tuple(c for c in recipe.checkpoint_iters if c < steps)
        if value == CHECKPOINTS:
            return valid
        if not isinstance(value, list) or not value or not all(
                checks.is_count(k, -2**63) for k in value):
            self.fail(f"{where}iters: ", f"expected \"{CHECKPOINTS}\" or a list of "
                      f"steps, got {value!r}")
        takes_checkpoint = any(methods.get(m).iteration is methods.Iteration.CHECKPOINT
                               for m in names)
        for k in value:
            if takes_checkpoint and k not in valid:
                self.fail(f"{where}iters: ", f"{k} is not a checkpoint of the base "
                          f"recipe below its {steps} steps; checkpoints: "
                          f"{', '.join(map(str, valid))}")
            if not 0 <= k < steps:
                self.fail(f"{where}iters: ", f"{k} must lie in [0, {steps})")
        if len(set(value)) < len(value):
            self.fail(f"{where}iters: ", f"{value} repeats a step")
        return tuple(value)

    def percents(self, where, value):
        if isinstance(value, dict):
            self.keys(f"{where}densities: ", value, ("rate", "rounds"))
            rate, rounds = value.get("rate"), value.get("rounds")
            if not checks.is_number(rate) or not 0 < rate < 1:
                self.fail(f"{where}densities: ", f"rate must be a fraction in (0, 1), "
                          f"got {rate!r}")
            self.count(f"{where}densities rounds", rounds, 1)
            # rate^i in percent to 4 significant digits, as the paper's data
            # (0.8^5 = 32.77 %).
            return tuple(float(f"{100 * rate ** i:.4g}") for i in range(1, rounds + 1))
        if not isinstance(value, list) or not value:
            self.fail(f"{where}densities: ", "expected a list of percents or "
                      f"{{ rate = 0.8, rounds = 10 }}, got {value!r}")
        # Percent, as on the command line: 80 keeps 80 %; below 1 % it is
        # written "0.5%" (a bare 0.8 is a fraction typed by mistake).
        percents = []
        for p in value:
            try:
                checks.percent(p, "densities")
                percents.append(float(str(p).strip().rstrip("%")))
            except LotteryError as e:
                self.fail(f"{where}densities: ", f"{p!r} {e.message}")
        value = percents
        names = [f"{p:.4g}" for p in value]
        if len(set(names)) < len(names):
            self.fail(f"{where}densities: ", f"{value} repeats a density (to 4 "
                      "significant digits, which name the run directories)")
        return tuple(float(p) for p in value)

    def controls(self, table, recipe):
        found = []
        for name, entry in table.items():
            where = f"[controls] {name}: "
            if not isinstance(entry, dict):
                self.fail(where, "expected a table, e.g. { densities = [80] }")
            self.keys(where, entry, CONTROLS[name])
            if "iters" in CONTROLS[name] and "iters" not in entry:
                self.fail(where, "iters is required")
            mode = methods.get(name).name
            iters = (None,) if "iters" not in CONTROLS[name] else self.iters(
                where, entry["iters"], (mode,), recipe)
            found.append(Sweep("control", (mode,), iters, **self.amount(where, entry)))
        return found
