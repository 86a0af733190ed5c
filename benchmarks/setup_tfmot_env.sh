#!/usr/bin/env bash
# Creates the separate virtual environment for benchmarks/tfmot_throughput.py.
#
# tensorflow-model-optimization's prune_low_magnitude needs tf_keras (Keras 2),
# which cannot share an environment with the Keras 3 that keras_lottery uses
# (TF_USE_LEGACY_KERAS=1 switches tf.keras to tf_keras process-wide). So the
# tfmot side of the comparison lives in its own venv, outside the repository.
#
# Usage: bash benchmarks/setup_tfmot_env.sh [VENV_DIR]
#   VENV_DIR defaults to $TFMOT_VENV or /tmp/tfmot-venv.
#   TF_VERSION (default: the tensorflow version of the current `python`, else
#   2.21.0) pins tensorflow and the matching tf_keras minor version.
set -euo pipefail

VENV="${1:-${TFMOT_VENV:-/tmp/tfmot-venv}}"
PY="${PYTHON:-python3}"
if [[ -z "${TF_VERSION:-}" ]]; then
  TF_VERSION="$("$PY" -c 'import importlib.metadata as m; print(m.version("tensorflow"))' 2>/dev/null || echo 2.21.0)"
fi
TF_MINOR="${TF_VERSION%.*}"   # 2.21.0 -> 2.21

echo "creating $VENV (tensorflow==$TF_VERSION, tf_keras~=$TF_MINOR.0)" >&2
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q \
  "tensorflow==$TF_VERSION" \
  "tf_keras~=$TF_MINOR.0" \
  "tensorflow-model-optimization>=0.8"

TF_USE_LEGACY_KERAS=1 "$VENV/bin/python" - <<'PY'
import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot
print("tensorflow", tf.__version__, "| tf_keras", tf_keras.__version__,
      "| tfmot", tfmot.__version__ if hasattr(tfmot, "__version__") else "?",
      "| tf.keras is tf_keras:", tf.keras.__name__.startswith("tf_keras"))
PY
echo "ok: run benchmarks with TFMOT_PYTHON=$VENV/bin/python" >&2
