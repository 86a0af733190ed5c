"""The package version, importable without TensorFlow or Keras (setup.cfg
reads it from here too, so the two never disagree)."""

__version__ = "0.2.0"
