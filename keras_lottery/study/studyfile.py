"""Study files: TOML read, checked and resolved into a `StudyFile`.

    [study]
    root = "runs/renda2020"     # next to the file; default: runs/<its name>
    [base]
    arch = "resnet20"           # or a list of names
    dataset = "cifar10"         # data_dir = "..." optional
    recipe = "renda2020"        # a preset or a .toml file; recipe fields
    seeds = [1, 2, 3]           #   (steps = 600, ...) may also be given here
    val_split = 2000            # the default on CIFAR, else 0
    [oneshot]
    methods = ["rewind", "rewind-lr", "finetune"]
    iters = "checkpoints"       # or a list of steps
    densities = [80, 64, 51.2]  # percent, or { rate = 0.8, rounds = 10 }
    [iterative]
    methods = ["rewind"]
    iters = [0, 4701]
    rate = 0.8
    rounds = 10
    [controls]
    reinit = { densities = [80] }
    random = { iters = [4701], densities = [80] }
    lowlr-rewind = { iters = [0], densities = [80] }
    [resources]
    devices = "auto"            # "cpu", or GPU indices [0, 1]
    runs_per_device = 1
    [slurm]                     # for the slurm engine (`slurmconfig`)
    partition = "gpu"

Relative paths in the file (root, data_dir, a recipe file) are relative to
the file's own folder, so one file names one study wherever the command
runs (a requeued job, another terminal, another working folder). Every
problem is one `LotteryError` line naming the file, the section and the
key.
"""

import dataclasses
import hashlib
import pathlib

from keras_lottery import checks
from keras_lottery import tomlfiles
from keras_lottery.runs import layout
from keras_lottery.spec import recipe as recipe_lib
from keras_lottery.spec.requests import PAPER_DATASETS
from keras_lottery.spec.requests import PAPER_VAL_SPLIT
from keras_lottery.errors import LotteryError
from keras_lottery.study import sweeps
from keras_lottery.study.engines import slurmconfig

BASE_KEYS = ("arch", "dataset", "data_dir", "recipe", "seeds", "val_split",
             "epochs") + recipe_lib.FIELDS
SECTIONS = {
    "study": ("root",),
    "base": BASE_KEYS,
    "oneshot": sweeps.KEYS["oneshot"],
    "iterative": sweeps.KEYS["iterative"],
    "controls": tuple(sweeps.CONTROLS),
    "resources": ("devices", "runs_per_device"),
    slurmconfig.SECTION: slurmconfig.KEYS,
}


@dataclasses.dataclass(frozen=True)
class StudyFile:
    """A checked study file.

    Attributes:
        path: the file, as given.
        sha256: the hash of its bytes.
        root: where every run of the study lives (absolute).
        archs: the base networks' architectures.
        dataset, data_dir: the data (data_dir absolute, or None).
        recipe_source: the preset name or the absolute path of the recipe
            file that [base] names.
        recipe_preset: the preset the recipe starts from.
        recipe_fields: recipe fields given in [base] (with a recipe file's
            own), as (name, value) pairs: they go to a recipe file in the
            root; empty when none is given inline.
        recipe: the resolved `Recipe` of every base run.
        train_images: the training set's size.
        seeds: one base run per seed and arch; derived runs take their
            base's seed.
        val_split: held-out test images (default: the paper's 2000 on
            CIFAR, as `lottery train`, else 0).
        sweeps: the `Sweep`s.
        devices: "auto", "cpu" or a tuple of GPU indices.
        runs_per_device: runs sharing one device.
        slurm: the `slurmconfig.SlurmSettings` of the [slurm] section.
    """

    path: pathlib.Path
    sha256: str
    root: pathlib.Path
    archs: tuple
    dataset: str
    data_dir: str
    recipe_source: str
    recipe_preset: str
    recipe_fields: tuple
    recipe: recipe_lib.Recipe
    train_images: int
    seeds: tuple
    val_split: int
    sweeps: tuple
    devices: object
    runs_per_device: int
    slurm: slurmconfig.SlurmSettings = slurmconfig.SlurmSettings()


