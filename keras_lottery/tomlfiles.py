"""Reading TOML files (study files, recipe files): `tomllib`, or `tomli`
on Python 3.10."""

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

DecodeError = tomllib.TOMLDecodeError  # a ValueError


def read(path):
    """The TOML file at `path` as a dict (OSError, or `DecodeError`)."""
    with open(path, "rb") as f:
        return tomllib.load(f)


def parse(text):
    """TOML text as a dict (`DecodeError` when it is not TOML)."""
    return tomllib.loads(text)
