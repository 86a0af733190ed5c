#!/usr/bin/env bash
# ResNet-20 training throughput on a GPU machine, Keras on JAX.
#
# Written for a GPU machine with JAX, numpy, h5py, ml-dtypes, rich and absl
# but neither TensorFlow nor Keras, and no network. So Keras and the two
# packages it needs that may be missing there (namex, optree) travel as
# wheels in .whl/ (gitignored), with a keras_lottery wheel
# to check that the package installs and imports without TensorFlow. The
# benchmark itself (benchmarks/throughput.py) runs the checkout's code with
# KERAS_BACKEND=jax and numpy-fed batches (no tf.data), and prints the
# projected time of a full 71,108-step run (batch 128) at each speed.
#
# 1. Here (a machine with pip and PyPI), once:
#        bash benchmarks/gpu_jax.sh prepare
# 2. On the GPU machine, with the checkout and .whl/ copied there:
#        bash benchmarks/gpu_jax.sh run
#    Results are written to $OUT/gpu-resnet20.{md,json}.
# 3. To try the run step here on CPU (no install; a local JAX):
#        SKIP_INSTALL=1 OUT=/tmp/gpu-try STEPS=4 REPS=1 \
#            bash benchmarks/gpu_jax.sh run
#
# Settings for `run` (environment): ARCH (resnet20), REPS (5), STEPS (100
# timed steps per repetition), WARMUP (10), CONFIGS (see below), PYTHON
# (python3).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-run}"
case "$mode" in
prepare)
  PY="${PYTHON:-python3}"
  KERAS_VERSION="${KERAS_VERSION:-$("$PY" -c 'import keras; print(keras.__version__)')}"
  rm -rf .whl && mkdir -p .whl
  # The device's python is CPython 3.12 on x86-64 (manylinux).
  "$PY" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 \
    -d .whl "keras==$KERAS_VERSION" namex optree
  # Build keras_lottery's wheel from a copy, so no build/ or egg-info is
  # left in the checkout.
  src="$(mktemp -d)"
  trap 'rm -rf "$src"' EXIT
  cp -r keras_lottery pyproject.toml setup.cfg README.md "$src"/
  [[ -f MANIFEST.in ]] && cp MANIFEST.in "$src"/
  "$PY" -m pip wheel -q --no-deps -w "$PWD/.whl" "$src"
  ls -l .whl
  echo "now, on the GPU machine with the checkout and .whl/: bash benchmarks/gpu_jax.sh run"
  ;;
run)
  PY="${PYTHON:-python3}"
  OUT="${OUT:-/tmp/gpu-bench}"
  mkdir -p "$OUT"
  if [[ -z "${SKIP_INSTALL:-}" ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  fi
  export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
  command -v nvidia-smi >/dev/null && nvidia-smi -L || true
  # The installed wheel imports with JAX alone (no TensorFlow on the device).
  (cd /tmp && "$PY" -c 'import keras, jax, keras_lottery; print("keras", keras.__version__, keras.backend.backend(), "| jax", jax.__version__, jax.devices(), "| keras_lottery", keras_lottery.__version__, "from", keras_lottery.__file__)')
  # masked_xla is left out: under JAX every step is XLA-compiled already.
  CONFIGS="${CONFIGS:-masked,plain,masked_d0.2,masked_bf16,masked_fp16,masked_spe8,masked_pipeline,masked_pipeline_w4,eval_masked,pipeline}"
  "$PY" benchmarks/throughput.py --arch "${ARCH:-resnet20}" \
    --sections train --configs "$CONFIGS" \
    --reps "${REPS:-5}" --steps "${STEPS:-100}" --warmup "${WARMUP:-10}" \
    --pipeline-steps "${PIPELINE_STEPS:-200}" --project-steps 71108 \
    --json "$OUT/gpu-${ARCH:-resnet20}.json" \
    --markdown "$OUT/gpu-${ARCH:-resnet20}.md"
  ;;
*)
  echo "usage: bash benchmarks/gpu_jax.sh prepare|run" >&2
  exit 2
  ;;
esac