def load(path):
    """Reads and checks the study file at `path`.

    Raises:
        LotteryError: one line naming the file, section and key at fault.
    """
    path = pathlib.Path(path)
    label = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LotteryError(f"{label}: no such study file") from None
    except OSError as e:
        raise LotteryError(f"{label}: cannot be read ({e.strerror})") from None
    try:
        config = tomlfiles.parse(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise LotteryError(f"{label}: is not valid TOML ({e})") from None
    reader = _Reader(label, path.resolve().parent)
    return reader.study(path, hashlib.sha256(raw).hexdigest(), config)


class _Reader(sweeps.SweepReader):
    """Checks the sections of one file; errors name the file."""

    def __init__(self, label, folder):
        self.label = label
        self.folder = folder

    def at(self, value):
        """A path of the file, made absolute from the file's folder."""
        return (self.folder / pathlib.Path(value).expanduser()).resolve()

    def fail(self, where, message):
        raise LotteryError(f"{self.label}: {where}{message}")

    def study(self, path, sha256, config):
        self.sections(config)
        base = self.table(config, "base", required=True)
        study = self.table(config, "study")
        resources = self.table(config, "resources")
        recipe, source, preset, fields, images = self.recipe(base)
        sweeps = []
        if "oneshot" in config:
            sweeps.append(self.sweep("oneshot", self.table(config, "oneshot"), recipe))
        if "iterative" in config:
            sweeps.append(self.sweep("iterative", self.table(config, "iterative"), recipe))
        sweeps += self.controls(self.table(config, "controls"), recipe)
        root = study.get("root", layout.study_root(path.stem))
        default_split = (PAPER_VAL_SPLIT if base.get("dataset", "cifar10") in PAPER_DATASETS
                         else 0)
        self.check_text("[study] root", root)
        data_dir = base.get("data_dir")
        if data_dir is not None:
            self.check_text("[base] data_dir", data_dir)
            if not self.at(data_dir).is_dir():
                self.fail("[base] data_dir: ", f"{data_dir!r} is not a folder "
                          f"({self.at(data_dir)})")
            data_dir = str(self.at(data_dir))
        return StudyFile(
            path=path, sha256=sha256, root=self.at(root),
            archs=self.archs(base.get("arch", "resnet20")),
            dataset=base.get("dataset", "cifar10"), data_dir=data_dir,
            recipe_source=source, recipe_preset=preset, recipe_fields=fields,
            recipe=recipe,
            train_images=images, seeds=self.seeds(base),
            val_split=self.count("[base] val_split", base.get("val_split", default_split), 0),
            sweeps=tuple(sweeps), devices=self.devices(resources.get("devices", "auto")),
            runs_per_device=self.count("[resources] runs_per_device",
                                       resources.get("runs_per_device", 1), 1),
            slurm=slurmconfig.read(self.table(config, slurmconfig.SECTION),
                                   lambda key, message: self.fail(f"[slurm] {key}: ", message)),
        )

    def sections(self, config):
        for name, value in config.items():
            if name not in SECTIONS:
                self.fail("", f"unknown section [{name}]{sweeps.closest(name, SECTIONS)}; "
                          f"sections: {', '.join(SECTIONS)}")
            if not isinstance(value, dict):
                self.fail("", f"{name} must be a section ([{name}]), not a value")

    def table(self, config, name, required=False):
        table = config.get(name)
        if table is None:
            if required:
                self.fail("", f"the [{name}] section is required")
            return {}
        self.keys(f"[{name}] ", table, SECTIONS[name])
        return table

    def keys(self, where, table, allowed):
        for key in table:
            if key not in allowed:
                self.fail(where, f"unknown key {key!r}{sweeps.closest(key, allowed)}; "
                          f"keys: {', '.join(allowed)}")

    def check_text(self, where, value):
        if not isinstance(value, str) or not value:
            self.fail(f"{where}: ", f"expected a non-empty string, got {value!r}")

    def count(self, where, value, minimum):
        if not checks.is_count(value, minimum):
            self.fail(f"{where}: ", f"expected an integer >= {minimum}, got {value!r}")
        return value

    def archs(self, value):
        names = [value] if isinstance(value, str) else value
        if (not isinstance(names, list) or not names
                or not all(isinstance(n, str) for n in names)):
            self.fail("[base] arch: ", f"expected a name or a list of names, got {value!r}")
        from keras_lottery import models  # loads Keras: only when checking names

        for name in names:
            if name not in models.available():
                self.fail("[base] arch: ", f"unknown architecture {name!r}"
                          f"{sweeps.closest(name, models.available())}; available: "
                          f"{', '.join(models.available())}")
        if len(set(names)) < len(names):
            self.fail("[base] arch: ", f"{names} names an architecture twice")
        return tuple(names)

    def seeds(self, base):
        if "seeds" not in base:
            self.fail("[base] ", "seeds is required: list the seeds explicitly, "
                      "e.g. seeds = [1, 2, 3] (every derived run takes its base's)")
        seeds = base["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(map(checks.is_count, seeds)):
            self.fail("[base] seeds: ", f"expected a non-empty list of integers "
                      f">= 0, got {seeds!r}")
        if len(set(seeds)) < len(seeds):
            self.fail("[base] seeds: ", f"{seeds} repeats a seed")
        return tuple(seeds)

    def recipe(self, base):
        """(Recipe, source, preset, inline fields, training images) of [base]."""
        from keras_lottery import data as data_lib

        dataset = base.get("dataset", "cifar10")
        self.check_text("[base] dataset", dataset)
        try:
            images = data_lib.train_size(dataset)
        except LotteryError as e:
            self.fail("[base] dataset: ", f"{dataset!r}: {e.message}")
        source = base.get("recipe", "renda2020")
        self.check_text("[base] recipe", source)
        if source.endswith(".toml"):
            source = str(self.at(source))
        fields = {k: v for k, v in base.items() if k in recipe_lib.FIELDS}
        try:
            made = recipe_lib.make(source, epochs=base.get("epochs"),
                                   train_images=images, **fields)
        except LotteryError as e:
            shown = "" if e.param is None else f"{e.param} {e.value!r}: "
            self.fail("[base] ", f"{shown}{e.message}")
        if "epochs" in base:
            fields["steps"] = made.steps
        preset = source
        if source.endswith(".toml"):
            own = recipe_lib.load_file(source)
            preset = own.pop("preset", "renda2020")
            fields = dict(own, **fields) if fields else {}
        return made, source, preset, tuple(sorted(fields.items())), images

    def devices(self, value):
        if value in ("auto", "cpu"):
            return value
        indices = [value] if checks.is_count(value, -2**63) else value
        if not isinstance(indices, list) or not indices or not all(map(checks.is_count, indices)):
            self.fail("[resources] devices: ", "expected \"auto\", \"cpu\" or a "
                      f"list of GPU indices, got {value!r}")
        if len(set(indices)) < len(indices):
            self.fail("[resources] devices: ", f"{indices} repeats a device")
        return tuple(indices)
