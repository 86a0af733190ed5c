"""The devices a study's runs go to, and each run's environment.

TensorFlow hands GPU memory back only when its process exits, so a
process (a warm worker, or a run's own) keeps to one device: each run sees
one device through `CUDA_VISIBLE_DEVICES`
("" for the CPU), with memory growth on (TensorFlow) and preallocation off
(JAX), so `runs_per_device` runs can share one GPU.
"""

import os
import shutil
import subprocess

CPU = "cpu"


def resolve(devices, environ=None):
    """The device names ("cpu", or GPU indices as text) of a study file's
    `devices`: "auto" finds the GPUs (those `CUDA_VISIBLE_DEVICES` lists,
    else those `nvidia-smi` reports), falling back to the CPU."""
    environ = os.environ if environ is None else environ
    if devices == CPU:
        return [CPU]
    if devices != "auto":
        return [str(i) for i in devices]
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        return found or [CPU]
    return _nvidia_smi() or [CPU]


def _nvidia_smi():
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip().isdigit()]


def environment(device, environ=None, backend=None):
    """The environment of a run on `device` (on the Keras `backend` given:
    a Ray worker's own environment need not be the driver's)."""
    env = dict(os.environ if environ is None else environ)
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    env["CUDA_VISIBLE_DEVICES"] = "" if device == CPU else str(device)
    env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
