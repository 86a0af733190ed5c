"""How a run executes: XLA, mixed precision, steps per execution, devices.

None of these change what a run computes in exact arithmetic; mixed
precision changes rounding (so it is part of a run's request), the others
only speed. Masks stay exact 0/1 and pruned weights exactly zero under every
setting: variables stay float32 under a mixed policy, and a pruned weight's
gradient is exactly zero in any precision.
"""

import contextlib
import dataclasses
import warnings

from keras_lottery import checks
from keras_lottery.errors import LotteryError

JIT_COMPILE = ("auto", "on", "off")
PRECISIONS = (None, "bf16", "fp16")
STRATEGIES = (None, "mirrored")
_POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclasses.dataclass(frozen=True)
class Execution:
    """Execution settings of a run.

    Args:
        jit_compile: "auto" (Keras's default: XLA where it is known to pay,
            which leaves it off on CPU, where forced XLA is about 2x
            slower), "on" or "off".
        precision: None (float32), "bf16" (`mixed_bfloat16`, CPU or GPU) or
            "fp16" (`mixed_float16` with dynamic loss scaling by
            `optimizer.LossScaleOptimizer`, in which a skipped step still
            counts as an iteration; GPU only).
        steps_per_execution: training steps per compiled call; any value is
            compatible with the checkpoint iterations, since `fit` runs in
            segments that end exactly at them.
        strategy: None (one device) or "mirrored"
            (`tf.distribute.MirroredStrategy` over every visible GPU, or the
            logical CPU devices): the global batch is split across replicas
            and batch norm is synchronized, so statistics are over the
            global batch as on one device.
    """

    jit_compile: str = "auto"
    precision: str = None
    steps_per_execution: int = 1
    strategy: str = None

    def __post_init__(self):
        checks.choice(self.jit_compile, "jit_compile", JIT_COMPILE)
        if self.precision not in PRECISIONS:
            raise LotteryError("expected bf16, fp16 or None (float32)",
                               param="mixed_precision", value=self.precision)
        checks.count(self.steps_per_execution, "steps_per_execution", 1,
                     "expected a positive integer")
        if self.strategy not in STRATEGIES:
            raise LotteryError("expected 'mirrored' or None", param="strategy",
                               value=self.strategy)

    def check_devices(self):
        """Refuses what this machine cannot run (fp16 without a GPU, a
        strategy on a backend without one); returns the settings."""
        if self.precision == "fp16" and not has_gpu():
            raise LotteryError(
                "needs a GPU (loss-scaled float16 is slow and lossy on CPUs); "
                "use bf16 on a CPU", param="mixed_precision", value="fp16",
            )
        if self.strategy and _backend() != "tensorflow":
            raise LotteryError(
                f"is TensorFlow's (tf.distribute) and the backend is {_backend()}"
                + (" (whose data parallelism, keras.distribution, runs do not use)"
                   if _backend() == "jax" else "") + "; unset KERAS_BACKEND or set "
                "it to tensorflow", param="strategy", value=self.strategy,
            )
        return self

    def compile_kwargs(self):
        jit = {"auto": "auto", "on": True, "off": False}[self.jit_compile]
        return {"jit_compile": jit, "steps_per_execution": self.steps_per_execution}

    @contextlib.contextmanager
    def building(self):
        """Context for building and compiling a model: the dtype policy
        (restored afterwards, so the caller's global policy is untouched)
        and the distribution strategy's scope."""
        import keras

        previous = keras.config.dtype_policy()
        if self.precision:
            keras.config.set_dtype_policy(_POLICIES[self.precision])
        try:
            with self.scope():
                yield
        finally:
            keras.config.set_dtype_policy(previous)

    def scope(self):
        """The distribution strategy's scope (or a no-op)."""
        if self.strategy is None:
            return contextlib.nullcontext()
        return mirrored_strategy().scope()

    def prepare(self, model):
        """Adjusts a freshly built model: synchronized batch norm under a
        strategy, so its statistics cover the global batch."""
        import keras

        from keras_lottery.sparse.pruning import iter_layers

        if self.strategy:
            for layer in iter_layers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        return model

    def replicas(self):
        return mirrored_strategy().num_replicas_in_sync if self.strategy else 1

    def to_dict(self):
        return dataclasses.asdict(self)


def _backend():
    import keras

    return keras.backend.backend()


_STRATEGY = []


def mirrored_strategy():
    """The process's `tf.distribute.MirroredStrategy`, made once."""
    # One strategy per process: variables made under one cannot be used
    # under another.
    if not _STRATEGY:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        if strategy.num_replicas_in_sync == 1:
            warnings.warn(
                "strategy='mirrored' sees a single device (no second GPU is "
                "visible), so the run trains as on one device", stacklevel=2)
        _STRATEGY.append(strategy)
    return _STRATEGY[0]


def has_gpu():
    """Whether the backend's framework sees a GPU: fp16 needs one.

    The one place `Execution` asks; a test replaces it to run fp16's
    semantics on a CPU (`monkeypatch.setattr(execution, "has_gpu", ...)`).
    """
    backend = _backend()
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
